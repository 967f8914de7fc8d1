"""Language-model configuration and providers: ``dummy`` and ``openai``.

:func:`validate_lm_args` applies the same rules as Go's ``program.ValidateLM`` and lists
every bad field at once. :class:`OpenAIProvider` speaks to any OpenAI-compatible
``/chat/completions`` endpoint with ``urllib.request``:

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

Each HTTP request runs on a helper thread so that the handler answers at once when its
request is cancelled or reaches its deadline (the abandoned request ends at its own
time-out).
"""

from __future__ import annotations

import decimal
import email.utils
import http.client
import json
import logging
import math
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from typing import Any, Callable

from .errors import Cancelled, DeadlineExceeded, WorkerError
from .spec import is_identifier

log = logging.getLogger("dspgo_worker.lm")

PROVIDERS = ("dummy", "openai")
ENGINES = ("auto", "native", "dspy")
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_TIMEOUT_MS = 60_000
#: Largest reply body read from the LM endpoint.
MAX_REPLY_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class LMConfig:
    """A validated ``configure_lm``; zero values mean the provider's default.

    ``engine`` is what was asked for (auto, native, dspy); ``resolved_engine`` what runs.
    """

    provider: str = "dummy"
    model: str = ""
    base_url: str = ""
    api_key_env: str = ""
    temperature: float | None = None
    max_tokens: int = 0
    timeout_ms: int = 0
    engine: str = "auto"
    delay_ms: int = 0
    resolved_engine: str = "native"

    @property
    def effective_base_url(self) -> str:
        return (self.base_url or DEFAULT_BASE_URL).rstrip("/")

    @property
    def safe_base_url(self) -> str:
        """The base URL without any user:password part, for logs and messages."""
        return safe_url(self.effective_base_url)

    @property
    def effective_api_key_env(self) -> str:
        return self.api_key_env or DEFAULT_API_KEY_ENV

    @property
    def timeout(self) -> float:
        """Seconds one LM request may take."""
        return (self.timeout_ms or DEFAULT_TIMEOUT_MS) / 1000.0

    def api_key(self) -> str | None:
        """The API key from the environment, read now; None when unset or empty."""
        return os.environ.get(self.effective_api_key_env) or None

    def describe(self) -> dict:
        """Loggable settings: never the key, only the variable's name and whether it is set."""
        return {
            "provider": self.provider,
            "model": self.model,
            "base_url": self.safe_base_url if self.provider == "openai" else "",
            "api_key_env": self.effective_api_key_env if self.provider == "openai" else "",
            "api_key_set": self.provider == "openai" and self.api_key() is not None,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "timeout_ms": self.timeout_ms,
            "engine": self.resolved_engine,
            "delay_ms": self.delay_ms,
        }


def go_float(f: float) -> str:
    """A float as Go's ``%v`` writes it: shortest digits, exponent form below 1e-4 or from 1e6."""
    if not math.isfinite(f):
        return {math.inf: "+Inf", -math.inf: "-Inf"}.get(f, "NaN")
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    sign, digits, exponent = decimal.Decimal(repr(f)).normalize().as_tuple()
    adjusted = len(digits) + exponent - 1
    text = "".join(map(str, digits))
    if adjusted < -4 or adjusted >= 6:
        text = text[0] + ("." + text[1:] if len(text) > 1 else "") + f"e{'+' if adjusted >= 0 else '-'}{abs(adjusted):02d}"
    else:
        text = format(decimal.Decimal(repr(abs(f))).normalize(), "f")
    return ("-" if sign else "") + text


def validate_lm_args(args: dict) -> LMConfig:
    """``configure_lm``'s (type-checked) arguments as an :class:`LMConfig`.

    Raises ``invalid_argument`` listing every bad field at once, with Go's ValidateLM rules.
    ``resolved_engine`` is left to the caller.
    """
    bad = []
    provider = args.get("provider") or ""
    model = args.get("model") or ""
    if provider == "dummy":
        pass
    elif provider == "openai":
        if not model:
            bad.append("model is required for the openai provider")
    else:
        bad.append(f"provider {json.dumps(provider, ensure_ascii=False)} is unknown (known: dummy, openai)")
    temperature = args.get("temperature")
    if temperature is not None and not 0 <= temperature <= 2:
        bad.append(f"temperature {go_float(temperature)} is outside [0, 2]")
    for name in ("max_tokens", "timeout_ms", "delay_ms"):
        if (args.get(name) or 0) < 0:
            bad.append(f"{name} must not be negative")
    engine = args.get("engine") or ""
    if engine not in ("",) + ENGINES:
        bad.append(f"engine {json.dumps(engine, ensure_ascii=False)} is unknown (known: auto, native, dspy)")
    api_key_env = args.get("api_key_env") or ""
    if api_key_env and not is_identifier(api_key_env):
        bad.append(f"api_key_env {json.dumps(api_key_env, ensure_ascii=False)} is not an environment variable name")
    if bad:
        raise WorkerError("invalid_argument", "configure_lm: " + "; ".join(bad))
    return LMConfig(
        provider=provider,
        model=model,
        base_url=args.get("base_url") or "",
        api_key_env=api_key_env,
        temperature=temperature,
        max_tokens=args.get("max_tokens") or 0,
        timeout_ms=args.get("timeout_ms") or 0,
        engine=engine or "auto",
        delay_ms=args.get("delay_ms") or 0,
    )


def safe_url(url: str) -> str:
    """``url`` without the ``user:password@`` part of its authority."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` (and of its long pieces) replaced."""
    if not secret or not text:
        return text
    text = text.replace(secret, "[REDACTED]")
    # Servers sometimes echo a key partially ("sk-abc...wxyz"): hide any 12-char piece of it.
    if len(secret) > 12:
        for i in range(len(secret) - 11):
            piece = secret[i : i + 12]
            if piece in text:
                text = text.replace(piece, "[REDACTED]")
    return text


def call_in_thread(fn: Callable[[], Any], ctx, timeout: float | None, what: str) -> Any:
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
    if ctx.deadline is not None and ctx.remaining() <= 0.0005:
        raise DeadlineExceeded(f"request {ctx.id} ({ctx.command}) ran past its deadline waiting for {what}")
    within = f" within {timeout:g} s" if timeout is not None else ""
    raise WorkerError("deadline_exceeded", f"{what} did not answer{within}")


# --- providers ---------------------------------------------------------------------------


class DummyProvider:
    """The deterministic offline model: outputs come from :meth:`CompiledSpec.dummy_outputs`."""

    name = "dummy"

    def __init__(self, config: LMConfig):
        self.config = config

    def verify(self, ctx) -> None:
        """Nothing to check."""


class _Retryable(Exception):
    """A 429 or 5xx answer: retried, else turned into ``final``."""

    def __init__(self, final: WorkerError, retry_after: float | None):
        super().__init__(final.message)
        self.final = final
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


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

    def __init__(self, config: LMConfig):
        self.config = config

    # -- public ---------------------------------------------------------------------------

    def complete(self, messages: list[dict], ctx, max_tokens: int | None = None) -> str:
        """The reply text of one chat completion, with retries; raises WorkerError."""
        body: dict[str, Any] = {"model": self.config.model, "messages": messages}
        if self.config.temperature is not None:
            body["temperature"] = self.config.temperature
        tokens = max_tokens if max_tokens is not None else self.config.max_tokens
        if tokens:
            body["max_tokens"] = tokens
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        attempt = 0
        while True:
            ctx.check()
            started = time.monotonic()
            try:
                reply = call_in_thread(lambda: self._post(data), ctx, self.config.timeout, "the LM endpoint")
            except _Retryable as exc:
                if attempt >= self.max_retries:
                    raise self._scrub(exc.final) from None
                delay = exc.retry_after
                if delay is None:
                    delay = min(self.backoff_max, self.backoff_base * 2**attempt) * random.uniform(0.5, 1.0)
                remaining = ctx.remaining()
                why = None
                if remaining is not None and delay >= remaining:
                    why = f"waiting {delay:.3g} s would pass the request's deadline"
                elif delay > self.retry_after_max:
                    why = f"the server asks to wait {delay:.3g} s, over {self.retry_after_max:g} s"
                if why:
                    raise self._scrub(WorkerError(exc.final.code, f"{exc.final.message}; not retried: {why}")) from None
                attempt += 1
                log.info(
                    "LM request failed, retrying",
                    extra={"request_id": ctx.id, "attempt": attempt, "delay_s": round(delay, 3),
                           "error": self._scrub_text(exc.final.message)},
                )
                if ctx.wait(delay):
                    raise Cancelled(ctx.cancel_reason) from None
                continue
            except WorkerError as exc:
                raise self._scrub(exc) from None
            log.debug(
                "LM request done",
                extra={"request_id": ctx.id, "model": self.config.model, "attempts": attempt + 1,
                       "duration_ms": round((time.monotonic() - started) * 1000, 3)},
            )
            return reply

    def verify(self, ctx) -> None:
        """One small completion, to check the endpoint, model and key now."""
        self.complete([{"role": "user", "content": "Reply with the word OK."}], ctx, self.verify_max_tokens)

    # -- internals ------------------------------------------------------------------------

    def _scrub_text(self, text: str) -> str:
        return redact(text, self.config.api_key())

    def _scrub(self, exc: WorkerError) -> WorkerError:
        message = self._scrub_text(exc.message)
        if message == exc.message:
            return exc
        return WorkerError(exc.code, message)

    def _post(self, data: bytes) -> str:
        """One HTTP request; raises _Retryable or WorkerError."""
        url = self.config.effective_base_url + "/chat/completions"
        shown = safe_url(url)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self.config.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        timeout = self.config.timeout
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read(MAX_REPLY_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc) from None
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
        return self._content(raw, shown)

    @staticmethod
    def _content(raw: bytes, url: str) -> str:
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
        return content

    def _http_error(self, exc: urllib.error.HTTPError) -> Exception:
        status = exc.code
        try:
            raw = exc.read(65536)
        except Exception:  # noqa: BLE001 - the status alone is enough
            raw = b""
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
        message = self._scrub_text(message)
        if status in (401, 403):
            return WorkerError("failed_precondition", message + " (check the API key and its permissions)")
        if status == 404:
            return WorkerError("not_found", message + " (check base_url and model)")
        if status == 429:
            return _Retryable(WorkerError("resource_exhausted", message), _retry_after(exc.headers.get("Retry-After")))
        if 500 <= status <= 599:
            return _Retryable(WorkerError("unavailable", message), _retry_after(exc.headers.get("Retry-After")))
        if 400 <= status <= 499:
            return WorkerError("invalid_argument", message)
        return WorkerError("unknown", message)


def make_provider(config: LMConfig):
    """The provider object of a configuration."""
    if config.provider == "openai":
        return OpenAIProvider(config)
    return DummyProvider(config)


def with_engine(config: LMConfig, engine: str) -> LMConfig:
    return replace(config, resolved_engine=engine)
