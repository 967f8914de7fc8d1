"""The OpenAI-compatible test LM server (Go, ``internal/lmtest``) for the Python tests,
and the rules for tests that need the real dspy.

``make test`` builds the server's command and names it in ``DSPGOTEST_LMSERVER``; it runs
the suite once on the bare interpreter and once in the dspy environment with
``DSPGOTEST_DSPY_EXPECTED=1``, where a test that needs dspy fails instead of skipping
when dspy cannot be imported.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import unittest
import urllib.error
import urllib.request

from .helpers import WAIT

SERVER_ENV = "DSPGOTEST_LMSERVER"
DSPY_EXPECTED_ENV = "DSPGOTEST_DSPY_EXPECTED"


def dspy_importable() -> bool:
    return importlib.util.find_spec("dspy") is not None


def require_dspy(testcase: unittest.TestCase) -> None:
    """Skip the test when dspy cannot be imported here, or fail it where the run expects
    dspy (the dspy environment of ``make test``)."""
    if dspy_importable():
        return
    if os.environ.get(DSPY_EXPECTED_ENV) == "1":
        testcase.fail("dspy cannot be imported, but this run expects it (run make deps)")
    testcase.skipTest("dspy is not installed in this interpreter (make test runs these in its dspy environment)")


class LMServer:
    """One ``lmtestd`` process on 127.0.0.1, stopped by a cleanup of ``testcase`` (its
    standard input closes; the server exits on that).

    ``url`` is its base URL (``…/v1``); :meth:`requests` the requests it recorded, each
    a dict as ``internal/lmtest`` documents it; :meth:`reset` forgets them (and the
    replies :meth:`script` queued).
    """

    def __init__(self, testcase: unittest.TestCase):
        path = os.environ.get(SERVER_ENV)
        if not path or not os.path.exists(path):
            message = f"${SERVER_ENV} does not name the test LM server (make test builds it: go build ./internal/lmtest/lmtestd)"
            if os.environ.get(DSPY_EXPECTED_ENV) == "1":
                testcase.fail(message)
            testcase.skipTest(message)
        self.process = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        testcase.addCleanup(self.close)
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"{path} printed no address")
        self.url = json.loads(line)["url"]
        self.root = self.url.rsplit("/v1", 1)[0]

    def requests(self) -> list[dict]:
        with urllib.request.urlopen(self.root + "/_test/requests", timeout=WAIT) as response:
            return json.loads(response.read())

    def wait(self, **at_least: int) -> list[dict]:
        """The recorded requests once at least ``requests``, ``done`` or ``canceled`` of
        them are (each optional); fails the test's wait after :data:`WAIT` seconds."""
        query = "&".join(f"{name}={n}" for name, n in at_least.items())
        url = f"{self.root}/_test/wait?{query}&timeout={WAIT:g}s"
        try:
            with urllib.request.urlopen(url, timeout=WAIT + 5) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"the LM server did not see {at_least} within {WAIT:g} s: {self.requests()}") from exc

    def script(self, *replies: str) -> None:
        """Queue reply contents: the chat requests that arrive next take them as their
        replies, in arrival order, instead of the computed ones (``Server.Script``)."""
        data = json.dumps({"replies": list(replies)}).encode()
        request = urllib.request.Request(self.root + "/_test/script", data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=WAIT):
            pass

    def reset(self) -> None:
        request = urllib.request.Request(self.root + "/_test/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=WAIT):
            pass

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(WAIT)
        self.process.stdout.close()
