"""Streamed completions of the OpenAI provider (:meth:`OpenAIProvider.stream
<dspgo_worker.openai_provider.OpenAIProvider.stream>`): the request asks for
``"stream": true`` and the reply's server-sent events (``data: {...}`` lines,
``data: [DONE]``) are read as they arrive, each content delta handed on at once; every
read waits at most ``timeout_ms`` (and not past the deadline). A server that answers with
a whole completion instead is accepted.
"""

from __future__ import annotations

import json
import time

from .errors import WorkerError
from .http_async import HTTPProtocolError, Limit, release
from .lmconfig import MAX_REPLY_BYTES

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from .context import Context
    from .http_async import Connection, Response
    from .openai_provider import OpenAIProvider
    from .transport import Endpoint
    from .usage import Usage

#: How long the rest of a body is read after ``[DONE]``, so that its connection is kept.
FINISH_S = 1.0


async def open_stream(
    provider: OpenAIProvider, endpoint: Endpoint, head: bytes, body: bytes, ctx: Context
) -> tuple[Connection, Response]:
    """Send a streamed request and read the head of its answer: the connection and the
    response of a 2xx answer, whose body the caller reads with :func:`read_stream`;
    raises Retryable or WorkerError (Cancelled and DeadlineExceeded included) otherwise."""
    conn, response, _ = await provider.send(endpoint, head, body, ctx, provider.exchange_end(ctx), stream=True)
    assert conn is not None  # a stream's 2xx answer keeps its connection open
    return conn, response


async def read_stream(
    provider: OpenAIProvider, endpoint: Endpoint, conn: Connection, response: Response, ctx: Context,
    usage: Usage | None,
) -> AsyncGenerator[str, None]:
    """The content deltas of the server-sent events of ``response`` (opened by
    :func:`open_stream`), an async generator; an event's ``usage`` is added to ``usage``.
    The connection is kept once the body is read to its end, else closed (a cancel, an
    error, or the generator closed early)."""
    shown = endpoint.shown
    end = 0.0  # when the read under way must be over
    try:
        try:
            if "text/event-stream" not in response.headers.get("content-type", "").lower():
                # The server answered with a whole completion: one piece.
                end = provider.exchange_end(ctx)
                with Limit(end):
                    raw = await response.read(MAX_REPLY_BYTES + 1)
                if len(raw) > MAX_REPLY_BYTES:
                    raise WorkerError("resource_exhausted", f"LM endpoint {shown}: reply over {MAX_REPLY_BYTES} bytes")
                text, reported = provider.content(raw, shown)
                if usage is not None:
                    usage.add(reported)
                yield text
                return
            pending: list[bytes] = []  # the data lines of an event that is not JSON yet
            done = False
            total = 0
            rest: list[bytes] = []  # the start of a line whose end has not come yet
            while not done:
                end = provider.exchange_end(ctx)
                with Limit(end):
                    data = await response.read_some()
                total += len(data)
                if total > MAX_REPLY_BYTES:
                    raise WorkerError("resource_exhausted", f"LM endpoint {shown}: reply over {MAX_REPLY_BYTES} bytes")
                if data and b"\n" not in data:
                    rest.append(data)
                    continue
                rest.append(data)
                lines = b"".join(rest).split(b"\n")
                rest = [lines.pop()] if data else []  # at the end of the body, the last line as it is
                for line in lines:
                    line = line.rstrip(b"\r")
                    if not line:  # the end of an event
                        if pending:
                            piece, done = _stream_event(provider, b"\n".join(pending), shown, strict=True, usage=usage)
                            pending = []
                            if piece:
                                yield piece
                    elif line.startswith(b"data:"):  # (event:, id:, retry: and comments are skipped)
                        value = line[5:]
                        if value.startswith(b" "):
                            value = value[1:]
                        pending.append(value)
                        if len(pending) == 1:  # one line, one event (as OpenAI sends them)
                            piece, done = _stream_event(provider, value, shown, strict=False, usage=usage)
                            if piece is not None or done:
                                pending = []
                                if piece:
                                    yield piece
                    if done:
                        break
                if not data:
                    break  # the server ended the stream without [DONE]
            if pending:
                piece, done = _stream_event(provider, b"\n".join(pending), shown, strict=True, usage=usage)
                if piece:
                    yield piece
            if done:
                await _finish_body(response)
        except TimeoutError:
            raise provider.timed_out(shown, ctx, end, reading=True) from None
        except (HTTPProtocolError, OSError, ValueError) as exc:
            ctx.check()
            raise WorkerError("unavailable", f"LM endpoint {shown}: the stream broke: {type(exc).__name__}: {exc}") from None
    finally:
        release(endpoint.key, conn, response)  # kept only when its body was read to its end


async def _finish_body(response: Response) -> None:
    """After ``[DONE]``: read what is left of the body (briefly), so the connection can
    carry the next request."""
    try:
        with Limit(time.monotonic() + FINISH_S):
            while await response.read_some():
                pass
    except (HTTPProtocolError, OSError):  # the text is complete; only the connection is lost
        pass


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
