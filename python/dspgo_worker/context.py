"""The per-request :class:`Context` handed to every handler."""

from __future__ import annotations

import logging
import threading
import time

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


class Context:
    """What a handler knows about its request, and how it learns it should stop.

    Attributes: ``id``, ``command``, ``session`` (str or None), ``deadline`` (a
    ``time.monotonic()`` value or None), ``cancelled`` (a ``threading.Event`` set by
    ``cancel`` or by worker shutdown), ``logger`` (records carry ``request_id`` and
    ``command``), ``worker`` (the running worker; built-in commands use it), ``stream``
    (the initial credit when the host asked for a stream, else None) and ``tools`` (the
    tool descriptors of the request's ``tools`` argument, a list, maybe empty).

    Cancellation is cooperative: a long handler calls :meth:`check`, :meth:`wait` or
    :meth:`sleep` now and then; whatever it returns after being cancelled is still sent.

    Streams: a handler that is a generator function (or returns a generator) streams: when
    the request has ``stream``, each value it yields is sent as a chunk (waiting for credit
    from the host), and its return value is the result; without ``stream`` the values are
    discarded. Calls to the host: :meth:`call` runs a tool the host registered.
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
        self.cancelled = threading.Event()
        self.cancel_reason = "request canceled"
        self._callbacks_lock = threading.Lock()
        self._callbacks: list[Any] = []
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
        with self._callbacks_lock:
            if self.cancelled.is_set():
                return
            self.cancel_reason = reason
            self.cancelled.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call ``callback()`` when the request is cancelled (at once if it already is).

        Returns a function that unregisters it. Lets a handler wait on its own event and on
        cancellation at the same time without polling; keep callbacks short and non-blocking
        (``threading.Event.set`` is the usual one).
        """
        with self._callbacks_lock:
            if not self.cancelled.is_set():
                self._callbacks.append(callback)
                registered = True
            else:
                registered = False
        if not registered:
            callback()
            return lambda: None

        def remove() -> None:
            with self._callbacks_lock:
                try:
                    self._callbacks.remove(callback)
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

    def expired(self) -> bool:
        """True when the request has a deadline and it has passed."""
        return self.deadline is not None and time.monotonic() >= self.deadline

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
        remaining = self.remaining()
        if remaining is not None:
            seconds = remaining if seconds is None else min(seconds, remaining)
        if seconds is not None:
            seconds = min(seconds, threading.TIMEOUT_MAX)
        return self.cancelled.wait(seconds)

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``; raise :class:`Cancelled`/:class:`DeadlineExceeded` if cut short."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            self.check()
            self.wait(left)

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
