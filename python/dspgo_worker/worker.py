"""The worker runtime: reads requests, dispatches them, writes exactly one response per id.

Threads:

* the caller of :meth:`Worker.serve` (the main thread) reads frames and runs *inline*
  commands (ping, describe, cancel, shutdown) itself, so they never wait behind user calls;
* up to ``max_concurrency`` daemon threads, started on demand, take other requests from a
  FIFO queue; idle ones block on a condition variable;
* one daemon thread, started with the first request that has a deadline, answers queued
  requests whose deadline passes with ``deadline_exceeded`` (it sleeps on a condition
  variable until the earliest deadline).

Every request whose command can be read is counted by command in :attr:`Worker.counters`
(with the failures among their responses), for ``get_stats``. State that commands keep
between requests (the program command set's LM configuration and spec cache) hangs off the
worker too (:meth:`Worker.state`), so two workers in one process never share it.

Nothing polls: every thread blocks in ``read()`` or on a condition variable.

Streams and calls to the host (docs/protocol.md, "Both directions"): a handler that
returns a generator streams its values as ``chunk`` frames when the request asked for a
stream (``stream``: the initial credit); the handler's thread waits, cancellably, while
the chunks sent reach the credit granted, and the reading thread adds the host's
``credit`` frames. ``ctx.call`` sends a ``call`` frame with an id of the worker's own and
waits for the host's ``result`` frame, which the reading thread hands over.

Every request that passed id validation is tracked in ``_jobs`` until its response has
been written. A job is answered exactly once: whoever moves it to ``ANSWERED`` under the
lock (the handler thread, ``cancel``, the deadline thread or shutdown) writes its response.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import sys
import threading
import time
from collections import OrderedDict, namedtuple
from types import GeneratorType

from .context import Context
from .errors import Cancelled, DeadlineExceeded, ToolError, WorkerError
from .protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    HOST_KINDS,
    Credit,
    FrameError,
    FrameWriter,
    Request,
    call_cancel_message,
    call_message,
    chunk_message,
    decode_message,
    encode_frame,
    error_response,
    parse_credit,
    parse_request,
    parse_result,
    read_frame,
    recover_message,
    success_response,
    valid_stream,
    with_chunks,
)
from .registry import Command, Registry, default_registry
from .version import PROTOCOL_VERSION, __version__

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from collections.abc import Generator, Mapping
    from typing import Any, BinaryIO, Callable, TypeVar

    T = TypeVar("T")

#: Exit statuses of the worker process (see the package docstring).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PROTOCOL = 3
EXIT_HANDLERS = 4

log = logging.getLogger("dspgo_worker")

# Job states.
QUEUED, RUNNING, ANSWERED = "queued", "running", "answered"

#: What this worker supports beyond version 1 (the handshake's ``features``).
FEATURES = ("call", "stream")


class WorkerConfig(
    namedtuple(
        "WorkerConfig",
        ("worker_id", "max_concurrency", "max_frame_bytes", "diagnostics", "stop_grace", "max_specs"),
        defaults=(4, DEFAULT_MAX_FRAME_BYTES, False, 0.5, 4096),
    )
):
    """Settings of one worker (the CLI flags), an immutable record: ``worker_id``,
    ``max_concurrency`` (4), ``max_frame_bytes``, ``diagnostics`` (False), ``stop_grace``
    (0.5) and ``max_specs`` (4096)."""

    __slots__ = ()


def python_version() -> str:
    """``platform.python_version()`` without importing platform: ``3.11.7``, ``3.13.0rc1``…"""
    version = sys.version.split(None, 1)[0]
    if version.count(".") == 1:
        version += ".0"
    return version


class RequestCounters:
    """Requests by command and failed responses, since start or the last :meth:`reset`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self._calls: dict[str, int] = {}
        self._failures = 0

    def count_call(self, command: str) -> None:
        with self._lock:
            self._calls[command] = self._calls.get(command, 0) + 1

    def count_failure(self) -> None:
        with self._lock:
            self._failures += 1

    def snapshot(self) -> tuple[dict[str, int], int]:
        """``(calls by command, failures)``."""
        with self._lock:
            return dict(self._calls), self._failures

    def reset(self) -> None:
        """Forget every count (the uptime keeps counting from start)."""
        with self._lock:
            self._calls = {}
            self._failures = 0


class _Stream:
    """The flow control of one streamed request: the initial credit (``window``), the
    credit granted since (``credits``) and the chunks sent (``sent``).

    Only the handler's thread sends chunks; ``send_lock`` makes a chunk and the final
    response exclusive, so that no chunk can follow the final response (``finished``).
    """

    __slots__ = ("window", "credits", "sent", "finished", "cond", "send_lock")

    def __init__(self, window: int) -> None:
        self.window = window
        self.credits = 0
        self.sent = 0
        self.finished = False
        self.cond = threading.Condition(threading.Lock())
        self.send_lock = threading.Lock()

    def grant(self, credit: int) -> None:
        """The host's ``credit`` frame: room for ``credit`` more chunks."""
        with self.cond:
            self.credits += credit
            self.cond.notify_all()

    def wake(self) -> None:
        """Wake a producer waiting for credit (the request was cancelled)."""
        with self.cond:
            self.cond.notify_all()


class _Call:
    """A call to a host tool waiting for its ``result`` frame."""

    __slots__ = ("id", "parent", "tool", "done", "outcome")

    def __init__(self, call_id: int, parent: int, tool: str) -> None:
        self.id = call_id
        self.parent = parent
        self.tool = tool
        self.done = threading.Event()
        self.outcome: tuple[Any, ...] | None = None  # (True, result) or (False, ToolError)


class _Job:
    """One accepted request on its way to its single response."""

    __slots__ = ("id", "command", "args", "ctx", "state", "stream")

    def __init__(self, request: Request, command: Command, args: dict[str, Any], ctx: Context, state: str) -> None:
        self.id = request.id
        self.command = command
        self.args = args
        self.ctx = ctx
        self.state = state
        self.stream = _Stream(request.stream) if request.stream is not None else None


class Worker:
    """Serves requests from ``reader`` (frames) and writes responses through ``writer``.

    ``registry`` supplies the command table, snapshotted here; diagnostics commands are
    included only when ``config.diagnostics``.
    """

    def __init__(
        self,
        config: WorkerConfig,
        reader: BinaryIO,
        writer: FrameWriter,
        registry: Registry = default_registry,
    ) -> None:
        self.config = config
        self.commands: Mapping[str, Command] = registry.table(diagnostics=config.diagnostics)
        self._reader = reader
        self._writer = writer
        self._lock = threading.Lock()
        self._work_cv = threading.Condition(self._lock)  # queue not empty, or stopping
        self._deadline_cv = threading.Condition(self._lock)  # a queued deadline changed, or stopping
        self._done_cv = threading.Condition(self._lock)  # a job left _jobs
        self._jobs: dict[int, _Job] = {}  # accepted and not yet fully answered
        self._queue: OrderedDict[int, _Job] = OrderedDict()  # FIFO of QUEUED jobs
        self._deadlines: list[tuple[float, int, _Job]] = []  # heap of queued jobs' deadlines
        self._seq = itertools.count()
        self._threads = 0
        self._idle = 0
        self._reaper_started = False
        self._reaper_wake: float | None = None  # when the sleeping reaper wakes; None: when told
        self._stopping = False
        self._stop_reason: str | None = None
        self.counters = RequestCounters()
        self._state_lock = threading.Lock()
        self._states: dict[str, object] = {}
        self._calls_lock = threading.Lock()
        self._calls: dict[int, _Call] = {}  # calls to host tools waiting for their result
        self._call_ids = itertools.count(1)

    # --- public API used by built-in commands ------------------------------------------

    def hello(self) -> dict[str, Any]:
        """The reply to the init ping."""
        return {
            "protocol_version": PROTOCOL_VERSION,
            "worker_version": __version__,
            "pid": os.getpid(),
            "python_version": python_version(),
            "worker_id": self.config.worker_id,
            "commands": sorted(self.commands),
            "max_concurrency": self.config.max_concurrency,
            "max_frame_bytes": self.config.max_frame_bytes,
            "diagnostics": self.config.diagnostics,
            "features": list(FEATURES),
        }

    def describe(self) -> dict[str, Any]:
        """The reply to ``describe``."""
        return {
            "protocol_version": PROTOCOL_VERSION,
            "commands": [self.commands[name].describe() for name in sorted(self.commands)],
        }

    def cancel(self, request_id: int) -> str:
        """Cancel request ``request_id``; returns its state: queued, running or unknown.

        A queued request is answered ``canceled`` at once; a running one has its context
        cancelled and its handler decides what to answer.
        """
        with self._lock:
            job = self._jobs.get(request_id)
            if job is None or job.state == ANSWERED:
                return "unknown"
            if job.state == RUNNING:
                job.ctx.cancel("request canceled by the host")
                return RUNNING
            del self._queue[job.id]
            job.state = ANSWERED
        self._respond(job, error_response(job.id, "canceled", "request canceled by the host while queued"))
        return QUEUED

    def request_stop(self, reason: str) -> None:
        """Stop after the current frame: no more reads, then the shutdown sequence."""
        self._stop_reason = reason

    def state(self, key: str, factory: Callable[[Worker], T]) -> T:
        """The worker's state object ``key``, made by ``factory(worker)`` on first use."""
        value = self._states.get(key)  # made already: no lock needed to read it
        if value is not None:
            return value  # type: ignore[return-value]  # a key's state is made by its one factory
        with self._state_lock:
            value = self._states.get(key)
            if value is None:
                value = self._states[key] = factory(self)
            return value  # type: ignore[return-value]  # a key's state is made by its one factory

    def in_flight(self, exclude: int | None = None) -> int:
        """Requests accepted and not yet answered (queued or running), except ``exclude``."""
        with self._lock:
            return sum(1 for job in self._jobs.values() if job.state != ANSWERED and job.id != exclude)

    def write_raw(self, data: bytes) -> bool:
        """Write raw bytes to the protocol output (diagnostics only: corrupts the stream)."""
        return self._writer.write(data)

    def call_host(self, ctx: Context, tool: str, args: dict[str, Any] | None, timeout: float | None = None) -> Any:
        """``ctx.call``: run the host's tool ``tool`` for request ``ctx.id`` and return its
        result (see :meth:`Context.call`)."""
        if not isinstance(tool, str) or not tool:
            raise WorkerError("invalid_argument", f"a tool name must be a non-empty string, got {tool!r}")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise WorkerError("invalid_argument", f"the arguments of tool {tool!r} must be a JSON object (a dict)")
        if timeout is not None and not timeout >= 0:
            raise WorkerError("invalid_argument", f"the time-out of a call to tool {tool!r} must not be negative")
        ctx.check()
        with self._calls_lock:
            call_id = next(self._call_ids)
            call = self._calls[call_id] = _Call(call_id, ctx.id, tool)
        try:
            frame = encode_frame(call_message(call_id, ctx.id, tool, args), self.config.max_frame_bytes)
        except FrameError as exc:
            self._drop_call(call_id)
            raise WorkerError("resource_exhausted", f"the call to tool {tool!r} is too large: {exc.message}") from None
        except (TypeError, ValueError, RecursionError) as exc:
            self._drop_call(call_id)
            raise WorkerError(
                "invalid_argument", f"the arguments of tool {tool!r} cannot be encoded as JSON: {type(exc).__name__}: {exc}"
            ) from None
        remove = ctx.on_cancel(call.done.set)
        try:
            if not self._writer.write(frame):
                self._drop_call(call_id)
                raise WorkerError("unavailable", f"cannot call tool {tool!r}: the protocol output is closed")
            if log.isEnabledFor(logging.DEBUG):
                log.debug("tool called", extra={"request_id": ctx.id, "call_id": call_id, "tool": tool})
            limit = timeout
            remaining = ctx.remaining()
            by_deadline = remaining is not None and (timeout is None or remaining <= timeout)
            if by_deadline:
                limit = remaining
            if limit is not None:
                limit = min(limit, threading.TIMEOUT_MAX)
            call.done.wait(limit)
        finally:
            remove()
        with self._calls_lock:
            outcome = call.outcome
            if outcome is None:
                self._calls.pop(call_id, None)  # a late result is ignored
        if outcome is None:
            self._writer.write(encode_frame(call_cancel_message(call_id)))
            if log.isEnabledFor(logging.DEBUG):
                log.debug("tool call abandoned", extra={"request_id": ctx.id, "call_id": call_id, "tool": tool})
            if ctx.cancelled.is_set():
                raise Cancelled(ctx.cancel_reason)
            if by_deadline:
                raise DeadlineExceeded(
                    f"request {ctx.id} ({ctx.command}) ran past its deadline waiting for tool {tool!r}"
                )
            raise WorkerError("deadline_exceeded", f"tool {tool!r} did not answer within {timeout:g} s")
        success, value = outcome
        if success:
            return value
        raise value

    def _drop_call(self, call_id: int) -> None:
        with self._calls_lock:
            self._calls.pop(call_id, None)

    def _finish_call(self, call_id: int, outcome: tuple[Any, ...]) -> None:
        """Hand a call its outcome (the host's result); a call no longer waited for is
        ignored."""
        with self._calls_lock:
            call = self._calls.pop(call_id, None)
            if call is not None:
                call.outcome = outcome
        if call is None:
            log.debug("ignored a result for a call not in flight", extra={"call_id": call_id})
            return
        call.done.set()

    def _end_calls(self, parent: int) -> None:
        """End the calls of request ``parent`` still waiting when it is answered (from a
        thread its handler left behind): the host cancels them itself."""
        with self._calls_lock:
            ended = [call for call in self._calls.values() if call.parent == parent]
            for call in ended:
                del self._calls[call.id]
                call.outcome = (False, ToolError("canceled", f"request {parent} ended before tool {call.tool!r} answered", tool=call.tool))
        for call in ended:
            call.done.set()

    # --- main loop -------------------------------------------------------------------------

    def serve(self) -> int:
        """Read and dispatch frames until shutdown or end of input; returns the exit status.

        ``EXIT_OK`` after ``shutdown`` or EOF (queued requests answered ``canceled``,
        running ones cancelled and given ``stop_grace`` seconds to answer); ``EXIT_PROTOCOL``
        when the host breaks the framing; ``EXIT_ERROR`` when input cannot be read.
        """
        while self._stop_reason is None:
            try:
                body = read_frame(self._reader, self.config.max_frame_bytes)
            except FrameError as exc:
                log.error("protocol violation by the host: %s", exc.message, extra={"kind": exc.kind})
                return EXIT_PROTOCOL
            except OSError as exc:
                log.error("cannot read requests: %s", exc)
                self._shutdown(f"input error: {exc}")
                return EXIT_ERROR
            if body is None:
                self.request_stop("end of input")
                break
            self._handle_frame(body, time.monotonic())
        reason = self._stop_reason
        assert reason is not None  # the loop ends once a reason is set
        self._shutdown(reason)
        return EXIT_OK

    def _handle_frame(self, body: bytes, received: float) -> None:
        """Validate one frame and run, queue or answer it."""
        try:
            message = decode_message(body)
        except FrameError as exc:
            recovered = recover_message(body) if exc.kind == "invalid_utf8" else None
            if recovered is None:
                log.warning("dropped a frame that cannot be answered: %s", exc.message, extra={"kind": exc.kind})
            else:
                log.warning("refused a frame that is not UTF-8: %s", exc.message, extra={"kind": exc.kind, "id": recovered["id"]})
                self._refuse_undecodable(recovered, f"the frame is not valid UTF-8 ({exc.message})")
            return
        request_id = message["id"]
        if "kind" in message and message["kind"] in HOST_KINDS:
            self._handle_kind(message)
            return
        try:
            request = parse_request(message)
            self.counters.count_call(request.command)
            command = self.commands.get(request.command)
            if command is None:
                raise WorkerError(
                    "unimplemented",
                    f"unknown command {request.command!r}; known commands: {', '.join(sorted(self.commands))}",
                )
            args = command.validate(request.args)
        except WorkerError as exc:
            response = error_response(request_id, exc.code, exc.message)
            if "kind" not in message and valid_stream(message.get("stream")):
                with_chunks(response, 0)
            self._send(response)
            return
        deadline = None if request.deadline_ms is None else received + request.deadline_ms / 1000.0
        tools = request.args.get("tools")
        ctx = Context(
            request.id,
            request.command,
            request.session,
            deadline,
            worker=self,
            stream=request.stream,
            tools=tools if isinstance(tools, list) else [],
        )
        job = _Job(request, command, args, ctx, RUNNING if command.inline else QUEUED)
        with self._lock:
            previous = self._jobs.get(request_id)
            duplicate = previous is not None and previous.state != ANSWERED
            if not duplicate:
                self._jobs[request_id] = job
                if not command.inline:
                    self._enqueue_locked(job)
        if duplicate:
            response = error_response(request_id, "already_exists", f"request id {request_id} is already in flight")
            if request.stream is not None:
                with_chunks(response, 0)
            self._send(response)
        elif command.inline:
            self._execute(job)

    def _refuse_undecodable(self, message: dict[str, Any], why: str) -> None:
        """Answer a frame whose id could be read though its body could not: a request gets
        ``invalid_argument``; the result of a call to the host fails that call; a credit is
        dropped (nobody waits for an answer to it)."""
        kind = message.get("kind")
        if kind is None:
            response = error_response(message["id"], "invalid_argument", why)
            if valid_stream(message.get("stream")):
                with_chunks(response, 0)
            self._send(response)
        elif kind == "result":
            self._finish_call(message["id"], (False, ToolError("invalid_argument", f"the host's result cannot be read: {why}")))

    def _handle_kind(self, message: dict[str, Any]) -> None:
        """A ``credit`` or ``result`` frame (never answered: it answers the worker)."""
        kind = message["kind"]
        try:
            parsed = parse_credit(message) if kind == "credit" else parse_result(message)
        except WorkerError as exc:
            log.warning("dropped a malformed %s frame: %s", kind, exc.message, extra={"id": message["id"]})
            if kind == "result":  # the call waiting for it learns what happened
                error = ToolError("internal", f"the host answered with a malformed result frame: {exc.message}")
                self._finish_call(message["id"], (False, error))
            return
        if isinstance(parsed, Credit):
            with self._lock:
                job = self._jobs.get(parsed.id)
            if job is None or job.stream is None:
                log.debug("ignored a credit for a request not streaming", extra={"request_id": parsed.id})
                return
            job.stream.grant(parsed.credit)
            return
        if parsed.success:
            outcome = (True, parsed.result)
        else:
            error = parsed.error
            with self._calls_lock:
                call = self._calls.get(parsed.id)
            tool = call.tool if call is not None else ""
            outcome = (False, ToolError(error["code"], error["message"], error.get("type"), tool))
        self._finish_call(parsed.id, outcome)

    # --- queue and threads ---------------------------------------------------------------

    def _enqueue_locked(self, job: _Job) -> None:
        """Queue a job, starting a thread if no idle one can take it. Holds ``_lock``."""
        self._queue[job.id] = job
        deadline = job.ctx.deadline
        if deadline is not None:
            deadlines = self._deadlines
            # Drop the entries of jobs no longer queued: from the top (cheap), and all of them
            # when they outnumber the queue (so the heap stays as small as the queue).
            while deadlines and deadlines[0][2].state != QUEUED:
                heapq.heappop(deadlines)
            if len(deadlines) > 2 * len(self._queue) + 64:
                deadlines[:] = [entry for entry in deadlines if entry[2].state == QUEUED]
                heapq.heapify(deadlines)
            heapq.heappush(deadlines, (deadline, next(self._seq), job))
            if not self._reaper_started:
                self._reaper_started = True
                threading.Thread(target=self._reap_deadlines, name="dspgo-deadlines", daemon=True).start()
            elif self._reaper_wake is None or deadline < self._reaper_wake:
                # The reaper sleeps until the earliest deadline it knows: only an earlier one
                # needs to wake it (waking it for every request costs a thread switch).
                self._deadline_cv.notify()
        if len(self._queue) > self._idle and self._threads < self.config.max_concurrency:
            self._threads += 1
            threading.Thread(target=self._serve_queue, name=f"dspgo-worker-{self._threads}", daemon=True).start()
        else:
            self._work_cv.notify()

    def _serve_queue(self) -> None:
        """Body of a pool thread: run queued jobs in FIFO order until shutdown."""
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._idle += 1
                    try:
                        self._work_cv.wait()
                    finally:
                        self._idle -= 1
                if self._stopping:
                    return
                _, job = self._queue.popitem(last=False)
                expired = job.ctx.expired()
                job.state = ANSWERED if expired else RUNNING
            if expired:
                self._respond(job, self._queue_deadline_response(job))
            else:
                self._execute(job)

    def _reap_deadlines(self) -> None:
        """Answer queued jobs whose deadline passes with ``deadline_exceeded``."""
        while True:
            with self._lock:
                while True:
                    if self._stopping:
                        return
                    while self._deadlines and self._deadlines[0][2].state != QUEUED:
                        heapq.heappop(self._deadlines)
                    if not self._deadlines:
                        self._reaper_wake = None
                        self._deadline_cv.wait()
                        continue
                    wake = self._deadlines[0][0]
                    delay = wake - time.monotonic()
                    if delay <= 0:
                        break
                    self._reaper_wake = wake
                    self._deadline_cv.wait(min(delay, threading.TIMEOUT_MAX))
                expired = []
                now = time.monotonic()
                while self._deadlines and self._deadlines[0][0] <= now:
                    job = heapq.heappop(self._deadlines)[2]
                    if job.state == QUEUED:
                        del self._queue[job.id]
                        job.state = ANSWERED
                        expired.append(job)
            for job in expired:
                self._respond(job, self._queue_deadline_response(job))

    @staticmethod
    def _queue_deadline_response(job: _Job) -> dict[str, Any]:
        return error_response(
            job.id, "deadline_exceeded", f"request {job.id} ({job.command.name}) reached its deadline while queued"
        )

    # --- running and answering -------------------------------------------------------------

    def _execute(self, job: _Job) -> None:
        """Run a job's handler and answer it (unless someone else already did)."""
        started = time.monotonic()
        try:
            result = job.command.handler(job.args, job.ctx)
            if isinstance(result, GeneratorType):
                result = self._drive(job, result)
            response = success_response(job.id, result)
        except BaseException as exc:  # noqa: BLE001 - every failure must become a response
            code = exc.code if isinstance(exc, WorkerError) else "internal"
            message = str(exc) or type(exc).__name__
            import traceback  # loaded with logging anyway; only failures need it

            # A host tool's error keeps the host's error type.
            type_name = (isinstance(exc, ToolError) and exc.error_type) or type(exc).__name__
            response = error_response(job.id, code, message, type_name, traceback.format_exc())
        with self._lock:
            if job.state == ANSWERED:
                return
            job.state = ANSWERED
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "request handled",
                extra={
                    "request_id": job.id,
                    "command": job.command.name,
                    "success": response["success"],
                    "duration_ms": round((time.monotonic() - started) * 1000, 3),
                },
            )
        self._respond(job, response)

    def _drive(self, job: _Job, gen: Generator[Any, None, Any]) -> Any:
        """Run a handler's generator to its end; returns its return value.

        With a stream, each value becomes the next chunk (after waiting for credit);
        without one, the values are discarded. Cancellation and the deadline end it between
        values (and while waiting for credit); whatever ends it early closes the generator,
        so its ``finally`` blocks run, before the error is raised on.
        """
        ctx = job.ctx
        stream = job.stream
        remove = ctx.on_cancel(stream.wake) if stream is not None else None
        try:
            while True:
                try:
                    item = next(gen)
                except StopIteration as stop:
                    return stop.value
                ctx.check()
                if stream is not None:
                    self._send_chunk(job, stream, item)
        except BaseException:
            try:
                gen.close()
            except BaseException as exc:  # noqa: BLE001 - the first error is the one reported
                log.warning(
                    "a stream's generator failed while closing",
                    extra={"request_id": job.id, "command": job.command.name, "error": f"{type(exc).__name__}: {exc}"},
                )
            raise
        finally:
            if remove is not None:
                remove()

    def _send_chunk(self, job: _Job, stream: _Stream, data: Any) -> None:
        """Send ``data`` as the next chunk of ``job``'s stream, first waiting (cancellably,
        not past the deadline) until the credit allows it."""
        ctx = job.ctx
        seq = stream.sent
        if seq >= stream.window + stream.credits and log.isEnabledFor(logging.DEBUG):
            log.debug("stream waiting for credit", extra={"request_id": job.id, "seq": seq})
        with stream.cond:
            while seq >= stream.window + stream.credits:
                if ctx.cancelled.is_set():
                    raise Cancelled(ctx.cancel_reason)
                remaining = ctx.remaining()
                if remaining is not None and remaining <= 0:
                    raise DeadlineExceeded(
                        f"request {job.id} ({job.command.name}) ran past its deadline waiting for stream credit"
                    )
                stream.cond.wait(None if remaining is None else min(remaining, threading.TIMEOUT_MAX))
        try:
            frame = encode_frame(chunk_message(job.id, seq, data), self.config.max_frame_bytes)
        except FrameError as exc:
            raise WorkerError("resource_exhausted", f"chunk {seq} too large: {exc.message}") from None
        except (TypeError, ValueError, RecursionError) as exc:
            raise WorkerError("internal", f"chunk {seq} cannot be encoded as JSON: {type(exc).__name__}: {exc}") from None
        with stream.send_lock:
            if stream.finished:
                raise Cancelled(f"request {job.id} was answered already")
            if not self._writer.write(frame):
                raise WorkerError("unavailable", "the protocol output is closed")
            stream.sent = seq + 1

    def _respond(self, job: _Job, response: dict[str, Any]) -> None:
        """Write the response of a job already marked ANSWERED, then forget the job."""
        try:
            if job.stream is None:
                self._send(response)
            else:
                self._send_final(job.stream, response)
        finally:
            with self._lock:
                if self._jobs.get(job.id) is job:
                    del self._jobs[job.id]
                if self._stopping:  # only the shutdown sequence waits for jobs to leave
                    self._done_cv.notify_all()
            if self._calls:
                self._end_calls(job.id)

    def _send_final(self, stream: _Stream, response: dict[str, Any]) -> None:
        """Send the final response of a streamed request, with ``chunks``; no chunk follows.

        A response that cannot be sent counts as a failure."""
        # Only a handler still writing a chunk at shutdown holds the lock: not for long, or
        # the host stopped reading (then nothing can be written anyway).
        acquired = stream.send_lock.acquire(timeout=max(self.config.stop_grace, 0.1)) if self._stopping else stream.send_lock.acquire()
        if not acquired:
            stream.finished = True
            self.counters.count_failure()
            log.warning("final response of a stream not sent: a chunk write is stuck", extra={"request_id": response["id"]})
            return
        try:
            stream.finished = True
            self._send(with_chunks(response, stream.sent))
        finally:
            stream.send_lock.release()

    def _send(self, response: dict[str, Any]) -> bool:
        """Encode and write a response; an unencodable or oversized one becomes an error.

        A failure is counted (:attr:`counters`) before its response is written, so that
        the host, once it has the response, finds it in ``get_stats``. Returns whether the
        response sent was a success.
        """
        request_id = response["id"]
        success = bool(response["success"])
        try:
            frame = encode_frame(response, self.config.max_frame_bytes)
        except FrameError as exc:
            replacement = error_response(request_id, "resource_exhausted", f"response too large: {exc.message}")
            if "chunks" in response:
                with_chunks(replacement, response["chunks"])
            frame = encode_frame(replacement)
            success = False
        except (TypeError, ValueError, RecursionError) as exc:
            message = f"result cannot be encoded as JSON: {type(exc).__name__}: {exc}"
            replacement = error_response(request_id, "internal", message, type(exc).__name__)
            if "chunks" in response:
                with_chunks(replacement, response["chunks"])
            frame = encode_frame(replacement)
            success = False
        if not success:
            self.counters.count_failure()
        self._writer.write(frame)
        return success

    # --- shutdown --------------------------------------------------------------------------

    def _shutdown(self, reason: str) -> None:
        """Answer queued jobs ``canceled``, cancel running ones and wait ``stop_grace`` for them.

        Jobs still running after the grace period are answered ``canceled`` on their
        behalf; then the writer is closed so no frame can be half-written at exit.
        """
        log.info("worker stopping", extra={"reason": reason})
        message = f"worker is shutting down ({reason})"
        with self._lock:
            self._stopping = True
            queued = list(self._queue.values())
            self._queue.clear()
            for job in queued:
                job.state = ANSWERED
            for job in self._jobs.values():
                if job.state == RUNNING:
                    job.ctx.cancel(message)
            self._work_cv.notify_all()
            self._deadline_cv.notify_all()
        for job in queued:
            self._respond(job, error_response(job.id, "canceled", message))
        grace_end = time.monotonic() + self.config.stop_grace
        with self._lock:
            while self._jobs:
                left = grace_end - time.monotonic()
                if left <= 0:
                    break
                self._done_cv.wait(left)
            stuck = [job for job in self._jobs.values() if job.state == RUNNING]
            for job in stuck:
                job.state = ANSWERED
        for job in stuck:
            log.warning(
                "handler did not stop within the grace period",
                extra={"request_id": job.id, "command": job.command.name, "stop_grace": self.config.stop_grace},
            )
            self._respond(job, error_response(job.id, "canceled", f"{message}; handler did not stop in time"))
        # Never exit in the middle of a frame, but do not wait forever on a host that stopped reading.
        self._writer.close(timeout=max(self.config.stop_grace, 0.1))
        log.info("worker stopped", extra={"reason": reason})
