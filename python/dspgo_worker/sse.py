"""Streamed completions of the OpenAI provider (:meth:`OpenAIProvider.stream
<dspgo_worker.openai_provider.OpenAIProvider.stream>`): the request asks for
``"stream": true`` and the reply's server-sent events (``data: {...}`` lines,
``data: [DONE]``) are read as they arrive, each content delta handed on at once; every
socket read waits at most ``timeout_ms`` (and not past the deadline). A server that answers
with a whole completion instead is accepted.
"""

from __future__ import annotations

import json
import time

from .errors import Cancelled, DeadlineExceeded, WorkerError
from .lmconfig import MAX_ERROR_BYTES, MAX_REPLY_BYTES
from .transport import Abort, Net, OpenStream, Retryable, arm, connections, send_head, time_left

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    import http.client
    import socket
    from collections.abc import Generator

    from .context import Context
    from .openai_provider import OpenAIProvider
    from .transport import Endpoint
    from .usage import Usage


def open_stream(provider: OpenAIProvider, endpoint: Endpoint, data: bytes, ctx: Context) -> OpenStream:
    """Send a streamed request and read the head of its answer: an :class:`OpenStream`
    for a 2xx answer; raises Retryable or WorkerError (Cancelled and DeadlineExceeded
    included) otherwise. The connection is taken out of the thread's kept ones until
    the stream ends."""
    end = provider.exchange_end(ctx)
    net = Net.load()
    try:
        return provider.on_connection(
            net, endpoint, ctx, end, keep=False,
            send=lambda conn, reused: _begin_stream(provider, conn, endpoint, data, ctx, end, reused),
        )
    except (Cancelled, DeadlineExceeded, Retryable, WorkerError):
        raise
    except (TimeoutError, net.socket.timeout, net.http.HTTPException, OSError) as exc:
        raise provider.network_error(exc, net, endpoint, ctx, end) from None


def _begin_stream(
    provider: OpenAIProvider, conn: http.client.HTTPConnection, endpoint: Endpoint, data: bytes, ctx: Context, end: float, reused: bool
) -> OpenStream:
    request = provider.request_bytes(endpoint, data, accept="text/event-stream")
    sock = conn.sock
    abort = Abort(sock)
    remove = ctx.on_cancel(abort.fire)
    response = None
    opened = False
    try:
        response = send_head(sock, request, time_left(end), reused, abort)
        if not 200 <= response.status < 300:
            arm(sock, time_left(end))
            raise provider.http_error(response.status, response.headers, response.read(MAX_ERROR_BYTES))
        opened = True
        return OpenStream(conn, response, abort, remove)
    except BaseException:
        if abort.fired:
            raise Cancelled(ctx.cancel_reason) from None
        raise
    finally:
        if not opened:
            abort.disarm()
            remove()
            if response is not None:
                response.close()
            conn.close()


def _read_limit(provider: OpenAIProvider, ctx: Context) -> float:
    """How long one read of a stream may wait: ``timeout_ms``, not past the deadline."""
    limit = provider.config.timeout
    remaining = ctx.remaining()
    if remaining is not None:
        if remaining <= 0:
            raise DeadlineExceeded(f"request {ctx.id} ({ctx.command}) ran past its deadline reading the LM's stream")
        limit = min(limit, remaining)
    return limit


def read_stream(
    provider: OpenAIProvider, endpoint: Endpoint, opened: OpenStream, ctx: Context, usage: Usage | None
) -> Generator[str, None, str]:
    """The generator of :meth:`OpenAIProvider.stream` once the answer's head is read: yields each
    content delta of the server-sent events; returns the whole text. An event's
    ``usage`` is added to ``usage``."""
    net = Net.load()
    response, conn, abort = opened.response, opened.conn, opened.abort
    sock = conn.sock
    shown = endpoint.shown
    keep = False
    parts: list[str] = []
    total = 0
    try:
        try:
            content_type = (response.getheader("Content-Type") or "").lower()
            if "text/event-stream" not in content_type:
                # The server answered with a whole completion: one piece.
                arm(sock, _read_limit(provider, ctx))
                raw = response.read(MAX_REPLY_BYTES + 1)
                if abort.fired:
                    raise Cancelled(ctx.cancel_reason)
                if len(raw) > MAX_REPLY_BYTES:
                    raise WorkerError("resource_exhausted", f"LM endpoint {shown}: reply over {MAX_REPLY_BYTES} bytes")
                keep = response.isclosed() and not response.will_close
                text, reported = provider.content(raw, shown)
                if usage is not None:
                    usage.add(reported)
                yield text
                return text
            pending: list[bytes] = []  # the data lines of an event that is not JSON yet
            done = False
            while not done:
                arm(sock, _read_limit(provider, ctx))
                line = response.readline(MAX_REPLY_BYTES + 1 - total)
                if not line:
                    break  # the server ended the stream without [DONE]
                total += len(line)
                if total > MAX_REPLY_BYTES:
                    raise WorkerError("resource_exhausted", f"LM endpoint {shown}: reply over {MAX_REPLY_BYTES} bytes")
                line = line.rstrip(b"\r\n")
                if not line:  # the end of an event
                    if pending:
                        piece, done = _stream_event(provider, b"\n".join(pending), shown, strict=True, usage=usage)
                        pending = []
                        if piece:
                            parts.append(piece)
                            yield piece
                    continue
                if not line.startswith(b"data:"):
                    continue  # event:, id:, retry: and comments
                value = line[5:]
                if value.startswith(b" "):
                    value = value[1:]
                pending.append(value)
                if len(pending) == 1:  # one line, one event (as OpenAI sends them)
                    piece, done = _stream_event(provider, value, shown, strict=False, usage=usage)
                    if piece is not None or done:
                        pending = []
                        if piece:
                            parts.append(piece)
                            yield piece
            if abort.fired:  # the socket shut down by a cancel reads as the end
                raise Cancelled(ctx.cancel_reason)
            if pending:
                piece, done = _stream_event(provider, b"\n".join(pending), shown, strict=True, usage=usage)
                if piece:
                    parts.append(piece)
                    yield piece
            if done:
                keep = _finish_body(response, sock)
        except (Cancelled, DeadlineExceeded, WorkerError):
            raise
        except (TimeoutError, net.socket.timeout):
            ctx.check()
            left = ctx.remaining()
            if left is not None and left <= 0.001:
                raise DeadlineExceeded(
                    f"request {ctx.id} ({ctx.command}) ran past its deadline reading the LM's stream"
                ) from None
            raise WorkerError(
                "deadline_exceeded", f"LM endpoint {shown}: the stream sent nothing for {provider.config.timeout:g} s"
            ) from None
        except (net.http.HTTPException, OSError, ValueError) as exc:
            if abort.fired:
                raise Cancelled(ctx.cancel_reason) from None
            ctx.check()
            raise WorkerError("unavailable", f"LM endpoint {shown}: the stream broke: {type(exc).__name__}: {exc}") from None
    finally:
        abort.disarm()
        opened.remove()
        response.close()
        if keep and not abort.fired:
            conn.dspgo_used = time.monotonic()
            conns = connections()
            if endpoint.key not in conns:
                conns[endpoint.key] = conn
            else:
                conn.close()
        else:
            conn.close()
    return "".join(parts)


def _finish_body(response: http.client.HTTPResponse, sock: socket.socket) -> bool:
    """After ``[DONE]``: read what is left of the body (briefly), so the connection
    can carry the next request; True when it can."""
    try:
        arm(sock, 1.0)
        while response.read(65536):
            pass
    except Exception:  # noqa: BLE001 - the text is complete; only the connection is lost
        return False
    return response.isclosed() and not response.will_close


def _stream_event(
    provider: OpenAIProvider, payload: bytes, shown: str, strict: bool, usage: Usage | None = None
) -> tuple[str | None, bool]:
    """``(content delta or None, done)`` of one event's data; its ``usage`` is added to
    ``usage``. A payload that is not JSON is an error when ``strict``, else
    ``(None, False)`` (more lines may follow)."""
    if payload.strip() == b"[DONE]":
        return None, True
    try:
        event = json.loads(payload.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        if not strict:
            return None, False
        snippet = payload[:200].decode("utf-8", "replace")
        raise WorkerError("internal", f"LM endpoint {shown}: malformed stream event: {snippet!r}") from None
    if isinstance(event, dict) and event.get("error") is not None:
        error = event["error"]
        detail = error.get("message") if isinstance(error, dict) else error
        raise WorkerError("unavailable", provider.scrub_text(f"LM endpoint {shown}: the stream reported an error: {detail}"))
    if usage is not None and isinstance(event, dict):
        usage.add(event.get("usage"))
    try:
        content = event["choices"][0]["delta"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return "", False  # a chunk without content (role, finish_reason, usage)
    return (content if isinstance(content, str) else ""), False
