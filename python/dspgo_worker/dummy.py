"""The dummy language model, as Go's ``internal/program`` (dummy.go): each output derived
from a hash of the spec, the field and the inputs (docs/protocol.md)."""

from __future__ import annotations

from .canonical import canonical_json, sha256
from .datetimes import dummy_datetime
from .errors import invalid
from .fieldtypes import BOOL, DATE, DATETIME, DICT, FLOAT, INT, LIST, LITERAL, MODEL, OPTIONAL, TUPLE, UNION, FieldType
from .values import key_kind

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from .spec import CompiledSpec

def dummy_outputs(compiled: CompiledSpec, inputs: dict[str, Any]) -> dict[str, Any]:
    """The dummy language model's outputs of ``compiled`` for converted ``inputs`` (docs/protocol.md).

    Each output's seed is the canonical JSON of ``{"field", "inputs", "spec_hash"}``:
    the keys come in that order, so the inputs' canonical JSON is made once and put
    between each field's prefix and the hash's suffix.
    """
    try:
        canon_inputs = canonical_json(inputs)
    except (TypeError, ValueError) as exc:
        raise invalid(f"inputs: {exc}") from None
    parts = compiled.dummy_parts
    if parts is None:
        suffix = b',"spec_hash":' + canonical_json(compiled.hash) + b"}"
        parts = compiled.dummy_parts = [
            (f, b'{"field":' + canonical_json(f.name) + b',"inputs":', suffix) for f in compiled.outputs
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
        return [dummy_value(t.elem, _child(digest, i), field) for i in range(_count(t.elem, digest))]
    if kind == TUPLE:
        return [dummy_value(m, _child(digest, i), field) for i, m in enumerate(t.members)]
    if kind == DICT:
        count = _count(t.elem, digest)
        keys_of = key_kind(t)
        keys: Iterable[object]
        if keys_of == INT:
            keys = range(count)
        elif keys_of == LITERAL and t.key is not None:
            keys = t.key.values[:count]
        else:
            keys = [f"key_{i}" for i in range(count)]
        return {k: dummy_value(t.elem, _child(digest, i), field) for i, k in enumerate(keys)}
    if kind == OPTIONAL:
        return None if n % 4 == 0 else dummy_value(t.elem, _child(digest, 0), field)
    if kind == UNION:
        return dummy_value(t.members[n % len(t.members)], _child(digest, 0), field)
    if kind in (DATE, DATETIME):
        return dummy_datetime(kind, n)
    if kind == MODEL:
        return {f.name: dummy_value(f.type, _child(digest, i), field) for i, f in enumerate(t.model.fields)}
    h = digest[:8].hex()
    return f"{field} {h[:8]} {h[8:16]}"


def _count(elem: FieldType, digest: bytes) -> int:
    """How many elements a dummy list or dict of ``elem`` has: ``digest[4] mod 3 + 1``, or
    one when ``elem`` holds a model (whose values may be large; Go's ``dummyCount``)."""
    return 1 if elem.holds_model() else digest[4] % 3 + 1


def _child(digest: bytes, i: int) -> bytes:
    return sha256(digest + bytes([i & 0xFF])).digest()  # the byte i, as Go's byte(i) wraps
