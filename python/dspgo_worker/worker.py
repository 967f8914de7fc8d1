"""The worker runtime: reads requests, dispatches them, writes exactly one response per id.

One event loop (asyncio), on the thread that calls :meth:`Worker.serve`, does all but the
blocking work:

* it reads frames as they arrive (the input's fd is made non-blocking and watched by the
  loop; an input the loop cannot watch, such as a regular file, is read by a helper
  thread that hands the bytes over);
* it runs *inline* commands (ping, describe, cancel, shutdown) at once, so they never
  wait behind user calls;
* it runs the handlers that are coroutine functions (``async def``) as tasks on the loop,
  however many are in flight: a call waiting for its language model costs a suspended
  coroutine, not a thread;
* it hands plain handlers to daemon threads, started on demand (idle ones block on a
  condition variable and are reused), and takes their responses back;
* it answers queued requests whose deadline passes with ``deadline_exceeded`` (a timer
  each), and cancels a coroutine handler's task when its request is cancelled or reaches
  its deadline;
* it writes the frames one turn of the loop produced in one system call.

At most ``max_concurrency`` requests run at once, coroutines and threads together; the
others wait in a FIFO queue.

Every request whose command can be read is counted by command in :attr:`Worker.counters`
(with the failures among their responses), for ``get_stats``. State that commands keep
between requests (the program command set's LM configuration and spec cache) hangs off the
worker too (:meth:`Worker.state`), so two workers in one process never share it.

Nothing polls: the loop blocks in epoll (or the platform's selector), threads block on a
condition variable or in their handler.

Streams and calls to the host (docs/protocol.md, "Both directions"): a plain handler that
returns a generator streams its values as ``chunk`` frames when the request asked for a
stream (``stream``: the initial credit); its thread waits, cancellably, while the chunks
sent reach the credit granted. A coroutine handler streams with ``ctx.send_chunk``,
which waits on the loop. The host's ``credit`` frames add credit. ``ctx.call`` (and
``ctx.call_async``) sends a ``call`` frame with an id of the worker's own and waits for
the host's ``result`` frame, which the loop hands over.

Every request that passed id validation is tracked in ``_jobs`` until its response has
been written. A job is answered exactly once, always on the loop's thread: whoever moves
it to ``ANSWERED`` (its handler's end, ``cancel``, its queue deadline or shutdown) writes
its response.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sys
import threading
import time
from collections import OrderedDict, deque, namedtuple
from types import GeneratorType

from .context import Context
from .deadlines import Deadlines, deadlines, resume
from .errors import Cancelled, DeadlineExceeded, ToolError, WorkerError
from .protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    HOST_KINDS,
    Credit,
    FrameError,
    FrameParser,
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
    recover_message,
    success_response,
    valid_stream,
    with_chunks,
)
from .readbuf import READ_SIZE, read_buffer
from .registry import Command, Registry, default_registry, is_coroutine_function
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
        ("worker_id", "max_concurrency", "max_frame_bytes", "diagnostics", "stop_grace", "max_specs", "max_spec_bytes"),
        defaults=(4, DEFAULT_MAX_FRAME_BYTES, False, 0.5, 4096, 64 << 20),
    )
):
    """Settings of one worker (the CLI flags), an immutable record: ``worker_id``,
    ``max_concurrency`` (4), ``max_frame_bytes``, ``diagnostics`` (False), ``stop_grace``
    (0.5), ``max_specs`` (4096) and ``max_spec_bytes`` (64 MiB)."""

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


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    """Give ``future`` its result unless it has one (or was cancelled)."""
    if not future.done():
        future.set_result(value)


class _Stream:
    """The flow control of one streamed request: the initial credit (``window``), the
    credit granted since (``credits``) and the chunks sent (``sent``).

    A plain handler's thread waits for credit on ``cond``; a coroutine handler on
    ``waiter``, a future of the loop. ``send_lock`` makes a thread's chunk and the final
    response exclusive, so that no chunk can follow the final response (``finished``).
    """

    __slots__ = ("window", "credits", "sent", "finished", "cond", "send_lock", "waiter")

    def __init__(self, window: int) -> None:
        self.window = window
        self.credits = 0
        self.sent = 0
        self.finished = False
        self.cond = threading.Condition(threading.Lock())
        self.send_lock = threading.Lock()
        self.waiter: asyncio.Future[None] | None = None

    def room(self, seq: int) -> bool:
        """Whether the credit allows chunk ``seq``."""
        return seq < self.window + self.credits

    def grant(self, credit: int) -> None:
        """The host's ``credit`` frame (on the loop): room for ``credit`` more chunks."""
        with self.cond:
            self.credits += credit
            self.cond.notify_all()
        if self.waiter is not None:
            _resolve(self.waiter, None)

    def wake(self) -> None:
        """Wake a thread waiting for credit (the request was cancelled)."""
        with self.cond:
            self.cond.notify_all()


class _Call:
    """A call to a host tool waiting for its ``result`` frame: a thread waits on
    ``done``, a coroutine on ``future``."""

    __slots__ = ("id", "parent", "tool", "done", "future", "outcome")

    def __init__(self, call_id: int, parent: int, tool: str, future: asyncio.Future[Any] | None = None) -> None:
        self.id = call_id
        self.parent = parent
        self.tool = tool
        self.future = future
        self.done = threading.Event() if future is None else None
        self.outcome: tuple[Any, ...] | None = None  # (True, result) or (False, ToolError)

    def finish(self, outcome: tuple[Any, ...]) -> None:
        """Hand over the outcome (on the loop's thread)."""
        self.outcome = outcome
        if self.future is not None:
            _resolve(self.future, outcome)
        else:
            assert self.done is not None  # one of the two is made
            self.done.set()


class _Job:
    """One accepted request on its way to its single response."""

    __slots__ = ("id", "command", "args", "ctx", "state", "stream", "timer", "started")

    def __init__(self, request: Request, command: Command, args: dict[str, Any], ctx: Context, state: str) -> None:
        self.id = request.id
        self.command = command
        self.args = args
        self.ctx = ctx
        self.state = state
        self.stream = _Stream(request.stream) if request.stream is not None else None
        self.timer: list[Any] | None = None  # the deadline of a queued job (a Deadlines entry)
        self.started = 0.0


class _Threads:
    """The daemon threads that run blocking work: started on demand (one per piece of
    work waiting when none is idle), reused, stopped by :meth:`stop`."""

    def __init__(self) -> None:
        self._cv = threading.Condition(threading.Lock())
        self._work: deque[Callable[[], None]] = deque()
        self._count = 0
        self._idle = 0
        self._stopping = False

    def submit(self, work: Callable[[], None]) -> None:
        """Run ``work()`` on a thread."""
        with self._cv:
            self._work.append(work)
            if self._idle > len(self._work) - 1:
                self._cv.notify()
                return
            self._count += 1
            name = f"dspgo-worker-{self._count}"
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _serve(self) -> None:
        while True:
            with self._cv:
                while not self._work:
                    if self._stopping:
                        return
                    self._idle += 1
                    try:
                        self._cv.wait()
                    finally:
                        self._idle -= 1
                work = self._work.popleft()
            work()

    def stop(self) -> None:
        """Let idle threads end (work submitted before still runs)."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()


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
        #: The worker process's id, read once (``serve`` reads it again): a ping answers
        #: with it, and reading it costs a system call.
        self.pid = os.getpid()
        self.commands: Mapping[str, Command] = registry.table(diagnostics=config.diagnostics)
        # The commands whose handler is a coroutine function: they run as tasks.
        self._coroutines = frozenset(name for name, cmd in self.commands.items() if is_coroutine_function(cmd.handler))
        self._reader = reader
        self._writer = writer
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadlines: Deadlines | None = None  # the loop's, once serving
        self._loop_thread = 0
        self._parser = FrameParser(config.max_frame_bytes)
        self._input: asyncio.Future[int] | None = None  # the exit status once input ends
        self._out: list[bytes] = []  # frames written this turn of the loop
        self._feeding = False  # frames read are being handled: the batch's end flushes
        self._jobs: dict[int, _Job] = {}  # accepted and not yet fully answered (the loop's)
        self._queue: OrderedDict[int, _Job] = OrderedDict()  # FIFO of QUEUED jobs
        self._running = 0  # jobs holding one of the max_concurrency slots
        self._threads = _Threads()
        self._stopping = False
        self._drained: asyncio.Future[None] | None = None  # shutdown waits on it
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
            "pid": self.pid,
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
        Called on the loop's thread (the ``cancel`` command is inline).

        A queued request is answered ``canceled`` at once; a running one has its context
        cancelled: a coroutine handler's task is cancelled, a plain handler decides what to
        answer.
        """
        job = self._jobs.get(request_id)
        if job is None or job.state == ANSWERED:
            return "unknown"
        if job.state == RUNNING:
            job.ctx.cancel("request canceled by the host")
            return RUNNING
        self._unqueue(job)
        job.state = ANSWERED
        self._respond(job, error_response(job.id, "canceled", "request canceled by the host while queued"))
        return QUEUED

    def request_stop(self, reason: str) -> None:
        """Stop after the current frame: no more reads, then the shutdown sequence. Any
        thread may call it."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._call_soon(self._end_input, EXIT_OK)

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
        return sum(1 for job in list(self._jobs.values()) if job.state != ANSWERED and job.id != exclude)

    def write_raw(self, data: bytes) -> bool:
        """Write raw bytes to the protocol output (diagnostics only: corrupts the stream)."""
        return self._writer.write(data)

    # --- calls to the host -----------------------------------------------------------------

    def call_host(self, ctx: Context, tool: str, args: dict[str, Any] | None, timeout: float | None = None) -> Any:
        """``ctx.call``: run the host's tool ``tool`` for request ``ctx.id`` and return its
        result (see :meth:`Context.call`); blocks the calling thread."""
        call, frame = self._new_call(ctx, tool, args, timeout, None)
        remove = ctx.on_cancel(call.done.set)  # type: ignore[union-attr]  # a thread's call has done
        try:
            if not self._writer.write(frame):
                self._drop_call(call.id)
                raise WorkerError("unavailable", f"cannot call tool {tool!r}: the protocol output is closed")
            self._log_call("tool called", ctx, call)
            limit, by_deadline = self._call_limit(ctx, timeout)
            if limit is not None:
                limit = min(limit, threading.TIMEOUT_MAX)
            call.done.wait(limit)  # type: ignore[union-attr]  # a thread's call has done
        finally:
            remove()
        with self._calls_lock:
            outcome = call.outcome
            if outcome is None:
                self._calls.pop(call.id, None)  # a late result is ignored
        if outcome is None:
            self._writer.write(encode_frame(call_cancel_message(call.id)))
            raise self._call_unanswered(ctx, call, by_deadline, timeout)
        return self._call_value(outcome)

    async def call_host_async(self, ctx: Context, tool: str, args: dict[str, Any] | None, timeout: float | None = None) -> Any:
        """``ctx.call_async``: :meth:`call_host` for a coroutine on the loop."""
        loop = self._loop
        assert loop is not None  # coroutine handlers run on the loop
        call, frame = self._new_call(ctx, tool, args, timeout, loop.create_future())
        future = call.future
        assert future is not None
        self._emit(frame)
        self._log_call("tool called", ctx, call)
        limit, by_deadline = self._call_limit(ctx, timeout)
        if by_deadline and ctx._in_own_task():
            limit = None  # the deadline cancels the handler's task, and this wait with it
        timers = deadlines(loop)
        timer = timers.add(loop.time() + limit, _unanswered, future) if limit is not None else None
        try:
            outcome = await future
        except asyncio.CancelledError:
            if self._drop_call(call.id):
                self._emit(encode_frame(call_cancel_message(call.id)))
            raise
        finally:
            if timer is not None:
                timers.remove(timer)
        if outcome is None:
            self._drop_call(call.id)  # a late result is ignored
            self._emit(encode_frame(call_cancel_message(call.id)))
            raise self._call_unanswered(ctx, call, by_deadline, timeout)
        return self._call_value(outcome)

    def _new_call(
        self, ctx: Context, tool: str, args: dict[str, Any] | None, timeout: float | None, future: asyncio.Future[Any] | None
    ) -> tuple[_Call, bytes]:
        """Check a call's arguments and register it; returns it and its frame."""
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
            call = self._calls[call_id] = _Call(call_id, ctx.id, tool, future)
        try:
            return call, encode_frame(call_message(call_id, ctx.id, tool, args), self.config.max_frame_bytes)
        except FrameError as exc:
            self._drop_call(call_id)
            raise WorkerError("resource_exhausted", f"the call to tool {tool!r} is too large: {exc.message}") from None
        except (TypeError, ValueError, RecursionError) as exc:
            self._drop_call(call_id)
            raise WorkerError(
                "invalid_argument", f"the arguments of tool {tool!r} cannot be encoded as JSON: {type(exc).__name__}: {exc}"
            ) from None

    @staticmethod
    def _call_limit(ctx: Context, timeout: float | None) -> tuple[float | None, bool]:
        """How long a call may wait, and whether the request's deadline sets that."""
        remaining = ctx.remaining()
        by_deadline = remaining is not None and (timeout is None or remaining <= timeout)
        return (remaining if by_deadline else timeout), by_deadline

    @staticmethod
    def _log_call(message: str, ctx: Context, call: _Call) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug(message, extra={"request_id": ctx.id, "call_id": call.id, "tool": call.tool})

    def _call_unanswered(self, ctx: Context, call: _Call, by_deadline: bool, timeout: float | None) -> BaseException:
        """The error of a call whose wait ended without a result (the host was told)."""
        self._log_call("tool call abandoned", ctx, call)
        if ctx.cancelled.is_set():
            return Cancelled(ctx.cancel_reason)
        if by_deadline:
            return DeadlineExceeded(f"request {ctx.id} ({ctx.command}) ran past its deadline waiting for tool {call.tool!r}")
        return WorkerError("deadline_exceeded", f"tool {call.tool!r} did not answer within {timeout:g} s")

    @staticmethod
    def _call_value(outcome: tuple[Any, ...]) -> Any:
        success, value = outcome
        if success:
            return value
        raise value

    def _drop_call(self, call_id: int) -> bool:
        """Forget a call; True when it was still waiting."""
        with self._calls_lock:
            return self._calls.pop(call_id, None) is not None

    def _finish_call(self, call_id: int, outcome: tuple[Any, ...]) -> None:
        """Hand a call its outcome (the host's result); a call no longer waited for is
        ignored."""
        with self._calls_lock:
            call = self._calls.pop(call_id, None)
        if call is None:
            log.debug("ignored a result for a call not in flight", extra={"call_id": call_id})
            return
        call.finish(outcome)

    def _end_calls(self, parent: int) -> None:
        """End the calls of request ``parent`` still waiting when it is answered (from a
        thread its handler left behind): the host cancels them itself."""
        with self._calls_lock:
            ended = [call for call in self._calls.values() if call.parent == parent]
            for call in ended:
                del self._calls[call.id]
        for call in ended:
            call.finish((False, ToolError("canceled", f"request {parent} ended before tool {call.tool!r} answered", tool=call.tool)))

    # --- main loop -------------------------------------------------------------------------

    def serve(self) -> int:
        """Read and dispatch frames until shutdown or end of input; returns the exit status.

        Runs the worker's event loop on the calling thread. ``EXIT_OK`` after ``shutdown``
        or EOF (queued requests answered ``canceled``, running ones cancelled and given
        ``stop_grace`` seconds to answer); ``EXIT_PROTOCOL`` when the host breaks the
        framing; ``EXIT_ERROR`` when input cannot be read.
        """
        self.pid = os.getpid()
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_loop_exception)
        try:
            return loop.run_until_complete(self._serve())
        finally:
            self._threads.stop()
            _close_loop(loop)

    async def _serve(self) -> int:
        loop = self._loop = asyncio.get_running_loop()
        self._deadlines = deadlines(loop)
        self._loop_thread = threading.get_ident()
        self._input = loop.create_future()
        if self._stop_reason is not None:  # asked to stop before serving
            _resolve(self._input, EXIT_OK)
        stop_reading = self._start_reading(loop)
        try:
            status = await self._input
        finally:
            stop_reading()
        if status == EXIT_PROTOCOL:
            self._flush()
            return status
        reason = self._stop_reason
        assert reason is not None  # input ends with a reason
        await self._shutdown(reason)
        return status

    def _start_reading(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        """Watch the input on the loop (a helper thread reads what the loop cannot
        watch); returns what stops it."""
        try:
            fd = self._reader.fileno()
            blocking = os.get_blocking(fd)
            os.set_blocking(fd, False)
        except (AttributeError, OSError, ValueError):
            fd = -1
        if fd >= 0:
            try:
                loop.add_reader(fd, self._on_readable, fd)
            except (OSError, ValueError):  # a regular file: epoll refuses it
                os.set_blocking(fd, blocking)
            else:

                def stop() -> None:
                    loop.remove_reader(fd)
                    try:
                        os.set_blocking(fd, blocking)
                    except OSError:
                        pass

                return stop
        threading.Thread(target=self._read_in_thread, name="dspgo-input", daemon=True).start()
        return lambda: None

    def _on_readable(self, fd: int) -> None:
        view = read_buffer()
        try:
            n = os.readv(fd, (view,))
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._input_error(exc)
            return
        self._feed(view[:n].tobytes())

    def _read_in_thread(self) -> None:
        """Read the input on a helper thread and hand each read to the loop (a copy: the
        next read reuses the thread's buffer)."""
        reader = self._reader
        readinto = getattr(reader, "readinto1", None) or getattr(reader, "readinto", None)
        view = read_buffer()
        while True:
            try:
                if readinto is not None:
                    data = view[: readinto(view) or 0].tobytes()
                else:
                    data = reader.read(READ_SIZE)
            except OSError as exc:
                self._call_soon(self._input_error, exc)
                return
            self._call_soon(self._feed, data)
            if not data or self._stop_reason is not None:
                return

    def _input_error(self, exc: OSError) -> None:
        log.error("cannot read requests: %s", exc)
        self.request_stop(f"input error: {exc}")
        self._end_input(EXIT_ERROR)

    def _end_input(self, status: int) -> None:
        """Input is over (on the loop): :meth:`_serve` goes on with ``status``."""
        if self._input is not None:
            _resolve(self._input, status)

    def _feed(self, data: bytes) -> None:
        """Handle the frames ``data`` completes (on the loop)."""
        if self._input is None or self._input.done():
            return
        if not data:
            try:
                self._parser.end()
            except FrameError as exc:
                self._protocol_violation(exc)
                return
            self.request_stop("end of input")
            return
        parser = self._parser
        received = time.monotonic()
        while not self._stop_requested():
            try:
                bodies = parser.feed(data)
            except FrameError as exc:
                self._protocol_violation(exc)
                return
            if not bodies:
                return
            data = b""  # frames behind a refused header are seen next round
            self._feeding = True  # answers to inline commands leave at the end of the batch
            try:
                for body in bodies:
                    self._handle_frame(body, received)
                    if self._stop_requested():
                        return
            finally:
                self._feeding = False
                self._flush()

    def _stop_requested(self) -> bool:
        """Whether a stop was asked for (a handler may ask while a frame is handled)."""
        return self._stop_reason is not None

    def _protocol_violation(self, exc: FrameError) -> None:
        log.error("protocol violation by the host: %s", exc.message, extra={"kind": exc.kind})
        self._end_input(EXIT_PROTOCOL)

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
        previous = self._jobs.get(request_id)
        if previous is not None and previous.state != ANSWERED:
            response = error_response(request_id, "already_exists", f"request id {request_id} is already in flight")
            if request.stream is not None:
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
        self._jobs[request_id] = job
        if command.inline:
            job.started = received
            self._finish(job, self._execute(job), holds_slot=False)
        elif self._running < self.config.max_concurrency and not self._queue:
            self._start(job)
        else:
            self._queue[job.id] = job
            if deadline is not None:
                assert self._deadlines is not None  # frames are handled on the loop
                # The loop's clock is time.monotonic(), the deadline's.
                job.timer = self._deadlines.add(deadline, self._expire_queued, job)

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

    # --- slots, the queue and threads ------------------------------------------------------

    def _start(self, job: _Job) -> None:
        """Give a job a slot and run it: a coroutine handler as a task, a plain one on a
        thread (on the loop)."""
        job.started = time.monotonic()
        if job.ctx.expired(job.started):
            job.state = ANSWERED
            self._respond(job, self._queue_deadline_response(job))
            return
        self._running += 1
        job.state = RUNNING
        if job.command.name in self._coroutines:
            assert self._loop is not None
            self._loop.create_task(self._run_coroutine(job))
        else:
            self._threads.submit(lambda: self._call_soon(self._finish, job, self._execute(job)))

    def _free_slot(self) -> None:
        """A job gave its slot back: start the next queued one."""
        self._running -= 1
        while self._queue and self._running < self.config.max_concurrency and not self._stopping:
            _, job = self._queue.popitem(last=False)
            self._unqueue(job, popped=True)
            self._start(job)

    def _unqueue(self, job: _Job, popped: bool = False) -> None:
        if not popped:
            del self._queue[job.id]
        if job.timer is not None:
            assert self._deadlines is not None  # jobs are queued on the loop
            self._deadlines.remove(job.timer)
            job.timer = None

    def _expire_queued(self, job: _Job) -> None:
        """A queued job's deadline passed: answer it ``deadline_exceeded``."""
        job.timer = None
        if job.state != QUEUED:
            return
        self._unqueue(job)
        job.state = ANSWERED
        self._respond(job, self._queue_deadline_response(job))

    @staticmethod
    def _queue_deadline_response(job: _Job) -> dict[str, Any]:
        return error_response(
            job.id, "deadline_exceeded", f"request {job.id} ({job.command.name}) reached its deadline while queued"
        )

    def _call_soon(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop (from any thread); dropped once the loop is closed."""
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            loop.call_soon(fn, *args)
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: the worker is gone
            pass

    def _stream_of(self, ctx: Context) -> _Stream | None:
        """The stream of the request ``ctx`` belongs to (None without one, or once it was
        answered)."""
        job = self._jobs.get(ctx.id)
        return job.stream if job is not None and job.ctx is ctx else None

    async def run_sync(self, ctx: Context, fn: Callable[[], Any]) -> Any:
        """``ctx.run_sync``: run ``fn()`` on a thread, as a plain handler runs, and return
        its result; waits for it to end even when the coroutine is cancelled (then ``fn``
        learns of it through ``ctx``, and what it returns or raises is the outcome)."""
        loop = self._loop
        assert loop is not None  # coroutine handlers run on the loop
        future: asyncio.Future[tuple[bool, Any]] = loop.create_future()
        stream = self._stream_of(ctx)

        def work() -> None:
            try:
                outcome: tuple[bool, Any] = (True, self._run_plain(ctx, stream, fn()))
            except BaseException as exc:  # noqa: BLE001 - handed to the coroutine
                outcome = (False, exc)
            self._call_soon(_resolve, future, outcome)

        self._threads.submit(work)
        while True:
            try:
                success, value = await asyncio.shield(future)
                break
            except asyncio.CancelledError:
                if future.done():
                    raise
        if success:
            return value
        raise value

    # --- running and answering -------------------------------------------------------------

    def _execute(self, job: _Job) -> dict[str, Any]:
        """Run a plain handler (inline, or on a thread) and return its response."""
        try:
            return success_response(job.id, self._run_plain(job.ctx, job.stream, job.command.handler(job.args, job.ctx)))
        except BaseException as exc:  # noqa: BLE001 - every failure must become a response
            return self._failure_response(job, exc)

    def _run_plain(self, ctx: Context, stream: _Stream | None, result: Any) -> Any:
        """A plain handler's result: a generator is driven to its end (its values are the
        stream's chunks)."""
        if isinstance(result, GeneratorType):
            return self._drive(ctx, stream, result)
        return result

    async def _run_coroutine(self, job: _Job) -> None:
        """A coroutine handler's task: await it, cancelled with its request or at its
        deadline, and answer."""
        ctx = job.ctx
        loop = self._loop
        assert loop is not None
        task = asyncio.current_task()
        assert task is not None
        ctx._task = task  # Context.cancel cancels it from now on
        if ctx.cancelled.is_set():  # cancelled before its first step: at its first await
            loop.call_soon(task.cancel)
        timers = self._deadlines
        assert timers is not None
        timer = None
        try:
            handled = job.command.handler(job.args, ctx)
            if ctx.deadline is None:
                result = await handled
            else:
                # The first step is taken here, and the deadline armed only if the
                # handler suspends: one that answers in its first step could not be
                # cancelled before it ends anyway, and then costs no loop timer.
                try:
                    yielded = handled.send(None)
                except StopIteration as stop:
                    result = stop.value
                else:
                    timer = timers.add(ctx.deadline, _cancel_task, task)
                    result = await resume(handled, yielded)
            response = success_response(job.id, result)
        except asyncio.CancelledError:
            if ctx.cancelled.is_set():
                response = self._failure_response(job, Cancelled(ctx.cancel_reason))
            else:
                response = self._failure_response(
                    job, DeadlineExceeded(f"request {job.id} ({job.command.name}) ran past its deadline")
                )
        except BaseException as exc:  # noqa: BLE001 - every failure must become a response
            response = self._failure_response(job, exc)
        finally:
            ctx._task = None
            if timer is not None:
                timers.remove(timer)
        self._finish(job, response)

    @staticmethod
    def _failure_response(job: _Job, exc: BaseException) -> dict[str, Any]:
        code = exc.code if isinstance(exc, WorkerError) else "internal"
        message = str(exc) or type(exc).__name__
        import traceback  # loaded with logging anyway; only failures need it

        # A host tool's error keeps the host's error type, an error reporting another
        # failure (a module's own exception) that failure's type and traceback.
        type_name = (isinstance(exc, WorkerError) and exc.error_type) or type(exc).__name__
        trace = (isinstance(exc, WorkerError) and exc.trace) or "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return error_response(job.id, code, message, type_name, trace)

    def _finish(self, job: _Job, response: dict[str, Any], holds_slot: bool = True) -> None:
        """A handler ended (on the loop): answer its job unless someone already did, and
        give its slot back."""
        if job.state != ANSWERED:
            job.state = ANSWERED
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "request handled",
                    extra={
                        "request_id": job.id,
                        "command": job.command.name,
                        "success": response["success"],
                        "duration_ms": round((time.monotonic() - job.started) * 1000, 3),
                    },
                )
            self._respond(job, response)
        if holds_slot:
            self._free_slot()

    def _drive(self, ctx: Context, stream: _Stream | None, gen: Generator[Any, None, Any]) -> Any:
        """Run a plain handler's generator to its end (on its thread); returns its return
        value.

        With a stream, each value becomes the next chunk (after waiting for credit);
        without one, the values are discarded. Cancellation and the deadline end it between
        values (and while waiting for credit); whatever ends it early closes the generator,
        so its ``finally`` blocks run, before the error is raised on.
        """
        remove = ctx.on_cancel(stream.wake) if stream is not None else None
        try:
            while True:
                try:
                    item = next(gen)
                except StopIteration as stop:
                    return stop.value
                ctx.check()
                if stream is not None:
                    self._send_chunk(ctx, stream, item)
        except BaseException:
            try:
                gen.close()
            except BaseException as exc:  # noqa: BLE001 - the first error is the one reported
                log.warning(
                    "a stream's generator failed while closing",
                    extra={"request_id": ctx.id, "command": ctx.command, "error": f"{type(exc).__name__}: {exc}"},
                )
            raise
        finally:
            if remove is not None:
                remove()

    def _send_chunk(self, ctx: Context, stream: _Stream, data: Any) -> None:
        """Send ``data`` as the next chunk of a stream from a handler's thread, first
        waiting (cancellably, not past the deadline) until the credit allows it."""
        seq = stream.sent
        if not stream.room(seq) and log.isEnabledFor(logging.DEBUG):
            log.debug("stream waiting for credit", extra={"request_id": ctx.id, "seq": seq})
        with stream.cond:
            while not stream.room(seq):
                if ctx.cancelled.is_set():
                    raise Cancelled(ctx.cancel_reason)
                remaining = ctx.remaining()
                if remaining is not None and remaining <= 0:
                    raise DeadlineExceeded(f"request {ctx.id} ({ctx.command}) ran past its deadline waiting for stream credit")
                stream.cond.wait(None if remaining is None else min(remaining, threading.TIMEOUT_MAX))
        frame = self._chunk_frame(ctx.id, seq, data)
        with stream.send_lock:
            if stream.finished:
                raise Cancelled(f"request {ctx.id} was answered already")
            if not self._writer.write(frame):
                raise WorkerError("unavailable", "the protocol output is closed")
            stream.sent = seq + 1

    async def send_chunk_async(self, ctx: Context, data: Any) -> None:
        """``ctx.send_chunk``: send ``data`` as the next chunk of a coroutine handler's
        stream, first waiting on the loop until the credit allows it."""
        stream = self._stream_of(ctx)
        if stream is None:
            return
        seq = stream.sent
        if not stream.room(seq):
            if log.isEnabledFor(logging.DEBUG):
                log.debug("stream waiting for credit", extra={"request_id": ctx.id, "seq": seq})
            assert self._loop is not None
            while not stream.room(seq):
                ctx.check()
                stream.waiter = self._loop.create_future()
                try:
                    await stream.waiter
                finally:
                    stream.waiter = None
        frame = self._chunk_frame(ctx.id, seq, data)
        if stream.finished:
            raise Cancelled(f"request {ctx.id} was answered already")
        self._emit(frame)
        stream.sent = seq + 1

    def _chunk_frame(self, request_id: int, seq: int, data: Any) -> bytes:
        try:
            return encode_frame(chunk_message(request_id, seq, data), self.config.max_frame_bytes)
        except FrameError as exc:
            raise WorkerError("resource_exhausted", f"chunk {seq} too large: {exc.message}") from None
        except (TypeError, ValueError, RecursionError) as exc:
            raise WorkerError("internal", f"chunk {seq} cannot be encoded as JSON: {type(exc).__name__}: {exc}") from None

    def _respond(self, job: _Job, response: dict[str, Any]) -> None:
        """Write the response of a job already marked ANSWERED, then forget the job (on
        the loop)."""
        try:
            if job.stream is None:
                self._send(response)
            else:
                self._send_final(job.stream, response)
        finally:
            if self._jobs.get(job.id) is job:
                del self._jobs[job.id]
            if self._drained is not None and not self._jobs:
                _resolve(self._drained, None)
            if self._calls:
                self._end_calls(job.id)

    def _send_final(self, stream: _Stream, response: dict[str, Any]) -> None:
        """Send the final response of a streamed request, with ``chunks``; no chunk follows.

        A response that cannot be sent counts as a failure."""
        # Only a handler's thread still writing a chunk at shutdown holds the lock: not for
        # long, or the host stopped reading (then nothing can be written anyway).
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
        """Encode and write a response (on the loop); an unencodable or oversized one
        becomes an error.

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
        self._emit(frame)
        return success

    def _emit(self, frame: bytes) -> None:
        """Write ``frame`` with the others of this turn of the loop (on the loop); at once
        when no other request is in flight to answer in the same turn (a turn later would
        only add the time of a turn to a lone call's round trip)."""
        out = self._out
        out.append(frame)
        if len(out) == 1 and not self._feeding:
            if len(self._jobs) <= 1:
                self._flush()
                return
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        out = self._out
        if out:
            self._out = []
            self._writer.write(out[0] if len(out) == 1 else b"".join(out))

    # --- shutdown --------------------------------------------------------------------------

    async def _shutdown(self, reason: str) -> None:
        """Answer queued jobs ``canceled``, cancel running ones and wait ``stop_grace`` for them.

        Jobs still running after the grace period are answered ``canceled`` on their
        behalf; then the writer is closed so no frame can be half-written at exit.
        """
        log.info("worker stopping", extra={"reason": reason})
        message = f"worker is shutting down ({reason})"
        self._stopping = True
        queued = list(self._queue.values())
        self._queue.clear()
        for job in queued:
            self._unqueue(job, popped=True)
            job.state = ANSWERED
            self._respond(job, error_response(job.id, "canceled", message))
        for job in list(self._jobs.values()):
            if job.state == RUNNING:
                job.ctx.cancel(message)
        self._threads.stop()
        if self._jobs:
            loop = self._loop
            assert loop is not None
            self._drained = loop.create_future()
            timer = loop.call_later(self.config.stop_grace, _resolve, self._drained, None)
            await self._drained
            timer.cancel()
        stuck = [job for job in self._jobs.values() if job.state == RUNNING]
        for job in stuck:
            job.state = ANSWERED
            log.warning(
                "handler did not stop within the grace period",
                extra={"request_id": job.id, "command": job.command.name, "stop_grace": self.config.stop_grace},
            )
            self._respond(job, error_response(job.id, "canceled", f"{message}; handler did not stop in time"))
        self._flush()
        # Never exit in the middle of a frame, but do not wait forever on a host that stopped reading.
        self._writer.close(timeout=max(self.config.stop_grace, 0.1))
        log.info("worker stopped", extra={"reason": reason})


def _unanswered(future: asyncio.Future[Any]) -> None:
    """A call to the host reached its time limit: its wait ends without an outcome."""
    _resolve(future, None)


def _cancel_task(task: asyncio.Task[Any]) -> None:
    """A coroutine handler reached its request's deadline."""
    task.cancel()


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's exception handler: what escapes a callback or task goes to the log."""
    exc = context.get("exception")
    log.warning(
        "event loop: %s", context.get("message", "unhandled exception"),
        extra={"error": f"{type(exc).__name__}: {exc}" if exc is not None else ""},
    )


#: What runs when a worker's loop is about to close (see :func:`on_loop_close`).
_loop_closers: list[Callable[[asyncio.AbstractEventLoop], None]] = []


def on_loop_close(closer: Callable[[asyncio.AbstractEventLoop], None]) -> None:
    """Call ``closer(loop)`` whenever a worker's event loop is about to close, after its
    tasks ended: a module that keeps resources per loop (the HTTP client's idle
    connections) releases them there. The loop runs once more afterwards, so transports
    closed then are closed for good."""
    _loop_closers.append(closer)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what still runs on the loop (handlers answered at shutdown), let it unwind
    briefly, release what modules keep for it, and close the loop."""
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.wait(tasks, timeout=0.1))
        for task in tasks:  # nobody awaits them: retrieve their end, so none is reported
            if task.done() and not task.cancelled():
                task.exception()
    for closer in _loop_closers:
        try:
            closer(loop)
        except Exception as exc:  # noqa: BLE001 - closing goes on
            log.warning("releasing a module's resources of the event loop failed", extra={"error": f"{type(exc).__name__}: {exc}"})
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
