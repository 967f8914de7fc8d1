"""The dspy engine: a spec run by the real DSPy library (``dspy.Predict``,
``dspy.ChainOfThought``, ``dspy.ReAct``) with a ``dspy.LM`` made from the configuration.

How a run goes:

* The spec becomes a ``dspy.Signature`` (:func:`python_type` maps each field type;
  instructions and field descriptions go with it) and a module, both built once per
  compiled spec; the spec's demos become ``dspy.Example`` demos of the predictor that
  produces the outputs (:meth:`DspyEngine.set_demos`). A ``react`` spec gets a fresh
  ``dspy.ReAct`` per run, its tools calling the host through the request's context.
* Every run is a coroutine (``module.acall``) on the worker's one DSPy event loop
  (:class:`_Loop`, a daemon thread started on first use), inside ``dspy.context`` with
  the run's own LM and usage tracking: nothing global is set. The handler's thread waits
  for it; the request's cancellation or deadline cancels the coroutine, which closes the
  LM's HTTP request, and the handler returns at once.
* A streamed run goes through ``dspy.streamify``, which hands on the LM's stream as it
  arrives. The text of the predictor that produces the program's outputs (a ReAct's
  extraction step, not its loop) is read by the native engine's
  :class:`~dspgo_worker.chunks.ReplyStreamer`, so both engines cut a reply into field
  deltas by one rule (DSPy's own ``StreamListener`` drops a field's text from a ``[[``
  on, taking it for the next header). The text passes from the loop to the handler
  through a bounded hand-off (:data:`HANDOFF_WINDOW`), so a slow consumer slows the LM
  stream instead of filling memory; the credit flow and end frame are the native
  engine's.
* Usage is DSPy's usage tracking, summed over the models the run called; a reply served
  from DSPy's cache reports none.

Importing dspy (:func:`import_dspy`) keeps the worker's promises: litellm uses its own
copy of the model cost map instead of fetching one from the network, and DSPy's cache
lives in memory only (never on disk); whether an LM call uses it is ``cache`` of
``configure_lm`` (off by default). Nothing DSPy reports reaches stderr outside the
worker's JSON log: tqdm's progress bars are off unless asked for (``TQDM_DISABLE``; those
DSPy's ``Evaluate`` asks for go to ``sys.stdout``, which a compile routes, see
:mod:`dspgo_worker.optimize`), and the ``dspy`` logger's records go to the worker's log,
its INFO ones as DEBUG (:class:`_DSPyLogs`).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import queue
import threading

from .chat_format import convert_outputs
from .chunks import ReplyStreamer, drain
from .engines import EngineUnavailable
from .errors import Cancelled, DeadlineExceeded, WorkerError
from .fieldtypes import FieldType
from .kinds import KIND_CHAIN_OF_THOUGHT, KIND_REACT, REASONING_FIELD
from .lmconfig import LMConfig
from .programs import DEFAULT_MAX_ITERS
from .react import observe
from .redact import redact
from .spec import CompiledSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Awaitable, Coroutine, Generator, Sequence
    from typing import Any, Callable

    from .context import Context
    from .engines import Run

# dspy is imported by name (importlib) and not analysed: its modules, signatures,
# predictors, LMs and predictions are typed Any here.

log = logging.getLogger("dspgo_worker.dspy")

#: Chunks the DSPy loop may hand on ahead of the handler that sends them.
HANDOFF_WINDOW = 16
#: Most threads of the DSPy loop's executor (host tool calls, DSPy's own blocking steps).
EXECUTOR_THREADS = 256
#: Memory cache entries of DSPy's LM cache (per worker process).
MEMORY_CACHE_ENTRIES = 4096


_import_lock = threading.Lock()
_dspy: Any = None


def import_dspy() -> Any:
    """The ``dspy`` module, imported once with the worker's settings (see the module
    docstring), or raise :class:`EngineUnavailable` saying why not."""
    global _dspy
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


def python_type(t: FieldType) -> Any:
    """The Python type DSPy expects for a field type: ``list[int]``, ``dict[int, str]``,
    ``tuple[int, str]``, ``tuple[int, ...]``, ``typing.Literal['a']``, ``typing.Any``,
    ``typing.Optional[int]``, ``typing.Union[int, str]``: the type ``dspy.Signature``
    makes of the same signature string (python/tests/test_dspy_signatures.py checks it)."""
    import typing

    from .fieldtypes import ANY, BOOL, DICT, FLOAT, INT, LIST, LITERAL, OPTIONAL, STR, TUPLE, UNION

    kind = t.kind
    if kind == LIST:
        return list[python_type(t.elem)]  # type: ignore[misc]  # a type built at run time
    if kind == DICT:
        return dict[python_type(t.key) if t.key is not None else str, python_type(t.elem)]  # type: ignore[misc]  # built at run time
    if kind == TUPLE:
        if t.variadic:
            return tuple[python_type(t.elem), ...]  # type: ignore[misc]  # a type built at run time
        return tuple[tuple(python_type(m) for m in t.members)]  # type: ignore[misc]  # built at run time
    if kind == LITERAL:
        return typing.Literal[t.values]
    if kind == ANY:
        return typing.Any
    if kind == OPTIONAL:
        return typing.Optional[python_type(t.elem)]
    if kind == UNION:
        return typing.Union[tuple(python_type(m) for m in t.members)]
    return {STR: str, INT: int, FLOAT: float, BOOL: bool}[kind]


# --- the event loop -------------------------------------------------------------------


class _Loop:
    """The worker's one asyncio loop for DSPy runs, on a daemon thread started on first
    use. Runs share it (and so share litellm's and DSPy's async HTTP clients, which are
    bound to a loop); nothing on it may block."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                # Host tools and DSPy's own to_thread calls wait on the default executor:
                # one thread per concurrent run, not Python's few-per-core default.
                from concurrent.futures import ThreadPoolExecutor

                loop.set_default_executor(ThreadPoolExecutor(max_workers=EXECUTOR_THREADS, thread_name_prefix="dspgo-dspy"))
                threading.Thread(target=loop.run_forever, name="dspgo-dspy-loop", daemon=True).start()
                cls._loop = loop
            return cls._loop


_DONE = object()


class _Handoff:
    """Items from a coroutine on the loop to the handler's thread, at most ``window``
    ahead of the handler; the end of the coroutine (its result or error) comes last."""

    def __init__(self, loop: asyncio.AbstractEventLoop, window: int = HANDOFF_WINDOW) -> None:
        self.loop = loop
        self.items: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.credit = asyncio.Semaphore(window)  # used on the loop only

    async def put(self, item: object) -> None:
        await self.credit.acquire()
        self.items.put(item)

    def taken(self) -> None:
        """The handler has taken one item: the coroutine may put another."""
        self.loop.call_soon_threadsafe(self.credit.release)


class _Run:
    """One coroutine on the DSPy loop, awaited from the handler's thread with the
    request's cancellation and deadline."""

    def __init__(self, make_coroutine: Callable[[], Coroutine[Any, Any, Any]], ctx: Context, handoff: _Handoff | None = None) -> None:
        self.ctx = ctx
        self.handoff = handoff
        self.wake: queue.SimpleQueue[object] = handoff.items if handoff is not None else queue.SimpleQueue()
        self.future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(make_coroutine(), _Loop.get())
        self.future.add_done_callback(lambda _: self.wake.put(_DONE))
        self._remove = ctx.on_cancel(self._cancelled)

    def _cancelled(self) -> None:
        self.future.cancel()
        self.wake.put(_DONE)

    def next(self) -> object:
        """The next handed-on item, or :data:`_DONE` once the coroutine has ended; raises
        Cancelled or DeadlineExceeded (cancelling the coroutine) when the request ends
        first."""
        ctx = self.ctx
        try:
            item = self.wake.get(timeout=ctx.remaining())
        except queue.Empty:
            item = None
        if ctx.cancelled.is_set():
            self.close()
            raise Cancelled(ctx.cancel_reason)
        if item is None:
            self.close()
            raise DeadlineExceeded(f"request {ctx.id} ({ctx.command}) ran past its deadline in the dspy program")
        if item is not _DONE and self.handoff is not None:
            self.handoff.taken()
        return item

    def result(self) -> Any:
        """The coroutine's result (once :meth:`next` gave :data:`_DONE`); raises its error."""
        self._remove()
        return self.future.result(timeout=0)

    def close(self) -> None:
        """Cancel the coroutine if it still runs (the LM request is closed); returns at once."""
        self._remove()
        self.future.cancel()


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
                fields = {}
                for f in compiled.inputs:
                    kwargs = {"desc": f.description} if f.description else {}
                    fields[f.name] = (python_type(f.type), dspy.InputField(**kwargs))
                for f in compiled.declared_outputs:
                    kwargs = {"desc": f.description} if f.description else {}
                    fields[f.name] = (python_type(f.type), dspy.OutputField(**kwargs))
                signature = compiled.extras["dspy_signature"] = dspy.make_signature(fields, compiled.instructions or None)
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

    @staticmethod
    def set_demos(dspy: Any, compiled: CompiledSpec, module: Any) -> None:
        """The spec's demos as ``dspy.Example`` objects (inputs, ``reasoning`` when a
        chain_of_thought demo has one, outputs) on the predictor that produces the
        program's outputs: a Predict itself, a ChainOfThought's ``predict``, a ReAct's
        ``extract.predict`` (whose trajectory and reasoning a demo does not supply, so
        DSPy shows it as an incomplete example)."""
        if not compiled.demos:
            return
        examples = compiled.extras.get("dspy_demos")
        if examples is None:
            examples = []
            for demo in compiled.demos:
                values = dict(demo["inputs"])
                if "reasoning" in demo:
                    values[REASONING_FIELD] = demo["reasoning"]
                values.update(demo["outputs"])
                examples.append(dspy.Example(**values).with_inputs(*demo["inputs"]))
            compiled.extras["dspy_demos"] = examples
        target = _answering_predictor(module, [f.name for f in compiled.outputs])
        if target is not None:
            target.demos = list(examples)

    @staticmethod
    def tools(dspy: Any, tools: Sequence[dict[str, Any]], ctx: Context, trajectory: list[Any]) -> list[Any]:
        """``dspy.Tool`` objects calling the host's tools; each call is noted in
        ``trajectory``, and a tool's error is its observation (the LM sees it). The host
        call waits on a thread of the loop's executor, so the loop stays free."""
        def host_tool(name: str) -> Callable[..., Awaitable[Any]]:
            # Unannotated on purpose: dspy.Tool evaluates a function's annotations at run time,
            # where the names of this module's annotations do not exist.
            async def call(**kwargs):  # type: ignore[no-untyped-def]
                observation = await asyncio.get_running_loop().run_in_executor(None, observe, ctx, name, kwargs)
                trajectory.append({"tool": name, "args": kwargs, "observation": observation})
                return observation

            call.__name__ = name
            return call

        made = []
        for descriptor in tools:
            name = descriptor["name"]
            properties = descriptor["schema"].get("properties")
            made.append(
                dspy.Tool(
                    host_tool(name), name=name, desc=descriptor["description"],
                    args=properties if isinstance(properties, dict) else {},
                )
            )
        return made

    @staticmethod
    def make_lm(dspy: Any, config: LMConfig) -> Any:
        """The run's ``dspy.LM``: ``openai/<model>`` (any OpenAI-compatible endpoint) with
        the configured base URL, key (read from the environment now), temperature,
        max_tokens, timeout and cache."""
        model = config.model if config.model.startswith("openai/") else "openai/" + config.model
        key = config.api_key()
        if not key:
            raise WorkerError(
                "failed_precondition",
                f"the dspy engine needs an API key: ${config.effective_api_key_env} is unset or empty in the worker's "
                "environment (dspy's LM client sends one with every request; an endpoint that needs none accepts any value)",
            )
        kwargs: dict[str, Any] = {"api_base": config.effective_base_url, "api_key": key, "cache": bool(config.cache), "timeout": config.timeout}
        if config.temperature is not None:
            kwargs["temperature"] = config.temperature
        if config.max_tokens:
            kwargs["max_tokens"] = config.max_tokens
        return dspy.LM(model, **kwargs)

    def execute(
        self,
        compiled: CompiledSpec,
        inputs: dict[str, Any],
        config: LMConfig,
        ctx: Context,
        tools: Sequence[dict[str, Any]] = (),
        max_iters: int = DEFAULT_MAX_ITERS,
        stream: bool = False,
    ) -> Run:
        """The engine protocol of :mod:`dspgo_worker.engines`: yields the chunks of a
        streamed run, returns ``(outputs, trajectory, usage)``."""
        dspy = import_dspy()
        trajectory: list[dict[str, Any]] | None = None
        if compiled.kind == KIND_REACT:
            trajectory = []
            module = dspy.ReAct(self.signature(dspy, compiled), tools=self.tools(dspy, tools, ctx, trajectory), max_iters=max_iters)
            with self._lock:
                self.set_demos(dspy, compiled, module)
        else:
            module = self.module(dspy, compiled)
        try:
            lm = self.make_lm(dspy, config)
        except WorkerError:
            raise
        except Exception as exc:  # noqa: BLE001 - dspy refuses a configuration with many kinds
            raise WorkerError("invalid_argument", redact(f"dspy.LM refused the configuration: {type(exc).__name__}: {exc}", config.api_key())) from None
        if stream:
            prediction = yield from self._stream(dspy, module, lm, config, compiled, inputs, ctx)
        else:
            prediction = self._call(dspy, module, lm, config, inputs, ctx)
        outputs = self._outputs(compiled, prediction)
        return outputs, (list(trajectory) if trajectory is not None else None), _usage(prediction)

    def run(self, compiled: CompiledSpec, inputs: dict[str, Any], config: LMConfig, ctx: Context) -> dict[str, Any]:
        return drain(self.execute(compiled, inputs, config, ctx))[0]

    def _call(self, dspy: Any, module: Any, lm: Any, config: LMConfig, inputs: dict[str, Any], ctx: Context) -> Any:
        async def main() -> Any:
            with dspy.context(lm=lm, track_usage=True):
                return await module.acall(**inputs)

        run = _Run(main, ctx)
        try:
            while run.next() is not _DONE:
                pass
            return self._result(run, config)
        finally:
            run.close()

    def _stream(
        self, dspy: Any, module: Any, lm: Any, config: LMConfig, compiled: CompiledSpec, inputs: dict[str, Any], ctx: Context
    ) -> Generator[dict[str, Any], None, Any]:
        target = _answering_predictor(module, [f.name for f in compiled.outputs])
        handoff = _Handoff(_Loop.get())

        async def main() -> Any:
            with dspy.context(lm=lm, track_usage=True):
                program = dspy.streamify(module, is_async_program=True)
                prediction = None
                async for item in program(**inputs):
                    if isinstance(item, dspy.Prediction):
                        prediction = item
                    elif target is not None and getattr(item, "predict_id", None) == id(target):
                        text = _chunk_text(item)
                        if text:
                            await handoff.put(text)
                return prediction

        streamer = ReplyStreamer(compiled)
        run = _Run(main, ctx, handoff)
        try:
            while True:
                item = run.next()
                if item is _DONE:
                    break
                for name, delta in streamer.feed(str(item)):  # the text of a chunk
                    yield {"field": name, "delta": delta}
            prediction = self._result(run, config)
            for name, delta in streamer.finish(self._outputs(compiled, prediction)):
                yield {"field": name, "delta": delta}
            return prediction
        finally:
            run.close()

    @staticmethod
    def _result(run: _Run, config: LMConfig) -> Any:
        try:
            prediction = run.result()
        except WorkerError:
            raise
        except Exception as exc:  # noqa: BLE001 - dspy and its LM clients raise many kinds
            raise _coded(exc, config) from None
        if prediction is None:
            raise WorkerError("internal", "the dspy program ended without a prediction")
        return prediction

    @staticmethod
    def _outputs(compiled: CompiledSpec, prediction: Any) -> dict[str, Any]:
        raw = {}
        for f in compiled.outputs:
            names = (f.name, "rationale") if f.name == REASONING_FIELD and compiled.kind == KIND_CHAIN_OF_THOUGHT else (f.name,)
            for name in names:
                value = _prediction_value(prediction, name)
                if value is not None:
                    raw[f.name] = value
                    break
        return convert_outputs(compiled, raw, "from the dspy prediction")


def _answering_predictor(module: Any, names: list[str]) -> Any:
    """The module's predictor whose outputs are the program's (its last one that has
    them all: a ReAct's extraction step, not its loop), or None."""
    predictors = [p for _, p in module.named_predictors()]
    for predictor in reversed(predictors):
        if all(name in predictor.signature.output_fields for name in names):
            return predictor
    return None


def _chunk_text(chunk: Any) -> str:
    """The text of one of the LM's stream chunks as DSPy hands them on."""
    try:
        text = chunk.choices[0].delta.content
    except (AttributeError, IndexError, KeyError, TypeError):
        return ""
    return text if isinstance(text, str) else ""


def _prediction_value(prediction: Any, name: str) -> Any:
    value = getattr(prediction, name, None)
    if value is None:
        try:
            value = prediction[name]
        except Exception:  # noqa: BLE001 - not subscriptable, or no such key
            value = None
    return value


def _usage(prediction: Any) -> dict[str, Any] | None:
    """The prediction's token usage summed over the models it called, or None when it
    made no LM call (or every reply came from the cache)."""
    try:
        by_model = prediction.get_lm_usage()
    except Exception:  # noqa: BLE001 - a prediction without usage tracking
        return None
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
    return WorkerError(code, redact(message, config.api_key()))


#: The engine (it keeps no state of its runs: one serves every run).
ENGINE = DspyEngine()
