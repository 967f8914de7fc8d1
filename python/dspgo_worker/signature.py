"""Signatures: their fields, and DSPy's string form parsed as Go's ``internal/program``
(spec.go, ``ParseSignature``) parses it."""

from __future__ import annotations

import re

from .errors import invalid
from .fieldtypes import FieldType
from .protocol import quote
from .values import describe_value, json_object, json_string

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from typing import Any

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def is_identifier(name: Any) -> bool:
    """True for ``[A-Za-z_][A-Za-z0-9_]*`` (ASCII only, as in Go)."""
    return isinstance(name, str) and _IDENTIFIER.match(name) is not None


class Field:
    __slots__ = ("name", "type", "description")

    def __init__(self, name: str, type: FieldType, description: str) -> None:
        self.name = name
        self.type = type
        self.description = description

    def normalized(self) -> dict[str, Any]:
        return {"name": self.name, "type": str(self.type), "description": self.description}



def field_list(obj: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"{where}.{key} must be an array, got {describe_value(value)}")
    out = []
    for i, item in enumerate(value):
        at = f"{where}.{key}[{i}]"
        item = {} if item is None else json_object(item, at, ("name", "type", "description"))
        out.append({k: json_string(item, k, at) for k in ("name", "type", "description")})
    return out


def parse_signature(s: str) -> dict[str, Any]:
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
    # "-> joke": a program of no inputs, as DSPy takes it; the outputs may not be none.
    inputs = _signature_fields(left, "inputs", s) if left.strip() else []
    signature = {"inputs": inputs, "outputs": _signature_fields(right, "outputs", s)}
    from .spec import CompiledSpec  # (spec imports this module)

    CompiledSpec({"signature": signature})  # validates names and types
    return signature


def _signature_fields(side: str, which: str, whole: str) -> list[dict[str, Any]]:
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

