"""The native engine: prompt, call and parse with the configured provider (DSPy's
ChatAdapter format, :mod:`~dspgo_worker.chat_format`, falling back to its JSONAdapter as
DSPy 3.4.1 does: :meth:`NativeEngine.ask_json`; a ``react`` program as ``dspy.ReAct`` runs
it, :mod:`~dspgo_worker.react`); the dummy rule for ``dummy``."""

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
from .react import TRAJECTORY, extract_spec, format_trajectory, react_loop, run_script
from .response_format import json_response_format
from .spec import CompiledSpec
from .usage import Usage

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from .context import Context
    from .engines import RunResult


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
        # The prompt that answers: the program's own, or a ReAct's extraction over its trajectory.
        answering, values = compiled, inputs
        if compiled.kind == KIND_REACT:
            steps, trajectory = await react_loop(provider, compiled, inputs, tools, max_iters, ctx, usage)
            answering, values = extract_spec(compiled), {**inputs, TRAJECTORY: format_trajectory(steps)}
        # The prompt is handed over, not kept here: the provider drops it once it has the body.
        if stream:
            pieces = provider.stream(build_messages(answering, values), ctx, usage=usage)
            outputs = await stream_outputs(compiled, pieces, ctx, reader=answering)
        else:
            reply = await provider.complete(build_messages(answering, values), ctx, usage=usage)
            try:
                outputs = parse_sections(answering, reply)
            except OutputError as exc:
                outputs = await self.ask_json(provider, answering, values, ctx, usage, exc)
        if answering is not compiled:  # the extraction's reasoning is not an output
            outputs = {f.name: outputs[f.name] for f in compiled.outputs}
        return outputs, trajectory, usage.result()

    @staticmethod
    async def ask_json(
        provider: OpenAIProvider, compiled: CompiledSpec, inputs: dict[str, Any], ctx: Context, usage: Usage,
        failed: OutputError,
    ) -> dict[str, Any]:
        """DSPy 3.4.1's ChatAdapter's fallback, for a reply that did not parse (``failed``,
        where DSPy's parse raises ``AdapterParseError``): ask the LM again with the request
        its JSONAdapter sends (the same request but for the messages, :func:`build_messages`
        with ``fmt`` JSON, and the ``response_format`` DSPy's model catalog calls for,
        :func:`~dspgo_worker.response_format.json_response_format`) and read that reply as
        JSONAdapter reads it (:func:`parse_json_reply`). ``compiled`` is the prompt that
        answers (a ReAct's extraction too). The call is one more of the run's: its usage is
        added to ``usage``, it answers from the reply cache when configured, and it ends
        with the request's deadline or cancel. When that reply does not parse either, the
        :class:`OutputError` names the field in both. Not for a streamed reply: DSPy does
        not fall back after stream output (:func:`~dspgo_worker.chunks.stream_outputs`)."""
        log.info(
            "the LM's reply does not parse; asking again in JSON, as DSPy's ChatAdapter falls back to JSONAdapter",
            extra={"request_id": ctx.id, "error": failed.message},
        )
        response_format = json_response_format(compiled, provider.config.model)
        reply = await provider.complete(build_messages(compiled, inputs, fmt=JSON), ctx, usage=usage, response_format=response_format)
        try:
            return parse_json_reply(compiled, reply)
        except OutputError as exc:
            raise OutputError(f"{failed.message}; asked again for JSON, as DSPy's JSONAdapter asks: {exc.message}") from None


NATIVE_ENGINE = NativeEngine()
