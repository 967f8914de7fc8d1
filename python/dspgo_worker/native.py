"""The native engine: prompt, call and parse with the configured provider (DSPy's
ChatAdapter format, :mod:`~dspgo_worker.chat_format`); the dummy rule for ``dummy``."""

from __future__ import annotations

import logging

from .chat_format import build_messages, parse_reply
from .chunks import drain, output_chunks, stream_outputs
from .dummy import dummy_outputs
from .errors import WorkerError
from .kinds import KIND_REACT
from .lmconfig import LMConfig
from .providers import DummyProvider, make_provider
from .react import DEFAULT_MAX_ITERS, FINISH, build_step_messages, observe, parse_step, run_script, trajectory_text
from .spec import CompiledSpec
from .usage import Usage

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    pass

log = logging.getLogger("dspgo_worker.engines")


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
            outputs = dummy_outputs(compiled, inputs)
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


NATIVE_ENGINE = NativeEngine()
