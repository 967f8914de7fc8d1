"""What an idle worker has loaded: the heavy modules come only with the first use.

An idle worker's resident memory is mostly the modules it has imported (and, started
without bytecode caches, compiled). These tests ask a worker for its ``sys.modules``
(the ``modules`` diagnostics command) and check that the HTTP stack (``urllib.request``,
``http.client``, ``ssl``, ``email``) and the other heavy modules stay out of a worker that
has only answered its init ping, or only run programs with the dummy language model.
Modules a bare interpreter of the same environment already has (a ``.pth`` file may import
some) are not held against the worker, nor those ``import asyncio`` brings (``socket``,
``ssl``, ``subprocess``, ``inspect``…): the worker serves every request on an asyncio
event loop, which costs an idle worker about 6.5 MB and saves a thread (25–50 KB) per call
in flight (docs/performance.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import unittest

from .helpers import PYTHON_DIR, WorkerProcess
from .test_spec import spec_of

#: Never loaded by a worker that makes no HTTP request.
HTTP_STACK = ("urllib.request", "urllib.error", "http.client", "ssl", "_ssl", "email", "email.utils", "socket")
#: Not loaded by an idle worker either (each costs resident memory, and has no use before
#: the first program command or the first failure).
IDLE_EXTRA = (
    "hashlib",
    "_hashlib",
    "dataclasses",
    "typing",
    "decimal",
    "subprocess",
    "platform",
    "inspect",
    "dspgo_worker.canonical",
    "dspgo_worker.chat_format",
    "dspgo_worker.chunks",
    "dspgo_worker.demos",
    "dspgo_worker.dummy",
    "dspgo_worker.engines",
    "dspgo_worker.fieldtypes",
    "dspgo_worker.kinds",
    "dspgo_worker.lmconfig",
    "dspgo_worker.native",
    "dspgo_worker.openai_provider",
    "dspgo_worker.providers",
    "dspgo_worker.react",
    "dspgo_worker.redact",
    "dspgo_worker.signature",
    "dspgo_worker.spec",
    "dspgo_worker.sse",
    "dspgo_worker.transport",
    "dspgo_worker.usage",
    "dspgo_worker.values",
)


def bare_modules() -> set[str]:
    """The modules a bare interpreter of this environment has once it imported runpy
    (``python -m`` loads it: on 3.9 it brings typing) and asyncio (the worker's loop)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PYTHON_DIR)
    out = subprocess.run(
        [sys.executable, "-c", "import asyncio, runpy, sys; print('\\n'.join(sys.modules))"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout
    return set(out.split())


class ImportsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bare = bare_modules()

    def modules(self, worker: WorkerProcess) -> set[str]:
        reply = worker.request("modules")
        self.assertTrue(reply["success"], reply)
        names = reply["result"]["modules"]
        self.assertEqual(names, sorted(names))
        return set(names)

    def assert_not_loaded(self, loaded: set[str], names, when: str) -> None:
        unexpected = []
        for name in names:
            if name in self.bare:
                continue  # the environment loads it anyway
            if name in loaded:
                unexpected.append(name)
            if name == "email":
                unexpected += sorted(m for m in loaded if m.startswith("email.") and m not in self.bare)
        self.assertEqual(unexpected, [], f"loaded {when}")

    def test_idle_worker(self):
        worker = WorkerProcess(self, "--diagnostics")
        loaded = self.modules(worker)
        self.assertIn("dspgo_worker.programs", loaded, "the program commands are registered")
        self.assert_not_loaded(loaded, HTTP_STACK + IDLE_EXTRA, "after the init ping")

    def test_programs_with_the_dummy_lm(self):
        worker = WorkerProcess(self, "--diagnostics")
        spec = spec_of([("question", ""), ("n", "int")], [("answer", ""), ("score", "float"), ("tags", "list[str]")])
        self.assertTrue(worker.request("configure_lm", {"provider": "dummy"})["success"])
        created = worker.request("create_program", {"spec": spec})
        self.assertTrue(created["success"], created)
        for i in range(3):
            reply = worker.request("execute_program", {"spec_hash": created["result"]["spec_hash"], "inputs": {"question": "?", "n": i}})
            self.assertTrue(reply["success"], reply)
        self.assertTrue(worker.request("get_stats")["success"])
        loaded = self.modules(worker)
        self.assertIn("dspgo_worker.engines", loaded)
        self.assert_not_loaded(loaded, HTTP_STACK + ("hashlib", "_hashlib", "dataclasses", "decimal", "subprocess"), "by dummy programs")

    def test_prefix(self):
        worker = WorkerProcess(self, "--diagnostics")
        names = worker.request("modules", {"prefix": "dspgo_worker."})["result"]["modules"]
        self.assertIn("dspgo_worker.worker", names)
        self.assertTrue(all(name.startswith("dspgo_worker.") for name in names))

    def test_only_with_diagnostics(self):
        worker = WorkerProcess(self)
        self.assertEqual(worker.request("modules")["error"]["code"], "unimplemented")


if __name__ == "__main__":
    unittest.main()
