"""The native engine: prompt, call and parse with the configured provider (DSPy's
ChatAdapter format, :mod:`~dspgo_worker.chat_format`, falling back to its JSONAdapter as
DSPy 3.4.1 does: :mod:`~dspgo_worker.ask`; a ``react`` program as ``dspy.ReAct`` runs
it, :mod:`~dspgo_worker.react`); the dummy rule for ``dummy``."""

from __future__ import annotations

from .ask import ask, ask_stream
from .chat_format import CHAT, JSON
from .chunks import output_chunks, stream_outputs
from .dummy import dummy_outputs
from .errors import WorkerError
from .kinds import KIND_MODULE, KIND_REACT
from .lmconfig import LMConfig
from .programs import DEFAULT_MAX_ITERS
from .protocol import quote
from .providers import DummyProvider, make_provider
from .react import react_extract, react_loop, run_script
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
        fmt = JSON if config.dspy_adapter == JSON else CHAT
        if compiled.kind == KIND_REACT:
            steps, trajectory = await react_loop(provider, compiled, inputs, tools, max_iters, ctx, usage, fmt)
            outputs = await react_extract(provider, compiled, inputs, steps, ctx, usage, stream, fmt)
        elif stream:
            outputs = await stream_outputs(compiled, ask_stream(provider, compiled, inputs, ctx, usage, fmt), ctx, fmt=fmt)
        else:
            outputs = await ask(provider, compiled, inputs, ctx, usage, fmt)
        return outputs, trajectory, usage.result()


NATIVE_ENGINE = NativeEngine()
