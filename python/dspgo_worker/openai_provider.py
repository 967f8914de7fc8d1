""":class:`OpenAIProvider` speaks to any OpenAI-compatible ``/chat/completions``
endpoint, as coroutines on the worker's event loop:

* over kept-alive HTTP/1.1 connections (:mod:`~dspgo_worker.http_async`): a request takes
  an idle connection to the endpoint or opens one, and gives it back once its answer is
  read whole; a kept connection that the server closed meanwhile is replaced, and a
  request that fails on a reused connection before any byte of an answer is sent once
  more on a new one. A base URL that needs an environment proxy
  (``http_proxy``/``https_proxy``, outside ``no_proxy``) or has credentials in it goes
  through ``urllib.request`` as it always did, on one of the worker's threads
  (``ctx.run_sync``); a base URL no request can be sent to (``lmconfig.base_url_problem``,
  which ``configure_lm`` applies already) is refused before any;
* the API key is read from the environment variable ``api_key_env`` (default
  ``OPENAI_API_KEY``) at each call and sent as ``Authorization: Bearer``; without one, the
  base URL's credentials (``http://user:password@host/v1``) are sent as HTTP Basic
  authorization (``lmconfig.split_credentials``), and without either no ``Authorization``
  header is sent (local servers). The key never appears in a log line, an error message or ``get_stats``: error
  texts coming back from the server are scrubbed of it (:func:`redact`);
* 429 and 5xx are retried up to :attr:`OpenAIProvider.max_retries` (3) times with
  exponential backoff and jitter (0.5 s doubling, at most 8 s), honouring ``Retry-After``
  (seconds or an HTTP date); a wait that would pass the request's deadline, or a
  ``Retry-After`` over 60 s, is not started (the error is returned at once), and
  cancellation stops the retries;
* errors map to codes: 401/403 ``failed_precondition``, 404 ``not_found``, 429 (after
  retries) ``resource_exhausted``, other 4xx and a base URL that our check or ``urllib``
  refuses ``invalid_argument`` (a 4xx whose error code is ``context_length_exceeded`` as
  :class:`~dspgo_worker.errors.ContextWindowExceeded`), 5xx (after retries)
  and unreachable servers ``unavailable``, time-outs ``deadline_exceeded``, a malformed
  body ``internal``.

Each attempt (connecting, sending, reading the whole answer) is bounded by ``timeout_ms``
and by the request's deadline, whichever comes first. Cancelling the request cancels the
coroutine wherever it waits: the connection it was using is closed, never kept.

Streaming (:meth:`OpenAIProvider.stream`): the request asks for ``"stream": true`` and
the reply's server-sent events (``data: {...}`` lines, ``data: [DONE]``) are read as they
arrive, each content delta handed on at once; every read waits at most ``timeout_ms``
(and not past the deadline). A server that answers with a whole completion instead is
accepted. Through a proxy (``urllib``), the reply comes in one piece.

Nothing heavy is imported before it is needed: the HTTP client (and ``ssl`` for https)
with the first openai request, ``urllib.request`` only for the proxy path, ``email.utils``
only for a ``Retry-After`` date, ``decimal`` only to format a bad temperature.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from .errors import Cancelled, ContextWindowExceeded, DeadlineExceeded, WorkerError
from .lmconfig import (
    MAX_ERROR_BYTES,
    MAX_REPLY_BYTES,
    LMConfig,
    base_url_problem,
    hide_credentials,
    safe_url,
    split_credentials,
)
from .redact import redact
from .transport import Endpoint, Retryable, parse_retry_after, proxied, time_left
from .usage import REPLY_CACHE, Usage

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Mapping
    from email.message import Message
    from typing import Any, Callable, TypeVar

    from .context import Context
    from .http_async import Connection, Response

    R = TypeVar("R")

log = logging.getLogger("dspgo_worker.lm")

#: The encoder of request bodies (``json.dumps(body, ensure_ascii=False)`` makes one per call).
_BODY_ENCODER = json.JSONEncoder(ensure_ascii=False)


class OpenAIProvider:
    """An OpenAI-compatible ``/chat/completions`` endpoint (see the module docstring)."""

    name = "openai"
    #: Retries of a 429 or 5xx answer.
    max_retries = 3
    #: First backoff in seconds (doubled each retry, with jitter), and the largest one.
    backoff_base = 0.5
    backoff_max = 8.0
    #: A longer ``Retry-After`` is not waited for: the error is returned at once.
    retry_after_max = 60.0
    #: Verification request's token budget.
    verify_max_tokens = 16
    #: ``User-Agent`` of every request (the one ``urllib`` sends).
    user_agent = f"Python-urllib/{sys.version_info[0]}.{sys.version_info[1]}"

    def __init__(self, config: LMConfig) -> None:
        self.config = config
        self._endpoint: Endpoint | None = None

    # -- public ---------------------------------------------------------------------------

    async def complete(
        self, messages: list[dict[str, Any]], ctx: Context, max_tokens: int | None = None, usage: Usage | None = None,
        cache: bool = True, response_format: dict[str, Any] | None = None,
    ) -> str:
        """The reply text of one chat completion, with retries; raises WorkerError. The
        reply's usage is added to ``usage``; with ``cache`` configured, a request made
        before is answered from :data:`REPLY_CACHE` (no usage) unless ``cache`` is False.
        ``response_format`` (default None: none) is sent as the request's."""
        config = self.config
        cache = cache and config.cache
        data = self._body(messages, max_tokens, response_format=response_format)
        del messages  # a call in flight holds its body, not the prompt as well
        if cache:
            cached = REPLY_CACHE.get(data)
            if cached is not None:
                return cached
        started = time.monotonic()
        reply, reported = await self.with_retries(ctx, lambda: self._post(data, ctx))
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "LM request done",
                extra={"request_id": ctx.id, "model": config.model,
                       "duration_ms": round((time.monotonic() - started) * 1000, 3)},
            )
        if usage is not None:
            usage.add(reported)
        if cache:
            REPLY_CACHE.put(data, reply)
        return reply

    async def stream(
        self, messages: list[dict[str, Any]], ctx: Context, usage: Usage | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> AsyncGenerator[str, None]:
        """The reply's text pieces as they arrive (``"stream": true``), an async generator
        (its caller joins them, and closes it with ``aclose`` when it stops early).
        Retries as :meth:`complete` does, before the first piece; raises WorkerError.
        Usage, the cache and ``response_format`` as for :meth:`complete` (a cached reply
        is one piece)."""
        endpoint = self.endpoint
        if not endpoint.direct or proxied(endpoint.scheme, endpoint.netloc):
            yield await self.complete(messages, ctx, usage=usage, response_format=response_format)
            return
        key = self._body(messages, None, response_format=response_format) if self.config.cache else None
        if key is not None:
            cached = REPLY_CACHE.get(key)
            if cached is not None:
                yield cached
                return
        from .sse import open_stream, read_stream

        data = self._body(messages, None, stream=True, response_format=response_format)
        del messages  # a stream in flight holds its body, not the prompt as well
        head = self.request_head(endpoint, len(data), accept="text/event-stream")
        conn, response = await self.with_retries(ctx, lambda: open_stream(self, endpoint, head, data, ctx))
        parts = []  # the reply, for the cache only
        pieces = read_stream(self, endpoint, conn, response, ctx, usage)
        try:
            async for piece in pieces:
                if key is not None:
                    parts.append(piece)
                yield piece
        finally:
            await pieces.aclose()  # at once, when this one is closed early: its connection closes
        if key is not None:
            REPLY_CACHE.put(key, "".join(parts))

    async def verify(self, ctx: Context) -> None:
        """One small completion, to check the endpoint, model and key now."""
        await self.complete([{"role": "user", "content": "Reply with the word OK."}], ctx, self.verify_max_tokens, cache=False)

    # -- internals ------------------------------------------------------------------------

    def _body(
        self, messages: list[dict[str, Any]], max_tokens: int | None, stream: bool = False,
        response_format: dict[str, Any] | None = None,
    ) -> bytes:
        config = self.config
        body: dict[str, Any] = {"model": config.model, "messages": messages}
        if config.temperature is not None:
            body["temperature"] = config.temperature
        tokens = max_tokens if max_tokens is not None else config.max_tokens
        if tokens:
            body["max_tokens"] = tokens
        if response_format is not None:
            body["response_format"] = response_format
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return _BODY_ENCODER.encode(body).encode("utf-8")

    async def with_retries(self, ctx: Context, attempt: Callable[[], Awaitable[R]]) -> R:
        """``await attempt()`` until it returns, retrying a :class:`Retryable` answer
        (:meth:`_retry_wait`); raises WorkerError, scrubbed of the key."""
        attempts = 0
        while True:
            ctx.check()
            try:
                return await attempt()
            except Retryable as exc:
                retryable = exc
            except WorkerError as exc:
                raise self._scrub(exc) from None
            await self._retry_wait(retryable, attempts, ctx)
            attempts += 1

    async def _retry_wait(self, exc: Retryable, attempt: int, ctx: Context) -> None:
        """Wait before retry number ``attempt + 1`` of a 429 or 5xx answer, or raise the
        final error when no retry is left or the wait is not worth starting."""
        if attempt >= self.max_retries:
            raise self._scrub(exc.final)
        delay = exc.retry_after
        if delay is None:
            import random  # only for the jitter of a retry

            delay = min(self.backoff_max, self.backoff_base * 2**attempt) * random.uniform(0.5, 1.0)
        remaining = ctx.remaining()
        why = None
        if remaining is not None and delay >= remaining:
            why = f"waiting {delay:.3g} s would pass the request's deadline"
        elif delay > self.retry_after_max:
            why = f"the server asks to wait {delay:.3g} s, over {self.retry_after_max:g} s"
        if why:
            raise self._scrub(WorkerError(exc.final.code, f"{exc.final.message}; not retried: {why}"))
        log.info(
            "LM request failed, retrying",
            extra={"request_id": ctx.id, "attempt": attempt + 1, "delay_s": round(delay, 3),
                   "error": self.scrub_text(exc.final.message)},
        )
        if await ctx.wait_async(delay):
            raise Cancelled(ctx.cancel_reason)

    def scrub_text(self, text: str) -> str:
        return redact(text, self.config.api_key())

    def _scrub(self, exc: WorkerError) -> WorkerError:
        message = self.scrub_text(exc.message)
        if message == exc.message:
            return exc
        return ContextWindowExceeded(message) if isinstance(exc, ContextWindowExceeded) else WorkerError(exc.code, message)

    @property
    def endpoint(self) -> Endpoint:
        """Where the completions go; ``invalid_argument`` for a base URL no request can be
        sent to (``configure_lm`` refuses those already)."""
        endpoint = self._endpoint
        if endpoint is None:
            base_url = self.config.effective_base_url
            problem = base_url_problem(base_url)
            if problem:
                raise WorkerError("invalid_argument", f"LM endpoint: base_url {problem}")
            endpoint = self._endpoint = Endpoint(base_url + "/chat/completions")
        return endpoint

    def exchange_end(self, ctx: Context) -> float:
        """When an exchange must be over: the configured timeout, or the request's
        deadline when sooner."""
        end = time.monotonic() + self.config.timeout
        if ctx.deadline is not None and ctx.deadline < end:
            end = ctx.deadline
        return end

    async def _post(self, data: bytes, ctx: Context) -> tuple[str, Any]:
        """One attempt: the reply's text and its ``usage`` object (None when it has none);
        raises Retryable or WorkerError (Cancelled and DeadlineExceeded included)."""
        endpoint = self.endpoint
        end = self.exchange_end(ctx)
        if not endpoint.direct or proxied(endpoint.scheme, endpoint.netloc):
            posted: tuple[str, Any] = await ctx.run_sync(lambda: self._post_urllib(data, ctx, end))
            return posted
        _, _, raw = await self.send(endpoint, self.request_head(endpoint, len(data)), data, ctx, end)
        if len(raw) > MAX_REPLY_BYTES:
            raise WorkerError("resource_exhausted", f"LM endpoint {endpoint.shown}: reply over {MAX_REPLY_BYTES} bytes")
        return self.content(raw, endpoint.shown)

    async def send(
        self, endpoint: Endpoint, head: bytes, data: bytes, ctx: Context, end: float, stream: bool = False
    ) -> tuple[Connection | None, Response, bytes]:
        """One exchange with ``endpoint``, over by ``end``: ``(None, response, body)`` of a
        2xx answer, its connection kept for the next request when the body was read to its
        end; with ``stream``, ``(connection, response, b"")`` of a 2xx answer, whose body
        the caller reads and then hands to ``http_async.release``. Raises Retryable or
        WorkerError (Cancelled and DeadlineExceeded included) otherwise."""
        from . import http_async as http

        try:
            with http.Limit(end):
                conn, response = await http.exchange(endpoint, head, data)
                status = response.status
                if stream and 200 <= status < 300:
                    return conn, response, b""
                try:
                    raw = await response.read(MAX_REPLY_BYTES + 1 if 200 <= status < 300 else MAX_ERROR_BYTES)
                finally:
                    http.release(endpoint.key, conn, response)  # kept only when read to its end
        except (OSError, http.HTTPProtocolError) as exc:  # TimeoutError is an OSError
            raise self.network_error(exc, endpoint, ctx, end) from None
        if not 200 <= status < 300:
            raise self.http_error(status, response.headers, raw)
        return None, response, raw

    def timed_out(self, shown: str, ctx: Context, end: float, reading: bool = False) -> WorkerError:
        """The error of an exchange, or with ``reading`` of one read of a stream, that
        reached its limit ``end``: the request's deadline or the configured timeout
        (raises Cancelled when the request was cancelled)."""
        ctx.check()
        if ctx.deadline is not None and ctx.deadline <= end:
            doing = "reading the LM's stream" if reading else "waiting for the LM endpoint"
            return DeadlineExceeded(f"request {ctx.id} ({ctx.command}) ran past its deadline {doing}")
        silence = "the stream sent nothing for" if reading else "no answer within"
        return WorkerError("deadline_exceeded", f"LM endpoint {shown}: {silence} {self.config.timeout:g} s")

    def network_error(self, exc: BaseException, endpoint: Endpoint, ctx: Context, end: float) -> WorkerError:
        """The error of an exchange that failed on the network: the request's own end
        (raised by ``ctx.check``), its deadline, the configured timeout, or
        ``unavailable``."""
        from .http_async import Unreachable

        if isinstance(exc, TimeoutError):
            return self.timed_out(endpoint.shown, ctx, end)
        ctx.check()
        if isinstance(exc, Unreachable):
            return WorkerError("unavailable", f"LM endpoint {endpoint.shown} is unreachable: {exc}")
        return WorkerError("unavailable", f"LM endpoint {endpoint.shown}: {type(exc).__name__}: {exc}")

    def request_head(self, endpoint: Endpoint, length: int, accept: str = "application/json") -> bytes:
        """The head of a request whose body has ``length`` bytes."""
        lines = [
            f"POST {endpoint.selector} HTTP/1.1",
            f"Host: {endpoint.host_header}",
            "Accept-Encoding: identity",
            "Content-Type: application/json",
            f"Accept: {accept}",
            f"User-Agent: {self.user_agent}",
            f"Content-Length: {length}",
        ]
        key = self.config.api_key()
        if key:
            lines.append(f"Authorization: Bearer {self._header_key(key)}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("ascii")

    def _header_key(self, key: str) -> str:
        """``key``, refused (``invalid_argument``) when an HTTP header cannot carry it."""
        if not key.isprintable() or not key.isascii():
            raise WorkerError(
                "invalid_argument",
                f"the API key in ${self.config.effective_api_key_env} has characters an HTTP header cannot carry",
            )
        return key

    def _post_urllib(self, data: bytes, ctx: Context, end: float) -> tuple[str, Any]:
        """One request with ``urllib.request`` (proxies, other schemes), blocking, within
        the limit ``end``; raises Retryable or WorkerError."""
        import http.client
        import socket
        import urllib.error
        import urllib.request

        written = self.config.effective_base_url + "/chat/completions"
        shown = safe_url(written)
        url, basic = split_credentials(written)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self.config.api_key()
        if key:
            headers["Authorization"] = f"Bearer {self._header_key(key)}"
        elif basic:
            headers["Authorization"] = f"Basic {basic}"
        try:
            # Within the try: Request refuses some URLs (ValueError) as it is made.
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            # An opener of its own: the process-wide one of urlopen may have been built (or
            # installed by another library) before the environment's proxies were set.
            with urllib.request.build_opener().open(request, timeout=time_left(end)) as response:
                raw = response.read(MAX_REPLY_BYTES + 1)
        except urllib.error.HTTPError as exc:
            try:
                body = exc.read(MAX_ERROR_BYTES)
            except Exception:  # noqa: BLE001 - the status alone is enough
                body = b""
            raise self.http_error(exc.code, exc.headers, body) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (socket.timeout, TimeoutError)):
                raise self.timed_out(shown, ctx, end) from None
            raise WorkerError("unavailable", f"LM endpoint {shown} is unreachable: {hide_credentials(str(exc.reason), written)}") from None
        except (socket.timeout, TimeoutError):
            raise self.timed_out(shown, ctx, end) from None
        except (ValueError, http.client.InvalidURL) as exc:  # a base_url urllib cannot use: a fault of the configuration
            raise WorkerError("invalid_argument", f"LM endpoint {shown}: {hide_credentials(str(exc), written)} (check base_url)") from None
        except http.client.HTTPException as exc:  # a broken HTTP exchange (OSError ones are below)
            raise WorkerError("unavailable", f"LM endpoint {shown}: {type(exc).__name__}: {hide_credentials(str(exc), written)}") from None
        except OSError as exc:
            raise WorkerError("unavailable", f"LM endpoint {shown}: {type(exc).__name__}: {hide_credentials(str(exc), written)}") from None
        if len(raw) > MAX_REPLY_BYTES:
            raise WorkerError("resource_exhausted", f"LM endpoint {shown}: reply over {MAX_REPLY_BYTES} bytes")
        return self.content(raw, shown)

    @staticmethod
    def content(raw: bytes, url: str) -> tuple[str, Any]:
        """The text of a chat completion and its ``usage`` object (None when absent)."""
        try:
            body = json.loads(raw.decode("utf-8"))
            content = body["choices"][0]["message"]["content"]
        except (ValueError, UnicodeDecodeError, KeyError, IndexError, TypeError):
            snippet = raw[:200].decode("utf-8", "replace")
            raise WorkerError(
                "internal", f"LM endpoint {url}: malformed chat completion (no choices[0].message.content): {snippet!r}"
            ) from None
        if not isinstance(content, str):
            raise WorkerError("internal", f"LM endpoint {url}: the completion has no text content")
        return content, body.get("usage")

    def http_error(self, status: int, headers: Mapping[str, str] | Message | None, raw: bytes) -> Exception:
        """The error of a non-2xx answer whose body starts with ``raw``."""
        detail = raw.decode("utf-8", "replace").strip()
        code = None
        try:
            parsed = json.loads(detail)
            error = parsed.get("error") if isinstance(parsed, dict) else None
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                detail = error["message"]
                code = error.get("code")
            elif isinstance(error, str):
                detail = error
        except ValueError:
            pass
        if len(detail) > 300:
            detail = detail[:300] + "…"
        message = f"LM endpoint answered HTTP {status}" + (f": {detail}" if detail else "")
        message = self.scrub_text(message)
        if status in (401, 403):
            note = self.config.missing_key_note()
            return WorkerError("failed_precondition", message + (f" ({note})" if note else " (check the API key and its permissions)"))
        if status == 404:
            return WorkerError("not_found", message + " (check base_url and model)")
        if code == "context_length_exceeded" and 400 <= status <= 499:
            return ContextWindowExceeded(message)
        retry_after = headers.get("retry-after") if headers is not None else None
        if status == 429:
            return Retryable(WorkerError("resource_exhausted", message), parse_retry_after(retry_after))
        if 500 <= status <= 599:
            return Retryable(WorkerError("unavailable", message), parse_retry_after(retry_after))
        if 400 <= status <= 499:
            return WorkerError("invalid_argument", message)
        return WorkerError("unknown", message)
