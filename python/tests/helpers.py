"""Test helpers: a worker subprocess driven over pipes with the package's own codec."""

from __future__ import annotations

import itertools
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

from dspgo_worker.protocol import DEFAULT_MAX_FRAME_BYTES, FrameError, decode_message, encode_frame, read_frame

PYTHON_DIR = Path(__file__).resolve().parents[1]
TESTDATA_DIR = Path(__file__).resolve().parents[2] / "protocol" / "testdata"
VECTORS_PATH = TESTDATA_DIR / "vectors.json"

#: Generous bound for anything that should happen "soon" (slow, loaded CI machines).
WAIT = 15.0


def load_vectors() -> dict:
    """The shared wire vectors file."""
    with open(VECTORS_PATH, encoding="utf-8") as f:
        return json.load(f)


def vector_bytes(name: str) -> bytes:
    """The raw frame bytes of the vector called ``name``."""
    for vector in load_vectors()["vectors"]:
        if vector["name"] == name:
            return bytes.fromhex(vector["frame_hex"])
    raise KeyError(name)


def load_testdata(name: str) -> dict:
    """A file of protocol/testdata (``models.json``), decoded."""
    with open(TESTDATA_DIR / name, encoding="utf-8") as f:
        return json.load(f)


def check_spec_cases(test: unittest.TestCase, cases: list[dict]) -> None:
    """Each spec case of a vectors file (``{"name", "signature", "normalized" | "error" |
    "ok"}``): the spec of that signature compiles to the normalized signature (which
    normalizes to itself), or just compiles (``ok``), or fails with ``invalid_argument``
    and the error's message."""
    from dspgo_worker.errors import WorkerError
    from dspgo_worker.spec import CompiledSpec

    for case in cases:
        with test.subTest(case=case["name"]):
            if "error" in case:
                with test.assertRaises(WorkerError) as caught:
                    CompiledSpec({"signature": case["signature"]})
                test.assertEqual(caught.exception.code, "invalid_argument")
                test.assertEqual(caught.exception.message, case["error"])
                continue
            compiled = CompiledSpec({"signature": case["signature"]})
            if case.get("ok"):  # it compiles; no normalized signature given
                test.assertNotIn("normalized", case)
                continue
            assert_same_json(test, compiled.spec["signature"], case["normalized"])
            again = CompiledSpec({"signature": case["normalized"]})
            test.assertEqual(again.hash, compiled.hash, "the normalized signature normalizes to itself")


def assert_same_json(test: unittest.TestCase, got, want, msg=None) -> None:
    """``got`` is ``want`` as JSON writes them: json.dumps tells 3 from 3.0 and one order of
    keys from another, which == does not (and writes a dict's int keys as JSON does)."""
    test.assertEqual(json.dumps(got), json.dumps(want), msg)


def assert_same_fields(test: unittest.TestCase, got: dict, want: dict) -> None:
    """Values by field name (a run's inputs, outputs): the same names, in any order, each
    value the same JSON (:func:`assert_same_json`)."""
    test.assertEqual(sorted(got), sorted(want))
    for name in want:
        assert_same_json(test, got[name], want[name], name)


def check_conversions(test: unittest.TestCase, cases: list[dict], parse) -> None:
    """Each conversion case of a vectors file (``{"type", "value", "result" | "error"}``):
    the value of the type ``parse`` makes of ``"type"``, converted as the input x, is the
    result (which converts to itself) or fails with the error."""
    from dspgo_worker.values import convert

    for case in cases:
        t = parse(case["type"])
        with test.subTest(type=case["type"], value=case["value"]):
            if "error" in case:
                with test.assertRaises(ValueError) as caught:
                    convert(t, case["value"], "input x")
                test.assertEqual(str(caught.exception), case["error"])
                continue
            got = convert(t, case["value"], "input x")
            assert_same_json(test, got, case["result"])
            test.assertEqual(json.dumps(convert(t, got, "input x")), json.dumps(got), "converting again changes nothing")


def parse_records(text: str) -> list[dict]:
    """The lines of ``text`` that are JSON objects (log records)."""
    records = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            records.append(value)
    return records


class StreamEnded(AssertionError):
    """The worker's stdout ended (or broke) while a frame was expected."""


class HostSide:
    """What a host does with the frames that carry a ``kind`` (streams, calls to the host).

    ``chunks[id]`` collects the chunk frames of request ``id``; with ``auto_credit`` each
    chunk received is answered with that much credit. A ``call`` frame whose tool is in
    ``tools`` (name -> function of the args, returning the result or raising WorkerError)
    is answered at once; others wait in ``calls`` for the test. ``calls_seen`` lists every
    call frame, ``call_cancels`` the ids of the worker's ``cancel`` frames.
    Needs ``send(message)``.
    """

    def _init_host(self) -> None:
        self.chunks: dict[int, list[dict]] = {}
        self.calls: list[dict] = []
        self.calls_seen: list[dict] = []
        self.call_cancels: list[int] = []
        self.tools: dict = {}
        self.auto_credit = 0
        self.kinds_seen: list[dict] = []

    def _route(self, message: dict) -> bool:
        """Handle a frame with a kind; False for a final response."""
        kind = message.get("kind")
        if kind is None:
            return False
        self.kinds_seen.append(message)
        if kind == "chunk":
            self.chunks.setdefault(message["id"], []).append(message)
            if self.auto_credit:
                self.grant(message["id"], self.auto_credit)
        elif kind == "call":
            self.calls_seen.append(message)
            fn = self.tools.get(message["tool"])
            if fn is None:
                self.calls.append(message)
            else:
                from dspgo_worker.errors import WorkerError

                try:
                    self.answer_call(message["id"], result=fn(message["args"]))
                except WorkerError as exc:
                    self.answer_call(message["id"], error={"code": exc.code, "message": exc.message})
        elif kind == "cancel":
            self.call_cancels.append(message["id"])
        else:
            raise AssertionError(f"unexpected frame kind from the worker: {message!r}")
        return True

    def grant(self, request_id: int, credit: int) -> None:
        self.send({"id": request_id, "kind": "credit", "credit": credit})

    def answer_call(self, call_id: int, result=None, error: dict | None = None) -> None:
        if error is None:
            self.send({"id": call_id, "kind": "result", "success": True, "result": result})
        else:
            self.send({"id": call_id, "kind": "result", "success": False, "error": error})


class WorkerProcess(HostSide):
    """A worker subprocess with background threads draining stdout (frames) and stderr.

    Registers its own cleanup on ``testcase``: the process is killed and reaped, the
    threads joined and the pipes closed, whatever the test did. Frames with a kind are
    handled as :class:`HostSide` says, in the thread that receives.
    """

    def __init__(self, testcase: unittest.TestCase, *flags: str, pythonpath: tuple[str, ...] = (), init: bool = True):
        self._init_host()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(PYTHON_DIR), *pythonpath])
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dspgo_worker", *flags],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        testcase.addCleanup(self.close)
        self._ids = itertools.count(1)
        self._send_lock = threading.Lock()
        self._frames: queue.Queue = queue.Queue()
        self._pending: dict[int, dict] = {}
        self.answered: dict[int, int] = {}  # id -> number of responses seen
        self._stderr = bytearray()
        self._stderr_cv = threading.Condition()
        self._stdout_thread = threading.Thread(target=self._read_stdout, daemon=True)
        self._stderr_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._stdout_thread.start()
        self._stderr_thread.start()
        self.hello = None
        self.exited_at: float | None = None
        if init:
            self.send({"id": 0, "command": "ping", "args": {"initialization": True}})
            reply = self.response(0)
            testcase.assertTrue(reply["success"], reply)
            self.hello = reply["result"]

    # --- background readers ---

    def _read_stdout(self) -> None:
        try:
            while True:
                body = read_frame(self.proc.stdout, DEFAULT_MAX_FRAME_BYTES)
                if body is None:
                    self._frames.put(("eof", None))
                    return
                self._frames.put(("frame", body))
        except (FrameError, OSError, ValueError) as exc:
            self._frames.put(("error", exc))

    def _read_stderr(self) -> None:
        while True:
            try:
                chunk = self.proc.stderr.read1(65536)
            except (OSError, ValueError):
                chunk = b""
            with self._stderr_cv:
                if not chunk:
                    self._stderr_cv.notify_all()
                    return
                self._stderr += chunk
                self._stderr_cv.notify_all()

    # --- sending ---

    def send(self, message: dict) -> None:
        """Send one message, encoded with the package's codec."""
        self.send_raw(encode_frame(message))

    def send_raw(self, data: bytes) -> None:
        with self._send_lock:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def call(self, command: str, args: dict | None = None, **fields) -> int:
        """Send a request with a fresh id; returns the id."""
        request_id = next(self._ids)
        message = {"id": request_id, "command": command}
        if args is not None:
            message["args"] = args
        message.update(fields)
        self.send(message)
        return request_id

    def request(self, command: str, args: dict | None = None, timeout: float = WAIT, **fields) -> dict:
        """Send a request and wait for its response."""
        return self.response(self.call(command, args, **fields), timeout)

    def close_stdin(self) -> None:
        with self._send_lock:
            self.proc.stdin.close()

    # --- receiving ---

    def next_frame(self, timeout: float = WAIT) -> bytes:
        """The next raw frame body; raises StreamEnded at EOF or on a framing error."""
        try:
            kind, value = self._frames.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no frame within {timeout} s; stderr:\n{self.stderr_text()[-3000:]}") from None
        if kind != "frame":
            self._frames.put((kind, value))  # keep the end marker for later calls
            raise StreamEnded(f"worker stdout ended ({kind}: {value!r}); stderr:\n{self.stderr_text()[-3000:]}")
        return value

    def recv(self, timeout: float = WAIT) -> dict:
        """The next final response, counted in :attr:`answered` (frames with a kind that
        come first are handled on the way)."""
        end = time.monotonic() + timeout
        while True:
            message = decode_message(self.next_frame(max(0.0, end - time.monotonic())))
            if not self._route(message):
                break
        self.answered[message["id"]] = self.answered.get(message["id"], 0) + 1
        return message

    def wait_until(self, predicate, timeout: float = WAIT, what: str = "condition") -> None:
        """Receive frames until ``predicate()`` holds; final responses are kept for
        :meth:`response`."""
        end = time.monotonic() + timeout
        while not predicate():
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{what} not met within {timeout} s; stderr:\n{self.stderr_text()[-3000:]}")
            message = decode_message(self.next_frame(left))
            if not self._route(message):
                self.answered[message["id"]] = self.answered.get(message["id"], 0) + 1
                self._pending[message["id"]] = message

    def response(self, request_id: int, timeout: float = WAIT) -> dict:
        """Wait for the response to ``request_id``, keeping others for later."""
        end = time.monotonic() + timeout
        while request_id not in self._pending:
            message = self.recv(max(0.0, end - time.monotonic()))
            self._pending[message["id"]] = message
        return self._pending.pop(request_id)

    def assert_no_frame(self, timeout: float) -> None:
        """Assert nothing arrives on stdout for ``timeout`` seconds."""
        try:
            kind, value = self._frames.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected {kind} on stdout: {value!r}")

    # --- stderr ---

    def stderr_text(self) -> str:
        with self._stderr_cv:
            return self._stderr.decode("utf-8", "replace")

    def wait_stderr(self, predicate, timeout: float = WAIT) -> str:
        """Wait until ``predicate(stderr_text)`` is true (a str predicate means "contains")."""
        if isinstance(predicate, str):
            needle = predicate
            predicate = lambda text: needle in text  # noqa: E731
        end = time.monotonic() + timeout
        with self._stderr_cv:
            while True:
                text = self._stderr.decode("utf-8", "replace")
                if predicate(text):
                    return text
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"stderr condition not met within {timeout} s; stderr:\n{text[-3000:]}")
                self._stderr_cv.wait(left)

    def wait_log(self, msg: str, timeout: float = WAIT, **fields) -> dict:
        """Wait for a JSON log record with this ``msg`` and these field values."""

        def match(record: dict) -> bool:
            return record.get("msg") == msg and all(record.get(k) == v for k, v in fields.items())

        text = self.wait_stderr(lambda text: any(match(r) for r in parse_records(text)), timeout)
        return next(r for r in parse_records(text) if match(r))

    def log_records(self) -> list[dict]:
        """The stderr lines that are JSON objects (log records)."""
        return parse_records(self.stderr_text())

    # --- process ---

    def wait_exit(self, timeout: float = WAIT) -> int:
        """Wait for the process to exit (time noted in :attr:`exited_at`) and for its stderr to end."""
        status = self.proc.wait(timeout)
        self.exited_at = time.monotonic()
        self._stderr_thread.join(timeout)  # all of stderr read, so log checks see the last lines
        return status

    def cpu_ticks(self) -> int:
        """utime + stime of the worker in clock ticks, from /proc/<pid>/stat."""
        with open(f"/proc/{self.proc.pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._stdout_thread.join(WAIT)
        self._stderr_thread.join(WAIT)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass


def exit_within(testcase: unittest.TestCase, worker: WorkerProcess, started: float, bound: float = 1.0) -> int:
    """Wait for the worker to exit and assert it did so within ``bound`` seconds of ``started``."""
    status = worker.wait_exit()
    elapsed = worker.exited_at - started
    testcase.assertLess(elapsed, bound, f"worker took {elapsed:.3f} s to exit")
    return status


class HandlerModuleMixin:
    """For TestCases: writes ``handler_source`` as module ``handler_module`` into a temporary
    directory, loadable with ``--handlers`` via :meth:`start_with_handlers`."""

    handler_module: str
    handler_source: str

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._handler_dir = tempfile.TemporaryDirectory(prefix="dspgo-worker-test-")
        Path(cls._handler_dir.name, f"{cls.handler_module}.py").write_text(cls.handler_source, encoding="utf-8")

    @classmethod
    def tearDownClass(cls):
        cls._handler_dir.cleanup()
        super().tearDownClass()

    def start_with_handlers(self, *flags: str) -> WorkerProcess:
        """A worker loading the handler module (diagnostics commands included)."""
        return WorkerProcess(
            self, "--diagnostics", "--handlers", self.handler_module, *flags, pythonpath=(self._handler_dir.name,)
        )


class InProcessWorker(HostSide):
    """A :class:`dspgo_worker.worker.Worker` served on a thread of this process over two pipes.

    Much faster to start than a subprocess; requests go through the real codec, dispatch,
    counters and pool threads. Registers its own cleanup on ``testcase`` (end of input,
    thread joined, pipes closed). Frames with a kind are handled as :class:`HostSide` says.
    """

    def __init__(self, testcase: unittest.TestCase, worker_id: str = "inproc", registry=None, **config):
        self._init_host()
        self._send_lock = threading.Lock()
        from dspgo_worker.protocol import FrameWriter
        from dspgo_worker.worker import Worker, WorkerConfig

        to_worker_r, self._to_worker_w = os.pipe()
        self._from_worker_r, from_worker_w = os.pipe()
        self._reader = open(to_worker_r, "rb")
        self._responses = open(self._from_worker_r, "rb", buffering=0)
        self._from_worker_w = from_worker_w
        extra = {} if registry is None else {"registry": registry}
        self.worker = Worker(WorkerConfig(worker_id=worker_id, **config), self._reader, FrameWriter(from_worker_w), **extra)
        self.status: list[int] = []
        self._thread = threading.Thread(target=lambda: self.status.append(self.worker.serve()), daemon=True)
        self._thread.start()
        self._ids = itertools.count(1)
        self._pending: dict[int, dict] = {}
        self._lock = threading.Lock()
        self._closed = False
        testcase.addCleanup(self.close)

    def call(self, command: str, args: dict | None = None, **fields) -> int:
        request_id = next(self._ids)
        message = {"id": request_id, "command": command}
        if args is not None:
            message["args"] = args
        message.update(fields)
        self.send(message)
        return request_id

    def send(self, message: dict) -> None:
        from dspgo_worker.protocol import write_all

        with self._send_lock:
            write_all(self._to_worker_w, encode_frame(message))

    def wait_until(self, predicate, timeout: float = WAIT, what: str = "condition") -> None:
        """Receive frames until ``predicate()`` holds; final responses are kept for
        :meth:`response`."""
        import select

        end = time.monotonic() + timeout
        with self._lock:
            while not predicate():
                left = end - time.monotonic()
                if left <= 0 or not select.select([self._responses], [], [], left)[0]:
                    raise AssertionError(f"{what} not met within {timeout} s")
                body = read_frame(self._responses)
                if body is None:
                    raise StreamEnded("the in-process worker closed its output")
                message = decode_message(body)
                if not self._route(message):
                    self._pending[message["id"]] = message

    def response(self, request_id: int, timeout: float = WAIT) -> dict:
        self.wait_until(lambda: request_id in self._pending, timeout, f"a response to request {request_id}")
        with self._lock:
            return self._pending.pop(request_id)

    def request(self, command: str, args: dict | None = None, timeout: float = WAIT, **fields) -> dict:
        return self.response(self.call(command, args, **fields), timeout)

    def ok(self, command: str, args: dict | None = None, **fields):
        """The result of a request that must succeed."""
        reply = self.request(command, args, **fields)
        if not reply["success"]:
            raise AssertionError(f"{command} failed: {reply['error']}")
        return reply["result"]

    def error(self, command: str, args: dict | None = None, **fields) -> dict:
        """The error object of a request that must fail."""
        reply = self.request(command, args, **fields)
        if reply["success"]:
            raise AssertionError(f"{command} succeeded: {reply['result']}")
        return reply["error"]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        os.close(self._to_worker_w)  # end of input: the worker shuts down
        self._thread.join(WAIT)
        self._reader.close()
        os.close(self._from_worker_w)
        self._responses.close()
