"""A spec's demos (few-shot examples) validated and normalised, as Go's
``internal/program`` (demos.go) does."""

from __future__ import annotations

from .errors import invalid
from .fieldtypes import parse_type
from .kinds import KIND_CHAIN_OF_THOUGHT, KIND_REACT
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
    null is none, and then left out) only in a chain_of_thought or react spec, and
    ``trajectory`` (a string, ``""`` included: a loop's first step; null is none, and then
    left out) only in a react spec. Null or absent ``demos`` is none. (One without an input or an output is valid, and left out of the
    prompt, as DSPy leaves it out.)"""
    raw = spec.get("demos")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid(f"spec.demos must be an array, got {describe_value(raw)}")
    demos = []
    for i, raw_item in enumerate(raw):
        where, at = f"spec.demos[{i}]", f"demo {i}"
        item, demo = _demo(raw_item, where, at, inputs, outputs)
        reasoning = json_string(item, "reasoning", where)
        if reasoning:
            if kind not in (KIND_CHAIN_OF_THOUGHT, KIND_REACT):
                raise invalid(f"{at}: reasoning is only for {KIND_CHAIN_OF_THOUGHT} and {KIND_REACT} programs (this one is {kind})")
            demo["reasoning"] = reasoning
        trajectory = item.get("trajectory")
        if trajectory is not None:
            if kind != KIND_REACT:
                raise invalid(f"{at}: trajectory is only for {KIND_REACT} programs (this one is {kind})")
            demo["trajectory"] = json_string(item, "trajectory", where)
        demos.append(demo)
    return demos


#: The outputs of a dspy.ReAct step, as a react spec's step demos convert them (Go's
#: ``stepFields``): the tool's name a str, as the tools are a run's.
_STEP_FIELDS = (("next_thought", "str"), ("next_tool_name", "str"), ("next_tool_args", "dict[str, Any]"))


def normalize_step_demos(spec: dict[str, Any], kind: str, inputs: list[Field]) -> list[dict[str, Any]]:
    """A react spec's ``step_demos`` validated and normalised, as Go's
    ``program.normalizeStepDemos``: as :func:`normalize_demos` does a spec's demos, named
    ``step demo i``, their outputs a step's (``next_thought``, ``next_tool_name``,
    ``next_tool_args``), with a ``trajectory`` and without reasoning. Null, absent or
    ``[]`` is none; any on another kind is ``invalid_argument``."""
    from .signature import Field

    raw = spec.get("step_demos")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid(f"spec.step_demos must be an array, got {describe_value(raw)}")
    if not raw:
        return []
    if kind != KIND_REACT:
        raise invalid(f'step_demos are for kind "{KIND_REACT}" only (this spec\'s kind is {quote(kind)})')
    outputs = [Field(name, parse_type(t, {}), "") for name, t in _STEP_FIELDS]
    demos = []
    for i, raw_item in enumerate(raw):
        where, at = f"spec.step_demos[{i}]", f"step demo {i}"
        item, demo = _demo(raw_item, where, at, inputs, outputs)
        if json_string(item, "reasoning", where):
            names = ", ".join(quote(f.name) for f in outputs)
            raise invalid(f"{at}: a step has no reasoning (it gives {names})")
        if item.get("trajectory") is not None:
            demo["trajectory"] = json_string(item, "trajectory", where)
        demos.append(demo)
    return demos


def _demo(
    raw: Any, where: str, at: str, inputs: list[Field], outputs: list[Field]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One demo of a list (``where`` its place in the spec, ``at`` its name in errors):
    its object (``{}`` for null; no key but ``inputs``, ``outputs``, ``reasoning`` and
    ``trajectory``), and the demo of its inputs and outputs converted
    (:func:`demo_values`), which the caller completes."""
    item = {} if raw is None else json_object(raw, where, ("inputs", "outputs", "reasoning", "trajectory"))
    demo = {
        "inputs": demo_values(item, "inputs", where, at, "input", inputs),
        "outputs": demo_values(item, "outputs", where, at, "output", outputs),
    }
    return item, demo


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
