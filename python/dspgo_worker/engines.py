"""Engines run a compiled spec on converted inputs with the configured language model.

Both have the coroutine ``aexecute(compiled, inputs, config, ctx, tools, max_iters,
stream)``, run in the request's task on the worker's event loop, which returns
``(outputs, trajectory, usage)``: the outputs in field order (``reasoning`` first for
chain_of_thought, each of its declared type), the trajectory (``[{"tool", "args",
"observation"}]``) of a ``react`` spec, else None, and the token usage
(``{"prompt_tokens", "completion_tokens", "total_tokens"}``) of the LM calls the run made,
None when it made none (the dummy provider, replies from the cache). When ``stream`` is
true it sends the chunks of the run (``{"field", "delta"}``, fields in output order) with
``ctx.send_chunk`` as they come.

* :class:`~dspgo_worker.native.NativeEngine` (always available) writes DSPy's ChatAdapter prompt, calls
  the provider and parses the reply (:mod:`~dspgo_worker.chat_format`); a
  streamed run reads the reply as it arrives and hands on each field's text as its
  section is recognised (:class:`~dspgo_worker.chunks.ReplyStreamer`). The dummy provider's outputs are cut
  into chunks by :func:`~dspgo_worker.chunks.value_deltas`. A ``react`` spec first runs the loop: the dummy
  provider's script, or the LM asked for one JSON step at a time
  (:mod:`~dspgo_worker.react`).
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
* ``engine: auto`` (or absent): dspy when ``import dspy`` works, else native; but a
  ``dspy_adapter`` other than chat and json (xml, baml) is ``failed_precondition`` then: the
  native engine writes ChatAdapter's and JSONAdapter's prompts only.
"""

from __future__ import annotations

from .errors import WorkerError
from .lmconfig import NATIVE_ADAPTERS, LMConfig
from .native import NATIVE_ENGINE

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from typing import Any, Optional

    from .dspy_engine import DspyEngine
    from .native import NativeEngine

    #: A run's outputs, its trajectory (react) and its token usage.
    RunResult = tuple[dict[str, Any], Optional[list[dict[str, Any]]], Optional[dict[str, Any]]]


class EngineUnavailable(WorkerError):
    """The dspy engine was asked for and ``import dspy`` fails. Code ``failed_precondition``."""

    def __init__(self, message: str) -> None:
        super().__init__("failed_precondition", message)


# --- selection ---------------------------------------------------------------------------


def import_dspy() -> Any:
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
    except EngineUnavailable as exc:
        if config.dspy_adapter not in NATIVE_ADAPTERS:  # the native engine writes ChatAdapter's and JSONAdapter's only
            raise EngineUnavailable(f"dspy_adapter {config.dspy_adapter!r} needs the dspy engine: {exc.message}") from None
        return "native"
    return "dspy"


def make_engine(config: LMConfig) -> NativeEngine | DspyEngine:
    """The engine of a configuration (engines keep no state of their runs: one of each)."""
    if config.resolved_engine == "dspy" and config.provider != "dummy":
        from .dspy_engine import ENGINE

        return ENGINE
    return NATIVE_ENGINE

