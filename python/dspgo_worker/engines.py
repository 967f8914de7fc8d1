"""Engines run a compiled spec on converted inputs with the configured language model.

Both have ``run(compiled, inputs, config, ctx) -> outputs`` (the outputs in field order,
``reasoning`` first for chain_of_thought, each of its declared type) and
``execute(compiled, inputs, config, ctx, tools, max_iters, stream)``, a generator that
yields the chunks of a streamed run (``{"field", "delta"}``, fields in output order) when
``stream`` is true, nothing otherwise, and returns ``(outputs, trajectory, usage)``: the
trajectory (``[{"tool", "args", "observation"}]``) of a ``react`` spec, else None; the
token usage (``{"prompt_tokens", "completion_tokens", "total_tokens"}``) of the LM calls
the run made, None when it made none (the dummy provider, replies from the cache).

* :class:`NativeEngine` (always available) writes a DSPy-ChatAdapter-like prompt, calls
  the provider and parses the reply (:func:`build_messages`, :func:`parse_reply`); a
  streamed run reads the reply as it arrives and hands on each field's text as its
  section is recognised (:class:`ReplyStreamer`). The dummy provider's outputs are cut
  into chunks by :func:`value_deltas`. A ``react`` spec first runs the loop: the dummy
  provider's script, or the LM asked for one JSON step at a time.
* :class:`~dspgo_worker.dspy_engine.DspyEngine` (its own module, imported only when
  selected) runs the spec with the real DSPy library: ``dspy.Predict``,
  ``dspy.ChainOfThought`` or ``dspy.ReAct`` (its tools call the host) with a ``dspy.LM``
  made from the configuration, streaming through ``dspy.streamify``.

Selection (:func:`resolve_engine`), decided at ``configure_lm`` time:

* provider ``dummy``: always the native engine, whose dummy rule gives the outputs of
  docs/protocol.md, identical to the Go mock's (``engine: dspy`` is still refused with
  ``failed_precondition`` when dspy cannot be imported, as for any provider);
* ``engine: native``: native; ``engine: dspy``: dspy, ``failed_precondition`` when
  ``import dspy`` fails;
* ``engine: auto`` (or absent): dspy when ``import dspy`` works, else native.
"""

from __future__ import annotations

import json
import re

import logging

from .errors import ToolError, WorkerError
from .lm import DummyProvider, LMConfig, Usage, make_provider
from .spec import (
    BOOL,
    FLOAT,
    INT,
    KIND_CHAIN_OF_THOUGHT,
    KIND_REACT,
    LITERAL,
    OPTIONAL,
    REASONING_FIELD,
    STR,
    CompiledSpec,
    FieldType,
    canonical_json,
    parse_output,
    quote,
)

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from typing import Any

REASONING_DESCRIPTION = "Think step by step to reach the outputs."
#: Steps of a react loop when ``execute_program`` does not say.
DEFAULT_MAX_ITERS = 5

log = logging.getLogger("dspgo_worker.engines")


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
    """The ``dspy`` module, imported with the worker's settings, or raise
    :class:`EngineUnavailable` saying why not (:func:`dspgo_worker.dspy_engine.import_dspy`)."""
    from .dspy_engine import import_dspy as imported

    return imported()


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
        from .dspy_engine import ENGINE

        return ENGINE
    return _NATIVE_ENGINE


# --- native engine -----------------------------------------------------------------------

_HEADER = re.compile(r"\[\[\s*##\s*(\w+)\s*##\s*\]\]")


def _type_note(t: FieldType) -> str:
    """What the prompt says of an output's type: nothing for str, a single value of a
    scalar, a Literal's values, else the JSON schema (Any, lists, tuples, dicts,
    Optional, Union)."""
    if t.kind == STR:
        return ""
    if t.kind in (INT, FLOAT, BOOL):
        return f"must be a single {t.kind} value"
    if t.kind == LITERAL:
        return "must exactly match (no extra characters) one of: " + "; ".join(t.values)
    return "must be JSON that adheres to the schema: " + json.dumps(t.json_schema(), ensure_ascii=False)


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


def _format_input(value: Any) -> str:
    """An input value as the prompt shows it: a string itself (whatever the field's
    type, as DSPy does), anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


#: What DSPy's ChatAdapter (3.4.1, ``Adapter.format_demos``) writes first in the user message
#: of a demo that lacks a field or holds a null, and for a missing output field of one.
INCOMPLETE_DEMO_PREFIX = "This is an example of the task, though some input or output fields are not supplied."
MISSING_IN_INCOMPLETE_DEMO = "Not supplied for this particular example. "
#: ... and for a missing output field of a complete demo (never written: a complete demo has them all).
MISSING_IN_COMPLETE_DEMO = "Not supplied for this conversation history message. "


def format_demo_value(value: Any) -> str:
    """A demo's value as DSPy's ``format_field_value`` writes it: a list or dict as JSON
    (``json.dumps`` with its default separators; int keys as strings), anything else with
    ``str`` (``True``, ``None``, ``1.0``). (DSPy writes a list held by a ``str`` field as a
    numbered list; a demo's ``str`` field never holds one.)"""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def demo_messages(compiled: CompiledSpec) -> list[dict]:
    """The spec's demos as DSPy's ChatAdapter (3.4.1) formats them for the signature the
    engine prompts with (the inputs; ``reasoning`` then the outputs for chain_of_thought,
    the outputs otherwise): a user message with the demo's inputs and an assistant message
    with its outputs, for each demo. As ``Adapter.format_demos`` does, the demos that are
    not complete (a chain_of_thought demo without reasoning, a null value) come first, in
    order, each user message starting with :data:`INCOMPLETE_DEMO_PREFIX` and a missing
    output written :data:`MISSING_IN_INCOMPLETE_DEMO`; then the complete ones, in order.
    The contents are ``format_user_message_content`` and
    ``format_assistant_message_content``'s. Made once per compiled spec."""
    made = compiled.extras.get("demo_messages")
    if made is not None:
        return made
    fields = (*compiled.inputs, *compiled.outputs)
    complete, incomplete = [], []
    for demo in compiled.demos:
        values = {**demo["inputs"], **demo["outputs"]}
        if "reasoning" in demo:
            values[REASONING_FIELD] = demo["reasoning"]
        if all(values.get(f.name) is not None for f in fields):
            complete.append(values)
        else:
            incomplete.append(values)
    made = []
    for group, prefix, missing in (
        (incomplete, INCOMPLETE_DEMO_PREFIX, MISSING_IN_INCOMPLETE_DEMO),
        (complete, "", MISSING_IN_COMPLETE_DEMO),
    ):
        for values in group:
            user = [prefix]
            user += [f"[[ ## {f.name} ## ]]\n{format_demo_value(values[f.name])}" for f in compiled.inputs if f.name in values]
            user.append("")
            assistant = "\n\n".join(
                f"[[ ## {f.name} ## ]]\n{format_demo_value(values.get(f.name, missing))}" for f in compiled.outputs
            ).strip()
            made.append({"role": "user", "content": "\n\n".join(user).strip()})
            made.append({"role": "assistant", "content": assistant + "\n\n[[ ## completed ## ]]\n"})
    compiled.extras["demo_messages"] = made
    return made


def build_messages(compiled: CompiledSpec, inputs: dict, extra: str | None = None) -> list[dict]:
    """The chat messages for one run: a system message describing the fields and the
    ``[[ ## field ## ]]`` structure, the demos (:func:`demo_messages`), and a user message
    holding the inputs (then ``extra``, the trajectory of a react loop, before the closing
    instruction)."""
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
        user += [f"[[ ## {f.name} ## ]]", _format_input(inputs[f.name]), ""]
    order = []
    for f in outputs:
        part = f"`[[ ## {f.name} ## ]]`"
        note = _type_note(f.type)
        if f.type.kind in (INT, FLOAT, BOOL):
            part += f" (must be formatted as a valid Python {f.type.kind})"
        elif note:
            part += f" ({note})"
        order.append(part)
    if extra:
        user += [extra, ""]
    user.append(
        "Respond with the corresponding output fields, starting with the field "
        + ", then ".join(order)
        + ", and then ending with the marker for `[[ ## completed ## ]]`."
    )
    return [{"role": "system", "content": "\n".join(system)}, *demo_messages(compiled), {"role": "user", "content": "\n".join(user)}]


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
    text = bool(raw)
    if not raw:
        try:
            parsed = json.loads(_unfence(reply))
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            raw = parsed
    return convert_outputs(compiled, raw, "in the LM's reply", lambda name: f" (no [[ ## {name} ## ]] section)", text=text)


def convert_outputs(compiled: CompiledSpec, raw: dict, where: str, hint=lambda name: "", text: bool = False) -> dict:
    """The raw outputs converted to their declared types by
    :func:`~dspgo_worker.spec.parse_output`: each a section's text when ``text``, else a
    typed value (a JSON reply's, a DSPy prediction's). An Optional output that is absent
    is null, as DSPy (3.4) fills it; a null is allowed where the type allows it
    (Optional, Any); any other absent or null output is an :class:`OutputError`."""
    out = {}
    for f in compiled.outputs:
        if f.name not in raw and f.type.kind == OPTIONAL:
            out[f.name] = None
            continue
        if f.name not in raw or (raw[f.name] is None and not f.type.nullable):
            raise OutputError(f"output {quote(f.name)} is missing {where}{hint(f.name)}")
        try:
            out[f.name] = parse_output(f.type, raw[f.name], f"output {f.name}", text=text)
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


# --- chunks ------------------------------------------------------------------------------

_SPACE_CUT = re.compile(r"(?<=[^ ])(?= )")


def text_deltas(text: str) -> list[str]:
    """``text`` cut before every space that follows a non-space character
    (``"answer 1a2b 3c4d"`` gives ``"answer"``, ``" 1a2b"``, ``" 3c4d"``); an empty text is
    one empty delta."""
    return _SPACE_CUT.split(text) if text else [""]


def value_text(value: Any) -> str:
    """The text of an output value: a string itself, anything else its canonical JSON."""
    if isinstance(value, str):
        return value
    return canonical_json(value).decode("utf-8")


def value_deltas(value: Any) -> list[str]:
    """The dummy LM's chunks of an output value (docs/protocol.md, "Dummy LM chunks"): a
    string cut by :func:`text_deltas`, any other value one delta of its canonical JSON."""
    if isinstance(value, str):
        return text_deltas(value)
    return [value_text(value)]


def output_chunks(compiled: CompiledSpec, outputs: dict):
    """Yield the ``{"field", "delta"}`` chunks of finished outputs, in output order."""
    for f in compiled.outputs:
        for delta in value_deltas(outputs[f.name]):
            yield {"field": f.name, "delta": delta}


def drain(gen) -> Any:
    """Run a generator to its end, discarding what it yields; its return value."""
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


#: A prefix of a ``[[ ## name ## ]]`` header, up to the end of the text.
_HEADER_PREFIX = re.compile(r"\[(?:\[(?:\s*(?:#(?:#(?:\s*(?:\w+(?:\s*(?:#(?:#(?:\s*(?:\])?)?)?)?)?)?)?)?)?)?)?\Z")


class ReplyStreamer:
    """Turns a reply arriving in pieces into the text deltas of its output fields.

    A field's text is handed on as soon as its ``[[ ## field ## ]]`` section is
    recognised, as :func:`split_sections` will read it (the first section of each name,
    stripped of surrounding white space, nothing after ``[[ ## completed ## ]]``). Text
    that may be the start of a header is held back until it is known not to be; so is
    white space that may end a section. Fields come in output order: a section that
    arrives before its turn is kept and handed on when its turn comes. :meth:`finish`
    hands on the fields not streamed yet, from the parsed outputs when the reply had no
    section for them (a JSON reply).
    """

    def __init__(self, compiled: CompiledSpec):
        self.names = [f.name for f in compiled.outputs]
        self.parts: list[str] = []  # the whole reply
        self._next = 0  # index in names of the field whose turn it is
        self._pending = ""  # text not handed on yet: it may start a header
        self._section: str | None = None  # the output section being read (first occurrence)
        self._live = False  # the section is the field whose turn it is
        self._started = False  # its leading white space is skipped
        self._space = ""  # trailing white space held back
        self._sent = False  # a delta of it was handed on
        self._seen: set[str] = set()
        self._held: dict[str, list[str]] = {}  # sections that came before their turn
        self._emitted: set[str] = set()
        self._completed = False

    def feed(self, piece: str) -> list[tuple[str, str]]:
        """``(field, delta)`` pairs that ``piece`` completes."""
        self.parts.append(piece)
        out: list[tuple[str, str]] = []
        if self._completed:
            return out
        pending = self._pending + piece
        while True:
            m = _HEADER.search(pending)
            if m is None:
                break
            self._content(pending[: m.start()], out)
            self._end_section(out)
            pending = pending[m.end() :]
            if m.group(1) == "completed":
                self._completed = True
                self._pending = ""
                return out
            self._start_section(m.group(1))
        cut = len(pending)
        start = pending.find("[")
        while start != -1:
            if _HEADER_PREFIX.match(pending, start):
                cut = start
                break
            start = pending.find("[", start + 1)
        self._content(pending[:cut], out)
        self._pending = pending[cut:]
        return out

    def finish(self, outputs: dict) -> list[tuple[str, str]]:
        """The deltas of the fields not handed on yet, once the whole reply is parsed into
        ``outputs``."""
        out: list[tuple[str, str]] = []
        if not self._completed:
            self._content(self._pending, out)
            self._pending = ""
        self._end_section(out)
        for name in self.names[self._next :]:
            if name in self._emitted:
                continue
            held = self._held.pop(name, None)
            text = "".join(held).strip() if held is not None else value_text(outputs[name])
            out.append((name, text))
            self._emitted.add(name)
        return out

    def text(self) -> str:
        return "".join(self.parts)

    def _start_section(self, name: str) -> None:
        self._started = False
        self._space = ""
        self._sent = False
        if name in self.names and name not in self._seen:
            self._seen.add(name)
            self._section = name
            self._live = self.names.index(name) == self._next
            if not self._live:
                self._held[name] = []
        else:
            self._section = None
            self._live = False

    def _content(self, text: str, out: list) -> None:
        if not text or self._section is None:
            return
        if not self._live:
            self._held[self._section].append(text)
            return
        if not self._started:
            text = text.lstrip()
            if not text:
                return
            self._started = True
        combined = self._space + text
        body = combined.rstrip()
        self._space = combined[len(body) :]
        if body:
            out.append((self._section, body))
            self._sent = True

    def _end_section(self, out: list) -> None:
        name, live = self._section, self._live
        self._section = None
        self._live = False
        if name is None or not live:
            return
        if not self._sent:
            out.append((name, ""))
        self._emitted.add(name)
        self._advance(out)

    def _advance(self, out: list) -> None:
        """Move the turn past the fields handed on, handing on the held ones in turn."""
        names = self.names
        while self._next < len(names):
            name = names[self._next]
            if name in self._emitted:
                self._next += 1
            elif name in self._held and name != self._section:
                out.append((name, "".join(self._held.pop(name)).strip()))
                self._emitted.add(name)
                self._next += 1
            else:
                break


def stream_outputs(compiled: CompiledSpec, pieces):
    """Yield the ``{"field", "delta"}`` chunks of a reply arriving as the text ``pieces``
    (a generator returning the whole text); return the parsed outputs."""
    streamer = ReplyStreamer(compiled)
    try:
        while True:
            try:
                piece = next(pieces)
            except StopIteration as stop:
                reply = stop.value if isinstance(stop.value, str) else streamer.text()
                break
            for name, delta in streamer.feed(piece):
                yield {"field": name, "delta": delta}
    finally:
        pieces.close()
    outputs = parse_reply(compiled, reply)
    for name, delta in streamer.finish(outputs):
        yield {"field": name, "delta": delta}
    return outputs


# --- react ---------------------------------------------------------------------------------


def observe(ctx, tool: str, args: dict) -> Any:
    """The observation of one tool call: the host tool's result, or ``{"error": {"code",
    "message"}}`` when it failed. The request's own cancellation or deadline ends the
    loop instead (raised)."""
    try:
        return ctx.call(tool, args)
    except ToolError as exc:
        ctx.check()
        return {"error": {"code": exc.code, "message": exc.message}}


def run_script(script, ctx, max_iters: int) -> list[dict]:
    """The dummy provider's react loop: step ``i`` takes ``script[i]``; a finish step, the
    end of the script or ``max_iters`` ends it."""
    trajectory = []
    for i in range(min(max_iters, len(script))):
        step = script[i]
        if step.finish:
            break
        args = step.args
        trajectory.append({"tool": step.tool, "args": args, "observation": observe(ctx, step.tool, args)})
    return trajectory


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def trajectory_text(trajectory: list[dict]) -> str:
    """The trajectory as the LM reads it."""
    if not trajectory:
        return "Trajectory so far: no tool has been called."
    lines = ["Trajectory so far:"]
    for i, step in enumerate(trajectory, 1):
        lines.append(f"Step {i}: called tool `{step['tool']}` with arguments {_json_text(step['args'])}")
        lines.append(f"Observation {i}: {_json_text(step['observation'])}")
    return "\n".join(lines)


def build_step_messages(compiled: CompiledSpec, inputs: dict, tools: list[dict], trajectory: list[dict]) -> list[dict]:
    """The chat messages asking the LM for the next step of a react loop."""
    objective = compiled.instructions or (
        "Given the fields "
        + ", ".join(f"`{f.name}`" for f in compiled.inputs)
        + ", produce the fields "
        + ", ".join(f"`{f.name}`" for f in compiled.declared_outputs)
        + "."
    )
    system = [
        "You are an agent. You gather what you need by calling tools, one call per step, and finish when you can produce the output fields.",
        "Your input fields are:",
        *_describe_fields(compiled.inputs),
        "Your output fields are:",
        *_describe_fields(compiled.outputs),
        "Your objective is: " + objective,
        "",
        "The tools you can call:",
    ]
    if tools:
        for i, tool in enumerate(tools, 1):
            line = f"{i}. `{tool['name']}`"
            if tool["description"]:
                line += f": {tool['description']}"
            line += ". Arguments (JSON schema): " + json.dumps(tool["schema"], ensure_ascii=False)
            system.append(line)
    else:
        system.append("(none)")
    system += [
        "",
        "At each step, reply with exactly one JSON object and nothing else:",
        '{"tool": "<tool name>", "args": {<the arguments>}} to call a tool, or',
        '{"finish": true} once you can produce the output fields.',
    ]
    user = []
    for f in compiled.inputs:
        user += [f"[[ ## {f.name} ## ]]", _format_input(inputs[f.name]), ""]
    user += [trajectory_text(trajectory), "", "Reply with the JSON object of your next step."]
    return [{"role": "system", "content": "\n".join(system)}, {"role": "user", "content": "\n".join(user)}]


FINISH = "finish"


def parse_step(reply: str):
    """The LM's step: :data:`FINISH`, ``(tool, args)``, or None when the reply is neither."""
    text = _unfence(reply)
    try:
        step = json.loads(text)
    except ValueError:
        start, end = text.find("{"), text.rfind("}")
        step = None
        if 0 <= start < end:
            try:
                step = json.loads(text[start : end + 1])
            except ValueError:
                step = None
    if not isinstance(step, dict):
        return None
    if step.get("finish") is True:
        return FINISH
    tool = step.get("tool")
    args = step.get("args")
    if args is None:
        args = {}
    if isinstance(tool, str) and tool and isinstance(args, dict):
        return tool, args
    return None


class NativeEngine:
    """Prompt, call and parse with the configured provider; the dummy rule for ``dummy``."""

    name = "native"

    def run(self, compiled: CompiledSpec, inputs: dict, config: LMConfig, ctx) -> dict:
        return drain(self.execute(compiled, inputs, config, ctx))[0]

    def execute(self, compiled: CompiledSpec, inputs: dict, config: LMConfig, ctx, tools=(), max_iters: int = DEFAULT_MAX_ITERS, stream: bool = False):
        provider = make_provider(config)
        dummy = isinstance(provider, DummyProvider)
        trajectory = None
        usage = Usage()
        if compiled.kind == KIND_REACT:
            if dummy:
                trajectory = run_script(config.script, ctx, max_iters)
            else:
                trajectory = self.react_loop(provider, compiled, inputs, list(tools), max_iters, ctx, usage)
        if dummy:
            outputs = compiled.dummy_outputs(inputs)
            if stream:
                for i, chunk in enumerate(output_chunks(compiled, outputs)):
                    if config.fail_after_chunks is not None and i >= config.fail_after_chunks:
                        raise WorkerError("internal", f"the dummy LM failed after {i} chunks (fail_after_chunks)")
                    yield chunk
            return outputs, trajectory, None
        extra = trajectory_text(trajectory) if trajectory is not None else None
        messages = build_messages(compiled, inputs, extra)
        if stream:
            outputs = yield from stream_outputs(compiled, provider.stream(messages, ctx, usage=usage))
        else:
            outputs = parse_reply(compiled, provider.complete(messages, ctx, usage=usage))
        return outputs, trajectory, usage.result()

    @staticmethod
    def react_loop(provider, compiled: CompiledSpec, inputs: dict, tools: list[dict], max_iters: int, ctx, usage: Usage | None = None) -> list[dict]:
        """The LM's react loop: one JSON step per completion, until it finishes, replies
        with something else, or ``max_iters`` steps have run."""
        trajectory: list[dict] = []
        for _ in range(max_iters):
            reply = provider.complete(build_step_messages(compiled, inputs, tools, trajectory), ctx, usage=usage)
            step = parse_step(reply)
            if step == FINISH:
                break
            if step is None:
                log.warning(
                    "react: the LM's step is neither a tool call nor finish; ending the loop",
                    extra={"request_id": ctx.id, "reply": reply[:200]},
                )
                break
            tool, args = step
            trajectory.append({"tool": tool, "args": args, "observation": observe(ctx, tool, args)})
        return trajectory


_NATIVE_ENGINE = NativeEngine()
