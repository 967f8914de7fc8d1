"""The ``response_format`` of the request DSPy 3.4.1's JSONAdapter sends, which its
ChatAdapter falls back to when a reply does not parse (:func:`json_response_format`).

DSPy asks for one only when its model catalog (the snapshot of LiteLLM's model map DSPy
packages, read with ``LITELLM_LOCAL_MODEL_COST_MAP``, which the dspy engine sets) says
the model takes ``response_format``: structured outputs (``json_schema``, the outputs'
schema made strict) when it supports a response schema, else JSON mode
(``{"type": "json_object"}``); a model the catalog does not know, a local one, gets none.
The model names below are that catalog's, for DSPy's ``openai/<model>`` route (the one
both engines take); tests compare them with DSPy's own answer.
"""

from __future__ import annotations

import re

from .fieldtypes import DICT

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from typing import Any

    from .spec import CompiledSpec

#: The models DSPy 3.4.1's catalog (LiteLLM 1.105.0's model map) says support a response
#: schema: JSONAdapter asks them for structured outputs.
SCHEMA_MODELS = frozenset({
    'chat-latest', 'daybreak-blue-latest', 'daybreak-red-latest', 'ft:gpt-4.1-2025-04-14',
    'ft:gpt-4.1-mini-2025-04-14', 'ft:gpt-4.1-nano-2025-04-14', 'ft:gpt-4o-2024-08-06', 'ft:gpt-4o-2024-11-20',
    'ft:gpt-4o-mini-2024-07-18', 'ft:o4-mini-2025-04-16', 'gpt-4.1', 'gpt-4.1-2025-04-14', 'gpt-4.1-mini',
    'gpt-4.1-mini-2025-04-14', 'gpt-4.1-nano', 'gpt-4.1-nano-2025-04-14', 'gpt-4o', 'gpt-4o-2024-08-06',
    'gpt-4o-2024-11-20', 'gpt-4o-mini', 'gpt-4o-mini-2024-07-18', 'gpt-4o-mini-search-preview',
    'gpt-4o-search-preview', 'gpt-5', 'gpt-5-2025-08-07', 'gpt-5-chat', 'gpt-5-chat-latest', 'gpt-5-codex',
    'gpt-5-mini', 'gpt-5-mini-2025-08-07', 'gpt-5-nano', 'gpt-5-nano-2025-08-07', 'gpt-5-pro', 'gpt-5-pro-2025-10-06',
    'gpt-5-search-api', 'gpt-5-search-api-2025-10-14', 'gpt-5.1', 'gpt-5.1-2025-11-13', 'gpt-5.1-chat-latest',
    'gpt-5.1-codex', 'gpt-5.1-codex-max', 'gpt-5.1-codex-mini', 'gpt-5.2', 'gpt-5.2-2025-12-11', 'gpt-5.2-chat-latest',
    'gpt-5.2-codex', 'gpt-5.2-pro', 'gpt-5.2-pro-2025-12-11', 'gpt-5.3-chat-latest', 'gpt-5.3-codex', 'gpt-5.4',
    'gpt-5.4-2026-03-05', 'gpt-5.4-mini', 'gpt-5.4-mini-2026-03-17', 'gpt-5.4-nano', 'gpt-5.4-nano-2026-03-17',
    'gpt-5.5', 'gpt-5.5-2026-04-23', 'gpt-5.6', 'gpt-5.6-cyber', 'gpt-5.6-luna', 'gpt-5.6-sol', 'gpt-5.6-terra',
    'gpt-6-astra', 'gpt-6-luna', 'gpt-6-sol', 'gpt-6.1-sol', 'gpt-daybreak-blue-latest', 'gpt-daybreak-red-latest',
    'o1', 'o1-2024-12-17', 'o1-pro', 'o1-pro-2025-03-19', 'o3', 'o3-2025-04-16', 'o3-mini', 'o3-mini-2025-01-31',
    'o3-pro', 'o3-pro-2025-06-10', 'o4-mini', 'o4-mini-2025-04-16',
})
#: The models it says take ``response_format`` (they call functions) but support no
#: response schema: JSONAdapter asks them for JSON mode.
JSON_MODE_MODELS = frozenset({
    'computer-use-preview', 'ft:gpt-4-0613', 'gpt-3.5-turbo', 'gpt-3.5-turbo-0125', 'gpt-3.5-turbo-1106', 'gpt-4',
    'gpt-4-0613', 'gpt-4-1106-preview', 'gpt-4-turbo', 'gpt-4-turbo-2024-04-09', 'gpt-4o-2024-05-13',
    'gpt-4o-audio-preview-2024-12-17', 'gpt-4o-audio-preview-2025-06-03', 'gpt-4o-mini-audio-preview-2024-12-17',
    'gpt-4o-mini-realtime-preview-2024-12-17', 'gpt-5.4-pro', 'gpt-5.4-pro-2026-03-05', 'gpt-5.5-pro',
    'gpt-5.5-pro-2026-04-23', 'gpt-audio', 'gpt-audio-1.5', 'gpt-audio-2025-08-28', 'gpt-audio-mini',
    'gpt-audio-mini-2025-12-15', 'gpt-live-1', 'gpt-realtime', 'gpt-realtime-1.5', 'gpt-realtime-2',
    'gpt-realtime-2.1', 'gpt-realtime-2.1-mini', 'gpt-realtime-2025-08-28', 'gpt-realtime-mini',
    'gpt-realtime-mini-2025-12-15',
})
#: The catalog's model families (its ``fallback_generalizations`` rules that state
#: capabilities) whose models not listed above support both: Claude and Gemini names.
SCHEMA_FAMILIES = (
    re.compile(r"claude-[a-z]+-\d+(?:[-.]\d+)?(?:-\d{8})?"),
    re.compile(
        r"gemini-(?!.*(?:-tts|-image|-live|-audio|-embedding|-computer-use|-robotics|-transcribe|-translate))"
        r"(?:2[.-][5-9]|[3-9](?:[.-]\d{1,2})?)-(?:pro|flash)(?:-lite)?(?![a-z])"
    ),
)
#: The name DSPy gives the outputs' structured-output schema.
SCHEMA_NAME = "DSPyProgramOutputs"


def model_support(model: str) -> str | None:
    """What DSPy 3.4.1's catalog says ``model`` (an ``openai/`` prefix aside, as DSPy's
    route drops it) takes: ``"json_schema"`` (a response schema), ``"json_object"``
    (``response_format``, no schema), or None (neither: not in the catalog)."""
    name = model[len("openai/"):] if model.startswith("openai/") else model
    if name in SCHEMA_MODELS:
        return "json_schema"
    if name in JSON_MODE_MODELS:
        return "json_object"
    if any(family.search(name) for family in SCHEMA_FAMILIES):
        return "json_schema"
    return None


def json_response_format(compiled: CompiledSpec, model: str) -> dict[str, Any] | None:
    """The ``response_format`` DSPy 3.4.1's JSONAdapter sends for ``compiled`` to
    ``model`` (``_prepare_response_format``, as DSPy's LM client writes it): None when
    the model takes none (:func:`model_support`); JSON mode when it supports no response
    schema, or an output is a ``dict`` (an open-ended mapping, which structured outputs
    cannot declare); else structured outputs, ``{"type": "json_schema", "json_schema":
    {"name": "DSPyProgramOutputs", "schema": …, "strict": true}}`` (:func:`outputs_schema`).
    Made once per compiled spec and model."""
    support = model_support(model)
    if support is None:
        return None
    if support == "json_object" or any(f.type.kind == DICT for f in compiled.outputs):
        return {"type": "json_object"}
    key = "json_response_format"
    made: dict[str, Any] | None = compiled.extras.get(key)
    if made is None:
        made = compiled.extras[key] = {
            "type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "schema": outputs_schema(compiled), "strict": True},
        }
    return made


def outputs_schema(compiled: CompiledSpec) -> dict[str, Any]:
    """The outputs' schema as DSPy 3.4.1 sends it for structured outputs: pydantic's schema
    of a model of the outputs (``create_model("DSPyProgramOutputs", extra="forbid")``, each
    output its type and default, no description, titled as pydantic titles a field; keys
    sorted as pydantic sorts them), with DSPy's ``enforce_required`` then its LM client's
    ``_strict_json_schema`` applied (:func:`_enforce_required`, :func:`_strict`)."""
    defs: dict[str, Any] = {}
    properties = {f.name: f.type._field_schema(f.name, "", defs, f.default) for f in compiled.outputs}
    schema: dict[str, Any] = {"additionalProperties": False, "properties": properties}
    required = [f.name for f in compiled.outputs if f.default is None]  # an Optional output has no default either
    if required:
        schema["required"] = required
    schema.update({"title": SCHEMA_NAME, "type": "object"})
    if defs:
        schema["$defs"] = defs
    schema = _pydantic_sorted(schema)
    _enforce_required(schema)
    strict: dict[str, Any] = _strict(schema, schema)
    return strict


def _pydantic_sorted(value: Any, parent: str | None = None) -> Any:
    """``value`` with its objects' keys sorted, recursively, but for the keys of a
    ``properties`` or a ``default`` (pydantic's ``GenerateJsonSchema.sort``)."""
    if isinstance(value, dict):
        keys = value if parent in ("properties", "default") else sorted(value)
        return {k: _pydantic_sorted(value[k], k) for k in keys}
    if isinstance(value, list):
        return [_pydantic_sorted(v, parent) for v in value]
    return value


def _enforce_required(part: dict[str, Any]) -> None:
    """DSPy 3.4.1's ``enforce_required`` (``_get_structured_outputs_response_format``), in
    place: an object's properties all required and no other allowed (an object without
    properties given none), through properties, array items and ``$defs``."""
    if part.get("type") == "object":
        props = part.get("properties")
        if props is not None:
            part["required"] = list(props)
            part["additionalProperties"] = False
            for sub in props.values():
                if isinstance(sub, dict):
                    _enforce_required(sub)
        else:
            part["properties"] = {}
            part["required"] = []
            part["additionalProperties"] = False
    if part.get("type") == "array" and isinstance(part.get("items"), dict):
        _enforce_required(part["items"])
    for key in ("$defs", "definitions"):
        if key in part:
            for sub in part[key].values():
                _enforce_required(sub)


def _strict(schema: Any, root: dict[str, Any]) -> Any:
    """DSPy 3.4.1's ``_strict_json_schema`` (OpenAI's ``to_strict_json_schema`` rules): every
    property required, objects closed, null defaults dropped, a lone ``allOf`` and a
    ``$ref`` with siblings written in place."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in ("$defs", "definitions"):
        if isinstance(out.get(key), dict):
            out[key] = {name: _strict(sub, root) for name, sub in out[key].items()}
    if out.get("type") == "object" and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if isinstance(out.get("properties"), dict):
        out["required"] = list(out["properties"])
        out["properties"] = {name: _strict(sub, root) for name, sub in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _strict(out["items"], root)
    if isinstance(out.get("anyOf"), list):
        out["anyOf"] = [_strict(item, root) for item in out["anyOf"]]
    if isinstance(out.get("allOf"), list):
        if len(out["allOf"]) == 1:
            out.update(_strict(out.pop("allOf")[0], root))
        else:
            out["allOf"] = [_strict(item, root) for item in out["allOf"]]
    if "default" in out and out["default"] is None:
        del out["default"]
    ref = out.get("$ref")
    if isinstance(ref, str) and len(out) > 1 and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            out = {**_strict(node, root), **{k: v for k, v in out.items() if k != "$ref"}}
    return out
