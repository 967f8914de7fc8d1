"""Values of field types: inputs converted to their declared types, and what a language
model produced (text, or values already typed) parsed into a field's type.

The same rules as Go's ``internal/program`` (types.go, ``Type.Convert``): errors name the
field (``input n: expected int, got string "one"``).
"""

from __future__ import annotations

import json
import math
import re

from .canonical import EXACT
from .datetimes import DATE_WANT, DATETIME_WANT, convert_datetime, parse_datetime
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
        return "number " + json.dumps(v)
    if isinstance(v, str):
        return "string " + quote(_cut(v))
    if isinstance(v, dict):
        return "object"
    if isinstance(v, (list, tuple)):
        return "array"
    return type(v).__name__


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


#: How deep an Any value may nest, as a frame's JSON (docs/protocol.md, "Frames").
MAX_VALUE_DEPTH = 128
_INT_KEY = re.compile(r"[+-]?[0-9]+\Z")


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
        return None if v is None else convert(t.elem, v, path, exact)
    if kind == UNION:
        return _union(t, v, path, exact, convert)
    if v is None:
        raise ValueError(f"{path}: expected {t}, got null")
    if kind == LITERAL and t.ints:
        n = _to_int(v)
        if n is None:
            raise ValueError(f"{path}: expected {t}, got {describe_value(v)}")
        if n not in t.values:
            raise ValueError(f"{path}: {n} is not one of {t}")
        return n
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
    if kind == MODEL:
        return _model(t, v, path, lambda ft, e, at: convert(ft, e, at, exact))
    raise ValueError(f"{path}: unsupported type {t}")


def _union(t: FieldType, v: Any, path: str, exact: bool, lenient: Converter) -> Any:
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
    path)``, an Optional one left out null, any other left out an error; keys that are not
    its fields are dropped."""
    if not isinstance(v, dict):
        raise ValueError(f"{path}: expected {t}, got {describe_value(v)}")
    out = {}
    for f in t.model.fields:
        if f.name in v:
            out[f.name] = field(f.type, v[f.name], f"{path}.{f.name}")
        elif f.type.kind == OPTIONAL:
            out[f.name] = None
        else:
            raise ValueError(f"{path}: expected {t}, got an object without {quote(f.name)}")
    return out


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
#: What an integer Literal's text is read as first.
_INT_TYPE = FieldType(INT)


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
    or differently-cased Literal value, JSON (optionally in a code fence) for lists, tuples,
    dicts and models (a model's fields then read as a dict's values are). The text of an
    Any, Optional or Union is first decoded as :func:`_decode_text` says (a typed string stays a string); a Union then takes the
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
    if kind in (DATE, DATETIME):
        raise ValueError(f"{path}: {DATE_WANT if kind == DATE else DATETIME_WANT}, got {describe_value(value)}")
    if kind == LITERAL and not t.ints:
        raise ValueError(f"{path}: expected one of {t}, got {describe_value(value)}")
    if kind in (INT, FLOAT, BOOL, LITERAL):
        return convert(t, value, path)
    if kind in (LIST, TUPLE):
        return _array(t, value, path, parse_output)
    if kind == DICT:
        return _dict(t, value, path, parse_output, _lenient_key)
    if kind == MODEL:
        return _model(t, value, path, parse_output)
    raise ValueError(f"{path}: unsupported type {t}")


def _lenient_key(t: FieldType, k: Any, path: str) -> tuple[Any, str]:
    """A key of a dict output: as :func:`_strict_key`, and for ``dict[int, V]`` any text an
    int output takes (``" 1 "``, ``"1.0"``), for a Literal any text a Literal output takes."""
    kind = key_kind(t)
    if isinstance(k, str) and kind in (INT, LITERAL) and t.key is not None:
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
    if kind == LITERAL and t.ints:
        try:
            whole = _parse_text(_INT_TYPE, s, path)
        except ValueError:
            whole = None
        if whole not in t.values:
            raise ValueError(f"{path}: {shown} is not one of {t}")
        return whole
    if kind == LITERAL:
        if s in t.values:
            return s
        folded = [v for v in t.values if isinstance(v, str) and v.casefold() == s.casefold()]
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
            whole = _to_int(float(s))
            if whole is not None:
                return whole
        raise ValueError(f"{path}: expected int, got {shown}")
    if kind == FLOAT:
        if _FLOAT_TEXT.match(s):
            f = _to_float(float(s))
            if f is not None:
                return f
        raise ValueError(f"{path}: expected float, got {shown}")
    if kind in (DATE, DATETIME):
        moment = parse_datetime(kind, s)
        if moment is None:
            raise ValueError(f"{path}: {DATE_WANT if kind == DATE else DATETIME_WANT}, got {shown}")
        return moment
    # list, tuple, dict or model: JSON
    try:
        value = json.loads(s)
    except ValueError:
        raise ValueError(f"{path}: expected {t} as JSON, got {shown}") from None
    return parse_output(t, value, path)



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
    return {"messages": convert(_MESSAGES, _sole_key(v, "messages", HISTORY, want, path), path + ".messages")}


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
