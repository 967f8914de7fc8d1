"""Python objects that DSPy code produced, as the JSON values dspgo's types describe.

A custom module's ``forward`` returns what its predictors parsed: a pydantic model for a
field a class-based signature types as one, a list of them, an ``Enum`` member, a
``datetime.date``, a dataclass, a set. :func:`plain` makes each the JSON value DSPy
itself would write for it (``model_dump(mode="json")``, as DSPy's adapters serialize a
model), so an output declared ``dict[str, Any]``, ``list[dict[str, Any]]``, ``Any`` or
``str`` (a date's ISO text, an Enum's value) takes it. A value of any other class is
left as it is, for the output's conversion to refuse with its class's name.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from typing import Any

from .values import MAX_VALUE_DEPTH


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` with every object DSPy code makes turned into JSON values: a pydantic
    model (``dspy.Image`` and ``dspy.History`` included) its ``model_dump(mode="json")``,
    a dataclass its fields, an ``Enum`` member its value, a date, time or datetime its
    ``isoformat()``, a tuple a list, a set a list (sorted when its members sort).
    Strings, numbers, booleans and None stay as they are, as does any object of another
    class; nesting deeper than :data:`~dspgo_worker.values.MAX_VALUE_DEPTH` is left for
    the conversion to refuse (a cycle ends there too)."""
    if value is None or isinstance(value, (str, bool, int, float)) or depth > MAX_VALUE_DEPTH:
        return value
    deeper = depth + 1
    if isinstance(value, dict):
        return {k: plain(v, deeper) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, deeper) for v in value]
    if isinstance(value, (set, frozenset)):
        members = [plain(v, deeper) for v in value]
        try:
            return sorted(members)
        except TypeError:  # members of kinds that do not compare
            return members
    if isinstance(value, enum.Enum):
        return plain(value.value, deeper)
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, deeper)
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            dumped = dump(mode="json")
        except Exception:  # noqa: BLE001 - a model_dump that is not pydantic's, or fails
            return value
        return plain(dumped, deeper)
    return value
