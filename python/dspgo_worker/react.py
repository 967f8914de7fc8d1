"""The ``react`` program kind on the native engine: the dummy provider's script
(:func:`run_script`), or DSPy 3.4.1's ``dspy.ReAct`` loop with its default ChatAdapter
(:func:`react_loop`); each tool runs on the host (:func:`aobserve`).

DSPy's ReAct, as the native engine runs it:

* each step is a ``dspy.Predict`` over the program's inputs plus ``trajectory`` (str),
  giving ``next_thought`` (str), ``next_tool_name`` (a Literal of the tools' names and
  ``finish``) and ``next_tool_args`` (``dict[str, Any]``), with the instructions ReAct
  writes from the program's and the tools' descriptions (:func:`step_spec`); its messages
  and its reply are the ChatAdapter's (:mod:`~dspgo_worker.chat_format`), of a spec made
  at run time;
* the trajectory is a dict ``thought_i``, ``tool_name_i``, ``tool_args_i``,
  ``observation_i``, written as ReAct's ``_format_trajectory`` writes it
  (:func:`format_trajectory`); ``finish`` ends the loop (its observation
  ``"Completed."``), and so does ``max_iters`` steps;
* then a ``dspy.ChainOfThought`` over the inputs plus ``trajectory`` (:func:`extract_spec`,
  the program's demos on it) gives the outputs, after its reasoning (:func:`react_extract`);
* a prompt the LM endpoint finds longer than the model's context window
  (:class:`~dspgo_worker.errors.ContextWindowExceeded`) is asked again with the oldest
  tool call dropped from the trajectory, at most :data:`TRUNCATION_ATTEMPTS` times in all
  (:func:`with_truncation`); a step that still does not fit ends the loop, an extraction
  fails the run.
"""

from __future__ import annotations

import inspect
import logging

from .ask import ask, ask_stream
from .chat_format import CHAT, default_instructions, user_content
from .chunks import stream_outputs
from .errors import ContextWindowExceeded, ToolError, WorkerError
from .fieldtypes import LITERAL, STR, FieldType
from .kinds import KIND_CHAIN_OF_THOUGHT, KIND_PREDICT, REASONING_FIELD
from .media import defuse_custom_types
from .signature import Field
from .spec import CompiledSpec

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence
    from typing import Any, Callable, TypeVar

    from .context import Context
    from .lmconfig import ScriptStep
    from .openai_provider import OpenAIProvider
    from .usage import Usage

    R = TypeVar("R")

log = logging.getLogger("dspgo_worker.engines")

#: The tool that ends a ReAct loop, and what calling it (without arguments) observes.
FINISH = "finish"
FINISH_OBSERVATION = "Completed."
#: The input ReAct adds to the program's inputs: the trajectory so far, as text.
TRAJECTORY = "trajectory"
#: The outputs of a ReAct step, in order.
STEP_OUTPUTS = ("next_thought", "next_tool_name", "next_tool_args")
#: The prompts a ReAct step or extraction sends at most while its trajectory is too long
#: for the model's context window, each with one tool call less (DSPy's 3).
TRUNCATION_ATTEMPTS = 3
#: The entries of one tool call in a trajectory (thought, tool name, arguments, observation).
CALL_ENTRIES = 4


async def aobserve(ctx: Context, tool: str, args: dict[str, Any]) -> Any:
    """The observation of one tool call: the host tool's result, or ``{"error": {"code",
    "message"}}`` when it failed. The request's own cancellation or deadline ends the
    loop instead (raised)."""
    try:
        return await ctx.call_async(tool, args)
    except ToolError as exc:
        ctx.check()
        return {"error": {"code": exc.code, "message": exc.message}}


async def run_script(script: Sequence[ScriptStep], ctx: Context, max_iters: int) -> list[dict[str, Any]]:
    """The dummy provider's react loop: step ``i`` takes ``script[i]``; a finish step, the
    end of the script or ``max_iters`` ends it."""
    trajectory: list[dict[str, Any]] = []
    for i in range(min(max_iters, len(script))):
        step = script[i]
        if step.finish:
            break
        args = step.args
        trajectory.append({"tool": step.tool, "args": args, "observation": await aobserve(ctx, step.tool, args)})
    return trajectory


def tool_args(tool: dict[str, Any]) -> dict[str, Any]:
    """The ``args`` of the ``dspy.Tool`` of a host tool (``{"name", "description",
    "schema"}``): its schema's ``properties``, ``{}`` when it has none (both engines)."""
    properties = tool["schema"].get("properties")
    return properties if isinstance(properties, dict) else {}


def tool_text(name: str, description: str, args: dict[str, Any]) -> str:
    """A tool as ReAct's instructions list it: DSPy 3.4.1's ``str(dspy.Tool)``, the
    description (none when empty) with its line breaks as two spaces, the arguments as
    Python writes the dict."""
    desc = f", whose description is <desc>{description}</desc>.".replace("\n", "  ") if description else "."
    return f"{name}{desc} It takes arguments {args}."


def _names(fields: Sequence[Field]) -> str:
    return ", ".join(f"`{f.name}`" for f in fields)


def step_instructions(compiled: CompiledSpec, tools: Sequence[dict[str, Any]]) -> str:
    """The instructions of a ReAct step, as ``dspy.ReAct.__init__`` writes them: the
    program's (DSPy's default ones when it has none), ReAct's text, and each tool
    numbered, the finish tool last (in the place of a host tool named ``finish``, which
    it replaces, as ReAct's dict of tools does)."""
    outputs = _names(compiled.declared_outputs)
    texts = {t["name"]: tool_text(t["name"], t["description"], tool_args(t)) for t in tools}
    texts[FINISH] = tool_text(
        FINISH,
        "Marks the task as complete. That is, signals that all information for producing the outputs, "
        f"i.e. {outputs}, are now available to be extracted.",
        {},
    )
    lines = [
        f"{inspect.cleandoc(compiled.instructions or default_instructions(compiled))}\n",
        f"You are an Agent. In each episode, you will be given the fields {_names(compiled.inputs)} as input. "
        "And you can see your past trajectory so far.",
        f"Your goal is to use one or more of the supplied tools to collect any necessary information for producing {outputs}.\n",
        "To do this, you will interleave next_thought, next_tool_name, and next_tool_args in each turn, and also when finishing the task.",
        "After each tool call, you receive a resulting observation, which gets appended to your trajectory.\n",
        "When writing next_thought, you may reason about the current situation and plan for future steps.",
        "When selecting the next_tool_name and its next_tool_args, the tool must be one of:\n",
    ]
    lines += [f"({i}) {text}" for i, text in enumerate(texts.values(), 1)]
    lines.append("When providing `next_tool_args`, the value inside the field must be in JSON format")
    return "\n".join(lines)


def _derived(compiled: CompiledSpec, kind: str, instructions: str, outputs: list[dict[str, Any]]) -> CompiledSpec:
    """A spec of the program's inputs plus ``trajectory`` and of ``outputs``, made at run
    time as ReAct makes its predictors' signatures; ``invalid_argument`` when a program's
    field has the name of one ReAct adds."""
    signature = compiled.spec["signature"]
    raw: dict[str, Any] = {
        "signature": {
            "inputs": [*signature["inputs"], {"name": TRAJECTORY, "type": STR, "description": ""}],
            "outputs": outputs,
        },
        "instructions": instructions,
        "kind": kind,
    }
    if "models" in signature:
        raw["signature"]["models"] = signature["models"]
    try:
        return CompiledSpec(raw)
    except WorkerError as exc:  # a field named as one ReAct adds
        raise WorkerError(
            exc.code,
            f"react: {exc.message} (dspy.ReAct adds the input {TRAJECTORY}, the step's outputs "
            f"{', '.join(STEP_OUTPUTS)} and the extraction's {REASONING_FIELD})",
        ) from None


def step_spec(compiled: CompiledSpec, tools: Sequence[dict[str, Any]]) -> CompiledSpec:
    """The spec of a ReAct step (``ReAct.react``): a predict of the program's inputs plus
    ``trajectory``, giving :data:`STEP_OUTPUTS`, with the spec's ``step_instructions``
    when it has some (an optimizer's, which replace ReAct's), else
    :func:`step_instructions`, and the spec's step demos (:func:`_with_trajectory`). Made once per compiled spec and tools (the last tools' kept)."""
    key = tuple((t["name"], t["description"], repr(tool_args(t))) for t in tools)
    made = compiled.extras.get("react_step")
    if made is not None and made[0] == key:
        step: CompiledSpec = made[1]
        return step
    outputs = [{"name": name, "type": STR, "description": ""} for name in STEP_OUTPUTS]
    outputs[2]["type"] = "dict[str, Any]"
    step = _derived(compiled, KIND_PREDICT, compiled.step_instructions or step_instructions(compiled, tools), outputs)
    step.demos = [_with_trajectory(demo) for demo in compiled.step_demos]
    names = [t["name"] for t in tools if t["name"] != FINISH]
    # A Literal of the tools' names: set here, as any name may be one (no type text to parse).
    names.insert(next((i for i, t in enumerate(tools) if t["name"] == FINISH), len(names)), FINISH)
    step.outputs[1].type = FieldType(LITERAL, values=tuple(names))
    compiled.extras["react_step"] = (key, step)
    return step


def extract_spec(compiled: CompiledSpec) -> CompiledSpec:
    """The spec of ReAct's extraction (``ReAct.extract``): a chain_of_thought of the
    program's inputs plus ``trajectory``, giving its outputs after ``reasoning``, with the
    program's instructions (DSPy's default ones of the program's own fields when it has
    none) and its demos (:func:`_with_trajectory`; one that lacks the trajectory or the
    reasoning DSPy shows as incomplete). Made once per compiled spec."""
    made: CompiledSpec | None = compiled.extras.get("react_extract")
    if made is None:
        instructions = compiled.instructions or default_instructions(compiled)
        made = _derived(compiled, KIND_CHAIN_OF_THOUGHT, instructions, compiled.spec["signature"]["outputs"])
        made.demos = [_with_trajectory(demo) for demo in compiled.demos]
        compiled.extras["react_extract"] = made
    return made


def _with_trajectory(demo: dict[str, Any]) -> dict[str, Any]:
    """A react spec's demo (or step demo) as a demo of the spec ReAct's predictor is made
    of (:func:`_derived`): its ``trajectory``, when it has one, is one of its inputs."""
    if "trajectory" not in demo:
        return demo
    made = {key: value for key, value in demo.items() if key != TRAJECTORY}
    made["inputs"] = {**demo["inputs"], TRAJECTORY: demo[TRAJECTORY]}
    return made


def format_trajectory(trajectory: dict[str, Any]) -> str:
    """The ``trajectory`` input's text, as ReAct's ``_format_trajectory`` writes it with
    the ChatAdapter: a ``[[ ## key ## ]]`` section for each entry, its value written as
    DSPy writes a str field's (:func:`~dspgo_worker.chat_format.format_field_value`);
    ``""`` for none."""
    text = user_content([Field(name, FieldType(STR), "") for name in trajectory], trajectory)
    return text if isinstance(text, str) else ""  # always text: no media is given


def finish_observation(args: dict[str, Any]) -> str:
    """What calling the finish tool with ``args`` observes: ``"Completed."`` without
    arguments; with some, the error of DSPy's finish tool, which takes none (DSPy writes
    the traceback's last five frames before the error's line: those are left out)."""
    if not args:
        return FINISH_OBSERVATION
    return f"Execution error in {FINISH}: \nValueError: Arg {next(iter(args))} is not in the tool's args."


def truncate_trajectory(trajectory: dict[str, Any]) -> None:
    """Drop the oldest tool call's entries from ``trajectory``, as ReAct's
    ``truncate_trajectory`` does; :class:`ContextWindowExceeded` when it holds one call or
    none."""
    keys = list(trajectory)
    if len(keys) <= CALL_ENTRIES:
        raise ContextWindowExceeded(
            "The trajectory is too long so your prompt exceeded the context window, but the trajectory "
            "cannot be truncated because it only has one tool call."
        )
    for key in keys[:CALL_ENTRIES]:
        del trajectory[key]


async def with_truncation(ask: Callable[[str], Awaitable[R]], trajectory: dict[str, Any], ctx: Context) -> R:
    """``await ask(text)`` of the trajectory's text, as ReAct's
    ``_call_with_potential_trajectory_truncation``: when the prompt is too long for the
    model's context window, the oldest tool call is dropped from ``trajectory`` itself
    (:func:`truncate_trajectory`) and the prompt sent again, :data:`TRUNCATION_ATTEMPTS`
    times in all; then :class:`ContextWindowExceeded`."""
    for _ in range(TRUNCATION_ATTEMPTS):
        try:
            return await ask(format_trajectory(trajectory))
        except ContextWindowExceeded:
            log.warning("react: the trajectory exceeded the context window; truncating the oldest tool call",
                        extra={"request_id": ctx.id})
            truncate_trajectory(trajectory)
    raise ContextWindowExceeded(
        f"The context window was exceeded even after {TRUNCATION_ATTEMPTS} attempts to truncate the trajectory."
    )


async def react_loop(
    provider: OpenAIProvider, compiled: CompiledSpec, inputs: dict[str, Any], tools: Sequence[dict[str, Any]],
    max_iters: int, ctx: Context, usage: Usage | None = None, fmt: str = CHAT,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """DSPy's ReAct loop with the LM: at most ``max_iters`` steps (:func:`step_spec`), in
    the adapter's format ``fmt`` (default ChatAdapter's; :data:`JSON` the JSONAdapter's),
    each asked as the ChatAdapter asks (:func:`~dspgo_worker.ask.ask`: its JSONAdapter
    fallback when a reply does not parse; an :class:`OutputError` then ends the run, as
    DSPy's parse error does), until the LM picks ``finish``; a step whose prompt does not
    fit the context window even with the trajectory truncated (:func:`with_truncation`)
    ends the loop. Returns the trajectory as DSPy keeps it (:func:`format_trajectory`; its
    truncation included), and the host tools' calls ``[{"tool", "args", "observation"}]``
    (a failed tool's observation ``{"error": {"code", "message"}}``; every call, truncated
    or not). Observations are :func:`~dspgo_worker.media.defuse_custom_types`'d, as the
    dspy engine's are."""
    step = step_spec(compiled, tools)

    async def attempt(text: str) -> dict[str, Any]:
        return await ask(provider, step, {**inputs, TRAJECTORY: text}, ctx, usage, fmt)

    trajectory: dict[str, Any] = {}
    calls: list[dict[str, Any]] = []
    for i in range(max_iters):
        try:
            chosen = await with_truncation(attempt, trajectory, ctx)
        except ContextWindowExceeded as exc:
            log.warning("react: ending the trajectory: %s", exc.message, extra={"request_id": ctx.id})
            break
        name, args = chosen["next_tool_name"], chosen["next_tool_args"]
        trajectory[f"thought_{i}"] = chosen["next_thought"]
        trajectory[f"tool_name_{i}"] = name
        trajectory[f"tool_args_{i}"] = args
        if name == FINISH:
            trajectory[f"observation_{i}"] = finish_observation(args)
            break
        observation = defuse_custom_types(await aobserve(ctx, name, args))
        calls.append({"tool": name, "args": args, "observation": observation})
        trajectory[f"observation_{i}"] = observation
    return trajectory, calls


async def react_extract(
    provider: OpenAIProvider, compiled: CompiledSpec, inputs: dict[str, Any], trajectory: dict[str, Any],
    ctx: Context, usage: Usage | None = None, stream: bool = False, fmt: str = CHAT,
) -> dict[str, Any]:
    """The outputs of ReAct's extraction (:func:`extract_spec`) over ``trajectory``
    (truncated when too long, :func:`with_truncation`), without its reasoning, asked as
    the adapter of ``fmt`` asks (:func:`~dspgo_worker.ask.ask`); with ``stream``, the
    outputs' deltas are sent as they arrive (not the reasoning's; a JSON reply's fields
    whole), and no second request follows."""
    extract = extract_spec(compiled)

    async def attempt(text: str) -> dict[str, Any]:
        values = {**inputs, TRAJECTORY: text}
        if stream:
            pieces = ask_stream(provider, extract, values, ctx, usage, fmt)
            return await stream_outputs(compiled, pieces, ctx, reader=extract, fmt=fmt)
        return await ask(provider, extract, values, ctx, usage, fmt)

    outputs = await with_truncation(attempt, trajectory, ctx)
    return {f.name: outputs[f.name] for f in compiled.outputs}
