"""Engines run a compiled spec on converted inputs with the configured language model.

Both have one method, ``run(compiled, inputs, config, ctx) -> outputs`` (the outputs in
field order, ``reasoning`` first for chain_of_thought, each of its declared type).

* :class:`NativeEngine` (always available) writes a DSPy-ChatAdapter-like prompt, calls
  the provider and parses the reply (:func:`build_messages`, :func:`parse_reply`).
* :class:`DspyEngine` builds a ``dspy.Signature`` from the spec and runs ``dspy.Predict``
  or ``dspy.ChainOfThought`` with a ``dspy.LM`` made from the configuration.

Selection (:func:`resolve_engine`), decided at ``configure_lm`` time:

* provider ``dummy``: always the native engine, whose dummy rule gives the outputs of
  docs/protocol.md, identical to the Go mock's (``engine: dspy`` is still refused with
  ``failed_precondition`` when dspy cannot be imported, as for any provider);
* ``engine: native``: native; ``engine: dspy``: dspy, ``failed_precondition`` when
  ``import dspy`` fails;
* ``engine: auto`` (or absent): dspy when ``import dspy`` works, else native.
"""

from __future__ import annotations

import importlib
import json
import re
import threading

from .errors import WorkerError
from .lm import DummyProvider, LMConfig, call_in_thread, make_provider, redact
from .spec import (
    BOOL,
    DICT,
    FLOAT,
    INT,
    KIND_CHAIN_OF_THOUGHT,
    LIST,
    LITERAL,
    REASONING_FIELD,
    STR,
    CompiledSpec,
    FieldType,
    parse_output,
    quote,
)

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from typing import Any

REASONING_DESCRIPTION = "Think step by step to reach the outputs."


class OutputError(WorkerError):
    """An output the language model did not produce, or produced in a form that does not
    convert to the field's type. Code ``internal``; the message names the field."""

    def __init__(self, message: str):
        super().__init__("internal", message)


class EngineUnavailable(WorkerError):
    """The dspy engine was asked for and ``import dspy`` fails. Code ``failed_precondition``."""

    def __init__(self, message: str):
        super().__init__("failed_precondition", message)


# --- selection ---------------------------------------------------------------------------


def import_dspy():
    """The ``dspy`` module, or raise :class:`EngineUnavailable` saying why not."""
    try:
        return importlib.import_module("dspy")
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        raise EngineUnavailable(f"the dspy engine needs the dspy package: import dspy failed: {type(exc).__name__}: {exc}") from None


def resolve_engine(config: LMConfig) -> str:
    """``native`` or ``dspy`` for a validated configuration (rules in the module docstring)."""
    if config.engine == "dspy":
        import_dspy()
        return "native" if config.provider == "dummy" else "dspy"
    if config.engine == "native" or config.provider == "dummy":
        return "native"
    try:
        import_dspy()
    except EngineUnavailable:
        return "native"
    return "dspy"


def make_engine(config: LMConfig):
    """The engine of a configuration (engines keep no state of their runs: one of each)."""
    if config.resolved_engine == "dspy" and config.provider != "dummy":
        return _DSPY_ENGINE
    return _NATIVE_ENGINE


# --- native engine -----------------------------------------------------------------------

_HEADER = re.compile(r"\[\[\s*##\s*(\w+)\s*##\s*\]\]")


def _type_note(t: FieldType) -> str:
    if t.kind in (INT, FLOAT, BOOL):
        return f"must be a single {t.kind} value"
    if t.kind == LITERAL:
        return "must exactly match (no extra characters) one of: " + "; ".join(t.values)
    if t.kind in (LIST, DICT):
        return "must be JSON that adheres to the schema: " + json.dumps(t.json_schema(), ensure_ascii=False)
    return ""


def _describe_fields(fields, reasoning: bool = False) -> list[str]:
    lines = []
    for i, f in enumerate(fields, 1):
        line = f"{i}. `{f.name}` ({f.type})"
        description = f.description
        if reasoning and i == 1:
            description = REASONING_DESCRIPTION
        if description:
            line += f": {description}"
        lines.append(line)
    return lines


def _format_input(t: FieldType, value: Any) -> str:
    if t.kind in (STR, LITERAL):
        return value
    return json.dumps(value, ensure_ascii=False)


def build_messages(compiled: CompiledSpec, inputs: dict) -> list[dict]:
    """The chat messages for one run: a system message describing the fields and the
    ``[[ ## field ## ]]`` structure, and a user message holding the inputs."""
    outputs = compiled.outputs
    system = [
        "Your input fields are:",
        *_describe_fields(compiled.inputs),
        "Your output fields are:",
        *_describe_fields(outputs, reasoning=compiled.kind == KIND_CHAIN_OF_THOUGHT),
    ]
    system.append("All interactions will be structured in the following way, with the appropriate values filled in.")
    for f in compiled.inputs:
        system += ["", f"[[ ## {f.name} ## ]]", f"{{{f.name}}}"]
    for f in outputs:
        note = _type_note(f.type)
        system += ["", f"[[ ## {f.name} ## ]]", f"{{{f.name}}}" + (f"        # note: the value you produce {note}" if note else "")]
    system += ["", "[[ ## completed ## ]]"]
    objective = compiled.instructions or (
        "Given the fields "
        + ", ".join(f"`{f.name}`" for f in compiled.inputs)
        + ", produce the fields "
        + ", ".join(f"`{f.name}`" for f in compiled.declared_outputs)
        + "."
    )
    system += ["In adhering to this structure, your objective is: ", "        " + objective.replace("\n", "\n        ")]

    user = []
    for f in compiled.inputs:
        user += [f"[[ ## {f.name} ## ]]", _format_input(f.type, inputs[f.name]), ""]
    order = []
    for f in outputs:
        part = f"`[[ ## {f.name} ## ]]`"
        note = _type_note(f.type)
        if f.type.kind in (INT, FLOAT, BOOL):
            part += f" (must be formatted as a valid Python {f.type.kind})"
        elif note:
            part += f" ({note})"
        order.append(part)
    user.append(
        "Respond with the corresponding output fields, starting with the field "
        + ", then ".join(order)
        + ", and then ending with the marker for `[[ ## completed ## ]]`."
    )
    return [{"role": "system", "content": "\n".join(system)}, {"role": "user", "content": "\n".join(user)}]


def split_sections(reply: str) -> dict[str, str]:
    """The ``[[ ## name ## ]]`` sections of a reply (first occurrence of each name)."""
    sections: dict[str, str] = {}
    matches = list(_HEADER.finditer(reply))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(reply)
        name = m.group(1)
        if name == "completed":
            break
        sections.setdefault(name, reply[m.end() : end].strip())
    return sections


def parse_reply(compiled: CompiledSpec, reply: str) -> dict:
    """The outputs in a reply, each converted to its type; :class:`OutputError` naming the
    field when one is missing or does not convert. A reply without any section may be a
    JSON object holding the fields."""
    raw: dict[str, Any] = split_sections(reply)
    if not raw:
        try:
            parsed = json.loads(_unfence(reply))
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            raw = parsed
    return convert_outputs(compiled, raw, "in the LM's reply", lambda name: f" (no [[ ## {name} ## ]] section)")


def convert_outputs(compiled: CompiledSpec, raw: dict, where: str, hint=lambda name: "") -> dict:
    out = {}
    for f in compiled.outputs:
        if f.name not in raw or raw[f.name] is None:
            raise OutputError(f"output {quote(f.name)} is missing {where}{hint(f.name)}")
        try:
            out[f.name] = parse_output(f.type, raw[f.name], f"output {f.name}")
        except ValueError as exc:
            raise OutputError(str(exc)) from None
    return out


def _unfence(text: str) -> str:
    s = text.strip()
    if s.startswith("```"):
        s = s.split("\n", 1)[1] if "\n" in s else ""
        if s.rstrip().endswith("```"):
            s = s.rstrip()[:-3]
    return s


class NativeEngine:
    """Prompt, call and parse with the configured provider; the dummy rule for ``dummy``."""

    name = "native"

    def run(self, compiled: CompiledSpec, inputs: dict, config: LMConfig, ctx) -> dict:
        provider = make_provider(config)
        if isinstance(provider, DummyProvider):
            return compiled.dummy_outputs(inputs)
        reply = provider.complete(build_messages(compiled, inputs), ctx)
        return parse_reply(compiled, reply)


# --- dspy engine -------------------------------------------------------------------------


def python_type(t: FieldType):
    """The Python type DSPy expects for a field type (``list[int]``, ``Literal['a']``…)."""
    from typing import Literal

    if t.kind == LIST:
        return list[python_type(t.elem)]
    if t.kind == DICT:
        return dict[str, python_type(t.elem)]
    if t.kind == LITERAL:
        return Literal[t.values]
    return {STR: str, INT: int, FLOAT: float, BOOL: bool}[t.kind]


class DspyEngine:
    """``dspy.Predict``/``dspy.ChainOfThought`` over a signature built from the spec.

    The LM is ``dspy.LM("openai/<model>", api_base=..., api_key=..., temperature=...,
    max_tokens=...)`` (the ``openai/`` prefix routes to any OpenAI-compatible endpoint),
    made per run so the key is read at call time, and installed with ``dspy.context`` for
    that run only (nothing global). Runs on a helper thread so cancellation and deadlines
    answer at once.
    """

    name = "dspy"
    _lock = threading.Lock()

    def module(self, dspy, compiled: CompiledSpec):
        """The dspy module of a spec, built once and kept in ``compiled.extras``."""
        with self._lock:
            module = compiled.extras.get("dspy_module")
            if module is None:
                fields = {}
                for f in compiled.inputs:
                    kwargs = {"desc": f.description} if f.description else {}
                    fields[f.name] = (python_type(f.type), dspy.InputField(**kwargs))
                for f in compiled.declared_outputs:
                    kwargs = {"desc": f.description} if f.description else {}
                    fields[f.name] = (python_type(f.type), dspy.OutputField(**kwargs))
                signature = dspy.make_signature(fields, compiled.instructions or None)
                if compiled.kind == KIND_CHAIN_OF_THOUGHT:
                    module = dspy.ChainOfThought(signature)
                else:
                    module = dspy.Predict(signature)
                compiled.extras["dspy_module"] = module
            return module

    @staticmethod
    def make_lm(dspy, config: LMConfig):
        model = config.model if config.model.startswith("openai/") else "openai/" + config.model
        kwargs: dict[str, Any] = {"api_base": config.effective_base_url}
        key = config.api_key()
        if key:
            kwargs["api_key"] = key
        if config.temperature is not None:
            kwargs["temperature"] = config.temperature
        if config.max_tokens:
            kwargs["max_tokens"] = config.max_tokens
        return dspy.LM(model, **kwargs)

    def run(self, compiled: CompiledSpec, inputs: dict, config: LMConfig, ctx) -> dict:
        dspy = import_dspy()
        module = self.module(dspy, compiled)

        def predict():
            lm = self.make_lm(dspy, config)
            with dspy.context(lm=lm):
                return module(**inputs)

        try:
            prediction = call_in_thread(predict, ctx, config.timeout, "the dspy program")
        except WorkerError:
            raise
        except Exception as exc:  # noqa: BLE001 - dspy and litellm raise many kinds
            message = redact(f"dspy program failed: {type(exc).__name__}: {exc}", config.api_key())
            raise WorkerError(_dspy_error_code(exc), message) from None
        raw = {}
        for f in compiled.outputs:
            names = (f.name, "rationale") if f.name == REASONING_FIELD and compiled.kind == KIND_CHAIN_OF_THOUGHT else (f.name,)
            for name in names:
                value = _prediction_value(prediction, name)
                if value is not None:
                    raw[f.name] = value
                    break
        return convert_outputs(compiled, raw, "from the dspy prediction")


_NATIVE_ENGINE = NativeEngine()
_DSPY_ENGINE = DspyEngine()


def _prediction_value(prediction, name: str):
    value = getattr(prediction, name, None)
    if value is None:
        try:
            value = prediction[name]
        except Exception:  # noqa: BLE001 - not subscriptable, or no such key
            value = None
    return value


#: litellm/OpenAI exception class names and the codes they map to.
_DSPY_ERROR_CODES = {
    "AuthenticationError": "failed_precondition",
    "PermissionDeniedError": "failed_precondition",
    "NotFoundError": "not_found",
    "RateLimitError": "resource_exhausted",
    "BadRequestError": "invalid_argument",
    "Timeout": "deadline_exceeded",
    "APITimeoutError": "deadline_exceeded",
    "ServiceUnavailableError": "unavailable",
    "APIConnectionError": "unavailable",
    "InternalServerError": "unavailable",
    "AdapterParseError": "internal",
}


def _dspy_error_code(exc: BaseException) -> str:
    for cls in type(exc).__mro__:
        code = _DSPY_ERROR_CODES.get(cls.__name__)
        if code:
            return code
    return "internal"
