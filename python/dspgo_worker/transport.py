"""The HTTP transport of the OpenAI provider: persistent ``http.client`` connections
(each thread keeps one per endpoint and reuses it; a kept connection the server closed is
replaced, and a request that fails on a reused connection because it was dropped is sent
once more on a new one), endpoints parsed once, the abort that shuts a request's socket
down when it is cancelled, and :func:`call_in_thread`, which opens connections (and runs
``urllib`` requests) on a helper thread so that a handler answers at once when its request
is cancelled or reaches its limit.

``http.client`` and ``socket`` (and ``ssl`` for https) are imported with the first request;
``urllib.request`` only for the proxy path, ``email.utils`` only for a ``Retry-After`` date.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import namedtuple

from .errors import DeadlineExceeded, WorkerError
from .lmconfig import safe_url

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    import http.client
    import socket
    import ssl
    from typing import Any, Callable

    from .context import Context


def call_in_thread(fn: Callable[[], Any], ctx: Context, timeout: float | None, what: str) -> Any:
    """Run ``fn()`` on a helper thread; return its result or raise its exception.

    Stops waiting at once when ``ctx`` is cancelled (:class:`Cancelled`) or reaches its
    deadline (:class:`DeadlineExceeded`), or after ``timeout`` seconds
    (``deadline_exceeded`` naming ``what``); the helper thread is then left to finish on
    its own (it is a daemon).
    """
    wake = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = exc
        finally:
            wake.set()

    remove = ctx.on_cancel(wake.set)
    try:
        threading.Thread(target=run, name=f"dspgo-{what}", daemon=True).start()
        limit = timeout
        remaining = ctx.remaining()
        if remaining is not None:
            limit = remaining if limit is None else min(limit, remaining)
        if limit is not None:
            limit = min(limit, threading.TIMEOUT_MAX)
        wake.wait(limit)
    finally:
        remove()
    if "error" in box:
        raise box["error"]
    if "value" in box:
        return box["value"]
    ctx.check()
    left = ctx.remaining()
    if left is not None and left <= 0.0005:
        raise DeadlineExceeded(f"request {ctx.id} ({ctx.command}) ran past its deadline waiting for {what}")
    within = f" within {timeout:g} s" if timeout is not None else ""
    raise WorkerError("deadline_exceeded", f"{what} did not answer{within}")



class Retryable(Exception):
    """A 429 or 5xx answer: retried, else turned into ``final``."""

    def __init__(self, final: WorkerError, retry_after: float | None) -> None:
        super().__init__(final.message)
        self.final = final
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        import email.utils  # only for the date form

        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:  # (on Python 3.9; typeshed knows the later versions)
            return None  # type: ignore[unreachable]
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)



# --- HTTP transport ----------------------------------------------------------------------


class Net:
    """``http.client`` and ``socket``, imported on first use (they pull in ``email``, and
    ``ssl`` comes only with the first https endpoint)."""

    #: The modules ``http.client`` and ``socket`` once :meth:`load` ran (None before).
    http: Any = None
    socket: Any = None
    _ssl_context: ssl.SSLContext | None = None
    _lock = threading.Lock()

    @classmethod
    def load(cls) -> type[Net]:
        if cls.http is None:
            import http.client
            import socket

            cls.socket = socket
            cls.http = http.client
        return cls

    @classmethod
    def ssl_context(cls) -> ssl.SSLContext:
        """One TLS context for every https connection, made as ``urlopen`` makes its own."""
        with cls._lock:
            if cls._ssl_context is None:
                import ssl

                context = ssl._create_default_https_context()
                context.set_alpn_protocols(["http/1.1"])
                if context.post_handshake_auth is not None:
                    context.post_handshake_auth = True
                cls._ssl_context = context
            return cls._ssl_context


class _Connections(dict[tuple[str, str, int], "http.client.HTTPConnection"]):
    """One thread's open connections by (scheme, host, port); closed when the thread ends."""

    def __del__(self) -> None:
        for conn in list(self.values()):
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing at thread exit, nothing to report
                pass


_local = threading.local()


def connections() -> _Connections:
    """This thread's connections."""
    try:
        conns: _Connections = _local.connections
        return conns
    except AttributeError:
        conns = _local.connections = _Connections()
        return conns


def close_connections() -> None:
    """Close the calling thread's kept connections (the next request opens new ones)."""
    conns = getattr(_local, "connections", None)
    if conns:
        for conn in list(conns.values()):
            conn.close()
        conns.clear()


def proxied(scheme: str, host: str) -> bool:
    """True when ``urllib`` would send a request for ``host`` (``host[:port]``) through an
    environment proxy."""
    environ = os.environ
    if not (environ.get(scheme + "_proxy") or environ.get(scheme.upper() + "_PROXY")):
        return False
    import urllib.request  # only when a proxy variable is set

    return bool(urllib.request.getproxies().get(scheme)) and not urllib.request.proxy_bypass(host)


class Endpoint:
    """Where the completions go: ``url`` (for requests), ``shown`` (for messages, without
    credentials), and for the direct path ``scheme``, ``host``, ``port`` and ``selector``
    (``direct`` is False when only ``urllib`` can serve the URL)."""

    __slots__ = ("url", "shown", "direct", "scheme", "host", "port", "netloc", "selector", "key", "host_header")

    def __init__(self, url: str) -> None:
        from urllib.parse import urlsplit

        self.url = url
        self.shown = safe_url(url)
        self.direct = False
        try:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            host = parts.hostname
            port = parts.port
        except ValueError:
            return
        if scheme not in ("http", "https") or not host or "@" in parts.netloc:
            return
        default_port = 443 if scheme == "https" else 80
        header_host = host
        if not host.isascii():
            try:
                header_host = host.encode("idna").decode("ascii")
            except UnicodeError:
                return
        if ":" in header_host:  # an IPv6 address
            header_host = f"[{header_host.split('%', 1)[0]}]"
        self.scheme = scheme
        self.host = host
        self.netloc = parts.netloc
        self.port = port or default_port
        self.selector = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        if any(c <= " " or c == "\x7f" for c in self.selector):
            return  # urllib's business (and its errors)
        self.key = (scheme, host, self.port)
        self.host_header = header_host if self.port == default_port else f"{header_host}:{self.port}"
        self.direct = True


class Abort:
    """Shuts a request's socket down when the request is cancelled, until disarmed."""

    __slots__ = ("_lock", "_sock", "fired")

    def __init__(self, sock: socket.socket) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = sock
        self.fired = False

    def fire(self) -> None:
        with self._lock:
            sock = self._sock
            if sock is None:
                return
            self.fired = True
            try:
                # The plain socket's shutdown, also for TLS: it wakes a thread blocked on it.
                Net.socket.socket.shutdown(sock, Net.socket.SHUT_RDWR)
            except OSError:
                pass

    def disarm(self) -> None:
        with self._lock:
            self._sock = None


class OpenStream(namedtuple("OpenStream", ("conn", "response", "abort", "remove"))):
    """A streamed answer whose head is read: its connection, response, the abort armed
    on the request's cancellation, and the function that unregisters it."""

    __slots__ = ()


class Dropped(Exception):
    """A reused keep-alive connection turned out to be closed by the server."""


def time_left(end: float) -> float:
    """Seconds until ``end``; raises ``TimeoutError`` when none are left."""
    left = end - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


#: A kept connection idle for this many seconds is checked before it is used again.
IDLE_CHECK_S = 1.0


def arm(sock: socket.socket, limit: float) -> None:
    """Give each operation on ``sock`` at most ``limit`` seconds (within 1 %: setting a
    socket's time-out is a system call, skipped when the one set is close enough)."""
    current = sock.gettimeout()
    if current is None or abs(current - limit) > limit / 100:
        sock.settimeout(limit)


def stale(sock: socket.socket) -> bool:
    """True when an idle kept connection has something to read: the server closed it (or
    sent what it should not have); either way it cannot carry a new request."""
    try:
        import select

        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return True


def send_head(sock: socket.socket, request: bytes, limit: float, reused: bool, abort: Abort) -> http.client.HTTPResponse:
    """Send ``request`` on ``sock`` and read the head of its answer (each socket operation
    within ``limit`` seconds): the ``http.client.HTTPResponse``, its body unread. Raises
    Dropped when a reused connection turns out to be closed by the server (a reset or a
    broken pipe that no cancel caused)."""
    response: http.client.HTTPResponse | None = None
    try:
        arm(sock, limit)
        sock.sendall(request)
        response = Net.http.HTTPResponse(sock, method="POST")
        response.begin()
    except BaseException as exc:
        if response is not None:
            response.close()  # its file holds a reference to the socket
        if reused and not abort.fired and isinstance(exc, (ConnectionResetError, BrokenPipeError)):
            raise Dropped() from None
        raise
    return response
