"""The per-request :class:`Context` handed to every handler."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from .deadlines import deadlines
from .errors import Cancelled, DeadlineExceeded

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from collections.abc import MutableMapping
    from typing import Any, Callable

    from .worker import Worker

_handler_log = logging.getLogger("dspgo_worker.handler")


class _RequestLogger(logging.LoggerAdapter):  # type: ignore[type-arg]  # generic only in typeshed; subscripting it fails on 3.9 at run time
    """Adds ``request_id`` and ``command`` to each record, keeping the caller's ``extra``."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


# Guards the cancellation state of every context (the flag, its event, the callbacks):
# taken only to cancel, to start a wait and to register a callback, and held briefly, so
# one lock serves all requests and a request costs none of its own.
_cancel_lock = threading.Lock()


def _keep() -> None:
    """Unregisters nothing (what on_cancel returns when nothing was registered)."""


class Cancellation:
    """The :attr:`Context.cancelled` flag: ``is_set()``, ``set()`` and ``wait(timeout)`` as
    on a ``threading.Event``, whose event is made only when a thread waits on it (most
    requests are never waited on nor cancelled)."""

    __slots__ = ("_set", "_event")

    def __init__(self) -> None:
        self._set = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        """True once set."""
        return self._set

    def set(self) -> None:
        """Set the flag and wake its waiters (the context's callbacks run only through
        :meth:`Context.cancel`)."""
        with _cancel_lock:
            self._set = True
            event = self._event
        if event is not None:
            event.set()

    def _set_locked(self) -> threading.Event | None:
        """Set the flag; the caller holds ``_cancel_lock`` and sets the event returned."""
        self._set = True
        return self._event

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set or for ``timeout`` seconds (None: forever); True when set."""
        if self._set:
            return True
        with _cancel_lock:
            if self.is_set():  # set meanwhile (a method call: mypy narrowed the field)
                return True
            event = self._event
            if event is None:
                event = self._event = threading.Event()
        return event.wait(timeout)


class Context:
    """What a handler knows about its request, and how it learns it should stop.

    Attributes: ``id``, ``command``, ``session`` (str or None), ``deadline`` (a
    ``time.monotonic()`` value or None), ``cancelled`` (a :class:`Cancellation`, with the
    ``is_set``/``set``/``wait`` of a ``threading.Event``, set by ``cancel`` or by worker
    shutdown), ``logger`` (records carry ``request_id`` and
    ``command``), ``worker`` (the running worker; built-in commands use it), ``stream``
    (the initial credit when the host asked for a stream, else None) and ``tools`` (the
    tool descriptors of the request's ``tools`` argument, a list, maybe empty).

    Cancellation is cooperative: a long handler calls :meth:`check`, :meth:`wait` or
    :meth:`sleep` now and then; whatever it returns after being cancelled is still sent.

    Streams: a handler that is a generator function (or returns a generator) streams: when
    the request has ``stream``, each value it yields is sent as a chunk (waiting for credit
    from the host), and its return value is the result; without ``stream`` the values are
    discarded. Calls to the host: :meth:`call` runs a tool the host registered.

    Coroutine handlers (``async def``) run on the worker's event loop, every one of them on
    the one thread, so they must never block: they use :meth:`sleep_async`,
    :meth:`wait_async`, :meth:`call_async`, stream with :meth:`send_chunk` and hand
    blocking work to a thread with :meth:`run_sync`. Their cancellation is not
    cooperative: cancelling the request, or its deadline, cancels the coroutine's task, so
    ``asyncio.CancelledError`` arises at the ``await`` it is suspended in (clean up in
    ``finally`` and let it propagate); the response is then ``canceled`` or
    ``deadline_exceeded``.
    """

    def __init__(
        self,
        id: int,
        command: str,
        session: str | None = None,
        deadline: float | None = None,
        worker: Worker | None = None,
        stream: int | None = None,
        tools: list[Any] | None = None,
    ) -> None:
        self.id = id
        self.command = command
        self.session = session
        self.deadline = deadline
        self._worker = worker
        self.stream = stream
        self.tools = tools if tools is not None else []
        self.cancelled = Cancellation()
        self.cancel_reason = "request canceled"
        self._callbacks: list[Any] | None = None  # made by the first on_cancel
        self._task: Any = None  # a coroutine handler's task while it runs (the worker sets it)
        self._logger: _RequestLogger | None = None

    @property
    def worker(self) -> Worker:
        """The running worker (built-in commands use it); a context made without one (tests)
        raises ``AttributeError``, as reading an attribute of None would."""
        worker = self._worker
        if worker is None:
            raise AttributeError("this context has no worker")
        return worker

    @property
    def logger(self) -> _RequestLogger:
        """A logger whose records carry ``request_id`` and ``command`` (made on first use)."""
        logger = self._logger
        if logger is None:
            logger = self._logger = _RequestLogger(_handler_log, {"request_id": self.id, "command": self.command})
        return logger

    def cancel(self, reason: str = "request canceled") -> None:
        """Ask the handler to stop (sets :attr:`cancelled`); the first reason is kept.

        Callbacks registered with :meth:`on_cancel` run once, in the cancelling thread.
        """
        with _cancel_lock:
            if self.cancelled.is_set():
                return
            self.cancel_reason = reason
            event = self.cancelled._set_locked()
            callbacks, self._callbacks = self._callbacks, None
        if event is not None:
            event.set()
        task = self._task
        if task is not None and self._worker is not None:
            self._worker._call_soon(task.cancel)
        for callback in callbacks or ():
            callback()

    def on_cancel(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call ``callback()`` when the request is cancelled (at once if it already is).

        Returns a function that unregisters it. Lets a handler wait on its own event and on
        cancellation at the same time without polling; keep callbacks short and non-blocking
        (``threading.Event.set`` is the usual one).
        """
        with _cancel_lock:
            registered = not self.cancelled.is_set()
            if registered:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
        if not registered:
            callback()
            return _keep

        def remove() -> None:
            with _cancel_lock:
                callbacks = self._callbacks
                if callbacks is not None:
                    try:
                        callbacks.remove(callback)
                    except ValueError:
                        pass

        return remove

    def is_cancelled(self) -> bool:
        """True once the request has been cancelled."""
        return self.cancelled.is_set()

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or None without a deadline."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def expired(self, now: float | None = None) -> bool:
        """True when the request has a deadline and it has passed (at ``now``, a
        ``time.monotonic()`` value the caller already has; None: the time now)."""
        if self.deadline is None:
            return False
        return (time.monotonic() if now is None else now) >= self.deadline

    def _in_own_task(self) -> bool:
        """Whether the caller runs in the handler's own task, which the request's
        cancellation and deadline cancel (and every wait in it with the task)."""
        if self._task is None:
            return False
        return asyncio.current_task() is self._task

    def check(self) -> None:
        """Raise :class:`Cancelled` or :class:`DeadlineExceeded` if the handler should stop."""
        if self.cancelled.is_set():
            raise Cancelled(self.cancel_reason)
        if self.expired():
            raise DeadlineExceeded(f"request {self.id} ({self.command}) ran past its deadline")

    def wait(self, seconds: float | None = None) -> bool:
        """Block up to ``seconds`` (None: forever), but not past the deadline.

        Returns True as soon as the request is cancelled, False on timeout or deadline.
        """
        seconds = self._limit(seconds)
        if seconds is not None:
            seconds = min(seconds, threading.TIMEOUT_MAX)
        return self.cancelled.wait(seconds)

    def _limit(self, seconds: float | None) -> float | None:
        """A wait of ``seconds`` (None: forever) cut at the deadline."""
        remaining = self.remaining()
        if remaining is None:
            return seconds
        return remaining if seconds is None else min(seconds, remaining)

    def _left(self, end: float) -> float:
        """The seconds of a sleep until ``end`` still to go (none left when not positive),
        raising :class:`Cancelled`/:class:`DeadlineExceeded` if the sleep must stop."""
        left = end - time.monotonic()
        if left > 0:
            self.check()
        return left

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``; raise :class:`Cancelled`/:class:`DeadlineExceeded` if cut short."""
        end = time.monotonic() + seconds
        while (left := self._left(end)) > 0:
            self.wait(left)

    async def wait_async(self, seconds: float | None = None) -> bool:
        """:meth:`wait` for coroutines: suspend up to ``seconds`` (None: forever), but not
        past the deadline; True as soon as the request is cancelled, False on timeout or
        deadline. Runs on the running event loop; the cancelling thread may be any."""
        if self.cancelled.is_set():
            return True
        seconds = self._limit(seconds)
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[bool] = loop.create_future()

        def wake(value: bool) -> None:
            if not woken.done():
                woken.set_result(value)

        def cancelled() -> None:  # any thread
            try:
                loop.call_soon_threadsafe(wake, True)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

        # The handler's own task needs no callback: cancel cancels the task, and with it
        # this wait (before any callback could wake it).
        remove = _keep if self._in_own_task() else self.on_cancel(cancelled)
        timers = deadlines(loop)
        timer = timers.add(loop.time() + seconds, wake, False) if seconds is not None else None
        try:
            return await woken
        finally:
            remove()
            if timer is not None:
                timers.remove(timer)

    async def sleep_async(self, seconds: float) -> None:
        """:meth:`sleep` for coroutines: suspend ``seconds``; raise :class:`Cancelled` or
        :class:`DeadlineExceeded` if cut short."""
        end = time.monotonic() + seconds
        while (left := self._left(end)) > 0:
            await self.wait_async(left)

    async def call_async(self, tool: str, args: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        """:meth:`call` for coroutines (the handler's coroutine runs on the worker's loop)."""
        worker = self._worker
        if worker is None or not hasattr(worker, "call_host_async"):
            from .errors import WorkerError

            raise WorkerError("failed_precondition", f"request {self.id} ({self.command}) cannot call host tools")
        return await worker.call_host_async(self, tool, args, timeout)

    async def send_chunk(self, data: Any) -> None:
        """Send ``data`` as the next chunk of the request's stream (a coroutine handler's
        way to stream): waits, cancellably, for credit from the host. Without a stream
        (:attr:`stream` is None) the value is discarded, as a generator handler's values
        are."""
        if self.stream is None or self._worker is None:
            return
        await self._worker.send_chunk_async(self, data)

    async def run_sync(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()``, blocking code, on one of the worker's threads and return what it
        returns (or raise what it raises), as a plain handler runs: when it returns a
        generator, its values are the stream's chunks (sent from that thread) and its
        return value is the result. Cancellation reaches ``fn`` through this context, as
        it reaches a plain handler; the coroutine waits for ``fn`` to end."""
        worker = self._worker
        if worker is None:
            from .errors import WorkerError

            raise WorkerError("failed_precondition", f"request {self.id} ({self.command}) has no worker to run on")
        return await worker.run_sync(self, fn)

    def call(self, tool: str, args: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        """Call the host's tool ``tool`` with ``args`` (a JSON object) and return its result.

        Many calls may be in flight at once, from any thread. Raises
        :class:`~dspgo_worker.errors.ToolError` with the host's code, message and error type
        when the tool fails; :class:`Cancelled` or :class:`DeadlineExceeded` when the request
        is cancelled or reaches its deadline first, and ``deadline_exceeded`` after
        ``timeout`` seconds (then the host is told the worker stopped waiting, and a late
        result is ignored).
        """
        worker = self._worker
        if worker is None or not hasattr(worker, "call_host"):
            from .errors import WorkerError

            raise WorkerError("failed_precondition", f"request {self.id} ({self.command}) cannot call host tools")
        return worker.call_host(self, tool, args, timeout)
