"""Program specs: field types, canonical JSON, spec hashes, input conversion, the dummy LM.

The same rules as Go's ``internal/program`` (docs/protocol.md, "The program command set"):

* types ``str``, ``int``, ``float``, ``bool``, ``list[T]``, ``dict[str, T]`` and
  ``Literal['a', 'b']`` (also spelled ``List``, ``Dict``, ``typing.Literal``), nested at
  most 16 deep, with one canonical spelling (:meth:`FieldType.__str__`);
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
                if not isinstance(key, str):
                    raise TypeError(f"canonical JSON needs string object keys, not {type(key).__name__}")
                key = _normalize(key)
            elif not key.isascii():
                key = _SURROGATES.sub("\ufffd", key)
            out[key] = _normalize(v)
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
            if not isinstance(key, str):
                raise TypeError(f"canonical JSON needs string object keys, not {type(key).__name__}")
            out[_normalize(key)] = _normalize(v)
        return out
    raise TypeError(f"canonical JSON cannot encode {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of ``value`` (docs/protocol.md, "Canonical JSON").

    Keys sorted by code point, no insignificant space, strings as UTF-8 escaping only
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


class FieldType:
    """A parsed field type. ``kind`` is one of str, int, float, bool, list, dict, Literal;
    ``elem`` is a list's element or a dict's value type; ``values`` a Literal's strings."""

    __slots__ = ("kind", "elem", "values")

    def __init__(self, kind: str, elem: FieldType | None = None, values: tuple[str, ...] = ()):
        self.kind = kind
        self.elem = elem
        self.values = values

    def __str__(self) -> str:
        if self.kind == LIST:
            return f"list[{self.elem}]"
        if self.kind == DICT:
            return f"dict[str, {self.elem}]"
        if self.kind == LITERAL:
            return "Literal[" + ", ".join(f"'{v}'" for v in self.values) + "]"
        return self.kind

    def __repr__(self) -> str:
        return f"FieldType({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldType) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def json_schema(self) -> dict:
        """A JSON schema of the type (for prompts)."""
        if self.kind == LIST:
            return {"type": "array", "items": self.elem.json_schema()}
        if self.kind == DICT:
            return {"type": "object", "additionalProperties": self.elem.json_schema()}
        if self.kind == LITERAL:
            return {"type": "string", "enum": list(self.values)}
        return {"type": {STR: "string", INT: "integer", FLOAT: "number", BOOL: "boolean"}[self.kind]}


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

    def parse(self, depth: int) -> FieldType:
        if depth > MAX_TYPE_DEPTH:
            raise ValueError(f"type {quote(self.s)} nests more than {MAX_TYPE_DEPTH} levels")
        self.space()
        name = self.word()
        if name in (STR, INT, FLOAT, BOOL):
            return FieldType(name)
        if name in ("list", "List"):
            self.expect("[")
            elem = self.parse(depth + 1)
            self.expect("]")
            return FieldType(LIST, elem)
        if name in ("dict", "Dict"):
            self.expect("[")
            key = self.word()
            if key != "str":
                raise ValueError(f"dict keys must be str, not {quote(key)}, in {quote(self.s)}")
            self.expect(",")
            elem = self.parse(depth + 1)
            self.expect("]")
            return FieldType(DICT, elem)
        if name in ("Literal", "typing.Literal"):
            return self.literal()
        if name == "":
            raise ValueError(f"expected a type at position {self.i} of {quote(self.s)}")
        raise ValueError(
            f"unknown type {quote(name)} in {quote(self.s)}"
            " (known: str, int, float, bool, list[T], dict[str, T], Literal['a', ...])"
        )

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
    """Parse a type as written in a DSPy signature; ``""`` is ``str``. Raises ``ValueError``."""
    p = _TypeParser(s)
    p.space()
    if p.done():
        return FieldType(STR)
    t = p.parse(0)
    p.space()
    if not p.done():
        raise ValueError(f"unexpected {quote(s[p.i:])} after the type in {quote(s)}")
    return t


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


def convert(t: FieldType, v: Any, path: str) -> Any:
    """``v`` (a decoded JSON value) as a value of type ``t``; ``ValueError`` naming ``path``.

    ``str``/``Literal`` take strings (a Literal only its values), ``int`` integers and
    integral floats below 2**53, ``float`` any finite number, ``bool`` booleans, lists
    arrays, dicts objects; ``null`` never.
    """
    if v is None:
        raise ValueError(f"{path}: expected {t}, got null")
    kind = t.kind
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
        if f is None:
            raise ValueError(f"{path}: expected float, got {describe_value(v)}")
        return f
    if kind == LIST:
        if not isinstance(v, (list, tuple)):
            raise ValueError(f"{path}: expected {t}, got {describe_value(v)}")
        return [convert(t.elem, e, f"{path}[{i}]") for i, e in enumerate(v)]
    if kind == DICT:
        if not isinstance(v, dict):
            raise ValueError(f"{path}: expected {t}, got {describe_value(v)}")
        return {k: convert(t.elem, e, f"{path}[{quote(k)}]") for k, e in v.items()}
    raise ValueError(f"{path}: unsupported type {t}")


# --- conversion of outputs ---------------------------------------------------------------

_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}
_FENCE = re.compile(r"\A```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```\Z", re.S)
_INT_TEXT = re.compile(r"[+-]?\d+\Z")
_FLOAT_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")


def _strip_text(text: str) -> str:
    """Strip space, a Markdown code fence, surrounding quotes/backticks and a final period."""
    s = text.strip()
    m = _FENCE.match(s)
    if m:
        s = m.group(1).strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"`":
        s = s[1:-1].strip()
    if s.endswith(".") and not _FLOAT_TEXT.match(s):
        s = s[:-1].rstrip()
    return s


def parse_output(t: FieldType, value: Any, path: str) -> Any:
    """What a language model produced for a field, as a value of its declared type.

    ``value`` is text (a reply section) or a value already typed (JSON, a DSPy prediction).
    Text is read leniently: ``"0.9"`` for a float, ``true``/``yes``/``false``/``no`` for a
    bool, a quoted or differently-cased Literal value, JSON (optionally in a code fence) for
    lists and dicts. Raises ``ValueError`` naming ``path``.
    """
    kind = t.kind
    if value is None:
        raise ValueError(f"{path}: expected {t}, got null")
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
    if kind == LIST:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{path}: expected {t}, got {describe_value(value)}")
        return [parse_output(t.elem, e, f"{path}[{i}]") for i, e in enumerate(value)]
    if kind == DICT:
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected {t}, got {describe_value(value)}")
        out = {}
        for k, e in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{path}: expected {t}, got a key of type {type(k).__name__}")
            out[k] = parse_output(t.elem, e, f"{path}[{quote(k)}]")
        return out
    raise ValueError(f"{path}: unsupported type {t}")


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
    # list or dict: JSON
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


class CompiledSpec:
    """A validated, normalised spec with its hash; ready to convert inputs and run.

    ``spec`` is the normalised spec (exactly ``signature``, ``instructions``, ``kind``),
    ``hash`` its hex SHA-256, ``inputs`` and ``declared_outputs`` the parsed fields and
    ``outputs`` the fields a run produces (``reasoning`` first for chain_of_thought).
    ``extras`` is a place for engines to cache what they build from the spec.
    """

    def __init__(self, raw: Any):
        spec = _object(raw, "spec", ("signature", "instructions", "kind"))
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
    if kind == LIST:
        return [dummy_value(t.elem, _child(digest, i), field) for i in range(digest[4] % 3 + 1)]
    if kind == DICT:
        return {f"key_{i}": dummy_value(t.elem, _child(digest, i), field) for i in range(digest[4] % 3 + 1)}
    h = digest[:8].hex()
    return f"{field} {h[:8]} {h[8:16]}"


def _child(digest: bytes, i: int) -> bytes:
    return sha256(digest + bytes([i])).digest()
