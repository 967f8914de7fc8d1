"""Canonical JSON and SHA-256, as Go's ``internal/program`` (canonical.go) makes them.

A spec's hash is the hex SHA-256 of its canonical JSON (docs/protocol.md, "Canonical
JSON"); the dummy language model seeds its outputs with the SHA-256 of canonical JSON too.
"""

from __future__ import annotations

import json
import math
import re

from .protocol import quote

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    import hashlib
    from typing import Any

#: Integers below this in magnitude are exact as floats.
EXACT = 2**53

_SURROGATES = re.compile("[\ud800-\udfff]")


def _normalize(value: Any) -> Any:
    """``value`` ready for the canonical encoder (see :func:`canonical_json`)."""
    # The exact types JSON decodes to first (the usual case, and the fastest tests); other
    # values, subclasses included, take the general path below.
    kind = type(value)
    if kind is str:
        # Lone surrogates (json decodes "\ud800" to one) cannot be UTF-8: U+FFFD, as in Go.
        return value if value.isascii() else _SURROGATES.sub("\ufffd", value)
    if kind is dict:
        out: dict[str, Any] = {}
        for key, v in value.items():
            if type(key) is not str:
                key = _normalize_key(key)
            elif not key.isascii():
                key = _SURROGATES.sub("\ufffd", key)
            _put(out, key, _normalize(v))
        return out
    if kind is int or value is None or kind is bool:
        return value
    if kind is list:
        return [_normalize(v) for v in value]
    return _normalize_other(value)


def _normalize_other(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        # Lone surrogates (json decodes "\ud800" to one) cannot be UTF-8: U+FFFD, as in Go.
        return _SURROGATES.sub("\ufffd", value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a JSON number")
        if value.is_integer() and abs(value) < EXACT:
            return int(value)
        return value
    if isinstance(value, (list, tuple)):
        return [_normalize(v) for v in value]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, v in value.items():
            _put(out, _normalize_key(key), _normalize(v))
        return out
    raise TypeError(f"canonical JSON cannot encode {type(value).__name__}")


def _normalize_key(key: Any) -> str:
    """An object key: a string, or an int (a ``dict[int, V]``'s key) in decimal."""
    if isinstance(key, str):
        return _SURROGATES.sub("\ufffd", str(key))
    if isinstance(key, int) and not isinstance(key, bool):
        return str(int(key))
    raise TypeError(f"canonical JSON needs string or integer object keys, not {type(key).__name__}")


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if key in out:
        raise ValueError(f"canonical JSON: key {quote(key)} appears twice")
    out[key] = value


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of ``value`` (docs/protocol.md, "Canonical JSON").

    Keys (integer keys in decimal) sorted by code point, no insignificant space, strings as UTF-8 escaping only
    ``"``, ``\\`` and control characters, integral floats below 2**53 as integers, other
    floats as ``repr``. Raises ``ValueError`` for NaN and infinities and ``TypeError`` for
    values JSON cannot hold.
    """
    return _CANONICAL.encode(_normalize(value)).encode("utf-8")


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


try:  # Python's own SHA-256: hashlib's loads OpenSSL's libcrypto, over 3 MB of resident memory
    from _sha2 import sha256 as _builtin_sha256  # type: ignore[import-not-found]  # 3.12 and later, no stub
except ImportError:
    try:
        from _sha256 import sha256 as _builtin_sha256  # type: ignore[import-not-found]  # up to 3.11, no stub
    except ImportError:
        _builtin_sha256 = None

#: Up to this size the built-in SHA-256 hashes (specs, outputs of usual inputs); larger data
#: goes to hashlib's faster OpenSSL one, imported then.
_BUILTIN_SHA256_MAX = 4096


def sha256(data: bytes) -> hashlib._Hash:
    """A ``hashlib.sha256(data)`` object, without loading OpenSSL for small data."""
    if _builtin_sha256 is not None and len(data) <= _BUILTIN_SHA256_MAX:
        return _builtin_sha256(data)  # type: ignore[no-any-return]  # the same interface as hashlib's
    import hashlib

    return hashlib.sha256(data)


def sha256_hex(data: bytes) -> str:
    """The hex SHA-256 of ``data``."""
    return sha256(data).hexdigest()

