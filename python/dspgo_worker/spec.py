"""Program specs, as Go's ``internal/program`` (spec.go) compiles them.

The same rules as Go (docs/protocol.md, "The program command set"): a spec is normalised
(canonical types from :mod:`~dspgo_worker.fieldtypes`, defaults filled in) and hashed: the
hex SHA-256 of its canonical JSON (:mod:`~dspgo_worker.canonical`); inputs are converted to
their declared types (:meth:`CompiledSpec.convert_inputs`, :mod:`~dspgo_worker.values`),
errors naming the field (``input n: expected int, got string "one"``); demos are checked by
:mod:`~dspgo_worker.demos`; the dummy language model is :mod:`~dspgo_worker.dummy`.
"""

from __future__ import annotations

from .canonical import canonical_json, sha256_hex
from .constraints import normalize_constraints
from .demos import normalize_demos, normalize_step_demos
from .errors import invalid
from .fieldtypes import HISTORY, OPTIONAL, STR, FieldType, parse_type
from .kinds import KIND_CHAIN_OF_THOUGHT, KIND_MODULE, KIND_PREDICT, KIND_REACT, KINDS, REASONING_FIELD
from .media import media_note
from .modules import MAX_MODULE_NAME, is_module_name
from .protocol import quote
from .signature import (
    Field,
    check_default,
    check_models_used,
    check_size,
    compile_models,
    field_list,
    name_problem,
    normalized_models,
)
from .values import convert, convert_field, copy_value, describe_value, json_object, json_string

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from typing import Any



class CompiledSpec:
    """A validated, normalised spec with its hash; ready to convert inputs and run.

    ``spec`` is the normalised spec (exactly ``signature``, ``instructions``, ``kind``,
    ``demos`` when there are some, and a react spec's ``step_instructions`` when set; the signature holds ``models`` when there are some),
    ``hash`` its hex SHA-256, ``models`` the signature's models by name
    (:func:`~dspgo_worker.signature.compile_models`), ``inputs`` and
    ``declared_outputs`` the parsed fields, ``outputs`` the fields a run produces
    (``reasoning`` first for chain_of_thought) and ``demos`` the few-shot examples
    (:func:`~dspgo_worker.demos.normalize_demos`: ``{"inputs", "outputs"}`` of converted values, and ``"reasoning"`` when
    a chain_of_thought demo has one).
    ``extras`` is a place for engines to cache what they build from the spec.
    """

    def __init__(self, raw: Any) -> None:
        spec = json_object(raw, "spec", ("signature", "instructions", "kind", "demos", "module", "state", "step_instructions", "step_demos"))
        signature = spec.get("signature")
        signature = {} if signature is None else json_object(signature, "spec.signature", ("inputs", "outputs", "models"))
        raw_inputs = field_list(signature, "inputs", "spec.signature")
        raw_outputs = field_list(signature, "outputs", "spec.signature")
        instructions = json_string(spec, "instructions", "spec")
        kind = json_string(spec, "kind", "spec") or KIND_PREDICT
        if kind not in KINDS:
            raise invalid(f"program kind {quote(kind)} is unknown (known: {', '.join(KINDS)})")
        if not raw_outputs:
            raise invalid("signature has no outputs")
        #: The signature's models, by name in the declared order.
        self.models = compile_models(signature)
        seen: dict[str, str] = {}
        if kind == KIND_CHAIN_OF_THOUGHT:
            seen[REASONING_FIELD] = "the reasoning output that chain_of_thought adds"
        sides = {}
        history = ""  # the input field of type dspy.History, if any
        for side, fields in (("input", raw_inputs), ("output", raw_outputs)):
            parsed = []
            for f in fields:
                name = f["name"]
                problem = name_problem(name)
                if problem:
                    raise invalid(f"{side} field name {quote(name)} {problem}")
                if name in seen:
                    raise invalid(f"field name {quote(name)} is used twice (as {seen[name]} and as {side})")
                seen[name] = side
                try:
                    t = parse_type(f["type"], self.models)
                except ValueError as exc:
                    raise invalid(f"{side} field {quote(name)}: {exc}") from None
                check_size(t, f"{side} field {quote(name)}")
                if side == "output" and t.media:
                    raise invalid(f"output field {quote(name)}: {t.media} is an input type ({media_note(t.media)})")
                if t.kind == HISTORY:
                    if side == "output":
                        raise invalid(f"output field {quote(name)}: {HISTORY} is an input type (the conversation so far)")
                    if history:
                        raise invalid(f"input fields {quote(history)} and {quote(name)} are both {HISTORY}: a signature has one conversation")
                    history = name
                # an output's default is a value the program returns: converted strictly
                default = check_default(t, f["default"], f"{side} field {quote(name)}", convert_field if side == "input" else convert)
                constraints = normalize_constraints(f["constraints"], f["at"], t, f"{side} field {quote(name)}")
                parsed.append(Field(name, t, f["description"], default, constraints))
            sides[side] = parsed
        check_models_used(self.models, (*sides["input"], *sides["output"]))
        self.inputs: list[Field] = sides["input"]
        #: The inputs whose types hold a dspy.Image or a dspy.File.
        self.media_inputs: tuple[Field, ...] = tuple(f for f in self.inputs if f.type.media)
        self.moment_inputs: tuple[Field, ...] = tuple(f for f in self.inputs if f.type.moment)
        #: The inputs whose types name a model.
        self.model_inputs: tuple[Field, ...] = tuple(f for f in self.inputs if f.type.models())
        self.declared_outputs: list[Field] = sides["output"]
        self.instructions = instructions
        self.kind = kind
        self.outputs: list[Field] = list(self.declared_outputs)
        if kind == KIND_CHAIN_OF_THOUGHT:
            self.outputs.insert(0, Field(REASONING_FIELD, FieldType(STR), ""))
        self.spec: dict[str, Any] = {
            "signature": {
                "inputs": [f.normalized() for f in self.inputs],
                "outputs": [f.normalized() for f in self.declared_outputs],
            },
            "instructions": instructions,
            "kind": kind,
        }
        if self.models:  # only then: a spec without models keeps its hash
            self.spec["signature"]["models"] = normalized_models(self.models)
        #: A module spec's registered name and saved state (None: none), else None.
        self.module, self.state = _check_module(spec, kind)
        #: A react spec's step instructions (``""``: ReAct's own text for the run's tools),
        #: which replace those ``dspy.ReAct`` writes for its step predictor.
        self.step_instructions = json_string(spec, "step_instructions", "spec")
        if self.step_instructions:  # only then: a spec without them keeps its hash
            if kind != KIND_REACT:
                raise invalid(f'step_instructions are for kind "{KIND_REACT}" only (this spec\'s kind is {quote(kind)})')
            self.spec["step_instructions"] = self.step_instructions
        self.demos: list[dict[str, Any]] = normalize_demos(spec, kind, self.inputs, self.declared_outputs)
        if self.demos:
            self.spec["demos"] = self.demos
        #: A react spec's demos of its steps (:func:`~dspgo_worker.demos.normalize_step_demos`):
        #: ``{"inputs", "outputs", "trajectory"?}``, the outputs a step's.
        self.step_demos: list[dict[str, Any]] = normalize_step_demos(spec, kind, self.inputs)
        if self.step_demos:  # only then: a spec without them keeps its hash
            self.spec["step_demos"] = self.step_demos
        if self.module is not None:
            self.spec["module"] = self.module
            if self.state is not None:
                self.spec["state"] = self.state
        try:
            canonical = canonical_json(self.spec)
        except ValueError as exc:  # a module's state holding a number JSON read as infinite (1e400)
            raise invalid(f"spec: {exc}") from None
        #: The bytes of the spec's canonical JSON, which the worker's cache counts.
        self.size = len(canonical)
        self.hash = sha256_hex(canonical)
        self.extras: dict[str, Any] = {}
        #: The parts of the dummy LM's seeds, made by the first :func:`~dspgo_worker.dummy.dummy_outputs`.
        self.dummy_parts: list[tuple[Field, bytes, bytes]] | None = None

    def input_names(self) -> str:
        return ", ".join(quote(f.name) for f in self.inputs)

    def convert_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The inputs converted to their declared types; ``invalid_argument`` naming the field.
        An input left out that has a default takes it (a copy), as DSPy's ``Predict`` fills
        it; else an ``Optional`` input may be left out and stays out, as DSPy leaves an
        input whose annotation allows None out of the prompt (Go's ``Compiled.Inputs``). An
        unknown input (the first in sorted order) is named before a missing one, which it may
        be a misspelling of."""
        out = {}
        for f in self.inputs:
            if f.name not in inputs:
                if f.default is not None:
                    out[f.name] = copy_value(f.default)
                    continue
                if f.type.kind == OPTIONAL:
                    continue
                self._check_unknown_inputs(inputs)  # a misspelt name is named, not only the one it left out
                raise invalid(f"input {quote(f.name)} is missing (the program takes {self.input_names()})")
            try:
                out[f.name] = convert_field(f.type, inputs[f.name], f"input {f.name}")
            except ValueError as exc:
                raise invalid(str(exc)) from None
        if any(name not in out for name in inputs):
            self._check_unknown_inputs(inputs)
        return out

    def _check_unknown_inputs(self, inputs: dict[str, Any]) -> None:
        """``invalid_argument`` for the first of the names, in sorted order, that the signature
        has no input of (Go's ``Compiled.unknownInput``)."""
        known = {f.name for f in self.inputs}
        unknown = [name for name in inputs if name not in known]
        if unknown:
            raise invalid(f"input {quote(min(unknown))} is not in the signature (the program takes {self.input_names()})")


def _check_module(spec: dict[str, Any], kind: str) -> tuple[str | None, dict[str, Any] | None]:
    """The module name and state of a spec of ``kind`` (Go's ``checkModule``, the same
    messages): both None unless the kind is ``module``, whose name is required and whose
    state, when given, is a JSON object and comes without demos."""
    module = json_string(spec, "module", "spec")
    state = spec.get("state")
    if kind != KIND_MODULE:
        if module:
            raise invalid(f'module is for kind "{KIND_MODULE}" only (this spec\'s kind is {quote(kind)})')
        if state is not None:
            raise invalid(f'state is for kind "{KIND_MODULE}" only (this spec\'s kind is {quote(kind)})')
        return None, None
    if not module:
        raise invalid("a module program needs its module: the name a worker's handler module registered it under")
    if not is_module_name(module):
        raise invalid(f"module name {quote(module)} may hold only letters, digits, '_', '-' and '.' (at most {MAX_MODULE_NAME})")
    if spec.get("demos"):
        raise invalid("a module program has no demos: its predictors' demos are in its state")
    if state is None:
        return module, None
    if not isinstance(state, dict):
        raise invalid(f"state must be a JSON object (what DSPy's module.save writes), got {describe_value(state)}")
    return module, state

