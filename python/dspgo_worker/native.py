"""The native engine: prompt, call and parse with the configured provider (DSPy's
ChatAdapter format, :mod:`~dspgo_worker.chat_format`, falling back to its JSONAdapter as
DSPy 3.4.1 does: :meth:`NativeEngine.ask_json`); the dummy rule for ``dummy``."""

from __future__ import annotations

import logging

from .chat_format import JSON, OutputError, build_messages, parse_json_reply, parse_sections
from .chunks import output_chunks, stream_outputs
from .dummy import dummy_outputs
from .errors import WorkerError
from .kinds import KIND_MODULE, KIND_REACT
from .lmconfig import LMConfig
from .programs import DEFAULT_MAX_ITERS
from .protocol import quote
from .providers import DummyProvider, make_provider
from .react import aobserve, build_step_messages, parse_step, run_script, trajectory_text
from .response_format import json_response_format
from .spec import CompiledSpec
from .usage import Usage

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from .context import Context
    from .engines import RunResult
    from .openai_provider import OpenAIProvider

log = logging.getLogger("dspgo_worker.engines")


class NativeEngine:
    """Prompt, call and parse with the configured provider; the dummy rule for ``dummy``."""

    name = "native"

    async def aexecute(
        self,
        compiled: CompiledSpec,
        inputs: dict[str, Any],
        config: LMConfig,
        ctx: Context,
        tools: Sequence[dict[str, Any]] = (),
        max_iters: int = DEFAULT_MAX_ITERS,
        stream: bool = False,
    ) -> RunResult:
        """Run ``compiled`` on ``inputs``: ``(outputs, trajectory, usage)`` (the trajectory
        of a react spec, else None; the token usage of the LM calls, None when none was
        made). With ``stream``, each ``{"field", "delta"}`` chunk is sent with
        ``ctx.send_chunk`` as it is known."""
        provider = make_provider(config)
        trajectory = None
        if isinstance(provider, DummyProvider):
            if compiled.kind == KIND_REACT:
                trajectory = await run_script(config.script, ctx, max_iters)
            outputs = dummy_outputs(compiled, inputs)
            if stream:
                for i, chunk in enumerate(output_chunks(compiled, outputs)):
                    if config.fail_after_chunks is not None and i >= config.fail_after_chunks:
                        raise WorkerError("internal", f"the dummy LM failed after {i} chunks (fail_after_chunks)")
                    await ctx.send_chunk(chunk)
            return outputs, trajectory, None
        if compiled.kind == KIND_MODULE:
            raise WorkerError(
                "failed_precondition",
                f"module {quote(compiled.module or '')}: a module program runs only on the dspy engine, and this LM runs on "
                "the native one (set lm.engine to dspy or auto, with dspy installed in the workers' Python)",
            )
        usage = Usage()
        if compiled.kind == KIND_REACT:
            trajectory = await self.react_loop(provider, compiled, inputs, list(tools), max_iters, ctx, usage)
        extra = trajectory_text(trajectory) if trajectory is not None else None
        # The prompt is handed over, not kept here: the provider drops it once it has the body.
        if stream:
            pieces = provider.stream(build_messages(compiled, inputs, extra), ctx, usage=usage)
            outputs = await stream_outputs(compiled, pieces, ctx)
        else:
            reply = await provider.complete(build_messages(compiled, inputs, extra), ctx, usage=usage)
            try:
                outputs = parse_sections(compiled, reply)
            except OutputError as exc:
                outputs = await self.ask_json(provider, compiled, inputs, extra, ctx, usage, exc)
        return outputs, trajectory, usage.result()

    @staticmethod
    async def ask_json(
        provider: OpenAIProvider, compiled: CompiledSpec, inputs: dict[str, Any], extra: str | None, ctx: Context,
        usage: Usage, failed: OutputError,
    ) -> dict[str, Any]:
        """DSPy 3.4.1's ChatAdapter's fallback, for a reply that did not parse (``failed``,
        where DSPy's parse raises ``AdapterParseError``): ask the LM again with the request
        its JSONAdapter sends (the same request but for the messages, :func:`build_messages`
        with ``fmt`` JSON, and the ``response_format`` DSPy's model catalog calls for,
        :func:`~dspgo_worker.response_format.json_response_format`) and read that reply as
        JSONAdapter reads it
        (:func:`parse_json_reply`). The call is one more of the run's: its usage is added to
        ``usage``, it answers from the reply cache when configured, and it ends with the
        request's deadline or cancel. When that reply does not parse either, the
        :class:`OutputError` names the field in both. Not for a streamed reply: DSPy does
        not fall back after stream output (:func:`~dspgo_worker.chunks.stream_outputs`)."""
        log.info(
            "the LM's reply does not parse; asking again in JSON, as DSPy's ChatAdapter falls back to JSONAdapter",
            extra={"request_id": ctx.id, "error": failed.message},
        )
        response_format = json_response_format(compiled, provider.config.model)
        reply = await provider.complete(build_messages(compiled, inputs, extra, fmt=JSON), ctx, usage=usage, response_format=response_format)
        try:
            return parse_json_reply(compiled, reply)
        except OutputError as exc:
            raise OutputError(f"{failed.message}; asked again for JSON, as DSPy's JSONAdapter asks: {exc.message}") from None

    @staticmethod
    async def react_loop(
        provider: OpenAIProvider, compiled: CompiledSpec, inputs: dict[str, Any], tools: list[dict[str, Any]],
        max_iters: int, ctx: Context, usage: Usage | None = None,
    ) -> list[dict[str, Any]]:
        """The LM's react loop: one JSON step per completion, until it finishes, replies
        with something else, or ``max_iters`` steps have run."""
        trajectory: list[dict[str, Any]] = []
        for _ in range(max_iters):
            reply = await provider.complete(build_step_messages(compiled, inputs, tools, trajectory), ctx, usage=usage)
            step = parse_step(reply)
            if isinstance(step, str):  # FINISH
                break
            if step is None:
                log.warning(
                    "react: the LM's step is neither a tool call nor finish; ending the loop",
                    extra={"request_id": ctx.id, "reply": reply[:200]},
                )
                break
            tool, args = step
            trajectory.append({"tool": tool, "args": args, "observation": await aobserve(ctx, tool, args)})
        return trajectory


NATIVE_ENGINE = NativeEngine()
