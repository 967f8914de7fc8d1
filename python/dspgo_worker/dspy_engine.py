"""The dspy engine: a spec run by the real DSPy library (``dspy.Predict``,
``dspy.ChainOfThought``, ``dspy.ReAct``) with a ``dspy.LM`` made from the configuration.

How a run goes:

* The spec becomes a ``dspy.Signature`` (:func:`python_type` maps each field type, the
  signature's models to pydantic classes, :func:`model_classes`; instructions and field
  descriptions go with it) and a module, all built once per compiled spec; the spec's demos become ``dspy.Example`` demos of the predictor that
  produces the outputs (:meth:`DspyEngine.set_demos`). A ``react`` spec gets a fresh
  ``dspy.ReAct`` per run, its tools calling the host through the request's context.
* A run is a coroutine (:meth:`DspyEngine.aexecute`) awaited in its request's task on the
  worker's event loop: ``module.acall`` inside ``dspy.context`` with the LM of its
  configuration and usage tracking. DSPy keeps that context in a ``contextvars``
  variable, which each task has its own copy of, so concurrent runs never see each
  other's LM or usage, and nothing global is set. Runs of one configuration share a
  ``dspy.LM`` and its kept-alive connections (:class:`SharedLMs`). Host tools are
  awaited with ``ctx.call_async``. Cancelling the task (the request's cancellation or
  deadline) ends the run where it waits; DSPy's HTTP client closes the connection of
  that run's LM request then.
* A streamed run sets DSPy's send stream (``settings.send_stream``, what
  ``dspy.streamify`` sets) to a :class:`_Chunks` of its own, which DSPy hands each piece
  of the LM's stream as it arrives. The text of the predictor that produces the
  program's outputs (a ReAct's extraction step, not its loop) is read by the native
  engine's :class:`~dspgo_worker.chunks.ReplyStreamer`, so both engines cut a reply into
  field deltas by one rule (DSPy's own ``StreamListener`` drops a field's text from a
  ``[[`` on, taking it for the next header), and each delta is sent with
  ``ctx.send_chunk``: while the host gives no credit, DSPy stops reading the LM's
  stream, so a slow consumer slows the LM instead of filling memory.
* Usage is DSPy's usage tracking, summed over the models the run called; a reply served
  from DSPy's cache reports none.

Nothing on a run's path blocks the loop: DSPy's own blocking steps (preparing a request,
pricing a reply, the response cache) go to the loop's default executor with
``asyncio.to_thread``, a few threads whatever the number of runs.

Importing dspy (:func:`import_dspy`) keeps the worker's promises: litellm and DSPy's
model metadata use their packaged copy of the model cost map instead of fetching one
from the network, and DSPy's cache lives in memory only (never on disk); whether an LM
call uses it is ``cache`` of ``configure_lm`` (off by default). Nothing DSPy reports reaches stderr outside the
worker's JSON log: tqdm's progress bars are off unless asked for (``TQDM_DISABLE``; those
DSPy's ``Evaluate`` asks for go to ``sys.stdout``, which a compile routes, see
:mod:`dspgo_worker.optimize`), and the ``dspy`` logger's records go to the worker's log,
its INFO ones as DEBUG (:class:`_DSPyLogs`).
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import logging
import os
import threading

from .chat_format import convert_outputs
from .chunks import ReplyStreamer
from .constraints import python_value
from .engines import EngineUnavailable
from .errors import WorkerError
from .fieldtypes import AUDIO, DATE, FILE, HISTORY, IMAGE, MODEL, OPTIONAL, STR, FieldType, Model
from .kinds import KIND_CHAIN_OF_THOUGHT, KIND_MODULE, KIND_REACT, REASONING_FIELD
from .lmconfig import LMConfig
from .media import (
    CUSTOM_TYPE_START,
    defuse_custom_types,
    images_in_dspy_state,
    json_strings,
    map_media,
    refuse_image_url,
    refuse_parts,
)
from .modules import module_factory
from .plain import plain
from .programs import DEFAULT_MAX_ITERS
from .protocol import quote
from .react import TRAJECTORY, aobserve, tool_args
from .redact import redact
from .spec import CompiledSpec
from .values import convert, parse_output

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Mapping, Sequence
    from typing import Any, Callable

    from .context import Context
    from .engines import RunResult

# dspy is imported by name (importlib) and not analysed: its modules, signatures,
# predictors, LMs and predictions are typed Any here.

log = logging.getLogger("dspgo_worker.dspy")

#: Memory cache entries of DSPy's LM cache (per worker process).
MEMORY_CACHE_ENTRIES = 4096
#: Runs that share one ``dspy.LM`` at a time (:class:`SharedLMs`): DSPy's HTTP client
#: opens at most 100 connections per LM, and a run beyond them would wait for one.
LM_RUNS = 100
#: LMs without a run a worker keeps for later runs (each with its idle connections).
IDLE_LMS = 1


_import_lock = threading.Lock()
_dspy: Any = None


def import_dspy() -> Any:
    """The ``dspy`` module, imported once with the worker's settings (see the module
    docstring), or raise :class:`EngineUnavailable` saying why not. Once imported, it is
    returned without taking the lock (a run on the event loop never waits for it)."""
    global _dspy
    imported = _dspy
    if imported is not None:
        return imported
    with _import_lock:
        if _dspy is not None:
            return _dspy
        # litellm fetches its model cost map from the network at import unless told not to.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        # tqdm reads TQDM_* when it is imported (by dspy): bars are off unless asked for.
        os.environ.setdefault("TQDM_DISABLE", "1")
        try:
            dspy = importlib.import_module("dspy")
        except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
            raise EngineUnavailable(
                f"the dspy engine needs the dspy package: import dspy failed: {type(exc).__name__}: {exc}"
            ) from None
        try:
            dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True, memory_max_entries=MEMORY_CACHE_ENTRIES)
        except Exception as exc:  # noqa: BLE001 - an older or newer dspy without this signature
            log.warning("could not keep DSPy's cache in memory", extra={"error": f"{type(exc).__name__}: {exc}"})
        _route_dspy_logs()
        _dspy = dspy
        return dspy


class _DSPyLogs(logging.Handler):
    """The ``dspy`` logger's handler: DSPy's records into the worker's log (JSON lines),
    its INFO records (an optimizer's narration of its steps) as DEBUG."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        root = logging.getLogger()
        if root.isEnabledFor(record.levelno):
            root.handle(record)


def _route_dspy_logs() -> None:
    """Replace the handler DSPy gives its ``dspy`` logger (plain text on stderr, which the
    host would log as raw lines) with :class:`_DSPyLogs`; below the worker's debug level,
    DSPy's records under WARNING are not even made."""
    logger = logging.getLogger("dspy")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.addHandler(_DSPyLogs())
    logger.propagate = False
    logger.setLevel(logging.DEBUG if logging.getLogger().isEnabledFor(logging.DEBUG) else logging.WARNING)


def dspy_version() -> str | None:
    """The importable dspy's version, or None when it cannot be imported."""
    try:
        return str(import_dspy().__version__)
    except EngineUnavailable:
        return None


# --- types ----------------------------------------------------------------------------


def python_type(t: FieldType, models: Mapping[str, Any] | None = None) -> Any:
    """The Python type DSPy expects for a field type: ``list[int]``, ``dict[int, str]``,
    ``tuple[int, str]``, ``tuple[int, ...]``, ``typing.Literal['a']``, ``typing.Any``,
    ``typing.Optional[int]``, ``typing.Union[int, str]``, ``dspy.History``, ``dspy.Image``, ``dspy.File``, ``dspy.Audio``,
    ``datetime.date``, ``datetime.datetime``: the type ``dspy.Signature``
    makes of the same signature string (python/tests/test_dspy_signatures.py checks it);
    a model its class in ``models`` (by name: :func:`model_classes`)."""
    import typing

    from .fieldtypes import ANY, BOOL, DATETIME, DICT, FLOAT, INT, LIST, LITERAL, TUPLE, UNION

    def of(part: FieldType) -> Any:
        return python_type(part, models)

    kind = t.kind
    if kind == MODEL:
        return (models or {})[t.model.name]
    if kind in (DATE, DATETIME):
        import datetime

        return datetime.date if kind == DATE else datetime.datetime
    if kind == HISTORY:
        return import_dspy().History
    if kind == IMAGE:
        return import_dspy().Image
    if kind == FILE:
        return import_dspy().File
    if kind == AUDIO:
        return import_dspy().Audio
    if kind == LIST:
        return list[of(t.elem)]  # type: ignore[misc]  # a type built at run time
    if kind == DICT:
        return dict[of(t.key) if t.key is not None else str, of(t.elem)]  # type: ignore[misc]  # built at run time
    if kind == TUPLE:
        if t.variadic:
            return tuple[of(t.elem), ...]  # type: ignore[misc]  # a type built at run time
        return tuple[tuple(of(m) for m in t.members)]  # type: ignore[misc]  # built at run time
    if kind == LITERAL:
        return typing.Literal[t.values]
    if kind == ANY:
        return typing.Any
    if kind == OPTIONAL:
        return typing.Optional[of(t.elem)]
    if kind == UNION:
        return typing.Union[tuple(of(m) for m in t.members)]
    return {STR: str, INT: int, FLOAT: float, BOOL: bool}[kind]


#: Guards the pydantic classes and adapters a compiled spec keeps (:func:`model_classes`);
#: taken inside :attr:`DspyEngine._lock` at times, never the other way round.
_models_lock = threading.Lock()


def model_classes(compiled: CompiledSpec) -> dict[str, Any]:
    """The pydantic classes of the spec's models, by name: made once per compiled spec (with
    its program, kept in ``compiled.extras``), each as ``class Answer(BaseModel)`` declares
    it (:func:`_model_class`), so DSPy writes and reads them as a class-based signature's
    models."""
    classes: dict[str, Any] | None = compiled.extras.get("dspy_models")
    if classes is not None:
        return classes
    with _models_lock:
        classes = compiled.extras.get("dspy_models")
        if classes is None:
            classes = {}
            for model in compiled.models.values():
                _model_class(model, classes)
            compiled.extras["dspy_models"] = classes
        return classes


def _model_class(model: Model, classes: dict[str, Any]) -> Any:
    """The pydantic class of ``model`` in ``classes``, made (after the models its fields
    name) when it is not there: its docstring the model's description, each field
    ``name: T = Field(description=…)``, one with a default ``name: T = value`` (the
    value pydantic validates the default to: :func:`_python_default`), an Optional one
    without ``name: Optional[T] = None``."""
    made = classes.get(model.name)
    if made is not None:
        return made
    import pydantic

    for f in model.fields:
        for inner in f.type.models():
            _model_class(inner, classes)
    fields: dict[str, Any] = {}
    for f in model.fields:
        kwargs: dict[str, Any] = {"description": f.description} if f.description else {}
        annotation = python_type(f.type, classes)
        if f.default is not None:
            kwargs["default"] = _python_default(annotation, f.default)
        elif f.type.kind == OPTIONAL:
            kwargs["default"] = None
        fields[f.name] = (annotation, pydantic.Field(**kwargs))
    made = classes[model.name] = pydantic.create_model(model.name, __doc__=model.description or None, **fields)
    return made


def _python_default(annotation: Any, default: Any) -> Any:
    """A field's default (converted, JSON) as the Python value of its type ``annotation``
    that pydantic validates it to (a date a ``datetime.date``, a model's value an
    instance): the default pydantic and DSPy see, which pydantic's JSON schema dumps as
    the native engine writes it and DSPy fills a missing output with."""
    import pydantic

    return pydantic.TypeAdapter(annotation).validate_python(default)


def _input_adapters(compiled: CompiledSpec) -> dict[str, Any]:
    """pydantic's ``TypeAdapter`` of each input whose type names a model, by name (made
    once per compiled spec): it makes the input's value (converted, JSON) the objects
    DSPy takes, the models' instances."""
    adapters: dict[str, Any] | None = compiled.extras.get("dspy_model_adapters")
    if adapters is not None:
        return adapters
    classes = model_classes(compiled)
    import pydantic

    with _models_lock:
        adapters = compiled.extras.get("dspy_model_adapters")
        if adapters is None:
            adapters = {f.name: pydantic.TypeAdapter(python_type(f.type, classes)) for f in compiled.model_inputs}
            compiled.extras["dspy_model_adapters"] = adapters
        return adapters


# --- the engine -----------------------------------------------------------------------


class DspyEngine:
    """Runs specs with the real DSPy library (see the module docstring)."""

    name = "dspy"
    _lock = threading.Lock()

    def signature(self, dspy: Any, compiled: CompiledSpec) -> Any:
        """The dspy signature of a spec, built once and kept in ``compiled.extras``."""
        with self._lock:
            signature = compiled.extras.get("dspy_signature")
            if signature is None:
                classes = model_classes(compiled)
                dspy_fields = {}
                for fields, make in ((compiled.inputs, dspy.InputField), (compiled.declared_outputs, dspy.OutputField)):
                    for f in fields:
                        kwargs: dict[str, Any] = {"desc": f.description} if f.description else {}
                        annotation = python_type(f.type, classes)
                        if f.default is not None:  # dspy.InputField(default=…), dspy.OutputField(default=…)
                            kwargs["default"] = _python_default(annotation, f.default)
                        for c in f.constraints:  # dspy.OutputField(ge=0, le=1), in the order given
                            kwargs[c["name"]] = python_value(c["value"])
                        dspy_fields[f.name] = (annotation, make(**kwargs))
                signature = compiled.extras["dspy_signature"] = dspy.make_signature(dspy_fields, compiled.instructions or None)
            return signature

    def module(self, dspy: Any, compiled: CompiledSpec) -> Any:
        """The dspy module of a predict or chain_of_thought spec, built once and kept in
        ``compiled.extras``."""
        signature = self.signature(dspy, compiled)
        with self._lock:
            module = compiled.extras.get("dspy_module")
            if module is None:
                if compiled.kind == KIND_CHAIN_OF_THOUGHT:
                    module = dspy.ChainOfThought(signature)
                else:
                    module = dspy.Predict(signature)
                self.set_demos(dspy, compiled, module)
                compiled.extras["dspy_module"] = module
            return module

    def custom_module(self, dspy: Any, compiled: CompiledSpec) -> Any:
        """The ``dspy.Module`` of a module spec: made once per compiled spec by the factory
        registered under its name (:mod:`~dspgo_worker.modules`), with its state loaded,
        and kept in ``compiled.extras``; its runs share it, as DSPy's own ``Evaluate``
        shares a program between threads."""
        with self._lock:
            module = compiled.extras.get("dspy_module")
            if module is None:
                module = compiled.extras["dspy_module"] = _make_module(dspy, compiled)
            return module

    @staticmethod
    def set_demos(dspy: Any, compiled: CompiledSpec, module: Any) -> None:
        """The spec's demos as ``dspy.Example`` objects (inputs, ``trajectory`` and
        ``reasoning`` when a demo has them, outputs) on the predictor that produces the
        program's outputs: a Predict itself, a ChainOfThought's ``predict``, a ReAct's
        ``extract.predict`` (where DSPy shows a demo without a trajectory or reasoning as an
        incomplete example); and a react spec's step demos on the ReAct's step predictor
        ``react``."""
        if compiled.step_demos and hasattr(module, "react"):
            steps = compiled.extras.get("dspy_step_demos")
            if steps is None:
                steps = [dspy_example(dspy, compiled, demo) for demo in compiled.step_demos]
                compiled.extras["dspy_step_demos"] = steps
            module.react.demos = list(steps)
        if not compiled.demos:
            return
        examples = compiled.extras.get("dspy_demos")
        if examples is None:
            examples = [dspy_example(dspy, compiled, demo) for demo in compiled.demos]
            compiled.extras["dspy_demos"] = examples
        target = _answering_predictor(module, [f.name for f in compiled.outputs])
        if target is not None:
            target.demos = list(examples)

    def react_module(self, dspy: Any, compiled: CompiledSpec, tools: list[Any], max_iters: int = DEFAULT_MAX_ITERS) -> Any:
        """A fresh ``dspy.ReAct`` of a react spec with these ``dspy.Tool`` objects (made per
        run: its tools call the run's host): the spec's demos on ``extract.predict``
        (:meth:`set_demos`) and its ``step_instructions``, when set, in place of those
        ReAct writes for its step predictor ``react``, as ``module.load`` sets a saved
        ReAct's."""
        module = dspy.ReAct(self.signature(dspy, compiled), tools=tools, max_iters=max_iters)
        if compiled.step_instructions:
            module.react.signature = module.react.signature.with_instructions(compiled.step_instructions)
        with self._lock:
            self.set_demos(dspy, compiled, module)
        return module

    @staticmethod
    def tools(dspy: Any, tools: Sequence[dict[str, Any]], ctx: Context, trajectory: list[Any]) -> list[Any]:
        """``dspy.Tool`` objects calling the host's tools (their args
        :func:`~dspgo_worker.react.tool_args`, which the native engine describes them by
        too); each call is noted in
        ``trajectory``, and a tool's error is its observation (the LM sees it). The run's
        task waits for the host's answer (``ctx.call_async``). An observation's text is
        :func:`~dspgo_worker.media.defuse_custom_types`'d: a tool may return text from
        anywhere (a web page), which DSPy's prompt must not turn into an image."""
        def host_tool(name: str) -> Callable[..., Awaitable[Any]]:
            # Unannotated on purpose: dspy.Tool evaluates a function's annotations at run time,
            # where the names of this module's annotations do not exist.
            async def call(**kwargs):  # type: ignore[no-untyped-def]
                observation = defuse_custom_types(await aobserve(ctx, name, kwargs))
                trajectory.append({"tool": name, "args": kwargs, "observation": observation})
                return observation

            call.__name__ = name
            return call

        return [
            dspy.Tool(host_tool(t["name"]), name=t["name"], desc=t["description"], args=tool_args(t))
            for t in tools
        ]

    @staticmethod
    def make_lm(dspy: Any, config: LMConfig) -> Any:
        """The run's ``dspy.LM``: ``openai/<model>`` (any OpenAI-compatible endpoint) with
        the configured base URL, key (read from the environment now), temperature,
        max_tokens, timeout and cache; ``invalid_argument`` when dspy refuses them."""
        model = config.model if config.model.startswith("openai/") else "openai/" + config.model
        key = config.api_key()
        if not key:
            raise WorkerError(
                "failed_precondition",
                f"the dspy engine needs an API key: {config.missing_key_note()} (dspy's LM client sends one with every "
                "request; an endpoint that needs none accepts any value)",
            )
        kwargs: dict[str, Any] = {"api_base": config.effective_base_url, "api_key": key, "cache": bool(config.cache), "timeout": config.timeout}
        if config.temperature is not None:
            kwargs["temperature"] = config.temperature
        if config.max_tokens:
            kwargs["max_tokens"] = config.max_tokens
        try:
            lm = _lm_class(dspy)(model, **kwargs)
        except Exception as exc:  # noqa: BLE001 - dspy refuses a configuration with many kinds
            raise WorkerError("invalid_argument", redact(f"dspy.LM refused the configuration: {type(exc).__name__}: {exc}", key)) from None
        lm.dspgo_image_urls = config.image_urls
        return lm

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
        """The engine protocol of :mod:`dspgo_worker.engines`: runs the spec on the running
        event loop (the handler's task) and returns ``(outputs, trajectory, usage)``; with
        ``stream``, each chunk is sent with ``ctx.send_chunk`` as the LM's text arrives.
        Cancelling the task cancels the run where it waits, which closes the LM's HTTP
        request."""
        dspy = import_dspy()
        trajectory: list[dict[str, Any]] | None = None
        if compiled.kind == KIND_REACT:
            trajectory = []
            module = self.react_module(dspy, compiled, self.tools(dspy, tools, ctx, trajectory), max_iters)
        elif compiled.kind == KIND_MODULE:
            module = self.custom_module(dspy, compiled)
            for url in compiled.extras.get("state_images", ()):
                refuse_image_url(config, url, f"module {quote(compiled.module or '')}: an image of its state")
        else:
            module = self.module(dspy, compiled)
        # A custom module with only a (blocking) forward runs on a thread, where DSPy's
        # stream cannot reach this task: its fields are sent whole at the end.
        on_thread = not hasattr(module, "aforward")
        inputs = _dspy_inputs(dspy, compiled, inputs)
        lms = _shared_lms(ctx)
        shared = lms.take((config, config.api_key()), lambda: self.make_lm(dspy, config)) if lms is not None else None
        lm = shared.lm if shared is not None else self.make_lm(dspy, config)
        chunks = _Chunks(ctx, compiled, module) if stream else None
        usage = _run_usage(dspy)
        try:
            # No history: DSPy would keep every call's prompt and reply, on the LM, on
            # the module and globally, up to 10,000 each.
            with dspy.context(lm=lm, adapter=dspy_adapter(dspy, config), track_usage=True, usage_tracker=usage,
                              send_stream=None if on_thread else chunks, disable_history=True, **{_RUN_SETTING: ctx}):
                if on_thread:
                    prediction = await _run_forward(ctx, module, inputs)
                else:
                    prediction = await module.acall(**inputs)
        except WorkerError:
            raise
        except Exception as exc:  # noqa: BLE001 - dspy and its LM clients raise many kinds
            ctx.check()  # the run's cancel or deadline may be the cause (dspy.Parallel makes it a None result)
            raise _coded(exc, config) from None
        finally:
            if lms is not None and shared is not None:
                await lms.give(shared)
            else:
                await _close(lm)
        outputs = self._outputs(compiled, prediction)
        if chunks is not None:
            await chunks.finish(outputs)
        return outputs, (list(trajectory) if trajectory is not None else None), _usage(usage.get_total_tokens())

    @staticmethod
    def _outputs(compiled: CompiledSpec, prediction: Any) -> dict[str, Any]:
        """The prediction's outputs as DSPy produced them, made JSON (:func:`plain`: a
        model's ``model_dump(mode="json")``, a tuple a list, a date its text) and checked
        against their declared types by pydantic's lax mode
        (:func:`~dspgo_worker.values.lax_value`), never read again as an LM's text: a
        string stays as it is."""
        raw = {}
        for f in compiled.outputs:
            names = (f.name, "rationale") if f.name == REASONING_FIELD and compiled.kind == KIND_CHAIN_OF_THOUGHT else (f.name,)
            for name in names:
                value = _prediction_value(prediction, name)
                if value is not None:
                    raw[f.name] = plain(value)
                    break
            else:
                if f.type.nullable and _prediction_holds(prediction, f.name):  # None is a value (Literal['a', None])
                    raw[f.name] = None
        return convert_outputs(compiled, raw, "from the dspy prediction")


class SharedLMs:
    """A worker's ``dspy.LM`` objects (its state ``dspy_lms``), by configuration and API
    key, each serving up to :data:`LM_RUNS` runs at once: runs share DSPy's client set-up
    and the LM's pool of kept-alive connections instead of a TCP (and TLS) handshake and
    an LM each. An LM left without runs is kept while fewer than :data:`IDLE_LMS` are,
    else closed. Used on the worker's event loop only; ``worker`` (what a state's
    factory is given) is not used."""

    def __init__(self, worker: object = None) -> None:
        self._lms: list[_SharedLM] = []

    def lms(self) -> list[tuple[Any, int]]:
        """Each LM with its number of runs, the oldest first."""
        return [(shared.lm, shared.runs) for shared in self._lms]

    def take(self, key: tuple[LMConfig, str | None], make: Callable[[], Any]) -> _SharedLM:
        """An LM of ``key`` with room for one more run (made by ``make`` when none has),
        counting the run."""
        for shared in self._lms:
            if shared.runs < LM_RUNS and shared.key == key:
                break
        else:
            shared = _SharedLM(key, make())
            self._lms.append(shared)
        shared.runs += 1
        return shared

    async def give(self, shared: _SharedLM) -> None:
        """The run of ``shared`` has ended; an LM left without runs beyond
        :data:`IDLE_LMS` is closed."""
        shared.runs -= 1
        if shared.runs or sum(1 for other in self._lms if not other.runs) <= IDLE_LMS:
            return
        self._lms.remove(shared)
        await _close(shared.lm)


class _SharedLM:
    """One LM of :class:`SharedLMs`, its key and its number of runs."""

    __slots__ = ("key", "lm", "runs")

    def __init__(self, key: tuple[LMConfig, str | None], lm: Any) -> None:
        self.key, self.lm, self.runs = key, lm, 0


def _worker_of(ctx: Context) -> Any:
    """The worker serving ``ctx``; None for a context without one (tests)."""
    try:
        return ctx.worker
    except AttributeError:
        return None


def _shared_lms(ctx: Context) -> SharedLMs | None:
    """The LMs of the worker serving ``ctx`` (None for a context without one)."""
    worker = _worker_of(ctx)
    return None if worker is None else worker.state("dspy_lms", SharedLMs)


class _Chunks:
    """DSPy's send stream (``settings.send_stream``) of a streamed run: DSPy sends it each
    piece of the LM's stream; the text of the answering predictor's pieces becomes field
    deltas (:class:`~dspgo_worker.chunks.ReplyStreamer`), each sent with
    ``ctx.send_chunk`` in the run's own task. Waiting there for the host's credit pauses
    the LM's stream where DSPy reads it, so a slow consumer holds the LM back instead of
    filling memory.

    This is how ``dspy.streamify`` streams, without its wrapper: streamify runs the
    program in a task group inside an async generator (which a task cancelled outside
    the generator, e.g. while waiting for credit, cannot close in its own task), and its
    status messages are sent from a new thread and event loop while the calling loop
    waits (``dspy.streaming.messages.sync_send_to_stream``)."""

    def __init__(self, ctx: Context, compiled: CompiledSpec, module: Any) -> None:
        self.ctx = ctx
        self.compiled = compiled
        target = _answering_predictor(module, [f.name for f in compiled.outputs])
        self.target = id(target) if target is not None else None
        self.streamer = ReplyStreamer(compiled)
        self.ended = False  # the target's first reply ended
        self.sent: dict[str, str] = {}  # the text streamed, by field

    async def send(self, item: Any) -> None:
        """Take one item DSPy sends (an LM stream piece carries its predictor's id as
        ``predict_id``, its last one a ``finish_reason``); pieces of other predictors (a
        ReAct's loop) are not the outputs', and only the target's first reply is streamed
        (as DSPy's own ``StreamListener`` streams it)."""
        if self.target is None or getattr(item, "predict_id", None) != self.target:
            return
        if self.ended:
            return
        for name, delta in self.streamer.feed(_chunk_text(item)):
            self.sent[name] = self.sent.get(name, "") + delta
            await self.ctx.send_chunk({"field": name, "delta": delta})
        self.ended = _chunk_finished(item)

    async def finish(self, outputs: dict[str, Any]) -> None:
        """Send the fields not streamed yet (a reply from the cache, a JSON reply).
        ``internal`` when a field's streamed text is not its value (the predictor answered
        again, or a module changed the answer): the deltas of a field must be the text of
        its value. A text that does not read as its type (JSON DSPy repaired) is not
        judged."""
        for f in self.compiled.outputs:
            text = self.sent.get(f.name)
            if text is None:
                continue
            try:
                value = text if f.type.kind == STR else parse_output(f.type, text, f"output {f.name}", text=True)
            except ValueError:
                continue
            if value != outputs[f.name]:
                raise WorkerError(
                    "internal",
                    f"the stream sent output {quote(f.name)} as the first answer of the predictor that produces the outputs, "
                    "and its value is not that answer (the predictor answered again, or the module changed it): "
                    "run this module without a stream, or have it return that predictor's one answer",
                )
        for name, delta in self.streamer.finish(outputs):
            await self.ctx.send_chunk({"field": name, "delta": delta})


def dspy_adapter(dspy: Any, config: LMConfig) -> Any:
    """The DSPy adapter a run of ``config`` formats its prompts with (``dspy_adapter``):
    None for chat, which is DSPy's default (ChatAdapter, falling back to JSONAdapter), else
    a ``dspy.JSONAdapter``, a ``dspy.XMLAdapter`` or a BAMLAdapter
    (``dspy.adapters.baml_adapter``), each made as DSPy's default makes it."""
    if config.dspy_adapter == "json":
        return dspy.JSONAdapter()
    if config.dspy_adapter == "xml":
        return dspy.XMLAdapter()
    if config.dspy_adapter == "baml":  # not among dspy's own names: imported by name, as dspy is
        return importlib.import_module("dspy.adapters.baml_adapter").BAMLAdapter()
    return None


def _dspy_inputs(dspy: Any, compiled: CompiledSpec, inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs as DSPy takes them: a ``dspy.History`` input (``{"messages": [...]}``,
    converted) becomes a ``dspy.History``, which DSPy's adapters write as the turns of a
    conversation before the current input, and the images, files, sounds, dates and datetimes as :func:`_dspy_objects`."""
    _refuse_custom_type_text(inputs, "input")
    out = _dspy_objects(dspy, compiled, inputs)
    for f in compiled.inputs:
        if f.type.kind == HISTORY:
            out[f.name] = dspy.History(messages=out[f.name]["messages"])
    return out


def dspy_example(dspy: Any, compiled: CompiledSpec, demo: dict[str, Any]) -> Any:
    """A demo of the spec (or an optimizer's example, shaped as one) as a ``dspy.Example``
    whose inputs are the spec's: its inputs (as :func:`_dspy_objects` makes them), and a
    react demo's ``trajectory`` when it has one; ``reasoning`` when it has one, its outputs
    (a step demo's, a ReAct step's)."""
    _refuse_custom_type_text(demo["inputs"], "a demo's input")
    _refuse_custom_type_text(demo["outputs"], "a demo's output")
    values = _dspy_objects(dspy, compiled, demo["inputs"])
    inputs = list(demo["inputs"])
    if "trajectory" in demo:
        _refuse_custom_type_text({TRAJECTORY: demo["trajectory"]}, "a demo's")
        values[TRAJECTORY] = demo["trajectory"]
        inputs.append(TRAJECTORY)
    if "reasoning" in demo:
        values[REASONING_FIELD] = demo["reasoning"]
    values.update(demo["outputs"])
    return dspy.Example(**values).with_inputs(*inputs)


def _refuse_custom_type_text(values: dict[str, Any], label: str) -> None:
    """``invalid_argument`` when a string in ``values`` (by field name; ``label`` says
    whose) holds DSPy's custom-type marker: DSPy cuts a user message's text at its
    markers into content parts, so a str input could otherwise place an image (or a
    file) that the signature has no place for, past the image checks and
    ``lm.image_urls``. Only an image or a file input places one."""
    for name, value in values.items():
        if any(CUSTOM_TYPE_START in s for s in json_strings(value)):
            raise WorkerError(
                "invalid_argument",
                f"{label} {name}: holds {CUSTOM_TYPE_START}, DSPy's marker of content parts (an image, a file), "
                f"which a value may not hold: give an image, a file or a sound as a {IMAGE}, {FILE} or {AUDIO} input",
            )


def _dspy_objects(dspy: Any, compiled: CompiledSpec, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (a run's or a demo's inputs) with the objects DSPy's types take: each image
    in them (``{"url": u}``) a ``dspy.Image``, each file (``{"file_data", "filename"?}``) a
    ``dspy.File`` and each sound (``{"data", "audio_format"}``) a ``dspy.Audio``, which
    DSPy's adapters send as ``image_url``, ``file`` and ``input_audio`` content parts; each
    date and datetime (their canonical text) a ``datetime.date`` or ``datetime.datetime``,
    which DSPy writes back as the same text (and takes without a type mismatch warning);
    each value of a model an instance of its class (:func:`_input_adapters`), which a
    custom module's ``forward`` gets and DSPy writes as the same JSON."""

    def made(kind: str, value: dict[str, Any]) -> Any:
        if kind == FILE:
            return dspy.File(**value)
        if kind == AUDIO:
            return dspy.Audio(**value)
        return dspy.Image(value["url"])

    out = dict(values)
    for f in compiled.media_inputs:
        if f.name in out:
            out[f.name] = map_media(f.type, out[f.name], made)
    for f in compiled.moment_inputs:
        if f.name in out:
            out[f.name] = map_media(f.type, out[f.name], _moment, "moment")
    if compiled.model_inputs:
        adapters = _input_adapters(compiled)
        for f in compiled.model_inputs:
            if f.name in out:
                out[f.name] = adapters[f.name].validate_python(out[f.name])
    return out


def _moment(kind: str, text: str) -> Any:
    """A date's or datetime's canonical text as Python's object (``Z`` read as UTC, which
    ``fromisoformat`` takes only from Python 3.11)."""
    import datetime

    if kind == DATE:
        return datetime.date.fromisoformat(text)
    return datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)


def _make_module(dspy: Any, compiled: CompiledSpec) -> Any:
    """A new module of a module spec, its state loaded. The state's LMs are not: a run's LM
    is its configuration's (as for every kind), and a state from a caller must not point
    the worker's key at another model or endpoint. ``failed_precondition`` when the name
    is not registered or its factory makes no ``dspy.Module``; ``invalid_argument`` when
    the state does not fit the module."""
    name = quote(compiled.module or "")
    factory = module_factory(compiled.module or "")
    try:
        module = factory()
    except Exception as exc:  # noqa: BLE001 - the user's factory raises what it raises
        raise WorkerError("internal", f"module {name}: its factory failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(module, dspy.Module):
        raise WorkerError("failed_precondition", f"module {name}: its factory made a {type(module).__name__}, not a dspy.Module")
    if compiled.state is None:
        return module
    parameters = dict(module.named_parameters())
    missing = [n for n in parameters if not isinstance(compiled.state.get(n), dict)]
    if missing:
        theirs = ", ".join(quote(k) for k in compiled.state if k != "metadata") or "none"
        raise WorkerError(
            "invalid_argument",
            f"module {name}: the state has no entry for its predictor {', '.join(quote(n) for n in missing)} "
            f"(the state's entries: {theirs}); was it saved from another module?",
        )
    for n, parameter in parameters.items():
        saved = _saved_keys(dspy, parameter)
        extra = sorted(k for k in compiled.state[n] if k not in saved)
        if extra:
            raise WorkerError(
                "invalid_argument",
                f"module {name}: its state's entry {quote(n)} holds {quote(extra[0])}, which DSPy does not save for it "
                f"(its keys: {', '.join(quote(k) for k in sorted(saved))})",
            )
    state = {n: {**compiled.state[n], "lm": None} for n in parameters}
    try:
        compiled.extras["state_images"] = images_in_dspy_state(state, convert)
    except ValueError as exc:
        raise WorkerError("invalid_argument", f"module {name}: its state: {exc}") from None
    try:
        module.load_state(state)
    except Exception as exc:  # noqa: BLE001 - DSPy refuses a state with many kinds
        raise WorkerError("invalid_argument", f"module {name}: {_unloadable(parameters, state, exc)}") from None
    return module


def _unloadable(parameters: dict[str, Any], state: dict[str, Any], exc: Exception) -> str:
    """Why a module's state did not load, naming the predictor whose entry DSPy refuses
    (each tried on a copy of its predictor, as DSPy's own trial run loads them) and, for a
    key it lacks, that DSPy's save writes it."""
    import copy

    for n, parameter in parameters.items():
        try:
            copy.deepcopy(parameter).load_state(state[n])
        except KeyError as missing:
            return (f"its state's entry {quote(n)} does not load: it lacks the key {missing} "
                    "(load the file DSPy's module.save wrote for this module, as it is)")
        except Exception as refused:  # noqa: BLE001 - DSPy refuses an entry with many kinds
            return f"its state's entry {quote(n)} does not load: {type(refused).__name__}: {refused}"
    return f"its state does not load: {type(exc).__name__}: {exc}"


def _saved_keys(dspy: Any, parameter: Any) -> set[str]:
    """The keys DSPy's save writes for ``parameter`` (a predictor of a module), which are
    all a state's entry for it may hold: ``Predict.load_state`` (and ``Retrieve``'s) set
    every other key as an attribute, and a ``config`` would reach each LM call of the
    predictor, its ``api_base`` sending the worker's key elsewhere."""
    keys = set(parameter.dump_state())
    if isinstance(parameter, dspy.Predict):
        keys |= {"fields", "lm"}  # written only when set
    return keys


#: The key of DSPy's settings (``dspy.context``) that holds the request a run serves: DSPy
#: copies its settings into the threads it starts (``Parallel``, ``asyncify``), so each LM
#: call of the run, on any thread, finds it (:func:`_lm_class`).
_RUN_SETTING = "dspgo_run"

#: :func:`_lm_class`'s class, made at its first call.
_LM_CLASS: Any = None


def _lm_class(dspy: Any) -> Any:
    """``dspy.LM`` whose calls first check the chat DSPy made (:func:`refuse_parts`: no image
    by URL unless ``dspgo_image_urls``, no stored file, no other kind of part), whatever
    text DSPy made content parts of, and whose blocking calls (``lm(...)``, made on a
    thread: a custom module's ``forward``, the threads of ``dspy.Parallel`` and
    ``dspy.asyncify``) check that their run (:data:`_RUN_SETTING`) goes on: a thread
    cannot be interrupted, but a cancelled run, or one past its deadline, makes no further
    LM call (``Cancelled``, ``DeadlineExceeded``). Calls on the event loop (``acall``) are
    cancelled where they wait. It overrides ``__call__`` and ``acall``, not ``forward``,
    whose override DSPy 3.4 takes for a legacy LM."""
    global _LM_CLASS
    if _LM_CLASS is None:

        class LM(dspy.LM):  # type: ignore[misc]  # dspy's class, known at run time
            #: The configuration's image_urls (make_lm sets it).
            dspgo_image_urls = False

            def __call__(self, *args: Any, **kwargs: Any) -> Any:
                run = dspy.settings.get(_RUN_SETTING)
                if run is not None:
                    run.check()
                refuse_parts(kwargs.get("messages"), self.dspgo_image_urls)
                return super().__call__(*args, **kwargs)

            async def acall(self, *args: Any, **kwargs: Any) -> Any:
                refuse_parts(kwargs.get("messages"), self.dspgo_image_urls)
                return await super().acall(*args, **kwargs)

        _LM_CLASS = LM
    return _LM_CLASS


async def _run_forward(ctx: Context, module: Any, inputs: dict[str, Any]) -> Any:
    """``module(**inputs)`` on one of the worker's threads (``ctx.run_sync``), in a copy
    of this task's context, so DSPy sees the run's LM, usage tracking and request there.
    ``forward`` makes no LM call after a cancel (:func:`_lm_class`), and a module that
    catches the error this raises (``dspy.BestOfN`` and ``dspy.Refine`` catch each
    attempt's) still ends its run ``canceled`` or ``deadline_exceeded``."""
    context = contextvars.copy_context()

    def forward() -> Any:
        return context.run(module, **inputs)

    if _worker_of(ctx) is None:
        result = await asyncio.to_thread(forward)
    else:
        result = await ctx.run_sync(forward)
    ctx.check()
    return result


async def _close(lm: Any) -> None:
    """Close the connections an LM opened on this loop (an LM serves one run at a time,
    so nothing else uses them); a dspy without ``LM.aclose`` leaves them to the LM's
    finalizers."""
    aclose = getattr(lm, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception as exc:  # noqa: BLE001 - the run's own outcome is what the caller gets
        log.debug("closing the run's LM failed", extra={"error": f"{type(exc).__name__}: {exc}"})


def _answering_predictor(module: Any, names: list[str]) -> Any:
    """The module's one predictor whose outputs are the program's (a ReAct's extraction
    step, not its loop), or None when none or several have them all: which one answers
    would be a guess (DSPy's ``streamify`` refuses to guess too), so the fields are sent
    whole at the end."""
    found = [p for _, p in module.named_predictors() if all(name in p.signature.output_fields for name in names)]
    return found[0] if len(found) == 1 else None


def _chunk_text(chunk: Any) -> str:
    """The text of one of the LM's stream chunks as DSPy hands them on."""
    try:
        text = chunk.choices[0].delta.content
    except (AttributeError, IndexError, KeyError, TypeError):
        return ""
    return text if isinstance(text, str) else ""


def _chunk_finished(chunk: Any) -> bool:
    """Whether one of the LM's stream chunks is the last of its reply (it says why the
    reply ended)."""
    try:
        return chunk.choices[0].finish_reason is not None
    except (AttributeError, IndexError, KeyError, TypeError):
        return False


def _prediction_value(prediction: Any, name: str) -> Any:
    value = getattr(prediction, name, None)
    if value is None:
        try:
            value = prediction[name]
        except Exception:  # noqa: BLE001 - not subscriptable, or no such key
            value = None
    return value


def _prediction_holds(prediction: Any, name: str) -> bool:
    """Whether the prediction has the output ``name`` (of any value, None too)."""
    try:
        return name in prediction
    except Exception:  # noqa: BLE001 - a prediction that is no mapping holds none
        return False


#: :func:`_run_usage`'s class, made at its first call.
_USAGE_CLASS: Any = None


def _run_usage(dspy: Any) -> Any:
    """A new tracker of one run's token usage: DSPy's ``UsageTracker``, which every LM call
    of the run adds to, shared by the threads the run starts (``dspy.Parallel`` copies a
    tracker into each of its threads, whose usage was lost) and read whatever the module
    returns (DSPy sets it on a ``Prediction`` only)."""
    global _USAGE_CLASS
    if _USAGE_CLASS is None:
        tracker: Any = importlib.import_module("dspy.utils.usage_tracker").UsageTracker

        class RunUsage(tracker):  # type: ignore[misc]  # dspy's class, known at run time
            def __init__(self) -> None:
                super().__init__()
                self._lock = threading.Lock()

            def add_usage(self, lm: str, usage_entry: dict[str, Any]) -> None:
                with self._lock:
                    super().add_usage(lm, usage_entry)

            def get_total_tokens(self) -> dict[str, dict[str, Any]]:
                with self._lock:
                    return super().get_total_tokens()  # type: ignore[no-any-return]

            def __deepcopy__(self, memo: dict[int, Any]) -> Any:
                return self  # one run, one tracker: its threads add to it

        _USAGE_CLASS = RunUsage
    return _USAGE_CLASS()


def _usage(by_model: dict[str, Any]) -> dict[str, Any] | None:
    """A run's token usage (by model, as DSPy's tracker totals it) summed over the models
    it called, or None when it made no LM call (or every reply came from the cache)."""
    if not by_model:
        return None
    total = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for usage in by_model.values():
        if not isinstance(usage, dict):
            continue
        for key in total:
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                total[key] += value
    if not total["total_tokens"]:
        total["total_tokens"] = total["prompt_tokens"] + total["completion_tokens"]
    return total if total["total_tokens"] else None


#: dspy's error classes (``dspy.utils.exceptions``) and litellm's, by name, and their codes.
_ERROR_CODES = {
    "LMAuthError": "failed_precondition",
    "LMBillingError": "failed_precondition",
    "LMNotConfiguredError": "failed_precondition",
    "LMConfigurationError": "invalid_argument",
    "LMRateLimitError": "resource_exhausted",
    "LMTimeoutError": "deadline_exceeded",
    "LMServerError": "unavailable",
    "LMTransportError": "unavailable",
    "LMInvalidRequestError": "invalid_argument",
    "ContextWindowExceededError": "invalid_argument",
    "LMUnsupportedModelError": "not_found",
    "LMUnsupportedFeatureError": "invalid_argument",
    "LMStreamAssemblyError": "internal",
    "AdapterParseError": "internal",
    # litellm and openai, for a dspy that raises them directly
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
}


def _read_timed_out(exc: BaseException) -> bool:
    """Whether a transport failure was a read or write time-out (DSPy reports them as
    transport errors, with the time-out as their cause)."""
    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 8:
        if any(cls.__name__ in ("ReadTimeout", "WriteTimeout", "ReadTimeoutError") for cls in type(cause).__mro__):
            return True
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return False


def _coded(exc: BaseException, config: LMConfig) -> WorkerError:
    """A dspy run's failure as a coded error whose message names what failed (for an
    unparseable reply, the fields DSPy could not read) and never the API key."""
    code = "internal"
    for cls in type(exc).__mro__:
        found = _ERROR_CODES.get(cls.__name__)
        if found:
            code = found
            break
    if code == "unavailable" and _read_timed_out(exc):
        code = "deadline_exceeded"  # the LM did not answer within lm.timeout
    message = f"dspy program failed: {type(exc).__name__}: {exc}"
    coded = WorkerError(code, redact(message, config.api_key()))
    # The failure's own type and traceback (a module's frame and line), not this error's.
    import traceback

    coded.error_type = type(exc).__name__
    coded.trace = redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)), config.api_key())
    return coded


#: The engine (it keeps no state of its runs: one serves every run).
ENGINE = DspyEngine()
