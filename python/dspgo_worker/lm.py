"""Language-model configuration and providers: ``dummy`` and ``openai``.

:func:`validate_lm_args` applies the same rules as Go's ``program.ValidateLM`` and lists
every bad field at once. :class:`OpenAIProvider` speaks to any OpenAI-compatible
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
import math
import os
import sys
import threading
import time
from collections import namedtuple
from functools import lru_cache

from .errors import Cancelled, DeadlineExceeded, WorkerError
from .spec import is_identifier

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from typing import Any, Callable

log = logging.getLogger("dspgo_worker.lm")

PROVIDERS = ("dummy", "openai")
ENGINES = ("auto", "native", "dspy")
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_TIMEOUT_MS = 60_000
#: Largest reply body read from the LM endpoint.
MAX_REPLY_BYTES = 32 * 1024 * 1024
#: Most of an error reply read for its message.
MAX_ERROR_BYTES = 65536

_LMConfigFields = namedtuple(
    "LMConfig",
    (
        "provider",
        "model",
        "base_url",
        "api_key_env",
        "temperature",
        "max_tokens",
        "timeout_ms",
        "engine",
        "delay_ms",
        "resolved_engine",
        "script",
        "fail_after_chunks",
        "cache",
    ),
    defaults=("dummy", "", "", "", None, 0, 0, "auto", 0, "native", (), None, False),
)


class ScriptStep(namedtuple("ScriptStep", ("tool", "args_json"))):
    """One step of the dummy provider's script: a call of ``tool`` with the arguments
    ``args_json`` (kept as JSON text so that a configuration stays hashable), or, with
    ``tool`` None, ``{"finish": true}``."""

    __slots__ = ()

    @property
    def finish(self) -> bool:
        return self.tool is None

    @property
    def args(self) -> dict:
        """A fresh copy of the step's arguments."""
        return json.loads(self.args_json)


def parse_script_step(step: Any) -> ScriptStep | None:
    """A script step, or None when ``step`` has neither shape, as Go's
    ``program.ScriptStep`` reads them: ``{"finish": true}`` (no tool, no args) or
    ``{"tool": name, "args": {...}}`` (a non-empty name, an object, ``finish`` absent or
    false). Other keys are ignored."""
    if not isinstance(step, dict):
        return None
    finish, tool, args = step.get("finish"), step.get("tool"), step.get("args")
    if finish is not None and not isinstance(finish, bool):
        return None
    if tool is not None and not isinstance(tool, str):
        return None
    if finish:
        return ScriptStep(None, "") if not tool and "args" not in step else None
    if not tool or not isinstance(args, dict):
        return None
    try:
        args_json = json.dumps(args, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:  # 1e400 decodes to an infinity
        return None
    return ScriptStep(tool, args_json)


class LMConfig(_LMConfigFields):
    """A validated ``configure_lm`` (an immutable record); zero values mean the provider's
    default.

    Fields: ``provider`` ("dummy"), ``model``, ``base_url``, ``api_key_env``,
    ``temperature`` (None), ``max_tokens``, ``timeout_ms``, ``engine`` ("auto"),
    ``delay_ms``, ``resolved_engine`` ("native"), ``script`` (a tuple of
    :class:`ScriptStep`, the dummy provider's react script), ``fail_after_chunks`` and
    ``cache`` (False: every execution calls the LM; True: this worker process answers a
    request identical to an earlier one from memory, on either engine). ``engine`` is
    what was asked for (auto, native, dspy); ``resolved_engine`` what runs.
    """

    __slots__ = ()

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
            "script_steps": len(self.script),
            "cache": self.cache,
        }


def go_float(f: float) -> str:
    """A float as Go's ``%v`` writes it: shortest digits, exponent form below 1e-4 or from 1e6."""
    if not math.isfinite(f):
        return {math.inf: "+Inf", -math.inf: "-Inf"}.get(f, "NaN")
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    import decimal  # only for the message about a bad temperature

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
    name = args.get("name") or ""
    if not is_lm_name(name):
        bad.append(f"name {json.dumps(name, ensure_ascii=False)} may hold only letters, digits, '_' and '-' (at most {MAX_LM_NAME_BYTES})")
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
    for name in ("max_tokens", "timeout_ms", "delay_ms", "fail_after_chunks"):
        if (args.get(name) or 0) < 0:
            bad.append(f"{name} must not be negative")
    if args.get("fail_after_chunks") is not None and provider != "dummy":
        bad.append("fail_after_chunks is only for the dummy provider")
    engine = args.get("engine") or ""
    if engine not in ("",) + ENGINES:
        bad.append(f"engine {json.dumps(engine, ensure_ascii=False)} is unknown (known: auto, native, dspy)")
    script = []
    raw_script = args.get("script") or []
    if raw_script and provider != "dummy":
        bad.append("script is only for the dummy provider")
    for i, raw_step in enumerate(raw_script):
        step = parse_script_step(raw_step)
        if step is None:
            bad.append(f'script[{i}] must be {{"tool": name, "args": {{...}}}} or {{"finish": true}}')
        else:
            script.append(step)
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
        script=tuple(script),
        fail_after_chunks=args.get("fail_after_chunks"),
        cache=bool(args.get("cache")),
    )


#: The longest name of an LM configuration, in bytes (Go's ``program.MaxLMNameBytes``).
MAX_LM_NAME_BYTES = 64


def is_lm_name(name: str) -> bool:
    """Whether ``name`` can name an LM configuration: empty (the default), or up to
    :data:`MAX_LM_NAME_BYTES` ASCII letters, digits, ``_`` and ``-`` (Go's
    ``program.CheckLMName``)."""
    return len(name) <= MAX_LM_NAME_BYTES and all(c.isascii() and (c.isalnum() or c in "_-") for c in name)


def safe_url(url: str) -> str:
    """``url`` with its credentials hidden, as Go's ``secret.URL`` hides them: everything
    between ``scheme://`` (the start, without a scheme) and the last ``@`` becomes ``***``.
    It does not parse the URL, so credentials holding characters a URL may not hold raw
    (``/``, ``#``, ``?``, ``@``), where a parser ends the authority early, are hidden
    whole all the same; an ``@`` after the host hides the host too (too little shown,
    never too much)."""
    at = url.rfind("@")
    if at < 0:
        return url
    scheme, sep, _ = url[:at].partition("://")
    start = len(scheme) + len(sep) if sep and _is_scheme(scheme.strip()) else 0
    return url[:start] + "***" + url[at:]


def _is_scheme(s: str) -> bool:
    """A URL scheme: a letter, then letters, digits, ``+``, ``-`` and ``.``."""
    return bool(s) and s[0].isascii() and s[0].isalpha() and all(c.isascii() and (c.isalnum() or c in "+-.") for c in s)


#: The shortest run of a secret's characters that :func:`redact` hides on its own (a
#: server echoing a key in part: ``sk-abc...wxyz``).
REDACT_PIECE = 12
#: The shortest base64 text of a secret that :func:`redact` looks for (shorter ones would
#: hide innocent text).
REDACT_MIN_BASE64 = 16

#: JSON's two-character escapes, and the named HTML entities a server may write.
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HTML_NAMED = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}


def _hex_pattern(digits: str) -> str:
    """Hex digits matching in either case: ``2F`` -> ``2[fF]``."""
    return "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in digits)


def _char_pattern(c: str) -> str:
    """A regular expression of one character of a secret in every encoding a server may
    echo it in: itself; URL-encoded (its UTF-8 bytes as ``%XX``, either case, also encoded
    twice as ``%25XX``, and ``+`` for a space: quote and quote_plus); JSON-escaped (``\\/``, ``\\"``, ``\\\\``…,
    ``\\uXXXX`` in either case, surrogate pairs beyond the BMP); HTML (``&#NN;``,
    ``&#xHH;``, ``&amp;``…)."""
    import re

    code = ord(c)
    # %XX, or %25XX when the text was URL-encoded twice.
    forms = [re.escape(c), "".join("%(?:25)?" + _hex_pattern(f"{b:02X}") for b in c.encode("utf-8", "surrogatepass"))]
    if c == " ":
        forms.append(r"\+")
    if c in _JSON_ESCAPES:
        forms.append(re.escape(_JSON_ESCAPES[c]))
    units = [code] if code < 0x10000 else [0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)]
    forms.append("".join(r"\\u" + _hex_pattern(f"{u:04X}") for u in units))
    forms.append(f"&#0*{code};")
    forms.append("&#[xX]0*" + _hex_pattern(f"{code:X}") + ";")
    if c in _HTML_NAMED:
        forms.append(re.escape(_HTML_NAMED[c]))
    return "(?:" + "|".join(forms) + ")"


def _base64_cores(secret: str) -> set[str]:
    """The base64 text of ``secret`` wherever it sits in an encoded string (as in a
    ``Basic`` authorization header echoed back): at each of the three byte alignments, in
    the standard and the URL-safe alphabet, without the characters it shares with its
    neighbours."""
    import base64

    raw = secret.encode("utf-8", "surrogatepass")
    cores = set()
    for k in range(3):
        start, end = -(-8 * k // 6), 8 * (k + len(raw)) // 6  # characters made of the secret's bits only
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            core = encode(bytes(k) + raw).decode("ascii")[start:end]
            if len(core) >= REDACT_MIN_BASE64:
                cores.add(core)
    return cores


@lru_cache(maxsize=8)
def _redactors(secret: str) -> tuple:
    """The compiled patterns :func:`redact` replaces, longest first: the whole secret in
    any of its encodings (even mixed, character by character), every run of
    :data:`REDACT_PIECE` of its characters, and its base64 text."""
    import re

    chars = [_char_pattern(c) for c in secret]
    patterns = [re.compile("".join(chars))]
    for i in range(len(secret) - REDACT_PIECE + 1) if len(secret) > REDACT_PIECE else ():
        patterns.append(re.compile("".join(chars[i : i + REDACT_PIECE])))
    patterns.extend(re.compile(re.escape(core)) for core in sorted(_base64_cores(secret), key=len, reverse=True))
    return tuple(patterns)


def redact(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` replaced by ``[REDACTED]`` wherever a server may have echoed
    it: as it is, URL-encoded (quote or quote_plus, hex in either case), JSON-escaped,
    HTML-escaped, or base64-encoded; and any run of :data:`REDACT_PIECE` of its characters
    (in any of those encodings), so that an echo in part (``sk-abc...wxyz``) or in an
    encoding not foreseen for some characters leaves no long piece of it."""
    if not secret or not text:
        return text
    for pattern in _redactors(secret):
        text = pattern.sub("[REDACTED]", text)
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


# --- usage and cache ---------------------------------------------------------------------

USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


class Usage:
    """Token usage summed over the LM calls of one execution."""

    __slots__ = ("counts", "reported")

    def __init__(self) -> None:
        self.counts = dict.fromkeys(USAGE_KEYS, 0)
        self.reported = False

    def add(self, usage: Any) -> None:
        """Add an OpenAI ``usage`` object (anything else is ignored)."""
        if not isinstance(usage, dict):
            return
        for key in USAGE_KEYS:
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                self.counts[key] += value
                self.reported = True

    def result(self) -> dict | None:
        """``{"prompt_tokens", "completion_tokens", "total_tokens"}``, or None when no call
        reported usage."""
        if not self.reported:
            return None
        counts = dict(self.counts)
        if not counts["total_tokens"]:
            counts["total_tokens"] = counts["prompt_tokens"] + counts["completion_tokens"]
        return counts


class ReplyCache:
    """Replies by request body, in this process's memory, the oldest dropped past
    ``size`` entries (``cache`` of ``configure_lm``; never on disk)."""

    def __init__(self, size: int = 4096):
        from collections import OrderedDict

        self.size = size
        self._lock = threading.Lock()
        self._replies: OrderedDict[bytes, str] = OrderedDict()

    def get(self, key: bytes) -> str | None:
        with self._lock:
            reply = self._replies.get(key)
            if reply is not None:
                self._replies.move_to_end(key)
            return reply

    def put(self, key: bytes, reply: str) -> None:
        with self._lock:
            self._replies[key] = reply
            self._replies.move_to_end(key)
            while len(self._replies) > self.size:
                self._replies.popitem(last=False)


#: The native engine's reply cache (the dspy engine uses DSPy's, kept in memory too).
REPLY_CACHE = ReplyCache()


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
        import email.utils  # only for the date form

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


# --- HTTP transport ----------------------------------------------------------------------


class _Net:
    """``http.client`` and ``socket``, imported on first use (they pull in ``email``, and
    ``ssl`` comes only with the first https endpoint)."""

    http = None
    socket = None
    _ssl_context = None
    _lock = threading.Lock()

    @classmethod
    def load(cls):
        if cls.http is None:
            import http.client
            import socket

            cls.socket = socket
            cls.http = http.client
        return cls

    @classmethod
    def ssl_context(cls):
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


class _Connections(dict):
    """One thread's open connections by (scheme, host, port); closed when the thread ends."""

    def __del__(self) -> None:
        for conn in list(self.values()):
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing at thread exit, nothing to report
                pass


_local = threading.local()


def _connections() -> _Connections:
    """This thread's connections."""
    try:
        return _local.connections
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


def _proxied(scheme: str, host: str) -> bool:
    """True when ``urllib`` would send a request for ``host`` (``host[:port]``) through an
    environment proxy."""
    environ = os.environ
    if not (environ.get(scheme + "_proxy") or environ.get(scheme.upper() + "_PROXY")):
        return False
    import urllib.request  # only when a proxy variable is set

    return bool(urllib.request.getproxies().get(scheme)) and not urllib.request.proxy_bypass(host)


class _Endpoint:
    """Where the completions go: ``url`` (for requests), ``shown`` (for messages, without
    credentials), and for the direct path ``scheme``, ``host``, ``port`` and ``selector``
    (``direct`` is False when only ``urllib`` can serve the URL)."""

    __slots__ = ("url", "shown", "direct", "scheme", "host", "port", "netloc", "selector", "key", "host_header")

    def __init__(self, url: str):
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


class _Abort:
    """Shuts a request's socket down when the request is cancelled, until disarmed."""

    __slots__ = ("_lock", "_sock", "fired")

    def __init__(self, sock):
        self._lock = threading.Lock()
        self._sock = sock
        self.fired = False

    def fire(self) -> None:
        with self._lock:
            sock = self._sock
            if sock is None:
                return
            self.fired = True
            try:
                # The plain socket's shutdown, also for TLS: it wakes a thread blocked on it.
                _Net.socket.socket.shutdown(sock, _Net.socket.SHUT_RDWR)
            except OSError:
                pass

    def disarm(self) -> None:
        with self._lock:
            self._sock = None


class _OpenStream(namedtuple("_OpenStream", ("conn", "response", "abort", "remove"))):
    """A streamed answer whose head is read: its connection, response, the abort armed
    on the request's cancellation, and the function that unregisters it."""

    __slots__ = ()


class _Dropped(Exception):
    """A reused keep-alive connection turned out to be closed by the server."""


def _left(end: float) -> float:
    """Seconds until ``end``; raises ``TimeoutError`` when none are left."""
    left = end - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


#: A kept connection idle for this many seconds is checked before it is used again.
_IDLE_CHECK_S = 1.0


def _arm(sock, limit: float) -> None:
    """Give each operation on ``sock`` at most ``limit`` seconds (within 1 %: setting a
    socket's time-out is a system call, skipped when the one set is close enough)."""
    current = sock.gettimeout()
    if current is None or abs(current - limit) > limit / 100:
        sock.settimeout(limit)


def _stale(sock) -> bool:
    """True when an idle kept connection has something to read: the server closed it (or
    sent what it should not have); either way it cannot carry a new request."""
    try:
        import select

        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return True


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
    user_agent = "Python-urllib/%d.%d" % sys.version_info[:2]

    def __init__(self, config: LMConfig):
        self.config = config
        self._endpoint: _Endpoint | None = None

    # -- public ---------------------------------------------------------------------------

    def _body(self, messages: list[dict], max_tokens: int | None, stream: bool = False) -> bytes:
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

    def _retry_wait(self, exc: _Retryable, attempt: int, ctx) -> None:
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
                   "error": self._scrub_text(exc.final.message)},
        )
        if ctx.wait(delay):
            raise Cancelled(ctx.cancel_reason)

    def complete(self, messages: list[dict], ctx, max_tokens: int | None = None, usage: Usage | None = None, cache: bool = True) -> str:
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
            try:
                reply, reported = self._post(data, ctx)
            except _Retryable as exc:
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

    def stream(self, messages: list[dict], ctx, max_tokens: int | None = None, usage: Usage | None = None):
        """A generator of the reply's text pieces as they arrive (``"stream": true``);
        returns the whole text. Retries as :meth:`complete` does, before the first piece;
        raises WorkerError. Usage and the cache as for :meth:`complete` (a cached reply is
        one piece)."""
        endpoint = self.endpoint
        if not endpoint.direct or _proxied(endpoint.scheme, endpoint.netloc):
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
                opened = self._open_stream(endpoint, data, ctx)
            except _Retryable as exc:
                retryable = exc
            except WorkerError as exc:
                raise self._scrub(exc) from None
            else:
                break
            self._retry_wait(retryable, attempt, ctx)
            attempt += 1
        text = yield from self._read_stream(endpoint, opened, ctx, usage)
        if self.config.cache:
            REPLY_CACHE.put(key, text)
        return text

    def verify(self, ctx) -> None:
        """One small completion, to check the endpoint, model and key now."""
        self.complete([{"role": "user", "content": "Reply with the word OK."}], ctx, self.verify_max_tokens, cache=False)

    # -- internals ------------------------------------------------------------------------

    def _scrub_text(self, text: str) -> str:
        return redact(text, self.config.api_key())

    def _scrub(self, exc: WorkerError) -> WorkerError:
        message = self._scrub_text(exc.message)
        if message == exc.message:
            return exc
        return WorkerError(exc.code, message)

    @property
    def endpoint(self) -> _Endpoint:
        endpoint = self._endpoint
        if endpoint is None:
            endpoint = self._endpoint = _Endpoint(self.config.effective_base_url + "/chat/completions")
        return endpoint

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self.config.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _post(self, data: bytes, ctx) -> tuple[str, Any]:
        """One attempt: the reply's text and its ``usage`` object (None when it has none);
        raises _Retryable or WorkerError (Cancelled and DeadlineExceeded included)."""
        endpoint = self.endpoint
        if not endpoint.direct or _proxied(endpoint.scheme, endpoint.netloc):
            return call_in_thread(lambda: self._post_urllib(data), ctx, self.config.timeout, "the LM endpoint")
        end = self._end(ctx)
        net = _Net.load()
        try:
            status, headers, raw = self._on_connection(
                net, endpoint, ctx, end, keep=True,
                send=lambda conn, reused: self._roundtrip(conn, endpoint, data, ctx, end, reused),
            )
        except (Cancelled, DeadlineExceeded, _Retryable, WorkerError):
            raise
        except (TimeoutError, net.socket.timeout, net.http.HTTPException, OSError) as exc:
            raise self._network_error(exc, net, endpoint, ctx, end) from None
        if not 200 <= status < 300:
            raise self._http_error(status, headers, raw)
        if len(raw) > MAX_REPLY_BYTES:
            raise WorkerError("resource_exhausted", f"LM endpoint {endpoint.shown}: reply over {MAX_REPLY_BYTES} bytes")
        return self._content(raw, endpoint.shown)

    def _end(self, ctx) -> float:
        """When an exchange must be over: the configured timeout, or the request's
        deadline when sooner."""
        end = time.monotonic() + self.config.timeout
        if ctx.deadline is not None and ctx.deadline < end:
            end = ctx.deadline
        return end

    def _on_connection(self, net, endpoint: _Endpoint, ctx, end: float, keep: bool, send):
        """``send(conn, reused)`` on this thread's kept connection to the endpoint, opened
        if need be; a dropped kept connection is replaced once. With ``keep`` a new
        connection is kept for later; without it (a stream, which holds its connection
        until it ends) the kept one is taken out."""
        conns = _connections()
        conn = conns.get(endpoint.key) if keep else conns.pop(endpoint.key, None)
        # A plain connection idle for a while with something to read was closed by the
        # server. (Not asked of TLS ones, which may hold a session ticket: for those a
        # dropped connection shows when it is used, and the request is sent once more.)
        if conn is not None and (
            conn.sock is None
            or (
                endpoint.scheme == "http"
                and time.monotonic() - getattr(conn, "dspgo_used", 0.0) >= _IDLE_CHECK_S
                and _stale(conn.sock)
            )
        ):
            conn.close()
            conn = None
        for reused in ((True, False) if conn is not None else (False,)):
            if not reused:
                conn = self._connect(net, endpoint, ctx, end)
                if keep:
                    conns[endpoint.key] = conn
            try:
                return send(conn, reused)
            except _Dropped:
                continue
        raise AssertionError("unreachable")  # pragma: no cover - the last try never raises _Dropped

    def _network_error(self, exc: BaseException, net, endpoint: _Endpoint, ctx, end: float) -> WorkerError:
        """The error of an exchange that failed on the network: the request's own end
        (raised by ``ctx.check``), its deadline, the configured timeout, or
        ``unavailable``."""
        ctx.check()
        if isinstance(exc, (TimeoutError, net.socket.timeout)):  # (one class from 3.10 on)
            if ctx.deadline is not None and ctx.deadline <= end:
                return DeadlineExceeded(f"request {ctx.id} ({ctx.command}) ran past its deadline waiting for the LM endpoint")
            return WorkerError("deadline_exceeded", f"LM endpoint {endpoint.shown}: no answer within {self.config.timeout:g} s")
        return WorkerError("unavailable", f"LM endpoint {endpoint.shown}: {type(exc).__name__}: {exc}")

    def _connect(self, net, endpoint: _Endpoint, ctx, end: float):
        """A new connection, opened on a helper thread (see the module docstring)."""
        limit = _left(end)
        if endpoint.scheme == "https":
            conn = net.http.HTTPSConnection(endpoint.host, endpoint.port, timeout=limit, context=_Net.ssl_context())
        else:
            conn = net.http.HTTPConnection(endpoint.host, endpoint.port, timeout=limit)
        abandoned = []

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

    def _request_bytes(self, endpoint: _Endpoint, data: bytes, accept: str = "application/json") -> bytes:
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

    def _roundtrip(self, conn, endpoint: _Endpoint, data: bytes, ctx, end: float, reused: bool):
        """One POST on an open connection: ``(status, headers, body)``. Raises _Dropped when
        a reused connection turns out to be closed by the server."""
        request = self._request_bytes(endpoint, data)
        sock = conn.sock
        abort = _Abort(sock)
        remove = ctx.on_cancel(abort.fire)
        keep = False
        response = None
        try:
            try:
                started = time.monotonic()
                limit = _left(end)
                _arm(sock, limit)
                sock.sendall(request)
                response = _Net.http.HTTPResponse(sock, method="POST")
                response.begin()
            except ConnectionError as exc:  # RemoteDisconnected, resets and broken pipes
                if reused and not abort.fired and isinstance(exc, (ConnectionResetError, BrokenPipeError)):
                    raise _Dropped() from None
                raise
            status = response.status
            # The body is read with what is left of the limit, when the head took a notable
            # part of it (else, the reply being small, it is read with the head).
            if time.monotonic() - started > limit / 100:
                _arm(sock, _left(end))
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
                conn.dspgo_used = time.monotonic()
            else:
                conn.close()  # anything left unread, closing or shut down: never reused

    # -- streaming ------------------------------------------------------------------------

    def _open_stream(self, endpoint: _Endpoint, data: bytes, ctx) -> _OpenStream:
        """Send a streamed request and read the head of its answer: an :class:`_OpenStream`
        for a 2xx answer; raises _Retryable or WorkerError (Cancelled and DeadlineExceeded
        included) otherwise. The connection is taken out of the thread's kept ones until
        the stream ends."""
        end = self._end(ctx)
        net = _Net.load()
        try:
            return self._on_connection(
                net, endpoint, ctx, end, keep=False,
                send=lambda conn, reused: self._begin_stream(conn, endpoint, data, ctx, end, reused),
            )
        except (Cancelled, DeadlineExceeded, _Retryable, WorkerError):
            raise
        except (TimeoutError, net.socket.timeout, net.http.HTTPException, OSError) as exc:
            raise self._network_error(exc, net, endpoint, ctx, end) from None

    def _begin_stream(self, conn, endpoint: _Endpoint, data: bytes, ctx, end: float, reused: bool) -> _OpenStream:
        request = self._request_bytes(endpoint, data, accept="text/event-stream")
        sock = conn.sock
        abort = _Abort(sock)
        remove = ctx.on_cancel(abort.fire)
        response = None
        opened = False
        try:
            try:
                _arm(sock, _left(end))
                sock.sendall(request)
                response = _Net.http.HTTPResponse(sock, method="POST")
                response.begin()
            except ConnectionError as exc:  # RemoteDisconnected, resets and broken pipes
                if reused and not abort.fired and isinstance(exc, (ConnectionResetError, BrokenPipeError)):
                    raise _Dropped() from None
                raise
            if not 200 <= response.status < 300:
                _arm(sock, _left(end))
                raise self._http_error(response.status, response.headers, response.read(MAX_ERROR_BYTES))
            opened = True
            return _OpenStream(conn, response, abort, remove)
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

    def _read_limit(self, ctx) -> float:
        """How long one read of a stream may wait: ``timeout_ms``, not past the deadline."""
        limit = self.config.timeout
        remaining = ctx.remaining()
        if remaining is not None:
            if remaining <= 0:
                raise DeadlineExceeded(f"request {ctx.id} ({ctx.command}) ran past its deadline reading the LM's stream")
            limit = min(limit, remaining)
        return limit

    def _read_stream(self, endpoint: _Endpoint, opened: _OpenStream, ctx, usage: Usage | None):
        """The generator of :meth:`stream` once the answer's head is read: yields each
        content delta of the server-sent events; returns the whole text. An event's
        ``usage`` is added to ``usage``."""
        net = _Net.load()
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
                    _arm(sock, self._read_limit(ctx))
                    raw = response.read(MAX_REPLY_BYTES + 1)
                    if abort.fired:
                        raise Cancelled(ctx.cancel_reason)
                    if len(raw) > MAX_REPLY_BYTES:
                        raise WorkerError("resource_exhausted", f"LM endpoint {shown}: reply over {MAX_REPLY_BYTES} bytes")
                    keep = response.isclosed() and not response.will_close
                    text, reported = self._content(raw, shown)
                    if usage is not None:
                        usage.add(reported)
                    yield text
                    return text
                pending: list[bytes] = []  # the data lines of an event that is not JSON yet
                done = False
                while not done:
                    _arm(sock, self._read_limit(ctx))
                    line = response.readline(MAX_REPLY_BYTES + 1 - total)
                    if not line:
                        break  # the server ended the stream without [DONE]
                    total += len(line)
                    if total > MAX_REPLY_BYTES:
                        raise WorkerError("resource_exhausted", f"LM endpoint {shown}: reply over {MAX_REPLY_BYTES} bytes")
                    line = line.rstrip(b"\r\n")
                    if not line:  # the end of an event
                        if pending:
                            piece, done = self._stream_event(b"\n".join(pending), shown, strict=True, usage=usage)
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
                        piece, done = self._stream_event(value, shown, strict=False, usage=usage)
                        if piece is not None or done:
                            pending = []
                            if piece:
                                parts.append(piece)
                                yield piece
                if abort.fired:  # the socket shut down by a cancel reads as the end
                    raise Cancelled(ctx.cancel_reason)
                if pending:
                    piece, done = self._stream_event(b"\n".join(pending), shown, strict=True, usage=usage)
                    if piece:
                        parts.append(piece)
                        yield piece
                if done:
                    keep = self._finish_body(response, sock)
            except (Cancelled, DeadlineExceeded, WorkerError):
                raise
            except (TimeoutError, net.socket.timeout):
                ctx.check()
                if ctx.deadline is not None and ctx.remaining() <= 0.001:
                    raise DeadlineExceeded(
                        f"request {ctx.id} ({ctx.command}) ran past its deadline reading the LM's stream"
                    ) from None
                raise WorkerError(
                    "deadline_exceeded", f"LM endpoint {shown}: the stream sent nothing for {self.config.timeout:g} s"
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
                conns = _connections()
                if endpoint.key not in conns:
                    conns[endpoint.key] = conn
                else:
                    conn.close()
            else:
                conn.close()
        return "".join(parts)

    @staticmethod
    def _finish_body(response, sock) -> bool:
        """After ``[DONE]``: read what is left of the body (briefly), so the connection
        can carry the next request; True when it can."""
        try:
            _arm(sock, 1.0)
            while response.read(65536):
                pass
        except Exception:  # noqa: BLE001 - the text is complete; only the connection is lost
            return False
        return response.isclosed() and not response.will_close

    def _stream_event(self, payload: bytes, shown: str, strict: bool, usage: Usage | None = None):
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
            raise WorkerError("unavailable", self._scrub_text(f"LM endpoint {shown}: the stream reported an error: {detail}"))
        if usage is not None and isinstance(event, dict):
            usage.add(event.get("usage"))
        try:
            content = event["choices"][0]["delta"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            return "", False  # a chunk without content (role, finish_reason, usage)
        return (content if isinstance(content, str) else ""), False

    def _post_urllib(self, data: bytes) -> tuple[str, Any]:
        """One request with ``urllib.request`` (proxies, other schemes); raises _Retryable
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
            raise self._http_error(exc.code, exc.headers, body) from None
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
    def _content(raw: bytes, url: str) -> tuple[str, Any]:
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

    def _http_error(self, status: int, headers, raw: bytes) -> Exception:
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
        message = self._scrub_text(message)
        if status in (401, 403):
            return WorkerError("failed_precondition", message + " (check the API key and its permissions)")
        if status == 404:
            return WorkerError("not_found", message + " (check base_url and model)")
        retry_after = headers.get("Retry-After") if headers is not None else None
        if status == 429:
            return _Retryable(WorkerError("resource_exhausted", message), _retry_after(retry_after))
        if 500 <= status <= 599:
            return _Retryable(WorkerError("unavailable", message), _retry_after(retry_after))
        if 400 <= status <= 499:
            return WorkerError("invalid_argument", message)
        return WorkerError("unknown", message)


@lru_cache(maxsize=32)
def make_provider(config: LMConfig):
    """The provider object of a configuration (one per configuration: providers keep no
    state of their requests)."""
    if config.provider == "openai":
        return OpenAIProvider(config)
    return DummyProvider(config)


def with_engine(config: LMConfig, engine: str) -> LMConfig:
    return config._replace(resolved_engine=engine)
