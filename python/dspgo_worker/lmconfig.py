"""Language-model configurations: ``configure_lm``'s arguments checked with the same rules
as Go's ``program.ValidateLM`` (:func:`validate_lm_args` lists every bad field at once),
and the dummy provider's *scripted mode* (``configure_lm`` argument ``script``), which
drives the ``react`` program kind: a list of steps ``{"tool": name, "args": {...}}`` or
``{"finish": true}`` (:class:`ScriptStep`).

``decimal`` is imported only to format a bad temperature.
"""

from __future__ import annotations

import json
import math
import os
from collections import namedtuple

from .errors import WorkerError
from .signature import is_identifier

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from typing import Any

PROVIDERS = ("dummy", "openai")
ENGINES = ("auto", "native", "dspy")
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_TIMEOUT_MS = 60_000
#: Largest reply body read from the LM endpoint.
MAX_REPLY_BYTES = 32 * 1024 * 1024
#: Most of an error reply read for its message.
MAX_ERROR_BYTES = 65536

_LMConfigFields = namedtuple(  # type: ignore[name-match]  # its repr says LMConfig
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
        "image_urls",
        "dspy_adapter",
    ),
    defaults=("dummy", "", "", "", None, 0, 0, "auto", 0, "native", (), None, False, False, "chat"),
)

#: The DSPy adapters ``dspy_adapter`` names (Go's ``command.DSPyAdapters``).
DSPY_ADAPTERS = ("chat", "json", "xml", "baml")
#: Those the native engine runs too (Go's ``command.NativeDSPyAdapters``); the others need
#: the dspy engine.
NATIVE_ADAPTERS = ("chat", "json")


class ScriptStep(namedtuple("ScriptStep", ("tool", "args_json"))):
    """One step of the dummy provider's script: a call of ``tool`` with the arguments
    ``args_json`` (kept as JSON text so that a configuration stays hashable), or, with
    ``tool`` None, ``{"finish": true}``."""

    __slots__ = ()

    @property
    def finish(self) -> bool:
        return self.tool is None

    @property
    def args(self) -> dict[str, Any]:
        """A fresh copy of the step's arguments."""
        args: dict[str, Any] = json.loads(self.args_json)
        return args


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
    request identical to an earlier one from memory, on either engine) and ``image_urls``
    (False: images are data: URIs only; True: an http, https or gs URL too, which the
    model's server fetches), ``dspy_adapter`` ("chat" or "json", either engine;
    "xml" and "baml", the dspy engine only). ``engine`` is
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

    def missing_key_note(self) -> str:
        """What an error about the key adds when the key's variable is unset or empty here
        ("" when it is set): where a dspgo host's workers get their variables."""
        if self.api_key():
            return ""
        var = self.effective_api_key_env
        return (f"${var} is unset or empty in the worker's environment: a dspgo host passes its workers only the "
                f"variables python.pass_env lists, so set {var} where the host runs and add it to python.pass_env")

    def describe(self) -> dict[str, Any]:
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
            "image_urls": self.image_urls,
            "dspy_adapter": self.dspy_adapter,
        }


def go_float(f: float) -> str:
    """A float as Go's ``%v`` writes it: shortest digits, exponent form below 1e-4 or from 1e6."""
    if not math.isfinite(f):
        return {math.inf: "+Inf", -math.inf: "-Inf"}.get(f, "NaN")
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    import decimal  # only for the message about a bad temperature

    sign, digits, exponent = decimal.Decimal(repr(f)).normalize().as_tuple()
    assert isinstance(exponent, int)  # a finite number's exponent
    adjusted = len(digits) + exponent - 1
    text = "".join(map(str, digits))
    if adjusted < -4 or adjusted >= 6:
        text = text[0] + ("." + text[1:] if len(text) > 1 else "") + f"e{'+' if adjusted >= 0 else '-'}{abs(adjusted):02d}"
    else:
        text = format(decimal.Decimal(repr(abs(f))).normalize(), "f")
    return ("-" if sign else "") + text


def validate_lm_args(args: dict[str, Any]) -> LMConfig:
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
    dspy_adapter = args.get("dspy_adapter") or "chat"
    if dspy_adapter not in DSPY_ADAPTERS:
        bad.append(f"dspy_adapter {json.dumps(dspy_adapter, ensure_ascii=False)} is unknown (known: {', '.join(DSPY_ADAPTERS)})")
    elif dspy_adapter not in NATIVE_ADAPTERS and engine == "native":
        bad.append(f'dspy_adapter "{dspy_adapter}" needs the dspy engine (engine is native)')
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
    base_url = args.get("base_url") or ""
    problem = base_url_problem(base_url) if base_url else ""
    if problem:
        bad.append("base_url " + problem)
    api_key_env = args.get("api_key_env") or ""
    if api_key_env and not is_identifier(api_key_env):
        bad.append("api_key_env is not an environment variable name (its value is not shown: it may be the key itself)")
    if bad:
        raise WorkerError("invalid_argument", "configure_lm: " + "; ".join(bad))
    return LMConfig(
        provider=provider,
        model=model,
        base_url=base_url,
        api_key_env=api_key_env,
        temperature=temperature,
        max_tokens=args.get("max_tokens") or 0,
        timeout_ms=args.get("timeout_ms") or 0,
        engine=engine or "auto",
        delay_ms=args.get("delay_ms") or 0,
        script=tuple(script),
        fail_after_chunks=args.get("fail_after_chunks"),
        cache=bool(args.get("cache")),
        image_urls=bool(args.get("image_urls")),
        dspy_adapter=dspy_adapter,
    )


#: The base URL the messages about a bad ``base_url`` show as the form to write.
BASE_URL_EXAMPLE = "http://localhost:8000/v1"

#: What a message about the port adds when an ``@`` follows the authority: a ``/``, ``?``
#: or ``#`` in credentials ended it early.
_ENCODE_CREDENTIALS = "percent-encode any '/', '?', '#' or '@' in the URL's credentials"
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")
_ZONE_CHARS = _HOST_CHARS | {"~"}


def base_url_problem(url: str) -> str:
    """What is wrong with ``url`` as an LM endpoint's base URL, worded to follow its
    subject (``base_url has no host …``), or ``""`` when it is fine: Go's ``lmurl.Problem``,
    with the cases of protocol/testdata/base_urls.json. The text never quotes ``url``,
    which may hold credentials.

    A base URL is ASCII without spaces or control characters: ``http://`` or ``https://``
    (either case); optional credentials, up to the last ``@`` of the authority (which ends
    at the first ``/``, ``?`` or ``#``); a host, either a name or IPv4 address of letters,
    digits, ``-``, ``.`` and ``_``, or an IPv6 address in brackets (its zone after ``%`` of
    letters, digits, ``-``, ``.``, ``_`` and ``~``); an optional port after ``:`` from 1 to
    65535; then any path. ``ipaddress`` is imported only for a host in brackets."""
    for c in url:
        if not c.isascii():
            return "holds a non-ASCII character (percent-encode it in the path; write an internationalized host name in its xn-- form)"
        if c <= " " or c == "\x7f":
            return "holds a space or a control character (write a space in the path as %20; remove any other)"
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return f"is not an http or https URL (write it whole, such as {BASE_URL_EXAMPLE})"
    authority = _authority(rest)
    hostport = authority[authority.rfind("@") + 1 :]
    port = None
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return "has an IPv6 address without its closing ']' (write one as http://[::1]:8000/v1)"
        if not _is_ipv6(hostport[1:end]):
            return "has a host in brackets that is not an IPv6 address"
        after = hostport[end + 1 :]
        if after and after[0] != ":":
            return "has something other than :port after the ']' of its IPv6 address"
        if after:
            port = after[1:]
    else:
        if hostport.count(":") > 1:
            return "has an IPv6 address outside brackets (write one as http://[::1]:8000/v1)"
        host, sep, port_text = hostport.partition(":")
        if sep:
            port = port_text
        if not host:
            return f"has no host (write it whole, such as {BASE_URL_EXAMPLE})"
        if not set(host) <= _HOST_CHARS:
            return "has a host with characters other than letters, digits, '-', '.' and '_' (an IPv6 address goes in brackets)"
    if port is not None and not (0 < len(port) <= 5 and set(port) <= set("0123456789") and 1 <= int(port) <= 65535):
        if "@" in rest[len(authority) :]:  # credentials cut short, their rest read as the port
            return f"has a port that is not a number from 1 to 65535 ({_ENCODE_CREDENTIALS})"
        return "has a port that is not a number from 1 to 65535"
    return ""


def _is_ipv6(s: str) -> bool:
    """Whether ``s``, the text between a URL's brackets, is an IPv6 address, with a zone
    or without one."""
    address, sep, zone = s.partition("%")
    if sep and not (zone and set(zone) <= _ZONE_CHARS):
        return False
    import ipaddress  # only for a host in brackets

    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        return False
    return True


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


def hide_credentials(text: str, url: str) -> str:
    """``text``, a message of ``urllib`` or ``http.client`` about ``url``, with ``url``'s
    credentials hidden as :func:`safe_url` hides them: their whole text and the password
    (or a lone token), as written and percent-decoded, become ``***``, and so does every
    run of characters up to an ``@`` (those libraries read ``user:password@host`` as the
    host, and quote it whole or in part). ``text`` as it is when ``url`` has no ``@``."""
    at = url.rfind("@")
    if at < 0:
        return text
    import re
    from urllib.parse import unquote

    scheme, sep, _ = url[:at].partition("://")
    userinfo = url[len(scheme) + len(sep) if sep and _is_scheme(scheme.strip()) else 0 : at]
    user, colon, password = userinfo.partition(":")
    pieces = {userinfo, unquote(userinfo), password if colon else user, unquote(password if colon else user)}
    for piece in sorted(pieces - {""}, key=len, reverse=True):
        text = text.replace(piece, "***")
    return re.sub(r"[^\s'\"]*@", "***@", text)


def _authority(rest: str) -> str:
    """The authority of a URL's text after ``scheme://``: up to its first ``/``, ``?`` or
    ``#``."""
    for i, c in enumerate(rest):
        if c in "/?#":
            return rest[:i]
    return rest


def split_credentials(url: str) -> tuple[str, str]:
    """``url`` without the credentials of its authority (``user:password@``), and those as
    the value of an HTTP Basic ``Authorization`` (base64 of the percent-decoded
    ``user:password``), or ``""`` when it has none. ``urllib`` would take
    ``user:password@host`` for the host: the provider's proxy path sends the credentials as
    a header, when no API key is set."""
    scheme, sep, rest = url.partition("://")
    authority = _authority(rest)
    userinfo, at, host = authority.rpartition("@")
    if not sep or not at:
        return url, ""
    import base64
    from urllib.parse import unquote

    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return f"{scheme}{sep}{host}{rest[len(authority):]}", token

def _is_scheme(s: str) -> bool:
    """A URL scheme: a letter, then letters, digits, ``+``, ``-`` and ``.``."""
    return bool(s) and s[0].isascii() and s[0].isalpha() and all(c.isascii() and (c.isalnum() or c in "+-.") for c in s)


#: The shortest run of a secret's characters that :func:`redact` hides on its own (a


def with_engine(config: LMConfig, engine: str) -> LMConfig:
    return config._replace(resolved_engine=engine)
