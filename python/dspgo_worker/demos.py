"""A spec's demos (few-shot examples) validated and normalised, as Go's
``internal/program`` (demos.go) does."""

from __future__ import annotations

from .errors import invalid
from .kinds import KIND_CHAIN_OF_THOUGHT
from .protocol import quote
from .values import convert_field, describe_value, json_object, json_string

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from typing import Any

    from .signature import Field

def normalize_demos(spec: dict[str, Any], kind: str, inputs: list[Field], outputs: list[Field]) -> list[dict[str, Any]]:
    """A spec's demos validated against its fields and normalised, as Go's
    ``program.normalizeDemos`` (docs/protocol.md, "Demos"; the messages are checked
    against protocol/testdata/demos.json): each ``{"inputs", "outputs"}`` holds values of
    its fields (:func:`demo_values`) and no other name; ``reasoning`` (a string; empty or
    null is none, and then left out) only in a chain_of_thought spec. Null or absent
    ``demos`` is none. (One without an input or an output is valid, and left out of the
    prompt, as DSPy leaves it out.)"""
    raw = spec.get("demos")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid(f"spec.demos must be an array, got {describe_value(raw)}")
    demos = []
    for i, item in enumerate(raw):
        where = f"spec.demos[{i}]"
        item = {} if item is None else json_object(item, where, ("inputs", "outputs", "reasoning"))
        at = f"demo {i}"
        demo: dict[str, Any] = {
            "inputs": demo_values(item, "inputs", where, at, "input", inputs),
            "outputs": demo_values(item, "outputs", where, at, "output", outputs),
        }
        reasoning = json_string(item, "reasoning", where)
        if reasoning:
            if kind != KIND_CHAIN_OF_THOUGHT:
                raise invalid(f"{at}: reasoning is only for {KIND_CHAIN_OF_THOUGHT} programs (this one is {kind})")
            demo["reasoning"] = reasoning
        demos.append(demo)
    return demos


def demo_values(item: dict[str, Any], key: str, where: str, at: str, side: str, fields: list[Field]) -> dict[str, Any]:
    """One side of a demo converted: each field it holds converted to its type (as a
    run's input, by :func:`convert_field`) or null, in the fields' order, then no name
    that is not a field (the first in sorted order is named). A field left out or null
    makes the demo one that DSPy shows as incomplete, as a bootstrapped demo often is."""
    values = item.get(key)
    if values is None:
        values = {}
    elif not isinstance(values, dict):
        raise invalid(f"{where}.{key} must be an object, got {describe_value(values)}")
    out = {}
    for f in fields:
        if f.name not in values:
            continue
        v = values[f.name]
        try:
            out[f.name] = None if v is None else convert_field(f.type, v, f"{at}: {side} {f.name}")
        except ValueError as exc:
            raise invalid(str(exc)) from None
    extra = sorted(name for name in values if name not in out)
    if extra:
        names = ", ".join(quote(f.name) for f in fields)
        raise invalid(f"{at}: {side} {quote(extra[0])} is not in the signature (the signature's {side}s are {names})")
    return out
