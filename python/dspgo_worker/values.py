"""Values of field types: inputs converted to their declared types, and what a language
model produced (text, or values already typed) parsed into a field's type.

The same rules as Go's ``internal/program`` (types.go, ``Type.Convert``): errors name the
field (``input n: expected int, got string "one"``).
"""

from __future__ import annotations

import json
import math
import re
import threading

from .canonical import EXACT
from .datetimes import DATE_WANT, DATETIME_WANT, convert_datetime, lax_datetime
from .errors import invalid
from .fieldtypes import (
    ANY,
    AUDIO,
    BOOL,
    DATE,
    DATETIME,
    DICT,
    FILE,
    FLOAT,
    HISTORY,
    IMAGE,
    INT,
    LIST,
    LITERAL,
    MODEL,
    OPTIONAL,
    STR,
    TUPLE,
    UNION,
    FieldType,
)
from .media import (
    AUDIO_WANT,
    CUSTOM_TYPE_START,
    FILE_WANT,
    IMAGE_WANT,
    image_url_problem,
    is_plain,
    media_part,
)
from .protocol import quote

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from typing import Any, Callable

    #: Converts a value to a type: ``(type, value, path) -> value``.
    Converter = Callable[[FieldType, Any, str], Any]
    #: Converts a dict key: ``(dict type, key, path) -> (key, its text)``.
    KeyConverter = Callable[[FieldType, Any, str], tuple[Any, str]]

#: Integers from -2**63 to 2**63-1 are accepted by ``int`` (Go's int64).
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def describe_value(v: Any) -> str:
    """How Go's conversion errors name a JSON value: ``string "x"``, ``number 3``, ``object``…"""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number " + _number_text(v)
    if isinstance(v, str):
        return "string " + quote(_cut(v))
    if isinstance(v, dict):
        return "object"
    if isinstance(v, (list, tuple)):
        return "array"
    return type(v).__name__


def _number_text(v: int | float) -> str:
    """A number as an error writes it: its JSON, but an int of more than 13,000 bits as
    its first hex digits and its size (Python refuses to write an int of more than 4,300
    decimal digits)."""
    if isinstance(v, int) and v.bit_length() > 13_000:  # about 3,900 decimal digits
        digits = f"{abs(v):x}"  # hex: no digit limit, and linear
        return f"{'-' if v < 0 else ''}0x{digits[:8]}… ({v.bit_length()} bits)"
    return json.dumps(v)


def _cut(s: str) -> str:
    """``s`` cut, as Go's errors cut it, to at most 40 bytes of UTF-8 at the start of a
    character, then ``…``; ``s`` itself when it is no longer."""
    b = s.encode("utf-8", "surrogatepass")
    if len(b) <= 40:
        return s
    n = 40
    while n > 0 and b[n] & 0xC0 == 0x80:  # inside a character: back to its start
        n -= 1
    return b[:n].decode("utf-8", "surrogatepass") + "…"


def _to_int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v if _INT_MIN <= v <= _INT_MAX else None
    if isinstance(v, float) and math.isfinite(v) and v.is_integer() and abs(v) < EXACT:
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


def copy_value(v: Any) -> Any:
    """A copy of a converted value (lists and dicts copied all the way down; the rest,
    strings and numbers, is immutable): what a field left out takes of its default."""
    if isinstance(v, dict):
        return {k: copy_value(e) for k, e in v.items()}
    if isinstance(v, list):
        return [copy_value(e) for e in v]
    return v


#: How deep an Any value may nest, as a frame's JSON (docs/protocol.md, "Frames").
MAX_VALUE_DEPTH = 128
#: A dict[int, V]'s key that may be an int: a sign, then at most 19 digits after leading
#: zeros (int64's; longer is no int64, and Python would refuse to read 4,300 digits).
_INT_KEY = re.compile(r"[+-]?0*[0-9]{1,19}\Z")


def convert(t: FieldType, v: Any, path: str, exact: bool = False) -> Any:
    """``v`` (a decoded JSON value) as a value of type ``t``; ``ValueError`` naming ``path``.

    ``str``/``Literal`` take strings (a Literal only its values), ``int`` integers and
    integral floats below 2**53, ``float`` any finite number, ``bool`` booleans, lists and
    tuples arrays (a fixed tuple of its length), dicts objects (``dict[int, V]`` keys that
    are decimal integers), a model an object of its fields (:func:`_model`), ``Any`` any
    JSON value, ``Optional`` null or its type; a ``Union`` the first member that takes the
    value exactly, else the first that takes it (docs/protocol.md, "Input conversion");
    ``null`` nothing else. ``exact`` (a union's
    first pass) refuses what changes a value's JSON kind: a float then takes only
    non-integral numbers.
    """
    _tries.filled = 0
    return _convert(t, v, path, exact)


def convert_field(t: FieldType, v: Any, path: str) -> Any:
    """``v``, the value of a signature's field of type ``t`` (an input, a demo's value, a
    field's default), as :func:`convert` converts it, but for a ``str`` field: one takes,
    besides a string, what DSPy 3.4.1's ChatAdapter shows in a ``str`` field
    (``format_field_value``), a list of strings (a numbered list to the LM), a bool, a
    number or an object (as ``Any`` takes them), as Go's ``Type.ConvertField`` does.
    DSPy's untyped fields are ``str`` fields, and its RAG programs give one a list of
    passages. A model's ``str`` field takes strings only, as pydantic's does."""
    if t.kind == STR and v is not None and not isinstance(v, str):
        return convert(_STR_LIST if isinstance(v, list) else _ANY_TYPE, v, path)
    return convert(t, v, path)


def _convert(t: FieldType, v: Any, path: str, exact: bool = False) -> Any:
    """:func:`convert`'s value, the values the models' defaults fill in counted in
    ``_tries.filled`` (:func:`_fill`)."""
    kind = t.kind
    if kind == ANY:
        return json_value(v, path)
    if kind == HISTORY:
        return _history(v, path)
    if kind == IMAGE:
        return _image(v, path)
    if kind == FILE:
        return _file(v, path)
    if kind == AUDIO:
        return _audio(v, path)
    if kind in (DATE, DATETIME):
        return convert_datetime(kind, v, path, describe_value)
    if kind == OPTIONAL:
        return None if v is None else _convert(t.elem, v, path, exact)
    if kind == UNION:
        return _union(t, v, path, exact, _convert)
    if kind == LITERAL:
        return _convert_literal(t, v, path, exact)
    if v is None:
        raise ValueError(f"{path}: expected {t}, got null")
    if kind == STR:
        if not isinstance(v, str):
            raise ValueError(f"{path}: expected {t}, got {describe_value(v)}")
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
        return _array(t, v, path, lambda et, e, at: _convert(et, e, at, exact))
    if kind == DICT:
        return _dict(t, v, path, lambda et, e, at: _convert(et, e, at, exact), _strict_key)
    if kind == MODEL:
        return _model(t, v, path, lambda ft, e, at: _convert(ft, e, at, exact))
    raise ValueError(f"{path}: unsupported type {t}")


def _union(t: FieldType, v: Any, path: str, exact: bool, lenient: Converter) -> Any:
    """A union's value: the first member that takes ``v`` exactly, else (unless
    ``exact``) the first that ``lenient`` converts it to."""
    for m in t.members:
        try:
            return _convert(m, v, path, True)
        except ValueError:
            pass
    if not exact:
        for m in t.members:
            try:
                return lenient(m, v, path)
            except ValueError:
                pass
    raise ValueError(f"{path}: expected {t}, got {describe_value(v)}")


def _array(t: FieldType, v: Any, path: str, elem: Converter) -> list[Any]:
    """A list or tuple of ``t`` from an array, each element by ``elem(type, value, path)``."""
    if not isinstance(v, (list, tuple)):
        raise ValueError(f"{path}: expected {t}, got {describe_value(v)}")
    if t.kind == LIST or t.variadic:
        return [elem(t.elem, e, f"{path}[{i}]") for i, e in enumerate(v)]
    if len(v) != len(t.members):
        raise ValueError(f"{path}: expected {t}, got an array of {len(v)}")
    return [elem(m, e, f"{path}[{i}]") for i, (m, e) in enumerate(zip(t.members, v))]


def _dict(t: FieldType, v: Any, path: str, elem: Converter, key_of: KeyConverter) -> dict[Any, Any]:
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


def _model(t: FieldType, v: Any, path: str, field: Converter) -> dict[str, Any]:
    """A model's value from an object, as pydantic's ``model_validate`` takes it (Go's
    ``convertModel``): each of its fields in the model's order by ``field(type, value,
    path)``, one left out its default (a copy) when it has one, else null when it is
    Optional, else an error; keys that are not its fields are dropped."""
    if not isinstance(v, dict):
        raise ValueError(f"{path}: expected {t}, got {describe_value(v)}")
    out = {}
    for f in t.model.fields:
        out[f.name] = field(f.type, v[f.name], f"{path}.{f.name}") if f.name in v else _left_out(t, f, path)
    return out


def _left_out(t: FieldType, f: Any, path: str) -> Any:
    """What the field ``f`` of the model ``t`` takes when the value at ``path`` leaves it
    out: a copy of its default, counted (:func:`_fill`), else null when it is Optional;
    any other left out is a ``ValueError``. A default is converted already, as every
    default a value may reach is before it (``compile_models``): its copy fills in nothing
    more."""
    if f.default is not None:
        return _fill(copy_value(f.default), f"{path}.{f.name}")
    if f.type.kind == OPTIONAL:
        return None
    raise ValueError(f"{path}: expected {t}, got an object without {quote(f.name)}")


#: How many values one conversion's models' fields may take from their defaults, each
#: counted with all it holds (:func:`count_values`): a model's default may fill in models
#: whose defaults fill in more, and a value of few bytes would otherwise grow
#: exponentially (Go's ``maxFilled``).
MAX_FILLED = 100_000
TOO_MANY_FILLED = f"the defaults filled in hold more than {MAX_FILLED} values"


def count_values(v: Any) -> int:
    """The JSON values of a converted value: one for each null, bool, number, string,
    array and object, nested ones included."""
    if isinstance(v, dict):
        return 1 + sum(count_values(e) for e in v.values())
    if isinstance(v, list):
        return 1 + sum(count_values(e) for e in v)
    return 1


def _fill(value: Any, path: str) -> Any:
    """``value``, which a model's field at ``path`` took from its default, counted in the
    conversion's ``_tries.filled``; a ``ValueError`` past :data:`MAX_FILLED`."""
    _tries.filled += count_values(value)
    if _tries.filled > MAX_FILLED:
        raise ValueError(f"{path}: {TOO_MANY_FILLED}")
    return value


def _sorted_keys(v: dict[str, Any]) -> list[Any]:
    """An object's keys in the order of their text (an int's in decimal)."""
    return sorted(v, key=lambda k: k if isinstance(k, str) else str(k))


def key_kind(t: FieldType) -> str:
    return STR if t.key is None else t.key.kind


def _strict_key(t: FieldType, k: Any, path: str) -> tuple[Any, str]:
    """A key of a dict type as input conversion takes it: a str key, a decimal integer
    (or an int) for ``dict[int, V]``, one of the values for a Literal."""
    kind = key_kind(t)
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
        if kind == LITERAL and t.key is not None and k not in t.key.values:
            raise ValueError(f"{path}: key {quote(k)} is not one of {t.key}")
        return k, k
    raise ValueError(f"{path}: expected {t}, got a key of type {type(k).__name__}")


def json_value(v: Any, path: str, depth: int = 0, int_keys: bool = False) -> Any:
    """``v`` as a value of ``Any``: any JSON value (integers within int64, finite
    floats, arrays as lists, objects with string keys; with ``int_keys``, an int key
    too, as its decimal text, as JSON writes it), nested at most
    :data:`MAX_VALUE_DEPTH` levels. Ints stay ints and floats floats."""
    if v is None:
        return None
    if depth > MAX_VALUE_DEPTH:
        raise ValueError(f"{path}: the value nests more than {MAX_VALUE_DEPTH} levels")
    if isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        if not _INT_MIN <= v <= _INT_MAX:
            raise ValueError(f"{path}: number {_number_text(v)} is out of range")
        return int(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"{path}: number {_number_text(v)} is out of range")
        return v
    if isinstance(v, (list, tuple)):
        return [json_value(e, f"{path}[{i}]", depth + 1, int_keys) for i, e in enumerate(v)]
    if isinstance(v, dict):
        converted = {}
        for k in _sorted_keys(v):  # as Go checks them
            name = k
            if int_keys and isinstance(k, int) and not isinstance(k, bool):
                name = str(k)
            elif not isinstance(k, str):
                raise ValueError(f"{path}: expected Any (a JSON value), got a key of type {type(k).__name__}")
            converted[k] = (name, json_value(v[k], f"{path}[{quote(name)}]", depth + 1, int_keys))
        return dict(converted[k] for k in v)  # in the object's order
    raise ValueError(f"{path}: expected Any (a JSON value), got {describe_value(v)}")


# --- reading of outputs ------------------------------------------------------------------
#
# What a language model produced is read as DSPy 3.4.1 reads it: a reply's value by
# ``dspy.adapters.utils.parse_value`` (:func:`_read`), and every typed value by pydantic's
# ``TypeAdapter(T).validate_python`` in its lax mode (:func:`lax_value`), in the standard
# library. python/tests/test_dspy_signatures.py checks both against DSPy and pydantic.

#: How well a value fits a type, as pydantic-core scores a union's members (its
#: ``Exactness``): taken in lax mode only (``"7"`` for int), in strict mode (``7`` for
#: float), or a value of the type itself (``7`` for int). A container's is its worst part's.
_LAX, _STRICT, _EXACT = 1, 2, 3

#: The white space pydantic strips around a number's text (Rust's ``char::is_whitespace``).
_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
#: A bool's texts as pydantic takes them (in any case, not stripped).
_BOOL_TEXT = {"true": True, "yes": True, "y": True, "on": True, "t": True, "1": True,
              "false": False, "no": False, "n": False, "off": False, "f": False, "0": False}
#: A Markdown code fence around a reply's JSON array or object.
_FENCE_OPENING = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n")
#: The longest text read as a Python literal: parsing one costs about 3 µs and 500 bytes
#: of memory per character, and runs where the reply is read.
_MAX_LITERAL_CHARS = 256 * 1024


def parse_output(t: FieldType, value: Any, path: str, text: bool = False) -> Any:
    """What a language model produced for a field, as a value of its declared type;
    ``ValueError`` naming ``path``.

    With ``text``, ``value`` is what the LM wrote for the field (a reply section's text,
    or a JSON reply's value), read as DSPy 3.4.1's ``parse_value`` reads it
    (:func:`_read`). Without, it is a value already typed (a DSPy prediction's), checked
    by pydantic's lax mode (:func:`lax_value`) and otherwise left as it is.
    """
    return _read(t, value, path) if text else lax_value(t, value, path)


def _read(t: FieldType, value: Any, path: str) -> Any:
    """DSPy's ``parse_value(value, T)``: a ``str`` output's value is ``str(value)``; a
    Literal's text that is not one of its values is tried again stripped, without a
    ``Literal[…]`` or ``str[…]`` around it and without one pair of quotes; a value that
    is not a string (a JSON reply's) goes to :func:`lax_value`, as does the text of an
    Optional with a ``str`` member; any other text is decoded first (:func:`_decode`)."""
    kind = t.kind
    if kind == STR:
        return value if isinstance(value, str) else str(value)
    if kind == LITERAL and isinstance(value, str):
        if t.has_literal(value):
            return value
        v = value.strip()
        if v.startswith(("Literal[", "str[")) and v.endswith("]"):
            v = v[v.find("[") + 1 : -1]
        if len(v) > 1 and v[0] == v[-1] and v[0] in "\"'":
            v = v[1:-1]
        if t.has_literal(v):
            return v
        value = v
    if not isinstance(value, str) or (kind == OPTIONAL and _has_str_member(t)):
        return lax_value(t, value, path)
    return lax_value(t, _decode(value), path)


def _convert_literal(t: FieldType, v: Any, path: str, exact: bool) -> Any:
    """``v`` as a value of ``t``, a Literal (Go's ``Type.convertLiteral``): null as None, a
    string as one of its strings, a bool as one of its bools, a number as one of its ints
    (an integral number, as ``int`` takes it) or else one of its floats (in a union's
    exact pass, a number that is not integral only). ``True`` is not ``1`` here."""
    if v is None:
        if t.has_literal(None):
            return None
    elif isinstance(v, str):
        if t.has_literal(v):
            return v
        if t.has_literal_type(str):
            raise ValueError(f"{path}: {quote(v)} is not one of {t}")
    elif isinstance(v, bool):
        if t.has_literal(v):
            return v
        if t.has_literal_type(bool):
            raise ValueError(f"{path}: {v!r} is not one of {t}")
    elif isinstance(v, (int, float)):
        n, f = _to_int(v), _to_float(v)
        if n is not None and t.has_literal(n):
            return n
        if f is not None and t.has_literal(f) and not (exact and f.is_integer()):
            return f
        if n is not None and (t.has_literal_type(int) or t.has_literal_type(float)):
            raise ValueError(f"{path}: {n} is not one of {t}")
        if f is not None and t.has_literal_type(float):
            raise ValueError(f"{path}: {f!r} is not one of {t}")
    raise ValueError(f"{path}: expected {t}, got {describe_value(v)}")


def _lax_literal(t: FieldType, v: Any) -> Any:
    """The value of ``t``, a Literal, that pydantic's lax mode takes ``v`` as (its
    ``LiteralLookup``), or :data:`_NOTHING`: a bool its bool; an int its int; a string its
    string; else the last of its floats, bools and None that Python finds equal to ``v``
    (``1 == 1.0 == True``); else, for a bool or an integral float, the int equal to it."""
    if isinstance(v, (bool, str)) or type(v) is int:
        if t.has_literal(v):
            return v
        if isinstance(v, str):
            return _NOTHING
    found = _NOTHING
    for w in t.values:
        if (w is None or isinstance(w, (bool, float))) and (w is None) == (v is None) and _equal(w, v):
            found = w
    if found is not _NOTHING:
        return found
    if isinstance(v, bool) or (isinstance(v, float) and math.isfinite(v) and v.is_integer()):
        if t.has_literal(int(v)):
            return int(v)
    return _NOTHING


def _equal(a: Any, b: Any) -> bool:
    """``a == b``, False where comparing fails (an object's ``__eq__``)."""
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - any failure is inequality, as pydantic's lookup takes it
        return False


def _literal_near(t: FieldType, v: Any) -> bool:
    """Whether ``v``, not one of ``t``'s values, is of a kind the Literal has (its error
    then says the value is not one of them)."""
    if isinstance(v, str):
        return t.has_literal_type(str)
    if isinstance(v, bool):
        return t.has_literal_type(bool) or t.has_literal_type(int)
    if isinstance(v, (int, float)):
        return (t.has_literal_type(int) and _literal_int(v) is not None) or (t.has_literal_type(float) and _to_float(v) is not None)
    return False


def _has_str_member(t: FieldType) -> bool:
    """Whether an Optional's members include ``str`` itself (``Optional[str]``,
    ``Optional[Union[int, str]]``)."""
    members = t.elem.members if t.elem.kind == UNION else (t.elem,)
    return any(m.kind == STR for m in members)


_NOTHING = object()


def _decode(text: str) -> Any:
    """The value DSPy's ``parse_value`` validates for a text: its JSON value, or (for a
    Markdown code fence around JSON or a Python literal) the array or object in it, or
    its value as a Python literal (:func:`_python_literal`), else the text itself. (DSPy
    decodes with json_repair, which also repairs broken JSON and finds JSON inside other
    text; that is not done here.)"""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    inner = _fenced(text.strip())
    if inner is not None:
        try:
            value = json.loads(inner)
        except (ValueError, RecursionError):
            value = _python_literal(inner)
        if isinstance(value, (list, dict)):
            return value
    value = _python_literal(text)
    return text if value is _NOTHING else value


def _fenced(text: str) -> str | None:
    """The text inside a Markdown code fence that is all of ``text`` (stripped): after the
    opening line (```` ``` ```` and a language), before the closing ```` ``` ```` and
    the newline and spaces before it; None when ``text`` is not one."""
    opening = _FENCE_OPENING.match(text)
    if opening is None or len(text) < opening.end() + 3 or not text.endswith("```"):
        return None
    inner = text[opening.end() : -3].rstrip(" \t")
    return inner[:-1] if inner.endswith("\n") else inner


def _python_literal(text: str) -> Any:
    """``text`` as ``ast.literal_eval`` reads it, or :data:`_NOTHING`, made JSON as
    json_repair makes the same text: a tuple or a set a list (in its order), a dict's key
    that is not a string its text. A literal of another kind (bytes, a complex number,
    ``...``) is none. Only for a text of at most :data:`_MAX_LITERAL_CHARS`."""
    if len(text) > _MAX_LITERAL_CHARS:
        return _NOTHING
    import ast

    source = text.lstrip(" \t")
    try:
        node = ast.parse(source, mode="eval").body
        # json_repair reads "(1, 2)" as a list, but not "1, 2": DSPy's literal_eval does, as tuples.
        tuples = isinstance(node, ast.Tuple) and source[node.col_offset : node.col_offset + 1] != "("
        return _literal(ast, node, source, tuples, 0)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return _NOTHING


def _literal(ast: Any, node: Any, source: str, tuples: bool, depth: int) -> Any:
    if depth > MAX_VALUE_DEPTH:
        raise ValueError("nested too deep")
    if isinstance(node, ast.Constant) and type(node.value) in (str, int, float, bool, type(None)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        operand = node.operand
        if isinstance(operand, ast.Constant) and type(operand.value) in (int, float):
            return operand.value if isinstance(node.op, ast.UAdd) else -operand.value
    elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        elements = [_literal(ast, e, source, tuples, depth + 1) for e in node.elts]
        return tuple(elements) if tuples and isinstance(node, ast.Tuple) else elements
    elif isinstance(node, ast.Dict):
        out = {}
        for k, v in zip(node.keys, node.values):
            if k is None:  # **mapping
                raise ValueError("not a literal")
            key = _literal(ast, k, source, tuples, depth + 1)
            if isinstance(key, (list, tuple, dict)):
                raise ValueError("not a literal")
            out[key if isinstance(key, str) else ast.get_source_segment(source, k)] = _literal(ast, v, source, tuples, depth + 1)
        return out
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "set" and not node.args and not node.keywords:
        return []
    raise ValueError("not a literal")


class _Unrepresentable(ValueError):
    """A value pydantic's lax mode takes that JSON (and Go) cannot carry: an int beyond
    int64, a float that is not finite, an ``Any`` value that is not JSON. It takes part
    in a union's choice as the value it would be (how well it fit: ``fit``), and is the
    error when chosen."""

    def __init__(self, message: str, fit: int) -> None:
        super().__init__(message)
        self.fit = fit


def lax_value(t: FieldType, v: Any, path: str) -> Any:
    """``v`` (a Python value: JSON's, a Python literal's, a DSPy prediction's made
    :func:`~dspgo_worker.plain.plain`) as pydantic's lax mode validates it as ``t``
    (``TypeAdapter(T).validate_python``), as JSON carries it (lists, tuples as lists, ints
    within int64, finite floats): ``str`` a string as it is; ``int`` an int, a bool, an
    integral float, or its text (:func:`_int_text`); ``float`` a number, a bool or a
    number's text (:func:`_float_text`); ``bool`` a bool, 0 or 1, or ``true``/``yes``/
    ``on``/``t``/``y``/``1`` and their opposites in any case; a Literal one of its values
    (a Literal of ints also a bool or float equal to one); lists and tuples arrays, dicts
    objects (keys as their type takes them, a later equal key winning), each element in
    lax mode; a model an object of its fields (:func:`_lax_model`); a date or datetime as
    :func:`~dspgo_worker.datetimes.lax_datetime` reads it; ``Any`` any JSON value; a
    Union the member pydantic's smart mode picks (:func:`_smart_union`). ``ValueError``
    naming ``path``; a value whose Unions would take more than :data:`_UNION_BUDGET`
    tries is refused."""
    _tries.left = _UNION_BUDGET
    _tries.filled = 0
    return _lax(t, v, path)[0]


#: How many members the Unions of one value may try, all nested Unions together: each
#: try of a member may try the members of the Unions inside it, so the tries grow as
#: their number to the power of the nesting.
_UNION_BUDGET = 100_000
#: One conversion's budgets, per thread: ``left``, the Union tries :func:`lax_value` may
#: still make; ``filled``, the values models' defaults filled in (:func:`_fill`).
_tries = threading.local()


def _lax(t: FieldType, v: Any, path: str) -> tuple[Any, int]:
    """:func:`lax_value`'s value and how well it fit (:data:`_EXACT`…)."""
    kind = t.kind
    if kind == ANY:  # pydantic takes anything for Any, scored as in strict mode
        try:
            return json_value(v, path, int_keys=True), _STRICT
        except ValueError as exc:
            raise _Unrepresentable(str(exc), _STRICT) from None
    if kind == OPTIONAL:
        return (None, _EXACT) if v is None else _lax(t.elem, v, path)
    if kind == UNION:
        return _smart_union(t, v, path)
    if kind in (DATE, DATETIME):
        moment = lax_datetime(kind, v)
        if moment is None:
            raise ValueError(f"{path}: {DATE_WANT if kind == DATE else DATETIME_WANT}, got {describe_value(v)}")
        return moment, _LAX
    if kind == STR:
        if isinstance(v, str):
            return v, _EXACT
    elif kind == LITERAL:
        value = _lax_literal(t, v)
        if value is not _NOTHING:
            return value, _EXACT
        if _literal_near(t, v):
            raise ValueError(f"{path}: {describe_value(v)} is not one of {t}")
    elif kind == INT:
        return _lax_int(v, path)
    elif kind == FLOAT:
        return _lax_float(v, path)
    elif kind == BOOL:
        if isinstance(v, bool):
            return v, _EXACT
        if isinstance(v, (int, float)) and v in (0, 1):
            return v == 1, _LAX
        if isinstance(v, str) and v.lower() in _BOOL_TEXT:
            return _BOOL_TEXT[v.lower()], _LAX
    elif kind in (LIST, TUPLE):
        if isinstance(v, (list, tuple)):
            return _lax_array(t, v, path)
    elif kind == DICT:
        if isinstance(v, dict):
            return _lax_dict(t, v, path)
    elif kind == MODEL:
        if isinstance(v, dict):
            return _lax_model(t, v, path)
    else:  # media and dspy.History: inputs only
        return _convert(t, v, path), _EXACT  # not convert: it would reset the count of values filled in
    raise ValueError(f"{path}: expected {t}, got {describe_value(v)}")


def _smart_union(t: FieldType, v: Any, path: str) -> tuple[Any, int]:
    """A Union's value in pydantic's smart mode: the first member that takes ``v`` as a
    value of its own type (:data:`_EXACT`), else the member that takes it best, the
    first of those."""
    best: tuple[Any, int] | None = None
    for m in t.members:
        _tries.left = getattr(_tries, "left", _UNION_BUDGET) - 1
        if _tries.left < 0:
            raise ValueError(f"{path}: the value is too complex to read as {t} (its Unions would try more than {_UNION_BUDGET} members)")
        try:
            value, fit = _lax(m, v, path)
        except _Unrepresentable as exc:
            value, fit = exc, exc.fit
        except ValueError:
            continue
        if best is None or fit > best[1]:
            best = (value, fit)
        if fit == _EXACT:
            break
    if best is None:
        raise ValueError(f"{path}: expected {t}, got {describe_value(v)}")
    if isinstance(best[0], _Unrepresentable):
        raise best[0]
    return best


class _Parts:
    """The fit of a list's, dict's or model's parts taken so far (their worst) and the
    first of them that JSON cannot carry, which is the container's error once every part
    has been taken (another part's error comes first)."""

    __slots__ = ("fit", "unrepresentable")

    def __init__(self, fit: int) -> None:
        self.fit = fit
        self.unrepresentable: _Unrepresentable | None = None

    def take(self, t: FieldType, v: Any, path: str) -> Any:
        try:
            value, fit = _lax(t, v, path)
        except _Unrepresentable as exc:
            self.unrepresentable = self.unrepresentable or exc
            value, fit = None, exc.fit
        self.fit = min(self.fit, fit)
        return value

    def done(self, value: Any) -> tuple[Any, int]:
        if self.unrepresentable is not None:
            raise _Unrepresentable(str(self.unrepresentable), self.fit)
        return value, self.fit


def _literal_int(v: Any) -> int | None:
    """An int Literal's candidate in ``v``: an int, a bool as 0 or 1, an integral float."""
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return int(v)
    return None


def _lax_int(v: Any, path: str) -> tuple[int, int]:
    fit = _LAX
    n: int | None = None
    if isinstance(v, bool):
        n = int(v)
    elif isinstance(v, int):
        n, fit = v, _EXACT
    elif isinstance(v, float):
        if math.isfinite(v) and v.is_integer() and -(2.0**63) < v < 2.0**63:  # pydantic's range for a float
            n = int(v)
    elif isinstance(v, str):
        n = _int_text(v)
    if n is None:
        raise ValueError(f"{path}: expected int, got {describe_value(v)}")
    if not _INT_MIN <= n <= _INT_MAX:
        raise _Unrepresentable(f"{path}: expected int, got {describe_value(v)}, beyond int64", fit)
    return n, fit


def _int_text(v: str) -> int | None:
    """An int's text as pydantic reads it (pydantic-core's ``str_as_int``): digits with a
    ``-``; else stripped, a ``+`` or ``-`` dropped, its leading zeros (and underscores
    among them) dropped, a fraction of zeros dropped, single underscores between digits
    dropped. (So ``0-5``, whose leading zero is dropped, is -5, as pydantic reads it.)"""
    if _INT_DIGITS.match(v):
        return _int_digits(v)
    s = v.strip(_SPACE)
    if s.startswith("+"):
        if s.startswith("+-"):
            return None
        s = s[1:]
    negative = s.startswith("-")
    if negative:
        if s.startswith(("--", "-+")):
            return None
        s = s[1:]
    zeros = _LEADING_ZEROS.match(s)
    if zeros is None:
        return None
    if zeros.group(1) is not None:  # zeros (and underscores) to the end: the last character stays
        s = s[-1:]
    elif zeros.end():  # then a digit or a minus sign, or a dot (after the last zero)
        s = s[zeros.end() - (s[zeros.end()] == ".") :]
    whole, dot, fraction = s.partition(".")
    if dot and fraction and fraction.strip("0") == "":
        s = whole
    if "_" in s and not (s.startswith("_") or s.endswith("_") or "__" in s):
        s = s.replace("_", "")
    s = "-" + s if negative else s
    return _int_digits(s) if _INT_DIGITS.match(s) else None


#: An int's text as JSON writes one (more or less): digits after an optional minus.
_INT_DIGITS = re.compile(r"-?[0-9]+\Z")
#: Leading zeros as pydantic-core's ``strip_leading_zeros`` finds them: a zero, then zeros
#: and underscores, either to the end (group 1) or before another character.
_LEADING_ZEROS = re.compile(r"(?=[0-9-])(?:0[0_]*(?:(\Z)|(?=[1-9.-])))?")


def _int_digits(s: str) -> int | None:
    try:
        return int(s)
    except ValueError:  # more digits than Python converts (4300)
        return None


def _lax_float(v: Any, path: str) -> tuple[float, int]:
    fit = _LAX
    f: float | None = None
    if isinstance(v, bool):
        f = float(v)
    elif isinstance(v, int):
        fit = _STRICT
        try:
            f = float(v)
        except OverflowError:
            f = None
    elif isinstance(v, float):
        f, fit = v, _EXACT
    elif isinstance(v, str):
        f = _float_text(v)
    if f is None:
        raise ValueError(f"{path}: expected float, got {describe_value(v)}")
    if not math.isfinite(f):
        raise _Unrepresentable(f"{path}: expected a finite float, got {describe_value(v)}", fit)
    return f, fit


def _float_text(v: str) -> float | None:
    """A float's text as pydantic reads it: stripped, Rust's float syntax (``1e3``,
    ``.5``, ``7.``, ``inf``, ``nan``); failing that, the text with its underscores dropped,
    if none starts or ends it and no two are together (not stripped then)."""
    f = _rust_float(v.strip(_SPACE))
    if f is None and "_" in v and not (v.startswith("_") or v.endswith("_") or "__" in v):
        f = _rust_float(v.replace("_", ""))
    return f


_FLOAT_TEXT = re.compile(r"[+-]?(?:inf|infinity|nan|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?)\Z", re.I)


def _rust_float(s: str) -> float | None:
    return float(s) if s.isascii() and _FLOAT_TEXT.match(s) else None


def _lax_array(t: FieldType, v: list[Any] | tuple[Any, ...], path: str) -> tuple[list[Any], int]:
    """A list or tuple of ``t`` from a list or tuple, each element in lax mode. A list
    takes a tuple, and a tuple a list, in lax mode only, as in pydantic."""
    fit = _EXACT if isinstance(v, list) == (t.kind == LIST) else _LAX
    if t.kind == LIST and t.elem.kind == ANY:  # pydantic-core does not validate a list[Any]'s items
        try:
            return json_value(v, path, int_keys=True), fit
        except ValueError as exc:
            raise _Unrepresentable(str(exc), fit) from None
    parts = _Parts(fit)
    if t.kind == LIST or t.variadic:
        return parts.done([parts.take(t.elem, e, f"{path}[{i}]") for i, e in enumerate(v)])
    if len(v) != len(t.members):
        raise ValueError(f"{path}: expected {t}, got an array of {len(v)}")
    return parts.done([parts.take(m, e, f"{path}[{i}]") for i, (m, e) in enumerate(zip(t.members, v))])


def _lax_dict(t: FieldType, v: dict[Any, Any], path: str) -> tuple[dict[Any, Any], int]:
    """A dict of ``t`` from a dict: each key as its type takes it in lax mode (a str key a
    string; an int key an int or its text; a Literal one of its values), each value in lax
    mode; of two keys that are the same int, the later's value stays, as in pydantic."""
    parts = _Parts(_EXACT)
    key_type = t.key if t.key is not None else _STR_TYPE
    out: dict[Any, Any] = {}
    for k, e in v.items():
        text = k if isinstance(k, str) else str(k)
        try:
            key = parts.take(key_type, k, path)
        except ValueError:
            if key_type.kind == STR:
                raise ValueError(f"{path}: expected {t}, got a key of type {type(k).__name__}") from None
            want = "an int" if key_type.kind == INT else f"one of {key_type}"
            raise ValueError(f"{path}: key {quote(text)} is not {want}") from None
        out[key] = parts.take(t.elem, e, f"{path}[{quote(text)}]")
    return parts.done(out)


def _lax_model(t: FieldType, v: dict[Any, Any], path: str) -> tuple[dict[str, Any], int]:
    """A model's value from a dict, as pydantic validates a model in lax mode: each of its
    fields in the model's order, in lax mode; one left out its default (a copy) when it
    has one, else null when it is Optional, else an error; keys that are not its fields
    dropped."""
    parts = _Parts(_LAX)
    out = {}
    for f in t.model.fields:
        out[f.name] = parts.take(f.type, v[f.name], f"{path}.{f.name}") if f.name in v else _left_out(t, f, path)
    return parts.done(out)


#: A dict's key type when it names none.
_STR_TYPE = FieldType(STR)
_STR_LIST = FieldType(LIST, _STR_TYPE)
_ANY_TYPE = FieldType(ANY)


def json_object(value: Any, where: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(f"{where} must be an object, got {describe_value(value)}")
    unknown = sorted(k for k in value if k not in keys)
    if unknown:
        raise invalid(f"{where} has unknown field {quote(unknown[0])} (known: {', '.join(keys)})")
    return value


def json_string(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid(f"{where}.{key} must be a string, got {describe_value(value)}")
    return value


#: What a dspy.History's messages convert as: a list of objects of any values.
_MESSAGES = FieldType(LIST, FieldType(DICT, FieldType(ANY), key=FieldType(STR)))


def _history(v: Any, path: str) -> dict[str, Any]:
    """A ``dspy.History`` value (Go's ``convertHistory``): an object whose one key,
    ``messages``, holds a list of objects."""
    want = f'expected {HISTORY}, an object {{"messages": [{{field: value, …}}, …]}}'
    return {"messages": _convert(_MESSAGES, _sole_key(v, "messages", HISTORY, want, path), path + ".messages")}


#: The keys of a DSPy content part that the value of its type names otherwise (Go's
#: ``partKeys``): an input_audio part's "format" is a dspy.Audio's "audio_format".
_PART_KEYS = {"input_audio": {"format": "audio_format"}}


def _media_value(v: Any, part: str, want: str, path: str) -> Any:
    """``v`` as an object when it is DSPy's text of one ``part`` (a saved program's demo),
    its keys as the value names them (:data:`_PART_KEYS`), else ``v`` itself (Go's
    ``mediaValue``)."""
    if isinstance(v, str) and v.startswith(CUSTOM_TYPE_START):
        try:
            obj = media_part(v, part, want)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        renames = _PART_KEYS.get(part, {})
        return {renames.get(k, k): e for k, e in obj.items()}
    return v


def _image(v: Any, path: str) -> dict[str, Any]:
    """A ``dspy.Image`` value (Go's ``convertImage``) as ``{"url": u}``: ``u`` itself, an
    object ``{"url": u}``, or DSPy's text of one image (a saved program's demo); ``u`` is
    checked by :func:`image_url_problem`."""
    v = _media_value(v, "image_url", IMAGE_WANT, path)
    if isinstance(v, dict):
        v = _sole_key(v, "url", IMAGE, IMAGE_WANT, path)
        path += ".url"
    if not isinstance(v, str):
        raise ValueError(f"{path}: {IMAGE_WANT}, got {describe_value(v)}")
    problem = image_url_problem(v)
    if problem:
        raise ValueError(f"{path}: {problem}")
    return {"url": v}


#: The keys of a ``dspy.File``'s object, in DSPy's order.
_FILE_KEYS = ("file_data", "filename")
#: The longest name of a ``dspy.File``, in bytes.
_MAX_FILENAME_BYTES = 255


def _file(v: Any, path: str) -> dict[str, Any]:
    """A ``dspy.File`` value (Go's ``convertFile``) as ``{"file_data": d}`` or
    ``{"file_data": d, "filename": n}``: ``d`` itself, such an object, or DSPy's text of
    one file (a saved program's demo); ``d`` is a data: URI, ``n`` 1 to 255 bytes without
    control characters. A ``file_id`` (a file stored with the model's provider under the
    worker's key, which a caller could name to read another's) is refused."""
    v = _media_value(v, "file", FILE_WANT, path)
    data_path = path
    if isinstance(v, str):
        fields = {"file_data": v}
    elif isinstance(v, dict):
        if "file_id" in v:
            raise ValueError(
                f"{path}: a file_id names a file stored with the model's provider under the worker's key, which a caller "
                "could name to read another's: send file_data, the file's data: URI"
            )
        fields = _string_fields(v, _FILE_KEYS, FILE, path)
        if "file_data" not in fields:
            raise ValueError(f'{path}: {FILE_WANT}, got an object without "file_data"')
        data_path += ".file_data"
    else:
        raise ValueError(f"{path}: {FILE_WANT}, got {describe_value(v)}")
    data = fields["file_data"]
    if not data.startswith("data:") or not is_plain(data):
        raise ValueError(
            f"{data_path}: a file is a data: URI (data:application/pdf;base64,…), with no space, control character, < or > "
            "(a local file's path is not read: give its data: URI)"
        )
    out = {"file_data": data}
    if "filename" in fields:
        name = fields["filename"]
        if not name or len(name.encode("utf-8", "surrogatepass")) > _MAX_FILENAME_BYTES or any(c < " " or c in "\x7f<>" for c in name):
            raise ValueError(f"{path}.filename: a file's name is 1 to {_MAX_FILENAME_BYTES} bytes without control characters, < or >")
        out["filename"] = name
    return out


def _string_fields(v: dict[str, Any], keys: tuple[str, ...], typ: str, path: str) -> dict[str, str]:
    """An image's, file's or sound's object (Go's ``mediaObject``): each key one of
    ``keys``, each value a string (or null, as if absent); the strings by key."""
    fields = {}
    for k in sorted(v):
        if k not in keys:
            raise ValueError(f"{path}: {quote(k)} is not a key of a {typ} (its keys: {', '.join(quote(x) for x in keys)})")
        if v[k] is not None and not isinstance(v[k], str):
            raise ValueError(f"{path}.{k}: expected a string, got {describe_value(v[k])}")
        if v[k] is not None:
            fields[k] = v[k]
    return fields


#: The longest format of a ``dspy.Audio``, in bytes.
_MAX_AUDIO_FORMAT_BYTES = 16
_BASE64_BODY = re.compile(r"[A-Za-z0-9+/]*\Z")
_AUDIO_FORMAT = re.compile(r"[a-z0-9]+\Z")


def _audio(v: Any, path: str) -> dict[str, Any]:
    """A ``dspy.Audio`` value (Go's ``convertAudio``) as ``{"data": d, "audio_format": f}``:
    a data URI ``data:audio/<f>;base64,<d>`` (an ``x-`` before ``f`` dropped, as DSPy
    drops it), such an object, or DSPy's text of one sound (an ``input_audio`` part,
    ``{"data", "format"}``); ``d`` is base64, ``f`` 1 to 16 lower-case letters and digits."""
    v = _media_value(v, "input_audio", AUDIO_WANT, path)
    if v is None:
        raise ValueError(f"{path}: {AUDIO_WANT}, got null")
    if isinstance(v, str):
        uri = _audio_data_uri(v)
        if uri is None:
            raise ValueError(
                f'{path}: a sound is a data:audio/<format>;base64,… URI or an object {{"data", "audio_format"}} '
                "(a local file's path is not read)"
            )
        fields = uri
    elif isinstance(v, dict):
        fields = _string_fields(v, ("audio_format", "data"), AUDIO, path)
    else:
        raise ValueError(f"{path}: {AUDIO_WANT}, got {describe_value(v)}")
    for k in ("data", "audio_format"):
        if k not in fields:
            raise ValueError(f"{path}: {AUDIO_WANT}, got an object without {quote(k)}")
    data, fmt = fields["data"], fields["audio_format"]
    body = data.rstrip("=")
    if not data or len(data) % 4 or len(data) - len(body) > 2 or not _BASE64_BODY.match(body):
        raise ValueError(f"{path}.data: a sound's data is its bytes in base64 (A–Z, a–z, 0–9, + and /, padded with =)")
    if len(fmt) > _MAX_AUDIO_FORMAT_BYTES or not _AUDIO_FORMAT.match(fmt):
        raise ValueError(
            f"{path}.audio_format: a sound's format is 1 to {_MAX_AUDIO_FORMAT_BYTES} lower-case letters and digits (wav, mp3)"
        )
    return {"data": data, "audio_format": fmt}


def _audio_data_uri(s: str) -> dict[str, str] | None:
    """``data:audio/<format>;…;base64,<data>`` read as DSPy reads it (Go's ``audioDataURI``)."""
    if not s.startswith("data:audio/"):
        return None
    header, sep, data = s[len("data:audio/") :].partition(",")
    if not sep or not header.endswith(";base64"):
        return None
    return {"data": data, "audio_format": header.partition(";")[0].removeprefix("x-")}


def _sole_key(v: Any, key: str, typ: str, want: str, path: str) -> Any:
    """The value of ``key`` in ``v``, an object whose one key it must be (of a value of
    type ``typ``); ``want`` says what was expected (Go's ``soleKey``)."""
    if not isinstance(v, dict):
        raise ValueError(f"{path}: {want}, got {describe_value(v)}")
    for k in sorted(v):
        if k != key:
            raise ValueError(f"{path}: {quote(k)} is not a key of a {typ} (its one key is {quote(key)})")
    if key not in v:
        raise ValueError(f"{path}: {want}, got an object without {quote(key)}")
    return v[key]
