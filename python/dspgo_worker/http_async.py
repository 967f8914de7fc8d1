"""The OpenAI provider's HTTP/1.1 client, on asyncio streams: a request in flight costs a
connection and a few objects, not a thread.

* **Connections.** A request takes an idle kept-alive connection to its endpoint (scheme,
  host, port) when there is one, the most recently used first, and otherwise opens a new
  one: thousands of requests in flight hold thousands of connections. Once its answer is
  read whole, the connection goes back to the endpoint's idle ones, at most
  :data:`MAX_IDLE` of them (past that, the oldest is closed). Idle connections belong to
  the event loop that opened them.
* **Dropped connections.** A connection the server closed while it was idle is seen at
  once (its reader has the end of the stream): closed instead of used, or when a
  connection comes back and it is the oldest idle one. One the server
  closed just as a request went out fails before any byte of an answer: that request is
  sent once more, on a new connection (only a reused connection gets this second try).
* **No reuse after trouble.** A connection whose exchange did not end cleanly (a
  time-out, a cancel, a body not read to its end, ``Connection: close``, an HTTP/1.0
  answer without keep-alive) is closed, never kept.
* **Bodies**: ``Content-Length``, ``chunked`` (extensions and trailers skipped), or up to
  the end of the connection; :meth:`Response.read_some` hands on each piece as it arrives
  (server-sent events).
* **Time limits**: :class:`Limit` cancels the task at a point in time and turns that
  cancellation into ``TimeoutError``; a cancellation from elsewhere (the request's)
  passes through untouched.

``ssl`` is imported with the first https endpoint.
"""

from __future__ import annotations

import asyncio
import sys
import time
import weakref

from .deadlines import deadlines
from .readbuf import read_buffer
from .worker import on_loop_close

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    import ssl
    from types import TracebackType
    from typing import Any

    from .transport import Endpoint

#: Idle connections kept per endpoint and event loop; past this the oldest is closed.
#: As many as the calls a worker may hold in flight at once (answers come back in bursts:
#: a connection closed in a burst is opened again by the next call, at a connect and an
#: accept each).
MAX_IDLE = 4096
#: The longest answer head (status line and headers), and the longest chunk-size line.
HEAD_LIMIT = 64 * 1024
#: The most :meth:`Response.read_some` returns at once.
READ_SIZE = 64 * 1024


class _Protocol(asyncio.StreamReaderProtocol, asyncio.BufferedProtocol):
    """A stream reader's protocol whose socket reads go into the thread's read buffer
    (:mod:`.readbuf`), not into a new 256 KiB object per read as a transport's
    ``recv(256 KiB)`` (over TLS, ``read(256 KiB)``) does. What a read brought is copied
    out to the reader at once: ``get_buffer``, the read and ``buffer_updated`` run in one
    callback, so the connections of a loop can share the buffer.
    """

    def get_buffer(self, sizehint: int) -> memoryview:
        self._view = read_buffer()
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._view[:nbytes].tobytes())


class HTTPProtocolError(Exception):
    """An answer that is not HTTP/1.1 as it should be, or one cut off by the server."""


class Dropped(Exception):
    """A reused kept-alive connection turned out to be closed by the server before any
    byte of an answer came."""


class Unreachable(OSError):
    """A connection to the endpoint could not be opened (the ``OSError`` it raised)."""


# --- time limits ---------------------------------------------------------------------------


class Limit:
    """``with Limit(end):`` around awaits of the current task: when ``time.monotonic()``
    reaches :attr:`end` (which may be moved later meanwhile), the task is cancelled and the
    ``CancelledError`` leaves the block as ``TimeoutError``. A cancellation that did not
    come from the limit leaves as it came. Nothing inside the block may swallow a
    ``CancelledError``, and the block must not yield to another task's code (an async
    generator's ``yield``)."""

    __slots__ = ("end", "fired", "_task", "_entry", "_deadlines")

    def __init__(self, end: float) -> None:
        self.end = end
        self.fired = False

    def __enter__(self) -> Limit:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("Limit is used outside a task")
        self._task = task
        self._deadlines = deadlines(loop)
        self._entry: list[Any] | None = self._deadlines.add(self.end, Limit._fire, self)
        return self

    def _fire(self) -> None:
        if self.end > time.monotonic():  # moved later (or the loop's clock ran a little ahead)
            self._entry = self._deadlines.add(self.end, Limit._fire, self)
            return
        self._entry = None
        self.fired = True
        self._task.cancel()

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        entry = self._entry
        if entry is not None:
            self._deadlines.remove(entry)
        if not self.fired:
            return
        if sys.version_info >= (3, 11) and self._task.uncancel() > 0:
            return  # cancelled from elsewhere too: that one wins
        if typ is not None and issubclass(typ, asyncio.CancelledError):
            raise TimeoutError("timed out") from None


# --- connections ---------------------------------------------------------------------------

_ssl_context: ssl.SSLContext | None = None


def ssl_context() -> ssl.SSLContext:
    """One TLS context for every https connection, made as ``urlopen`` makes its own."""
    global _ssl_context
    if _ssl_context is None:
        import ssl

        context = ssl._create_default_https_context()
        context.set_alpn_protocols(["http/1.1"])
        if context.post_handshake_auth is not None:
            context.post_handshake_auth = True
        _ssl_context = context
    return _ssl_context


class Connection:
    """One HTTP/1.1 connection: its stream reader and writer."""

    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, endpoint: Endpoint) -> Connection:
        """A new connection to ``endpoint``; raises :class:`Unreachable`."""
        tls = ssl_context() if endpoint.scheme == "https" else None
        loop = asyncio.get_running_loop()
        # asyncio.open_connection, with the protocol above.
        reader = asyncio.StreamReader(limit=HEAD_LIMIT, loop=loop)
        protocol = _Protocol(reader, loop=loop)
        try:
            transport, _ = await loop.create_connection(
                lambda: protocol, endpoint.host, endpoint.port, ssl=tls, server_hostname=endpoint.host if tls else None
            )
        except OSError as exc:
            if isinstance(exc, TimeoutError):
                raise
            raise Unreachable(*exc.args) from None
        return cls(reader, asyncio.StreamWriter(transport, protocol, reader, loop))

    def usable(self) -> bool:
        """True when an idle connection can carry a request: the server has not closed it
        nor sent anything (what a server sends unasked, before closing, is never an
        answer to the next request)."""
        reader = self.reader
        return (
            not reader.at_eof()
            and reader.exception() is None
            and not self.writer.transport.is_closing()
            and not getattr(reader, "_buffer", None)  # nothing unasked (the reader keeps it there)
        )

    def abort(self) -> None:
        """Close at once, dropping anything unsent or unread."""
        self.writer.transport.abort()

    async def send(self, head: bytes, body: bytes, reused: bool) -> Response:
        """Send a request (its ``head`` and ``body``, in one write) and read the head of
        its answer (interim 1xx answers skipped). Raises :class:`Dropped` when a ``reused`` connection ends before
        any byte of an answer, :class:`HTTPProtocolError` for a malformed or cut-off head."""
        reader = self.reader
        try:
            self.writer.write(head + body)  # (a copy only until the socket has it)
            await self.writer.drain()  # suspends only while the socket's buffer is full
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                response = Response(head, reader)
                if not 100 <= response.status < 200:
                    return response
        except asyncio.IncompleteReadError as exc:
            if reused and not exc.partial:
                raise Dropped() from None
            raise HTTPProtocolError("the server closed the connection before its answer's head ended") from None
        except (ConnectionResetError, BrokenPipeError):
            if reused:
                raise Dropped() from None
            raise
        except asyncio.LimitOverrunError:
            raise HTTPProtocolError(f"the answer's head is over {HEAD_LIMIT} bytes") from None


class Response:
    """An answer whose head is read: :attr:`status`, :attr:`headers` (names in lower
    case, repeated ones joined by ``", "``), :attr:`will_close` (the server closes the
    connection after it) and :attr:`done` (the body is read to its end); the body is read
    with :meth:`read` or :meth:`read_some`."""

    __slots__ = ("status", "headers", "will_close", "done", "_reader", "_chunked", "_left", "_crlf")

    def __init__(self, head: bytes, reader: asyncio.StreamReader) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(None, 2)
        try:
            version = parts[0].decode("ascii")
            status = int(parts[1])
        except (IndexError, ValueError, UnicodeDecodeError):
            raise HTTPProtocolError(f"not an HTTP status line: {lines[0][:100]!r}") from None
        if not version.startswith("HTTP/1."):
            raise HTTPProtocolError(f"not an HTTP/1.x answer: {version[:20]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, colon, value = line.partition(b":")
            if not colon:
                raise HTTPProtocolError(f"malformed header line: {line[:100]!r}")
            key = name.strip().lower().decode("latin-1")
            text = value.strip().decode("latin-1")
            headers[key] = headers[key] + ", " + text if key in headers else text
        self.status = status
        self.headers = headers
        self._reader = reader
        self._chunked = False
        self._left: int | None = 0  # bytes left (of the chunk when chunked); None: until the end
        self._crlf = False  # a chunk's closing CRLF is still to read
        tokens = headers.get("connection", "").lower()
        self.will_close = "close" in tokens or (version == "HTTP/1.0" and "keep-alive" not in tokens)
        if status in (204, 304) or 100 <= status < 200:
            self.done = True
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked = True
            self.done = False
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise HTTPProtocolError(f"malformed Content-Length: {headers['content-length'][:40]!r}") from None
            if length < 0:
                raise HTTPProtocolError(f"negative Content-Length: {length}")
            self._left = length
            self.done = length == 0
        else:
            self._left = None
            self.done = False
            self.will_close = True

    async def read_some(self, size: int = READ_SIZE) -> bytes:
        """The next bytes of the body as they arrive, at most ``size``; ``b""`` at its end."""
        if self.done:
            return b""
        reader = self._reader
        try:
            if self._chunked and not self._left:
                if not await self._next_chunk():
                    return b""
            left = self._left
            data = await reader.read(size if left is None else min(size, left))
        except asyncio.IncompleteReadError:
            raise HTTPProtocolError("the server closed the connection in the middle of the answer") from None
        except asyncio.LimitOverrunError:
            raise HTTPProtocolError(f"a chunk-size line over {HEAD_LIMIT} bytes") from None
        if left is None:
            if not data:
                self.done = True
            return data
        if not data:
            raise HTTPProtocolError("the server closed the connection in the middle of the answer")
        left -= len(data)
        self._left = left
        if not left:
            if self._chunked:
                self._crlf = True
            else:
                self.done = True
        return data

    async def _next_chunk(self) -> bool:
        """Read the next chunk's size line (after the last one's CRLF); at the last chunk,
        its trailers, and False."""
        reader = self._reader
        if self._crlf:
            if await reader.readexactly(2) != b"\r\n":
                raise HTTPProtocolError("a chunk does not end with CRLF")
            self._crlf = False
        line = await reader.readuntil(b"\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HTTPProtocolError(f"malformed chunk size: {line[:40]!r}") from None
        if size < 0:
            raise HTTPProtocolError(f"malformed chunk size: {line[:40]!r}")
        if size:
            self._left = size
            return True
        while await reader.readuntil(b"\n") not in (b"\r\n", b"\n"):
            pass  # trailers
        self.done = True
        return False

    async def read(self, cap: int) -> bytes:
        """The body, or its first ``cap`` bytes when longer (then :attr:`done` stays False
        and the connection cannot be kept)."""
        if self._left is not None and not self._chunked:
            if self._left <= cap:  # the usual answer: one read of a known length
                try:
                    data = await self._reader.readexactly(self._left)
                except asyncio.IncompleteReadError:
                    raise HTTPProtocolError("the server closed the connection in the middle of the answer") from None
                self._left = 0
                self.done = True
                return data
        parts = []
        total = 0
        while total < cap:
            data = await self.read_some(min(READ_SIZE, cap - total))
            if not data:
                break
            parts.append(data)
            total += len(data)
        return b"".join(parts)

    @property
    def reusable(self) -> bool:
        """True when the connection can carry the next request: the body is read to its
        end and the server keeps the connection open."""
        return self.done and not self.will_close


# --- the idle connections of each event loop ---------------------------------------------------

_idle: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str, int], list[Connection]]] = (
    weakref.WeakKeyDictionary()
)


def idle(key: tuple[str, str, int]) -> list[Connection]:
    """The running loop's idle connections to the endpoint ``key``, the most recently
    used last."""
    loop = asyncio.get_running_loop()
    pools = _idle.get(loop)
    if pools is None:
        pools = _idle[loop] = {}
    conns = pools.get(key)
    if conns is None:
        conns = pools[key] = []
    return conns


def take(key: tuple[str, str, int]) -> Connection | None:
    """An idle connection to ``key`` that can carry a request (the most recently used
    one), or None; the unusable ones met on the way are closed."""
    conns = idle(key)
    while conns:
        conn = conns.pop()
        if conn.usable():
            return conn
        conn.abort()
    return None


def release(key: tuple[str, str, int], conn: Connection, response: Response) -> None:
    """Keep ``conn`` for the next request to ``key`` when its exchange ended cleanly,
    else close it."""
    if not response.reusable or not conn.usable():
        conn.abort()
        return
    conns = idle(key)
    conns.append(conn)
    if len(conns) > MAX_IDLE:
        conns.pop(0).abort()
    # The oldest idle ones are the ones servers close (their keep-alive time-out passed):
    # closed here, they do not wait half-closed until a burst reaches down to them.
    while not conns[0].usable():
        conns.pop(0).abort()


def close_idle(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Close the idle connections of ``loop`` (default: the running one); the next
    requests open new ones. Their sockets close when the loop next runs: a loop about to
    close runs once more (``loop.run_until_complete(asyncio.sleep(0))``)."""
    pools = _idle.pop(loop or asyncio.get_running_loop(), None)
    for conns in (pools or {}).values():
        for conn in conns:
            conn.abort()


on_loop_close(close_idle)  # a worker's loop closes its idle connections before it goes


async def exchange(endpoint: Endpoint, head: bytes, body: bytes) -> tuple[Connection, Response]:
    """Send a request (``head`` and ``body``) to ``endpoint`` on an idle connection, or a
    new one, and read the head of its answer; sent once more on a new connection when a reused one was dropped
    (:class:`Dropped`). The caller reads the body, then hands the connection to
    :func:`release`, or aborts it if anything fails (a cancel included)."""
    key = endpoint.key
    conn = take(key)
    reused = conn is not None
    while True:
        if conn is None:
            conn = await Connection.open(endpoint)
        try:
            return conn, await conn.send(head, body, reused)
        except Dropped:
            conn.abort()
            conn, reused = None, False
        except BaseException:
            conn.abort()
            raise
