"""pydantic's constraints on a signature's field (``dspy.OutputField(ge=0, le=1)``),
which DSPy 3.4.1 shows the language model and checks no value against: checked and
normalized as Go's ``internal/program`` (constraints.go) does, with the same messages
(protocol/testdata/constraints.json), and written as DSPy writes them."""

from __future__ import annotations

import math
import re

from .errors import invalid
from .fieldtypes import DATE, FLOAT, INT, OPTIONAL
from .protocol import quote
from .values import describe_value, json_object, json_string

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from typing import Any

    from .fieldtypes import FieldType

#: What each constraint's value takes, and DSPy's words for it (its
#: ``PYDANTIC_CONSTRAINT_MAP``), by name in DSPy's order.
KINDS = {
    "gt": ("number", "greater than: "),
    "ge": ("number", "greater than or equal to: "),
    "lt": ("number", "less than: "),
    "le": ("number", "less than or equal to: "),
    "min_length": ("length", "minimum length: "),
    "max_length": ("length", "maximum length: "),
    "multiple_of": ("number", "a multiple of the given number: "),
    "allow_inf_nan": ("bool", "allow 'inf', '-inf', 'nan' values: "),
}
_WANT = {"number": "a number", "length": "a non-negative integer", "bool": "a bool"}
_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?\Z")
_INT64 = 1 << 63


def normalize_constraints(raw: Any, at: str, t: FieldType, field: str) -> list[dict[str, str]]:
    """A field object's ``constraints`` (``raw``, as the spec holds them; ``at``: where the
    object is; ``t``: the field's type; ``field`` names the field, ``output field
    "score"``): a list of ``{"name", "value"}`` in the order given, each value as the text
    Python prints for it ("0", "1.0", "False"); empty for none (null or absent)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid(f"{at}.constraints must be an array, got {describe_value(raw)}")
    out: list[dict[str, str]] = []
    for i, c in enumerate(raw):
        where = f"{at}.constraints[{i}]"
        c = {} if c is None else json_object(c, where, ("name", "value"))
        name = json_string(c, "name", where)
        if name not in KINDS:
            raise invalid(f"{field}: constraint {quote(name)} is unknown (known: {', '.join(KINDS)})")
        if any(prev["name"] == name for prev in out):
            raise invalid(f"{field}: constraint {quote(name)} is given twice")
        try:
            text = _text(KINDS[name][0], c.get("value"))
            _applies(name, text, t)
        except ValueError as exc:
            raise invalid(f"{field}: constraint {quote(name)}: {exc}") from None
        out.append({"name": name, "value": text})
    return out


def _text(want: str, v: Any) -> str:
    """``v`` as Python prints the value of a constraint that takes ``want``: an int, a float
    (a length's integral float an int), the text of a JSON number read as JSON reads it, or
    a bool or its normalized text, "True" or "False" (Go's ``constraintText``)."""
    expected = f"expected {_WANT[want]}, got"
    if v is None:
        raise ValueError(f"{expected} null")
    if want == "bool" or isinstance(v, bool):
        if want == "bool" and v in ("True", "False"):
            return str(v)  # normalized already
        if want != "bool" or not isinstance(v, bool):
            raise ValueError(f"{expected} {describe_value(v)}")
        return str(v)
    if isinstance(v, str) and _JSON_NUMBER.match(v):
        if not any(ch in v for ch in ".eE"):
            # At most 19 digits before int(), which refuses more than 4,300.
            if len(v.lstrip("-")) > 19 or not -_INT64 <= int(v) < _INT64:
                raise ValueError(f"{expected} number {v}, beyond int64")
            v = int(v)
        else:
            if math.isinf(float(v)):
                raise ValueError(f"{expected} number {v}, beyond a float")
            v = float(v)
    if isinstance(v, int):
        if not -_INT64 <= v < _INT64:
            raise ValueError(f"{expected} number {v}, beyond int64")
    elif isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"{expected} {describe_value(v)}")
        if want != "length":
            return repr(v)
        if not (v.is_integer() and abs(v) < 2**53):
            raise ValueError(f"{expected} {v!r}")
        v = int(v)
    else:
        raise ValueError(f"{expected} {describe_value(v)}")
    if want == "length" and v < 0:
        raise ValueError(f"{expected} {v}")
    return str(v)


def _applies(name: str, text: str, t: FieldType) -> None:
    """The rules pydantic applies when DSPy builds the signature, which refuses the class
    otherwise (Go's ``constraintApplies``): an int field's bounds and multiple are
    integers, a date field takes no numeric bound, allow_inf_nan=True is for a float
    field (each in an Optional too)."""
    if t.kind == OPTIONAL:
        t = t.elem
    bound = name in ("gt", "ge", "lt", "le")
    if t.kind == INT and (bound or name == "multiple_of"):
        if not float(text).is_integer():
            raise ValueError(f"an int field's is an integer (pydantic's rule), got {text}")
    elif t.kind == DATE and bound:
        raise ValueError(f"a {t} field's bound is a date, which a constraint of dspgo's is not")
    elif name == "allow_inf_nan" and text == "True" and t.kind != FLOAT:
        raise ValueError("the value True is for a float field (pydantic's rule)")


def constraints_line(constraints: list[dict[str, str]]) -> str:
    """The line DSPy 3.4.1 writes under a field's line of the system message
    (``get_field_description_string``): "Constraints: greater than or equal to: 0, …";
    "" for none."""
    if not constraints:
        return ""
    return "Constraints: " + ", ".join(KINDS[c["name"]][1] + c["value"] for c in constraints)


def python_value(text: str) -> Any:
    """A normalized constraint's value as the Python value whose ``str`` it is (the
    keyword argument the dspy engine gives ``dspy.InputField``/``OutputField``)."""
    if text in ("True", "False"):
        return text == "True"
    if any(ch in text for ch in ".e"):  # "1.0", "1e-05": a float (finite: never "inf")
        return float(text)
    return int(text)
