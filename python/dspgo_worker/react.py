"""The ``react`` program kind on the native engine: the dummy provider's script, or the
LM asked for one JSON step at a time; each tool runs on the host (:func:`aobserve`)."""

from __future__ import annotations

import json

from .chat_format import Media, describe_fields, unfence, user_content
from .errors import ToolError
from .spec import CompiledSpec

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from .context import Context
    from .lmconfig import ScriptStep


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


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def trajectory_text(trajectory: list[dict[str, Any]]) -> str:
    """The trajectory as the LM reads it."""
    if not trajectory:
        return "Trajectory so far: no tool has been called."
    lines = ["Trajectory so far:"]
    for i, step in enumerate(trajectory, 1):
        lines.append(f"Step {i}: called tool `{step['tool']}` with arguments {_json_text(step['args'])}")
        lines.append(f"Observation {i}: {_json_text(step['observation'])}")
    return "\n".join(lines)


def build_step_messages(compiled: CompiledSpec, inputs: dict[str, Any], tools: list[dict[str, Any]], trajectory: list[dict[str, Any]]) -> list[dict[str, Any]]:
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
        *describe_fields(compiled.inputs),
        "Your output fields are:",
        *describe_fields(compiled.outputs),
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
    user = user_content(compiled.inputs, inputs, reminder=trajectory_text(trajectory) + "\n\nReply with the JSON object of your next step.", media=Media())
    return [{"role": "system", "content": "\n".join(system)}, {"role": "user", "content": user}]


FINISH = "finish"


def parse_step(reply: str) -> str | tuple[str, dict[str, Any]] | None:
    """The LM's step: :data:`FINISH`, ``(tool, args)``, or None when the reply is neither."""
    text = unfence(reply)
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

