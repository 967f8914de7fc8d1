"""Secrets kept out of what the worker says: :func:`redact` scrubs an API key from a
text in every form a server may echo it (JSON-, HTML- and URL-escaped, base64)."""

from __future__ import annotations

from functools import lru_cache

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from typing import Any

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
def _redactors(secret: str) -> tuple[Any, ...]:
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


#: The environment variables whose values :func:`scrub` keeps out of the worker's stderr:
#: the API key variable of every LM configured on this worker.
_SECRET_ENVS: set[str] = set()

#: The shortest value :func:`scrub` looks for: a shorter one is no real key, and replacing
#: it everywhere would garble the log.
SCRUB_MIN_LEN = 8


def watch_secret(env_name: str) -> None:
    """Have :func:`scrub` keep the value of ``env_name`` (read at each scrub) out of the
    worker's stderr."""
    _SECRET_ENVS.add(env_name)


def scrub(text: str) -> str:
    """``text`` with every watched secret (:func:`watch_secret`) redacted as :func:`redact`
    does: what reaches the worker's stderr (its log, and what a library writes there)."""
    import os

    for name in sorted(_SECRET_ENVS):
        value = os.environ.get(name)
        if value and len(value) >= SCRUB_MIN_LEN:
            text = redact(text, value)
    return text


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

