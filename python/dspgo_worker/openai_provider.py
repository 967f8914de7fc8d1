""":class:`OpenAIProvider` speaks to any OpenAI-compatible
``/chat/completions`` endpoint:

* over persistent HTTP/1.1 connections (``http.client``): each thread keeps one
  connection per endpoint (scheme, host, port) and reuses it from request to request; a
  kept connection that the server closed meanwhile is replaced, and a request that fails
  on a reused connection because it was dropped (``RemoteDisconnected``, a reset or a
  broken pipe) is sent once more on a new one. A base URL that needs an environment
  proxy (``http_proxy``/``https_proxy``, outside ``no_proxy``), has credentials in it or
  another scheme goes through ``urllib.request`` as it always did;
* the API key is read from the environment variable ``api_key_env`` (default
  ``OPENAI_API_KEY``) at each call; without one no ``Authorization`` header is sent (local
  servers). The key never appears in a log line, an error message or ``get_stats``: error
  texts coming back from the server are scrubbed of it (:func:`redact`);
* 429 and 5xx are retried up to :attr:`OpenAIProvider.max_retries` (3) times with
  exponential backoff and jitter (0.5 s doubling, at most 8 s), honouring ``Retry-After``
  (seconds or an HTTP date); a wait that would pass the request's deadline, or a
  ``Retry-After`` over 60 s, is not started (the error is returned at once), and
  cancellation stops the retries;
* errors map to codes: 401/403 ``failed_precondition``, 404 ``not_found``, 429 (after
  retries) ``resource_exhausted``, other 4xx ``invalid_argument``, 5xx (after retries)
  and unreachable servers ``unavailable``, time-outs ``deadline_exceeded``, a malformed
  body ``internal``.

Each attempt is bounded by ``timeout_ms`` and by the request's deadline, whichever comes
first (its limit). Opening a connection (name lookup, TCP, TLS) runs on a helper thread,
so that the handler answers at once when its request is cancelled or reaches its limit
(the abandoned attempt ends at its own time-out). The exchange on an open connection runs
on the handler's thread, with no thread to start or to hand over to: every socket
operation has a time-out of what is left of the limit when the request is sent (and again
when the body is read, if the head took over 1 % of the limit), and cancelling the request
shuts the socket down, which ends the exchange at once. (So a server that trickles its
reply can keep an attempt past its limit by up to the time-out of one socket read.)

Streaming (:meth:`OpenAIProvider.stream`): the request asks for ``"stream": true`` and
the reply's server-sent events (``data: {...}`` lines, ``data: [DONE]``) are read as they
arrive, each content delta handed on at once; every socket read waits at most
``timeout_ms`` (and not past the deadline). A server that answers with a whole completion
instead is accepted. Through a proxy (``urllib``), the reply comes in one piece.

The dummy provider's *scripted mode* (``configure_lm`` argument ``script``) drives the
``react`` program kind: a list of steps ``{"tool": name, "args": {...}}`` or
``{"finish": true}`` (:class:`ScriptStep`).

Nothing heavy is imported before it is needed: ``http.client`` (and ``ssl`` for https)
with the first openai request, ``urllib.request`` only for the proxy path, ``email.utils``
only for a ``Retry-After`` date, ``decimal`` only to format a bad temperature.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from .errors import Cancelled, DeadlineExceeded, WorkerError
from .lmconfig import MAX_ERROR_BYTES, MAX_REPLY_BYTES, LMConfig, safe_url
from .redact import redact
from .sse import open_stream, read_stream
from .transport import (
    IDLE_CHECK_S,
    Abort,
    Dropped,
    Endpoint,
    Net,
    Retryable,
    arm,
    call_in_thread,
    connections,
    parse_retry_after,
    proxied,
    send_head,
    stale,
    time_left,
)
from .usage import REPLY_CACHE, Usage

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    import http.client
    from collections.abc import Generator
    from email.message import Message
    from typing import Any, Callable, TypeVar

    from .context import Context

    R = TypeVar("R")

log = logging.getLogger("dspgo_worker.lm")


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

    def _body(self, messages: list[dict[str, Any]], max_tokens: int | None, stream: bool = False) -> bytes:
        config = self.config
        body: dict[str, Any] = {"model": config.model, "messages": messages}
        if config.temperature is not None:
            body["temperature"] = config.temperature
        tokens = max_tokens if max_tokens is not None else config.max_tokens
        if tokens:
            body["max_tokens"] = tokens
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    def _retry_wait(self, exc: Retryable, attempt: int, ctx: Context) -> None:
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
        if ctx.wait(delay):
            raise Cancelled(ctx.cancel_reason)

    def complete(self, messages: list[dict[str, Any]], ctx: Context, max_tokens: int | None = None, usage: Usage | None = None, cache: bool = True) -> str:
        """The reply text of one chat completion, with retries; raises WorkerError. The
        reply's usage is added to ``usage``; with ``cache`` configured, a request made
        before is answered from :data:`REPLY_CACHE` (no usage) unless ``cache`` is False."""
        config = self.config
        cache = cache and config.cache
        data = self._body(messages, max_tokens)
        if cache:
            cached = REPLY_CACHE.get(data)
            if cached is not None:
                return cached
        attempt = 0
        while True:
            ctx.check()
            started = time.monotonic()
            retryable: Retryable | None
            try:
                reply, reported = self._post(data, ctx)
            except Retryable as exc:
                retryable = exc
            except WorkerError as exc:
                raise self._scrub(exc) from None
            else:
                retryable = None
            if retryable is not None:
                self._retry_wait(retryable, attempt, ctx)
                attempt += 1
                continue
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "LM request done",
                    extra={"request_id": ctx.id, "model": config.model, "attempts": attempt + 1,
                           "duration_ms": round((time.monotonic() - started) * 1000, 3)},
                )
            if usage is not None:
                usage.add(reported)
            if cache:
                REPLY_CACHE.put(data, reply)
            return reply

    def stream(
        self, messages: list[dict[str, Any]], ctx: Context, max_tokens: int | None = None, usage: Usage | None = None
    ) -> Generator[str, None, str]:
        """A generator of the reply's text pieces as they arrive (``"stream": true``);
        returns the whole text. Retries as :meth:`complete` does, before the first piece;
        raises WorkerError. Usage and the cache as for :meth:`complete` (a cached reply is
        one piece)."""
        endpoint = self.endpoint
        if not endpoint.direct or proxied(endpoint.scheme, endpoint.netloc):
            text = self.complete(messages, ctx, max_tokens, usage)
            yield text
            return text
        key = self._body(messages, max_tokens)
        if self.config.cache:
            cached = REPLY_CACHE.get(key)
            if cached is not None:
                yield cached
                return cached
        data = self._body(messages, max_tokens, stream=True)
        attempt = 0
        while True:
            ctx.check()
            try:
                opened = open_stream(self, endpoint, data, ctx)
            except Retryable as exc:
                retryable = exc
            except WorkerError as exc:
                raise self._scrub(exc) from None
            else:
                break
            self._retry_wait(retryable, attempt, ctx)
            attempt += 1
        text = yield from read_stream(self, endpoint, opened, ctx, usage)
        if self.config.cache:
            REPLY_CACHE.put(key, text)
        return text

    def verify(self, ctx: Context) -> None:
        """One small completion, to check the endpoint, model and key now."""
        self.complete([{"role": "user", "content": "Reply with the word OK."}], ctx, self.verify_max_tokens, cache=False)

    # -- internals ------------------------------------------------------------------------

    def scrub_text(self, text: str) -> str:
        return redact(text, self.config.api_key())

    def _scrub(self, exc: WorkerError) -> WorkerError:
        message = self.scrub_text(exc.message)
        if message == exc.message:
            return exc
        return WorkerError(exc.code, message)

    @property
    def endpoint(self) -> Endpoint:
        endpoint = self._endpoint
        if endpoint is None:
            endpoint = self._endpoint = Endpoint(self.config.effective_base_url + "/chat/completions")
        return endpoint

    def _headers(self) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self.config.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _post(self, data: bytes, ctx: Context) -> tuple[str, Any]:
        """One attempt: the reply's text and its ``usage`` object (None when it has none);
        raises Retryable or WorkerError (Cancelled and DeadlineExceeded included)."""
        endpoint = self.endpoint
        if not endpoint.direct or proxied(endpoint.scheme, endpoint.netloc):
            posted: tuple[str, Any] = call_in_thread(lambda: self._post_urllib(data), ctx, self.config.timeout, "the LM endpoint")
            return posted
        end = self.exchange_end(ctx)
        net = Net.load()
        try:
            status, headers, raw = self.on_connection(
                net, endpoint, ctx, end, keep=True,
                send=lambda conn, reused: self._roundtrip(conn, endpoint, data, ctx, end, reused),
            )
        except (Cancelled, DeadlineExceeded, Retryable, WorkerError):
            raise
        except (TimeoutError, net.socket.timeout, net.http.HTTPException, OSError) as exc:
            raise self.network_error(exc, net, endpoint, ctx, end) from None
        if not 200 <= status < 300:
            raise self.http_error(status, headers, raw)
        if len(raw) > MAX_REPLY_BYTES:
            raise WorkerError("resource_exhausted", f"LM endpoint {endpoint.shown}: reply over {MAX_REPLY_BYTES} bytes")
        return self.content(raw, endpoint.shown)

    def exchange_end(self, ctx: Context) -> float:
        """When an exchange must be over: the configured timeout, or the request's
        deadline when sooner."""
        end = time.monotonic() + self.config.timeout
        if ctx.deadline is not None and ctx.deadline < end:
            end = ctx.deadline
        return end

    def on_connection(
        self, net: type[Net], endpoint: Endpoint, ctx: Context, end: float, keep: bool,
        send: Callable[[http.client.HTTPConnection, bool], R],
    ) -> R:
        """``send(conn, reused)`` on this thread's kept connection to the endpoint, opened
        if need be; a dropped kept connection is replaced once. With ``keep`` a new
        connection is kept for later; without it (a stream, which holds its connection
        until it ends) the kept one is taken out."""
        conns = connections()
        conn = conns.get(endpoint.key) if keep else conns.pop(endpoint.key, None)
        # A plain connection idle for a while with something to read was closed by the
        # server. (Not asked of TLS ones, which may hold a session ticket: for those a
        # dropped connection shows when it is used, and the request is sent once more.)
        if conn is not None and (
            conn.sock is None
            or (
                endpoint.scheme == "http"
                and time.monotonic() - getattr(conn, "dspgo_used", 0.0) >= IDLE_CHECK_S
                and stale(conn.sock)
            )
        ):
            conn.close()
            conn = None
        for reused in ((True, False) if conn is not None else (False,)):
            if not reused:
                conn = self._connect(net, endpoint, ctx, end)
                if keep:
                    conns[endpoint.key] = conn
            assert conn is not None  # a kept one when reused, else a new one
            try:
                return send(conn, reused)
            except Dropped:
                continue
        raise AssertionError("unreachable")  # pragma: no cover - the last try never raises Dropped

    def network_error(self, exc: BaseException, net: type[Net], endpoint: Endpoint, ctx: Context, end: float) -> WorkerError:
        """The error of an exchange that failed on the network: the request's own end
        (raised by ``ctx.check``), its deadline, the configured timeout, or
        ``unavailable``."""
        ctx.check()
        if isinstance(exc, (TimeoutError, net.socket.timeout)):  # (one class from 3.10 on)
            if ctx.deadline is not None and ctx.deadline <= end:
                return DeadlineExceeded(f"request {ctx.id} ({ctx.command}) ran past its deadline waiting for the LM endpoint")
            return WorkerError("deadline_exceeded", f"LM endpoint {endpoint.shown}: no answer within {self.config.timeout:g} s")
        return WorkerError("unavailable", f"LM endpoint {endpoint.shown}: {type(exc).__name__}: {exc}")

    def _connect(self, net: type[Net], endpoint: Endpoint, ctx: Context, end: float) -> http.client.HTTPConnection:
        """A new connection, opened on a helper thread (see the module docstring)."""
        limit = time_left(end)
        conn: http.client.HTTPConnection
        if endpoint.scheme == "https":
            conn = net.http.HTTPSConnection(endpoint.host, endpoint.port, timeout=limit, context=Net.ssl_context())
        else:
            conn = net.http.HTTPConnection(endpoint.host, endpoint.port, timeout=limit)
        abandoned: list[bool] = []

        def connect() -> None:
            conn.connect()
            if abandoned:
                conn.close()

        try:
            call_in_thread(connect, ctx, limit, "the LM endpoint")
        except OSError as exc:
            conn.close()
            if isinstance(exc, (TimeoutError, net.socket.timeout)):
                raise
            raise WorkerError("unavailable", f"LM endpoint {endpoint.shown} is unreachable: {exc}") from None
        except BaseException as exc:
            abandoned.append(True)
            conn.close()
            if isinstance(exc, WorkerError) and exc.code == "deadline_exceeded" and not isinstance(exc, DeadlineExceeded):
                raise TimeoutError("timed out") from None  # the attempt's limit: reported by _post
            raise
        return conn

    def request_bytes(self, endpoint: Endpoint, data: bytes, accept: str = "application/json") -> bytes:
        """The request head and body, sent in one write (``http.client`` would send the
        head and the body apart: two system calls, each a chance to lose the GIL)."""
        lines = [
            f"POST {endpoint.selector} HTTP/1.1",
            f"Host: {endpoint.host_header}",
            "Accept-Encoding: identity",
            "Content-Type: application/json",
            f"Accept: {accept}",
            f"User-Agent: {self.user_agent}",
            f"Content-Length: {len(data)}",
        ]
        key = self.config.api_key()
        if key:
            if not key.isprintable() or not key.isascii():
                raise WorkerError(
                    "invalid_argument",
                    f"the API key in ${self.config.effective_api_key_env} has characters an HTTP header cannot carry",
                )
            lines.append(f"Authorization: Bearer {key}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("ascii") + data

    def _roundtrip(
        self, conn: http.client.HTTPConnection, endpoint: Endpoint, data: bytes, ctx: Context, end: float, reused: bool
    ) -> tuple[int, Message, bytes]:
        """One POST on an open connection: ``(status, headers, body)``. Raises Dropped when
        a reused connection turns out to be closed by the server."""
        request = self.request_bytes(endpoint, data)
        sock = conn.sock
        abort = Abort(sock)
        remove = ctx.on_cancel(abort.fire)
        keep = False
        response = None
        try:
            started = time.monotonic()
            limit = time_left(end)
            response = send_head(sock, request, limit, reused, abort)
            status = response.status
            # The body is read with what is left of the limit, when the head took a notable
            # part of it (else, the reply being small, it is read with the head).
            if time.monotonic() - started > limit / 100:
                arm(sock, time_left(end))
            raw = response.read(MAX_REPLY_BYTES + 1 if 200 <= status < 300 else MAX_ERROR_BYTES)
            keep = response.isclosed() and not response.will_close
            return status, response.headers, raw
        except BaseException:
            if abort.fired:
                raise Cancelled(ctx.cancel_reason) from None
            raise
        finally:
            abort.disarm()
            remove()
            if response is not None:
                response.close()  # its file holds a reference to the socket
            if keep and not abort.fired:
                conn.dspgo_used = time.monotonic()  # type: ignore[attr-defined]  # when it was last used
            else:
                conn.close()  # anything left unread, closing or shut down: never reused


    def _post_urllib(self, data: bytes) -> tuple[str, Any]:
        """One request with ``urllib.request`` (proxies, other schemes); raises Retryable
        or WorkerError."""
        import http.client
        import socket
        import urllib.error
        import urllib.request

        url = self.config.effective_base_url + "/chat/completions"
        shown = safe_url(url)
        request = urllib.request.Request(url, data=data, headers=self._headers(), method="POST")
        timeout = self.config.timeout
        try:
            # An opener of its own: the process-wide one of urlopen may have been built (or
            # installed by another library) before the environment's proxies were set.
            with urllib.request.build_opener().open(request, timeout=timeout) as response:
                raw = response.read(MAX_REPLY_BYTES + 1)
        except urllib.error.HTTPError as exc:
            try:
                body = exc.read(MAX_ERROR_BYTES)
            except Exception:  # noqa: BLE001 - the status alone is enough
                body = b""
            raise self.http_error(exc.code, exc.headers, body) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (socket.timeout, TimeoutError)):
                raise WorkerError("deadline_exceeded", f"LM endpoint {shown}: no answer within {timeout:g} s") from None
            raise WorkerError("unavailable", f"LM endpoint {shown} is unreachable: {exc.reason}") from None
        except (socket.timeout, TimeoutError):
            raise WorkerError("deadline_exceeded", f"LM endpoint {shown}: no answer within {timeout:g} s") from None
        except ValueError as exc:  # a base_url urllib cannot use
            raise WorkerError("invalid_argument", f"LM endpoint {shown}: {exc}") from None
        except http.client.HTTPException as exc:  # a broken HTTP exchange (OSError ones are below)
            raise WorkerError("unavailable", f"LM endpoint {shown}: {type(exc).__name__}: {exc}") from None
        except OSError as exc:
            raise WorkerError("unavailable", f"LM endpoint {shown}: {type(exc).__name__}: {exc}") from None
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

    def http_error(self, status: int, headers: Message | None, raw: bytes) -> Exception:
        """The error of a non-2xx answer whose body starts with ``raw``."""
        detail = raw.decode("utf-8", "replace").strip()
        try:
            parsed = json.loads(detail)
            error = parsed.get("error") if isinstance(parsed, dict) else None
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                detail = error["message"]
            elif isinstance(error, str):
                detail = error
        except ValueError:
            pass
        if len(detail) > 300:
            detail = detail[:300] + "…"
        message = f"LM endpoint answered HTTP {status}" + (f": {detail}" if detail else "")
        message = self.scrub_text(message)
        if status in (401, 403):
            return WorkerError("failed_precondition", message + " (check the API key and its permissions)")
        if status == 404:
            return WorkerError("not_found", message + " (check base_url and model)")
        retry_after = headers.get("Retry-After") if headers is not None else None
        if status == 429:
            return Retryable(WorkerError("resource_exhausted", message), parse_retry_after(retry_after))
        if 500 <= status <= 599:
            return Retryable(WorkerError("unavailable", message), parse_retry_after(retry_after))
        if 400 <= status <= 499:
            return WorkerError("invalid_argument", message)
        return WorkerError("unknown", message)

