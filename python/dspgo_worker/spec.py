"""Program specs: field types, canonical JSON, spec hashes, input conversion, the dummy LM.

The same rules as Go's ``internal/program`` (docs/protocol.md, "The program command set"):

* types ``str``, ``int``, ``float``, ``bool``, ``Any``, ``list[T]``, ``dict[K, V]`` (K is
  str, int or a Literal), ``tuple[A, B]``, ``tuple[T, ...]``, ``Optional[T]``,
  ``Union[A, B]`` (also ``A | B``) and ``Literal['a', 'b']``, in typing's spellings too
  (``List``, ``typing.Optional``…), nested at most 16 deep, with one canonical spelling
  (:meth:`FieldType.__str__`); :func:`parse_signature` reads DSPy's string form;
* a spec is normalised (canonical types, defaults filled in) and hashed: the hex SHA-256
  of its canonical JSON (:func:`canonical_json`);
* inputs are converted to their declared types (:meth:`CompiledSpec.convert_inputs`),
  errors naming the field (``input n: expected int, got string "one"``);
* the dummy language model derives each output from a hash (:meth:`CompiledSpec.dummy_outputs`).

Also here, for the engines: :func:`parse_output`, which turns what a language model
produced (text, or values already typed) into a field's declared type.
"""

from __future__ import annotations

import json
import math
import re

from .errors import WorkerError

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from typing import Any

#: Types nest at most this deep (``list[list[...]]``).
MAX_TYPE_DEPTH = 16
#: The program kinds.
KIND_PREDICT = "predict"
KIND_CHAIN_OF_THOUGHT = "chain_of_thought"
#: A ReAct loop (tools on the host) before the outputs; its outputs are the declared ones.
KIND_REACT = "react"
KINDS = (KIND_PREDICT, KIND_CHAIN_OF_THOUGHT, KIND_REACT)
#: The output chain_of_thought adds before the declared ones.
REASONING_FIELD = "reasoning"

#: Integers from -2**63 to 2**63-1 are accepted by ``int`` (Go's int64).
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_EXACT = 2**53

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SURROGATES = re.compile("[\ud800-\udfff]")


def invalid(message: str) -> WorkerError:
    """A WorkerError with code ``invalid_argument``."""
    return WorkerError("invalid_argument", message)


def quote(s: str) -> str:
    """A double-quoted string, as Go's ``%q`` writes the usual ones."""
    return json.dumps(s, ensure_ascii=False)


def is_identifier(name: Any) -> bool:
    """True for ``[A-Za-z_][A-Za-z0-9_]*`` (ASCII only, as in Go)."""
    return isinstance(name, str) and _IDENTIFIER.match(name) is not None


# --- canonical JSON ----------------------------------------------------------------------


def _normalize(value: Any) -> Any:
    """``value`` ready for the canonical encoder (see :func:`canonical_json`)."""
    # The exact types JSON decodes to first (the usual case, and the fastest tests); other
    # values, subclasses included, take the general path below.
    kind = type(value)
    if kind is str:
        # Lone surrogates (json decodes "\ud800" to one) cannot be UTF-8: U+FFFD, as in Go.
        return value if value.isascii() else _SURROGATES.sub("\ufffd", value)
    if kind is dict:
        out = {}
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
        if value.is_integer() and abs(value) < _EXACT:
            return int(value)
        return value
    if isinstance(value, (list, tuple)):
        return [_normalize(v) for v in value]
    if isinstance(value, dict):
        out = {}
        for key, v in value.items():
            _put(out, _normalize_key(key), _normalize(v))
        return out
    raise TypeError(f"canonical JSON cannot encode {type(value).__name__}")


def _normalize_key(key: Any) -> str:
    """An object key: a string, or an int (a ``dict[int, V]``'s key) in decimal."""
    if isinstance(key, str):
        return _normalize(str(key))
    if isinstance(key, int) and not isinstance(key, bool):
        return str(int(key))
    raise TypeError(f"canonical JSON needs string or integer object keys, not {type(key).__name__}")


def _put(out: dict, key: str, value: Any) -> None:
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
    from _sha2 import sha256 as _builtin_sha256  # 3.12 and later
except ImportError:
    try:
        from _sha256 import sha256 as _builtin_sha256  # up to 3.11
    except ImportError:
        _builtin_sha256 = None

#: Up to this size the built-in SHA-256 hashes (specs, outputs of usual inputs); larger data
#: goes to hashlib's faster OpenSSL one, imported then.
_BUILTIN_SHA256_MAX = 4096


def sha256(data: bytes):
    """A ``hashlib.sha256(data)`` object, without loading OpenSSL for small data."""
    if _builtin_sha256 is not None and len(data) <= _BUILTIN_SHA256_MAX:
        return _builtin_sha256(data)
    import hashlib

    return hashlib.sha256(data)


def sha256_hex(data: bytes) -> str:
    return sha256(data).hexdigest()


# --- types -------------------------------------------------------------------------------

STR, INT, FLOAT, BOOL, LIST, DICT, LITERAL = "str", "int", "float", "bool", "list", "dict", "Literal"
ANY, OPTIONAL, UNION, TUPLE = "Any", "Optional", "Union", "tuple"
#: None (NoneType) while a union is parsed; never a field's type.
_NONE = "None"


class FieldType:
    """A parsed field type, as Go's ``program.Type``.

    ``kind`` is one of str, int, float, bool, Any, list, dict, tuple, Optional, Union,
    Literal; ``elem`` is a list's or variadic tuple's element, a dict's value or the type
    an Optional makes nullable; ``key`` a dict's key type (str, int or a Literal);
    ``members`` a Union's members or a fixed tuple's element types; ``variadic`` marks
    ``tuple[T, ...]``; ``values`` are a Literal's strings.
    """

    __slots__ = ("kind", "elem", "values", "key", "members", "variadic")

    def __init__(
        self,
        kind: str,
        elem: FieldType | None = None,
        values: tuple[str, ...] = (),
        key: FieldType | None = None,
        members: tuple[FieldType, ...] = (),
        variadic: bool = False,
    ):
        self.kind = kind
        self.elem = elem
        self.values = values
        self.key = key
        self.members = members
        self.variadic = variadic

    def __str__(self) -> str:
        kind = self.kind
        if kind == LIST:
            return f"list[{self.elem}]"
        if kind == DICT:
            return f"dict[{self.key or STR}, {self.elem}]"
        if kind == LITERAL:
            return "Literal[" + ", ".join(f"'{v}'" for v in self.values) + "]"
        if kind == OPTIONAL:
            return f"Optional[{self.elem}]"
        if kind == UNION:
            return "Union[" + ", ".join(str(m) for m in self.members) + "]"
        if kind == TUPLE:
            if self.variadic:
                return f"tuple[{self.elem}, ...]"
            return "tuple[" + ", ".join(str(m) for m in self.members) + "]"
        return kind

    def __repr__(self) -> str:
        return f"FieldType({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldType) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    @property
    def nullable(self) -> bool:
        """Whether null is a value of the type: Optional and Any."""
        return self.kind in (OPTIONAL, ANY)

    def json_schema(self) -> dict:
        """A JSON schema of the type (for prompts)."""
        kind = self.kind
        if kind == LIST or (kind == TUPLE and self.variadic):
            return {"type": "array", "items": self.elem.json_schema()}
        if kind == TUPLE:
            n = len(self.members)
            return {"type": "array", "prefixItems": [m.json_schema() for m in self.members], "minItems": n, "maxItems": n}
        if kind == DICT:
            schema = {"type": "object", "additionalProperties": self.elem.json_schema()}
            if self.key is not None and self.key.kind == INT:
                schema["propertyNames"] = {"pattern": "^[+-]?[0-9]+$"}
            elif self.key is not None and self.key.kind == LITERAL:
                schema["propertyNames"] = {"enum": list(self.key.values)}
            return schema
        if kind == LITERAL:
            return {"type": "string", "enum": list(self.values)}
        if kind == ANY:
            return {}
        if kind == UNION:
            return {"anyOf": [m.json_schema() for m in self.members]}
        if kind == OPTIONAL:
            inner = self.elem.members if self.elem.kind == UNION else (self.elem,)
            return {"anyOf": [m.json_schema() for m in inner] + [{"type": "null"}]}
        return {"type": {STR: "string", INT: "integer", FLOAT: "number", BOOL: "boolean"}[kind]}


def make_union(parts) -> FieldType:
    """``typing.Union[parts]``: nested unions flattened, repeated members dropped (the
    first kept), one member itself, None making an Optional of the rest."""
    members: list[FieldType] = []
    seen: set[str] = set()
    nullable = False

    def add(t: FieldType) -> None:
        nonlocal nullable
        if t.kind == _NONE:
            nullable = True
        elif t.kind == OPTIONAL:
            nullable = True
            add(t.elem)
        elif t.kind == UNION:
            for m in t.members:
                add(m)
        elif str(t) not in seen:
            seen.add(str(t))
            members.append(t)

    for t in parts:
        add(t)
    if not members:
        return FieldType(_NONE)
    out = members[0] if len(members) == 1 else FieldType(UNION, members=tuple(members))
    return FieldType(OPTIONAL, out) if nullable else out


_KNOWN_TYPES = (
    "str, int, float, bool, Any, list[T], dict[K, V], tuple[T, ...], Optional[T], Union[T, U], T | U, Literal['a', ...]"
)


class _TypeParser:
    """A port of Go's typeParser: same grammar, same error messages."""

    def __init__(self, s: str):
        self.s = s
        self.i = 0

    def done(self) -> bool:
        return self.i >= len(self.s)

    def space(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1

    def next(self, c: str) -> bool:
        """Whether the next character after spaces is ``c``; takes it if so."""
        self.space()
        if not self.done() and self.s[self.i] == c:
            self.i += 1
            return True
        return False

    def word(self) -> str:
        start = self.i
        while self.i < len(self.s) and (self.s[self.i] == "." or _ident_char(self.s[self.i])):
            self.i += 1
        return self.s[start : self.i]

    def expect(self, c: str) -> None:
        self.space()
        if self.done() or self.s[self.i] != c:
            raise ValueError(f"expected '{c}' at position {self.i} of {quote(self.s)}")
        self.i += 1
        self.space()

    def not_none(self, t: FieldType) -> FieldType:
        if t.kind == _NONE:
            raise ValueError(
                f"a bare None is not a type in {quote(self.s)} (write Optional[T], Union[T, None] or T | None)"
            )
        return t

    def union(self, depth: int) -> FieldType:
        parts = [self.primary(depth)]
        while self.next("|"):
            parts.append(self.primary(depth))
        return parts[0] if len(parts) == 1 else make_union(parts)

    def primary(self, depth: int) -> FieldType:
        if depth > MAX_TYPE_DEPTH:
            raise ValueError(f"type {quote(self.s)} nests more than {MAX_TYPE_DEPTH} levels")
        if self.next("("):
            t = self.union(depth + 1)
            self.expect(")")
            return t
        self.space()
        name = self.word()
        if name in (STR, INT, FLOAT, BOOL):
            return FieldType(name)
        if name in ("Any", "typing.Any"):
            return FieldType(ANY)
        if name in ("None", "NoneType"):
            return FieldType(_NONE)
        if name in ("list", "List", "typing.List"):
            if not self.open(name):
                return FieldType(LIST, FieldType(ANY))
            elem = self.elem(depth + 1)
            self.expect("]")
            return FieldType(LIST, elem)
        if name in ("dict", "Dict", "typing.Dict"):
            return self.dict(name, depth)
        if name in ("tuple", "Tuple", "typing.Tuple"):
            return self.tuple(name, depth)
        if name in ("Optional", "typing.Optional"):
            self.expect("[")
            t = self.union(depth + 1)
            self.expect("]")
            return make_union((t, FieldType(_NONE)))
        if name in ("Union", "typing.Union"):
            self.expect("[")
            parts = [self.union(depth + 1)]
            while self.next(","):
                parts.append(self.union(depth + 1))
            self.expect("]")
            return make_union(parts)
        if name in ("Literal", "typing.Literal"):
            return self.literal()
        if name == "":
            raise ValueError(f"expected a type at position {self.i} of {quote(self.s)}")
        raise ValueError(f"unknown type {quote(name)} in {quote(self.s)} (known: {_KNOWN_TYPES})")

    def elem(self, depth: int) -> FieldType:
        return self.not_none(self.union(depth))

    def open(self, name: str) -> bool:
        """Take a container's ``[``; False for a bare ``list``, ``dict`` or ``tuple`` (as
        DSPy takes them; typing's ``List``, ``Dict`` and ``Tuple`` need their brackets)."""
        if name in ("list", "dict", "tuple"):
            return self.next("[")
        self.expect("[")
        return True

    def dict(self, name: str, depth: int) -> FieldType:
        if not self.open(name):
            return FieldType(DICT, FieldType(ANY), key=FieldType(STR))
        key = self.union(depth + 1)
        if key.kind not in (STR, INT, LITERAL):
            raise ValueError(f"dict keys must be str, int or a Literal, not {quote(str(key))}, in {quote(self.s)}")
        self.expect(",")
        elem = self.elem(depth + 1)
        self.expect("]")
        return FieldType(DICT, elem, key=key)

    def tuple(self, name: str, depth: int) -> FieldType:
        if not self.open(name):
            return FieldType(TUPLE, FieldType(ANY), variadic=True)
        members = [self.elem(depth + 1)]
        while self.next(","):
            self.space()
            if len(members) == 1 and self.s.startswith("...", self.i):
                self.i += 3
                self.expect("]")
                return FieldType(TUPLE, members[0], variadic=True)
            members.append(self.elem(depth + 1))
        self.expect("]")
        return FieldType(TUPLE, members=tuple(members))

    def literal(self) -> FieldType:
        self.expect("[")
        values: list[str] = []
        while True:
            self.space()
            if self.done() or self.s[self.i] not in "'\"":
                raise ValueError(f"values of a Literal must be quoted strings in {quote(self.s)}")
            q = self.s[self.i]
            end = self.s.find(q, self.i + 1)
            if end < 0:
                raise ValueError(f"unterminated value of a Literal in {quote(self.s)}")
            value = self.s[self.i + 1 : end]
            if any(c in value for c in "'\"\\"):
                raise ValueError(f"value {quote(value)} of a Literal may not contain quotes or backslashes")
            if value in values:
                raise ValueError(f"value {quote(value)} appears twice in the Literal {quote(self.s)}")
            values.append(value)
            self.i = end + 1
            self.space()
            if not self.done() and self.s[self.i] == ",":
                self.i += 1
                continue
            self.expect("]")
            return FieldType(LITERAL, values=tuple(values))


def _ident_char(c: str) -> bool:
    return c == "_" or "a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9"


def parse_type(s: str) -> FieldType:
    """Parse a type as written in a DSPy signature; ``""`` is ``str``. Raises ``ValueError``.

    The grammar of Go's ``program.ParseType`` (docs/protocol.md, "Program specs"): typing's
    spellings, PEP 604 unions with parentheses, bare ``list``/``dict``/``tuple`` (of Any);
    unions flattened and deduplicated as ``typing.Union`` does.
    """
    p = _TypeParser(s)
    p.space()
    if p.done():
        return FieldType(STR)
    t = p.union(0)
    p.space()
    if not p.done():
        raise ValueError(f"unexpected {quote(s[p.i:])} after the type in {quote(s)}")
    return p.not_none(t)


# --- conversion of inputs ----------------------------------------------------------------


def describe_value(v: Any) -> str:
    """How Go's conversion errors name a JSON value: ``string "x"``, ``number 3``, ``object``…"""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number " + json.dumps(v)
    if isinstance(v, str):
        return "string " + quote(v if len(v) <= 40 else v[:40] + "…")
    if isinstance(v, dict):
        return "object"
    if isinstance(v, (list, tuple)):
        return "array"
    return type(v).__name__


def _to_int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v if _INT_MIN <= v <= _INT_MAX else None
    if isinstance(v, float) and math.isfinite(v) and v.is_integer() and abs(v) < _EXACT:
        return int(v)
    return None


def _to_float(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


#: How deep an Any value may nest, as a frame's JSON (docs/protocol.md, "Frames").
MAX_VALUE_DEPTH = 128
_INT_KEY = re.compile(r"[+-]?[0-9]+\Z")


def convert(t: FieldType, v: Any, path: str, exact: bool = False) -> Any:
    """``v`` (a decoded JSON value) as a value of type ``t``; ``ValueError`` naming ``path``.

    ``str``/``Literal`` take strings (a Literal only its values), ``int`` integers and
    integral floats below 2**53, ``float`` any finite number, ``bool`` booleans, lists and
    tuples arrays (a fixed tuple of its length), dicts objects (``dict[int, V]`` keys that
    are decimal integers), ``Any`` any JSON value, ``Optional`` null or its type; a
    ``Union`` the first member that takes the value exactly, else the first that takes it
    (docs/protocol.md, "Input conversion"); ``null`` nothing else. ``exact`` (a union's
    first pass) refuses what changes a value's JSON kind: a float then takes only
    non-integral numbers.
    """
    kind = t.kind
    if kind == ANY:
        return json_value(v, path)
    if kind == OPTIONAL:
        return None if v is None else convert(t.elem, v, path, exact)
    if kind == UNION:
        return _union(t, v, path, exact, convert)
    if v is None:
        raise ValueError(f"{path}: expected {t}, got null")
    if kind in (STR, LITERAL):
        if not isinstance(v, str):
            raise ValueError(f"{path}: expected {t}, got {describe_value(v)}")
        if kind == LITERAL and v not in t.values:
            raise ValueError(f"{path}: {quote(v)} is not one of {t}")
        return v
    if kind == BOOL:
        if not isinstance(v, bool):
            raise ValueError(f"{path}: expected bool, got {describe_value(v)}")
        return v
    if kind == INT:
        n = _to_int(v)
        if n is None:
            raise ValueError(f"{path}: expected int, got {describe_value(v)}")
        return n
    if kind == FLOAT:
        f = _to_float(v)
        if f is None or (exact and f.is_integer()):
            raise ValueError(f"{path}: expected float, got {describe_value(v)}")
        return f
    if kind in (LIST, TUPLE):
        return _array(t, v, path, lambda et, e, at: convert(et, e, at, exact))
    if kind == DICT:
        return _dict(t, v, path, lambda et, e, at: convert(et, e, at, exact), _strict_key)
    raise ValueError(f"{path}: unsupported type {t}")


def _union(t: FieldType, v: Any, path: str, exact: bool, lenient) -> Any:
    """A union's value: the first member that takes ``v`` exactly, else (unless
    ``exact``) the first that ``lenient`` converts it to."""
    for m in t.members:
        try:
            return convert(m, v, path, True)
        except ValueError:
            pass
    if not exact:
        for m in t.members:
            try:
                return lenient(m, v, path)
            except ValueError:
                pass
    raise ValueError(f"{path}: expected {t}, got {describe_value(v)}")


def _array(t: FieldType, v: Any, path: str, elem) -> list:
    """A list or tuple of ``t`` from an array, each element by ``elem(type, value, path)``."""
    if not isinstance(v, (list, tuple)):
        raise ValueError(f"{path}: expected {t}, got {describe_value(v)}")
    if t.kind == LIST or t.variadic:
        return [elem(t.elem, e, f"{path}[{i}]") for i, e in enumerate(v)]
    if len(v) != len(t.members):
        raise ValueError(f"{path}: expected {t}, got an array of {len(v)}")
    return [elem(m, e, f"{path}[{i}]") for i, (m, e) in enumerate(zip(t.members, v))]


def _dict(t: FieldType, v: Any, path: str, elem, key_of) -> dict:
    """A dict of ``t`` from an object: keys by ``key_of(t, key, path)`` (returning the key
    and its text), values by ``elem(type, value, path)``. Two keys that are the same int
    are an error."""
    if not isinstance(v, dict):
        raise ValueError(f"{path}: expected {t}, got {describe_value(v)}")
    converted = {}
    texts: dict[Any, str] = {}
    int_keys = t.key is not None and t.key.kind == INT
    for k in _sorted_keys(v):  # the order Go checks them in: the same error for the same object
        key, text = key_of(t, k, path)
        if int_keys:
            if key in texts:
                a, b = sorted((texts[key], text))
                raise ValueError(f"{path}: keys {quote(a)} and {quote(b)} are the same int {key}")
            texts[key] = text
        converted[k] = (key, elem(t.elem, v[k], f"{path}[{quote(text)}]"))
    return dict(converted[k] for k in v)  # in the object's order


def _sorted_keys(v: dict) -> list:
    """An object's keys in the order of their text (an int's in decimal)."""
    return sorted(v, key=lambda k: k if isinstance(k, str) else str(k))


def _key_kind(t: FieldType) -> str:
    return STR if t.key is None else t.key.kind


def _strict_key(t: FieldType, k: Any, path: str) -> tuple[Any, str]:
    """A key of a dict type as input conversion takes it: a str key, a decimal integer
    (or an int) for ``dict[int, V]``, one of the values for a Literal."""
    kind = _key_kind(t)
    if kind == INT:
        if isinstance(k, int) and not isinstance(k, bool):
            if _INT_MIN <= k <= _INT_MAX:
                return k, str(k)
            raise ValueError(f"{path}: key {k} is not an int")
        if isinstance(k, str) and _INT_KEY.match(k):
            n = int(k)
            if _INT_MIN <= n <= _INT_MAX:
                return n, k
        if isinstance(k, str):
            raise ValueError(f"{path}: key {quote(k)} is not an int")
    elif isinstance(k, str):
        if kind == LITERAL and k not in t.key.values:
            raise ValueError(f"{path}: key {quote(k)} is not one of {t.key}")
        return k, k
    raise ValueError(f"{path}: expected {t}, got a key of type {type(k).__name__}")


def json_value(v: Any, path: str, depth: int = 0) -> Any:
    """``v`` as a value of ``Any``: any JSON value (integers within int64, finite
    floats, arrays as lists, objects with string keys), nested at most
    :data:`MAX_VALUE_DEPTH` levels. Ints stay ints and floats floats."""
    if v is None:
        return None
    if depth > MAX_VALUE_DEPTH:
        raise ValueError(f"{path}: the value nests more than {MAX_VALUE_DEPTH} levels")
    if isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        if not _INT_MIN <= v <= _INT_MAX:
            raise ValueError(f"{path}: number {v} is out of range")
        return int(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"{path}: number {v} is out of range")
        return v
    if isinstance(v, (list, tuple)):
        return [json_value(e, f"{path}[{i}]", depth + 1) for i, e in enumerate(v)]
    if isinstance(v, dict):
        converted = {}
        for k in _sorted_keys(v):  # as Go checks them
            if not isinstance(k, str):
                raise ValueError(f"{path}: expected Any (a JSON value), got a key of type {type(k).__name__}")
            converted[k] = json_value(v[k], f"{path}[{quote(k)}]", depth + 1)
        return {k: converted[k] for k in v}  # in the object's order
    raise ValueError(f"{path}: expected Any (a JSON value), got {describe_value(v)}")


# --- conversion of outputs ---------------------------------------------------------------

_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}
_FENCE = re.compile(r"\A```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```\Z", re.S)
_INT_TEXT = re.compile(r"[+-]?\d+\Z")
_FLOAT_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")
_NULL_TEXT = ("null", "None")


def _unfenced(text: str) -> str:
    """``text`` stripped of surrounding space and a Markdown code fence."""
    s = text.strip()
    m = _FENCE.match(s)
    return m.group(1).strip() if m else s


def _strip_text(text: str) -> str:
    """Strip space, a Markdown code fence, surrounding quotes/backticks and a final period."""
    s = _unfenced(text)
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"`":
        s = s[1:-1].strip()
    if s.endswith(".") and not _FLOAT_TEXT.match(s):
        s = s[:-1].rstrip()
    return s


def _has_str_member(t: FieldType) -> bool:
    inner = t.elem if t.kind == OPTIONAL else t
    members = inner.members if inner.kind == UNION else (inner,)
    return any(m.kind == STR for m in members)


def _decode_text(t: FieldType, text: str) -> Any:
    """The value of an ``Any``, ``Optional`` or ``Union`` output's text, as DSPy reads it:
    the text itself (stripped) for an Optional with a ``str`` member; else ``null`` for
    ``null`` or ``None`` when the type is nullable, the JSON value of a JSON text, or the
    text itself."""
    s = _unfenced(text)
    if t.kind == OPTIONAL and _has_str_member(t):
        return s
    if s in _NULL_TEXT and t.nullable:
        return None
    try:
        value = json.loads(s)
    except ValueError:
        return s
    return s if value is None else value


def parse_output(t: FieldType, value: Any, path: str, text: bool = False) -> Any:
    """What a language model produced for a field, as a value of its declared type.

    ``value`` is the field's text (a reply section; ``text`` true) or a value already typed
    (a JSON reply's, a DSPy prediction's, or an element of either). Strings are read
    leniently: ``"0.9"`` for a float, ``true``/``yes``/``false``/``no`` for a bool, a quoted
    or differently-cased Literal value, JSON (optionally in a code fence) for lists, tuples
    and dicts. The text of an Any, Optional or Union is first decoded as
    :func:`_decode_text` says (a typed string stays a string); a Union then takes the
    member :func:`convert` picks (exactly first), each member read leniently in the
    second pass. Raises ``ValueError`` naming ``path``.
    """
    kind = t.kind
    if text and isinstance(value, str) and kind in (ANY, OPTIONAL, UNION):
        value = _decode_text(t, value)
    if value is None:
        if t.nullable:
            return None
        raise ValueError(f"{path}: expected {t}, got null")
    if kind == ANY:
        return json_value(value, path)
    if kind == OPTIONAL:
        if t.elem.kind == UNION:
            return _union(t.elem, value, path, False, parse_output)
        return parse_output(t.elem, value, path)
    if kind == UNION:
        return _union(t, value, path, False, parse_output)
    if kind == STR:
        if isinstance(value, str):
            return value.strip()
        if isinstance(value, (bool, int, float)):
            return json.dumps(value)
        raise ValueError(f"{path}: expected str, got {describe_value(value)}")
    if isinstance(value, str):
        return _parse_text(t, value, path)
    if kind == LITERAL:
        raise ValueError(f"{path}: expected one of {t}, got {describe_value(value)}")
    if kind in (INT, FLOAT, BOOL):
        return convert(t, value, path)
    if kind in (LIST, TUPLE):
        return _array(t, value, path, parse_output)
    if kind == DICT:
        return _dict(t, value, path, parse_output, _lenient_key)
    raise ValueError(f"{path}: unsupported type {t}")


def _lenient_key(t: FieldType, k: Any, path: str) -> tuple[Any, str]:
    """A key of a dict output: as :func:`_strict_key`, and for ``dict[int, V]`` any text an
    int output takes (``" 1 "``, ``"1.0"``), for a Literal any text a Literal output takes."""
    kind = _key_kind(t)
    if isinstance(k, str) and kind in (INT, LITERAL):
        try:
            key = _parse_text(t.key, k, path)
        except ValueError:
            pass
        else:
            return key, str(key)
    return _strict_key(t, k, path)


def _parse_text(t: FieldType, text: str, path: str) -> Any:
    s = _strip_text(text)
    kind = t.kind
    shown = describe_value(text.strip())
    if kind == LITERAL:
        if s in t.values:
            return s
        folded = [v for v in t.values if v.casefold() == s.casefold()]
        if len(folded) == 1:
            return folded[0]
        raise ValueError(f"{path}: {shown} is not one of {t}")
    if kind == BOOL:
        word = s.lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ValueError(f"{path}: expected bool (true or false), got {shown}")
    if kind == INT:
        if _INT_TEXT.match(s):
            n = int(s)
            if _INT_MIN <= n <= _INT_MAX:
                return n
        elif _FLOAT_TEXT.match(s):
            n = _to_int(float(s))
            if n is not None:
                return n
        raise ValueError(f"{path}: expected int, got {shown}")
    if kind == FLOAT:
        if _FLOAT_TEXT.match(s):
            f = _to_float(float(s))
            if f is not None:
                return f
        raise ValueError(f"{path}: expected float, got {shown}")
    # list, tuple or dict: JSON
    try:
        value = json.loads(s)
    except ValueError:
        raise ValueError(f"{path}: expected {t} as JSON, got {shown}") from None
    return parse_output(t, value, path)


# --- specs -------------------------------------------------------------------------------


class Field:
    __slots__ = ("name", "type", "description")

    def __init__(self, name: str, type: FieldType, description: str):
        self.name = name
        self.type = type
        self.description = description

    def normalized(self) -> dict:
        return {"name": self.name, "type": str(self.type), "description": self.description}


def _object(value: Any, where: str, keys: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise invalid(f"{where} must be an object, got {describe_value(value)}")
    unknown = sorted(k for k in value if k not in keys)
    if unknown:
        raise invalid(f"{where} has unknown field {quote(unknown[0])} (known: {', '.join(keys)})")
    return value


def _string(obj: dict, key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid(f"{where}.{key} must be a string, got {describe_value(value)}")
    return value


def _field_list(obj: dict, key: str, where: str) -> list[dict]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"{where}.{key} must be an array, got {describe_value(value)}")
    out = []
    for i, item in enumerate(value):
        at = f"{where}.{key}[{i}]"
        item = {} if item is None else _object(item, at, ("name", "type", "description"))
        out.append({k: _string(item, k, at) for k in ("name", "type", "description")})
    return out


def parse_signature(s: str) -> dict:
    """DSPy's string form of a signature (``"question, context: list[str] -> answer"``) as a
    spec's ``signature`` object, as Go's ``program.ParseSignature`` parses it: fields split
    at the commas outside brackets, parentheses and quotes, each ``name`` or
    ``name: type`` (types as written; :class:`CompiledSpec` normalises them). Raises
    ``invalid_argument`` saying which part is wrong."""
    left, sep, right = s.partition("->")
    if not sep:
        raise invalid(f"signature {quote(s)} has no \"->\" between inputs and outputs")
    if "->" in right:
        raise invalid(f"signature {quote(s)} has more than one \"->\"")
    signature = {"inputs": _signature_fields(left, "inputs", s), "outputs": _signature_fields(right, "outputs", s)}
    CompiledSpec({"signature": signature})  # validates names and types
    return signature


def _signature_fields(side: str, which: str, whole: str) -> list[dict]:
    if not side.strip():
        raise invalid(f"signature {quote(whole)} has no {which}")
    fields = []
    depth, start, in_quote = 0, 0, ""
    for i in range(len(side) + 1):
        if i < len(side):
            c = side[i]
            if in_quote:
                if c == in_quote:
                    in_quote = ""
                continue
            if c in "'\"":
                in_quote = c
                continue
            if c in "[(":
                depth += 1
                continue
            if c in "])":
                depth -= 1
                continue
            if c != "," or depth > 0:
                continue
        part = side[start:i].strip()
        start = i + 1
        if not part:
            raise invalid(f"signature {quote(whole)} has an empty field among its {which}")
        name, _, typ = part.partition(":")
        fields.append({"name": name.strip(), "type": typ.strip(), "description": ""})
    return fields


def _demos(spec: dict, kind: str, inputs: list[Field], outputs: list[Field]) -> list[dict]:
    """A spec's demos validated against its fields and normalised, as Go's
    ``program.normalizeDemos`` (docs/protocol.md, "Demos"; the messages are checked
    against protocol/testdata/demos.json): each ``{"inputs", "outputs"}`` holds a value of
    its type for every input and declared output (converted as inputs are), and no other
    name; ``reasoning`` (a string; empty or null is none, and then left out) only in a
    chain_of_thought spec. Null or absent ``demos`` is none."""
    raw = spec.get("demos")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid(f"spec.demos must be an array, got {describe_value(raw)}")
    demos = []
    for i, item in enumerate(raw):
        where = f"spec.demos[{i}]"
        item = {} if item is None else _object(item, where, ("inputs", "outputs", "reasoning"))
        at = f"demo {i}"
        demo = {
            "inputs": _demo_values(item, "inputs", where, at, "input", inputs),
            "outputs": _demo_values(item, "outputs", where, at, "output", outputs),
        }
        reasoning = _string(item, "reasoning", where)
        if reasoning:
            if kind != KIND_CHAIN_OF_THOUGHT:
                raise invalid(f"{at}: reasoning is only for {KIND_CHAIN_OF_THOUGHT} programs (this one is {kind})")
            demo["reasoning"] = reasoning
        demos.append(demo)
    return demos


def _demo_values(item: dict, key: str, where: str, at: str, side: str, fields: list[Field]) -> dict:
    """One side of a demo converted: every field present and of its type, in the fields'
    order, then no name that is not a field (the first in sorted order is named)."""
    values = item.get(key)
    if values is None:
        values = {}
    elif not isinstance(values, dict):
        raise invalid(f"{where}.{key} must be an object, got {describe_value(values)}")
    names = ", ".join(quote(f.name) for f in fields)
    out = {}
    for f in fields:
        if f.name not in values:
            raise invalid(f"{at}: {side} {quote(f.name)} is missing (the signature's {side}s are {names})")
        try:
            out[f.name] = convert(f.type, values[f.name], f"{at}: {side} {f.name}")
        except ValueError as exc:
            raise invalid(str(exc)) from None
    extra = sorted(name for name in values if name not in out)
    if extra:
        raise invalid(f"{at}: {side} {quote(extra[0])} is not in the signature (the signature's {side}s are {names})")
    return out


class CompiledSpec:
    """A validated, normalised spec with its hash; ready to convert inputs and run.

    ``spec`` is the normalised spec (exactly ``signature``, ``instructions``, ``kind``, and
    ``demos`` when there are some), ``hash`` its hex SHA-256, ``inputs`` and
    ``declared_outputs`` the parsed fields, ``outputs`` the fields a run produces
    (``reasoning`` first for chain_of_thought) and ``demos`` the few-shot examples
    (:func:`_demos`: ``{"inputs", "outputs"}`` of converted values, and ``"reasoning"`` when
    a chain_of_thought demo has one).
    ``extras`` is a place for engines to cache what they build from the spec.
    """

    def __init__(self, raw: Any):
        spec = _object(raw, "spec", ("signature", "instructions", "kind", "demos"))
        signature = spec.get("signature")
        signature = {} if signature is None else _object(signature, "spec.signature", ("inputs", "outputs"))
        raw_inputs = _field_list(signature, "inputs", "spec.signature")
        raw_outputs = _field_list(signature, "outputs", "spec.signature")
        instructions = _string(spec, "instructions", "spec")
        kind = _string(spec, "kind", "spec") or KIND_PREDICT
        if kind not in KINDS:
            raise invalid(f"program kind {quote(kind)} is unknown (known: {', '.join(KINDS)})")
        if not raw_inputs:
            raise invalid("signature has no inputs")
        if not raw_outputs:
            raise invalid("signature has no outputs")
        seen: dict[str, str] = {}
        if kind == KIND_CHAIN_OF_THOUGHT:
            seen[REASONING_FIELD] = "the reasoning output that chain_of_thought adds"
        sides = {}
        for side, fields in (("input", raw_inputs), ("output", raw_outputs)):
            parsed = []
            for f in fields:
                name = f["name"]
                if not is_identifier(name):
                    raise invalid(
                        f"{side} field name {quote(name)} is not a valid identifier"
                        " (letters, digits and _, not starting with a digit)"
                    )
                if name in seen:
                    raise invalid(f"field name {quote(name)} is used twice (as {seen[name]} and as {side})")
                seen[name] = side
                try:
                    t = parse_type(f["type"])
                except ValueError as exc:
                    raise invalid(f"{side} field {quote(name)}: {exc}") from None
                parsed.append(Field(name, t, f["description"]))
            sides[side] = parsed
        self.inputs: list[Field] = sides["input"]
        self.declared_outputs: list[Field] = sides["output"]
        self.instructions = instructions
        self.kind = kind
        self.outputs: list[Field] = list(self.declared_outputs)
        if kind == KIND_CHAIN_OF_THOUGHT:
            self.outputs.insert(0, Field(REASONING_FIELD, FieldType(STR), ""))
        self.spec = {
            "signature": {
                "inputs": [f.normalized() for f in self.inputs],
                "outputs": [f.normalized() for f in self.declared_outputs],
            },
            "instructions": instructions,
            "kind": kind,
        }
        self.demos: list[dict] = _demos(spec, kind, self.inputs, self.declared_outputs)
        if self.demos:
            self.spec["demos"] = self.demos
        self.hash = sha256_hex(canonical_json(self.spec))
        self.extras: dict[str, Any] = {}
        self._dummy_parts: list | None = None  # made by the first dummy_outputs

    def input_names(self) -> str:
        return ", ".join(quote(f.name) for f in self.inputs)

    def convert_inputs(self, inputs: dict) -> dict:
        """The inputs converted to their declared types; ``invalid_argument`` naming the field."""
        out = {}
        for f in self.inputs:
            if f.name not in inputs:
                raise invalid(f"input {quote(f.name)} is missing (the program takes {self.input_names()})")
            try:
                out[f.name] = convert(f.type, inputs[f.name], f"input {f.name}")
            except ValueError as exc:
                raise invalid(str(exc)) from None
        for name in inputs:
            if name not in out:
                raise invalid(f"input {quote(name)} is not in the signature (the program takes {self.input_names()})")
        return out

    def dummy_outputs(self, inputs: dict) -> dict:
        """The dummy language model's outputs for converted ``inputs`` (docs/protocol.md).

        Each output's seed is the canonical JSON of ``{"field", "inputs", "spec_hash"}``:
        the keys come in that order, so the inputs' canonical JSON is made once and put
        between each field's prefix and the hash's suffix.
        """
        try:
            canon_inputs = canonical_json(inputs)
        except (TypeError, ValueError) as exc:
            raise invalid(f"inputs: {exc}") from None
        parts = self._dummy_parts
        if parts is None:
            suffix = b',"spec_hash":' + canonical_json(self.hash) + b"}"
            parts = self._dummy_parts = [
                (f, b'{"field":' + canonical_json(f.name) + b',"inputs":', suffix) for f in self.outputs
            ]
        out = {}
        for f, prefix, suffix in parts:
            out[f.name] = dummy_value(f.type, sha256(prefix + canon_inputs + suffix).digest(), f.name)
        return out


def dummy_value(t: FieldType, digest: bytes, field: str) -> Any:
    """The dummy value of type ``t`` for a 32-byte ``digest`` (docs/protocol.md)."""
    n = int.from_bytes(digest[:4], "big")
    kind = t.kind
    if kind == INT:
        return n % 1000
    if kind == FLOAT:
        return (n % 10000) / 10000
    if kind == BOOL:
        return n % 2 == 1
    if kind == LITERAL:
        return t.values[n % len(t.values)]
    if kind == LIST or (kind == TUPLE and t.variadic):
        return [dummy_value(t.elem, _child(digest, i), field) for i in range(digest[4] % 3 + 1)]
    if kind == TUPLE:
        return [dummy_value(m, _child(digest, i), field) for i, m in enumerate(t.members)]
    if kind == DICT:
        count = digest[4] % 3 + 1
        key_kind = _key_kind(t)
        if key_kind == INT:
            keys = range(count)
        elif key_kind == LITERAL:
            keys = t.key.values[:count]
        else:
            keys = [f"key_{i}" for i in range(count)]
        return {k: dummy_value(t.elem, _child(digest, i), field) for i, k in enumerate(keys)}
    if kind == OPTIONAL:
        return None if n % 4 == 0 else dummy_value(t.elem, _child(digest, 0), field)
    if kind == UNION:
        return dummy_value(t.members[n % len(t.members)], _child(digest, 0), field)
    h = digest[:8].hex()
    return f"{field} {h[:8]} {h[8:16]}"


def _child(digest: bytes, i: int) -> bytes:
    return sha256(digest + bytes([i])).digest()
