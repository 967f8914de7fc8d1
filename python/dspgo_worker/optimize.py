"""The ``compile_program`` command: a DSPy optimizer (``dspy.teleprompt``) run on a spec
and a training set sent by the host, its metric the host's tool ``metric``.

How a compile goes:

* The arguments are checked first (the spec, the optimizer and its parameters, the
  training and validation examples, shaped as demos), then ``dspy`` is imported (a worker
  without it answers ``failed_precondition`` naming dspy) and the LM configuration must be
  an OpenAI-compatible one (the dummy provider cannot serve DSPy).
* The optimizer runs on a thread of its own (:class:`_Compile`), inside ``dspy.context``
  with the run's ``dspy.LM`` and a callback (:class:`_Hook`); the student is a fresh
  ``dspy.Predict`` or ``dspy.ChainOfThought`` of the spec. The handler's thread waits for
  it and, when the host asked for a stream, sends a progress chunk after every metric
  score and every evaluation of a candidate program.
* The metric is :meth:`_Compile.metric`: it sends the example and the prediction's outputs
  to the host (``ctx.call("metric", ...)``) and returns the host's score. Nothing the host
  sends is evaluated as code.
* Stopping: the request's cancellation or deadline, or a failure of the host's metric,
  sets a flag that the callback and the metric check before every LM call, module call and
  score, raising :class:`_Stop`. It derives from ``BaseException`` so that DSPy's
  ``except Exception`` (which counts failed examples up to ``max_errors``) lets it
  through, and the optimizer ends at its next step: no LM call is made after the handler
  has answered. The handler waits for the thread to end (at most the LM's time-out) before
  it answers.
* The result is the answering predictor's instructions and demos, checked by compiling
  the new spec as ``create_program`` would.
* Quiet: progress goes to the progress chunks, not to the log. DSPy's optimizers narrate
  their steps with ``print``; what a compile prints, on the optimizer's thread or on a
  thread DSPy starts for it (which carries the compile's ``dspy.context``), becomes DEBUG
  records of the worker's log, one a line, progress bars dropped (:class:`_Prints`,
  ``sys.stdout`` once a compile has run). tqdm's bars on stderr and the ``dspy`` logger
  are quieted when dspy is imported (:func:`dspgo_worker.dspy_engine.import_dspy`);
  optuna's logger, which MIPROv2 uses, goes to the worker's log instead of its own
  stderr handler.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import queue
import sys
import threading

from .errors import Cancelled, DeadlineExceeded, ToolError, WorkerError
from .registry import Arg, command

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Generator
    from typing import Any, Callable, TextIO

    from .context import Context
    from .lmconfig import LMConfig
    from .spec import CompiledSpec

log = logging.getLogger("dspgo_worker.optimize")

#: The host tool that scores a prediction (Go: command.MetricTool).
METRIC_TOOL = "metric"

#: The optimizers and the parameters each takes, by DSPy's class name (Go:
#: command.OptimizerArgs). Absent parameters take DSPy's defaults.
OPTIMIZERS = {
    "LabeledFewShot": ("k",),
    "BootstrapFewShot": ("max_bootstrapped_demos", "max_labeled_demos", "max_rounds", "metric_threshold", "max_errors"),
    "BootstrapFewShotWithRandomSearch": (
        "max_bootstrapped_demos", "max_labeled_demos", "max_rounds", "metric_threshold", "max_errors",
        "num_candidate_programs", "num_threads", "stop_at_score",
    ),
    "MIPROv2": (
        "max_bootstrapped_demos", "max_labeled_demos", "metric_threshold", "max_errors", "num_threads",
        "auto", "num_trials", "num_candidates", "minibatch_size", "seed",
    ),
}
#: The optimizers that need a metric.
NEEDS_METRIC = ("BootstrapFewShotWithRandomSearch", "MIPROv2")
#: Integer parameters and their least value.
_INT_PARAMS = {
    "k": 0, "max_bootstrapped_demos": 0, "max_labeled_demos": 0, "max_rounds": 1, "max_errors": 1,
    "num_candidate_programs": 1, "num_threads": 1, "num_trials": 1, "num_candidates": 1, "minibatch_size": 0, "seed": 0,
}
_FLOAT_PARAMS = ("metric_threshold", "stop_at_score")
_AUTO = ("light", "medium", "heavy")
#: Threads that score candidates when the host does not say.
DEFAULT_NUM_THREADS = 1


class _Stop(BaseException):
    """Ends the optimizer at its next step (see the module docstring)."""


def _invalid(message: str) -> WorkerError:
    return WorkerError("invalid_argument", f"compile_program: {message}")


def check_optimizer(raw: dict[str, Any], metric: bool) -> tuple[str, dict[str, Any]]:
    """The optimizer's name and its parameters, checked; ``invalid_argument`` naming the
    parameter."""
    name = raw.get("name")
    if name not in OPTIMIZERS:
        raise _invalid(f"optimizer.name {name!r} is unknown (known: {', '.join(OPTIMIZERS)})")
    if name in NEEDS_METRIC and not metric:
        raise _invalid(f"optimizer {name} needs a metric")
    params = {}
    for key, value in raw.items():
        if key == "name" or value is None:
            continue
        if key not in OPTIMIZERS[name]:
            raise _invalid(f"optimizer {name} takes no {key!r} (it takes: {', '.join(OPTIMIZERS[name])})")
        if key in _INT_PARAMS:
            if not isinstance(value, int) or isinstance(value, bool) or value < _INT_PARAMS[key]:
                raise _invalid(f"optimizer.{key} must be an integer of at least {_INT_PARAMS[key]}, got {value!r}")
        elif key in _FLOAT_PARAMS:
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise _invalid(f"optimizer.{key} must be a number, got {value!r}")
        elif key == "auto" and value not in _AUTO and value != "":
            raise _invalid(f"optimizer.auto must be one of {', '.join(_AUTO)}, got {value!r}")
        params[key] = value
    if name == "MIPROv2":
        if not params.get("auto") and ("num_trials" not in params or "num_candidates" not in params):
            raise _invalid("MIPROv2 needs auto, or num_trials and num_candidates")
        if params.get("auto") and ("num_trials" in params or "num_candidates" in params):
            raise _invalid("MIPROv2 takes auto, or num_trials and num_candidates, not both")
    return name, params


def check_examples(spec: dict[str, Any], raw: list[Any], which: str) -> list[dict[str, Any]]:
    """The examples of ``trainset`` or ``valset``, checked and converted as a spec's demos
    are, but that each holds an input and an output or reasoning, as Go's
    ``Compiled.Examples`` checks (``invalid_argument`` naming the set, the example and the
    field)."""
    from .spec import CompiledSpec

    for i, example in enumerate(raw):
        if not isinstance(example, dict):
            raise _invalid(f"{which}[{i}] must be an object")
    try:
        examples = list(CompiledSpec({**spec, "demos": raw}).demos) if raw else []
    except WorkerError as exc:
        raise WorkerError(exc.code, f"compile_program: {which}: {exc.message}") from None
    for i, example in enumerate(examples):
        if not example["inputs"]:
            raise _invalid(f"{which} example {i} holds no input: an example is run on its inputs")
        if not example["outputs"] and "reasoning" not in example:
            raise _invalid(f"{which} example {i} holds no output: an example is scored on its outputs")
    return examples


@command(
    "compile_program",
    args={
        "program_id": Arg("str", description="the host's id of the program, for logs only"),
        "spec": Arg("object", required=True, description="the program to optimize: predict or chain_of_thought"),
        "optimizer": Arg("object", required=True, description="{name, ...parameters}: LabeledFewShot, BootstrapFewShot, "
                         "BootstrapFewShotWithRandomSearch or MIPROv2 with DSPy's parameter names"),
        "trainset": Arg("array", required=True, description="training examples, shaped as demos: [{inputs, outputs, reasoning?}]"),
        "valset": Arg("array", description="validation examples (default: the optimizer's, from the trainset)"),
        "metric": Arg("bool", default=False, description="the host has the metric tool"),
        "lm": Arg("str", default="", description="name of the LM configuration to run with (default: the default LM)"),
    },
    description="Run a DSPy optimizer on a spec and examples, scored by the host's metric tool; streams progress. "
    "Result {instructions, demos, score?}.",
)
def compile_program(args: dict[str, Any], ctx: Context) -> Generator[dict[str, Any], None, dict[str, Any]]:
    """Checks everything, starts the optimizer and returns the generator that waits for it
    (streaming progress when the request asks for a stream)."""
    from .kinds import KIND_CHAIN_OF_THOUGHT, KIND_PREDICT
    from .programs import program_state

    state = program_state(ctx)
    compiled = state.compile(args["spec"])
    if compiled.kind not in (KIND_PREDICT, KIND_CHAIN_OF_THOUGHT):
        raise _invalid(f"a {compiled.kind} program cannot be compiled (only {KIND_PREDICT} and {KIND_CHAIN_OF_THOUGHT})")
    name, params = check_optimizer(args["optimizer"], args["metric"])
    base = {**compiled.spec, "demos": []}
    trainset = check_examples(base, args["trainset"], "trainset")
    if not trainset:
        raise _invalid("trainset is empty")
    valset = check_examples(base, args["valset"], "valset") if args["valset"] is not None else None
    config = state.lm_named(args["lm"])
    if compiled.media_inputs:
        from .media import refuse_image_urls

        for which, examples in (("trainset", trainset), ("valset", valset or [])):
            for i, example in enumerate(examples):
                refuse_image_urls(config, compiled.media_inputs, example["inputs"], f"{which}[{i}] input")

    from .dspy_engine import ENGINE, import_dspy

    dspy = import_dspy()  # failed_precondition naming dspy when it cannot be imported
    if config.provider == "dummy":
        raise WorkerError(
            "failed_precondition",
            "compile_program runs DSPy's optimizers, which need an OpenAI-compatible LM (configure_lm provider openai): "
            "the dummy provider cannot serve DSPy",
        )
    if name == "MIPROv2":
        if importlib.util.find_spec("optuna") is None:
            raise WorkerError("failed_precondition", "MIPROv2 needs the optuna package, which the worker's interpreter lacks "
                              "(pip install optuna, or dspy[optuna])")
        _route_optuna_logs()
    _route_prints(dspy)
    lm = ENGINE.make_lm(dspy, config)
    run = _Compile(dspy, ctx, compiled, name, params, trainset, valset, args["metric"], lm, config)
    run.start()
    return run.wait()


def _route_optuna_logs() -> None:
    """optuna's records to the worker's log (root logger), not to optuna's own handler on
    stderr."""
    optuna = importlib.import_module("optuna")
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()


_prints_lock = threading.Lock()


def _route_prints(dspy: Any) -> None:
    """Make ``sys.stdout`` a :class:`_Prints` over the current one, unless it is one."""
    with _prints_lock:
        if not isinstance(sys.stdout, _Prints):
            sys.stdout = _Prints(dspy, sys.stdout)


class _Prints:
    """``sys.stdout`` once a compile has run: text printed inside a compile (in the
    ``dspy.context`` of its :class:`_Hook`) goes to :meth:`_Compile.printed`, other text
    to the stream this one replaced."""

    def __init__(self, dspy: Any, stream: TextIO) -> None:
        self.dspy, self.stream = dspy, stream

    def write(self, text: str) -> int:
        run = self._run()
        if run is None:
            return self.stream.write(text)
        run.printed(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

    def _run(self) -> _Compile | None:
        """The compile whose ``dspy.context`` the writing thread is in, if any."""
        try:
            callbacks = self.dspy.settings.callbacks
        except Exception:  # noqa: BLE001 - a print must never fail for want of DSPy's settings
            return None
        for callback in callbacks or ():
            if isinstance(callback, _Hook):
                return callback.run
        return None


class _Hook:
    """The DSPy callback of one compile: stops the optimizer before an LM or module call
    once the compile must end, and reports each evaluation's score."""

    def __init__(self, run: _Compile) -> None:
        self.run = run

    def __getattr__(self, name: str) -> Callable[..., None]:
        # DSPy calls on_<component>_start/end for every component; the ones not defined
        # below do nothing.
        if name.startswith("on_"):
            return _ignore
        raise AttributeError(name)

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.run.check()

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.run.check()

    def on_evaluate_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
        score = getattr(outputs, "score", None)
        if exception is None and isinstance(score, (int, float)):
            self.run.evaluated(float(score))


def _ignore(*args: Any, **kwargs: Any) -> None:
    return None


_DONE = object()


class _Compile:
    """One optimizer run on its own thread (see the module docstring)."""

    def __init__(
        self,
        dspy: Any,
        ctx: Context,
        compiled: CompiledSpec,
        name: str,
        params: dict[str, Any],
        trainset: list[dict[str, Any]],
        valset: list[dict[str, Any]] | None,
        metric: bool,
        lm: Any,
        config: LMConfig,
    ) -> None:
        self.dspy, self.ctx, self.compiled, self.name, self.params = dspy, ctx, compiled, name, params
        self.lm, self.config, self.has_metric = lm, config, metric
        self.examples = {"trainset": self._examples(trainset), "valset": self._examples(valset) if valset is not None else None}
        self._where: dict[int, tuple[str, int]] = {}
        for which, examples in self.examples.items():
            for i, example in enumerate(examples or ()):
                self._where[id(example)] = (which, i)
        self.events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._failure: WorkerError | None = None
        self._stopped = threading.Event()
        self.calls, self.total, self.evaluations = 0, 0.0, 0
        self._printed = ""
        self.best: float | None = None
        self.thread = threading.Thread(target=self._main, name=f"dspgo-compile-{ctx.id}", daemon=True)

    def _examples(self, demos: list[dict[str, Any]]) -> list[Any]:
        """The demos as ``dspy.Example`` objects whose inputs are the spec's inputs."""
        from .dspy_engine import dspy_example

        return [dspy_example(self.dspy, self.compiled, demo) for demo in demos]

    # --- the handler's side ---------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def wait(self) -> Generator[dict[str, Any], None, dict[str, Any]]:
        """The generator of the handler: progress events until the optimizer ends, then
        its result; the request's end stops the optimizer and raises."""
        ctx = self.ctx
        remove = ctx.on_cancel(lambda: self.events.put(None))
        try:
            while True:
                try:
                    item = self.events.get(timeout=ctx.remaining())
                except queue.Empty:
                    item = None
                if item is None:
                    self.stop()
                    ctx.check()  # raises Cancelled or DeadlineExceeded
                    raise DeadlineExceeded(f"request {ctx.id} ({ctx.command}) ran past its deadline")
                if isinstance(item, tuple) and item[0] is _DONE:
                    _, result, error = item
                    if error is not None:
                        raise error
                    done: dict[str, Any] = result
                    return done
                yield item
        finally:
            remove()
            self.stop()

    def stop(self) -> None:
        """End the optimizer at its next step and wait for its thread (at most the LM's
        time-out and a second). The handler's thread calls it."""
        self._stopped.set()
        if self.thread.is_alive():
            self.thread.join(self.config.timeout + 1.0)
            if self.thread.is_alive():
                log.warning("the optimizer did not stop in time", extra={"request_id": self.ctx.id})

    # --- the optimizer's side -------------------------------------------------------

    def fail(self, failure: WorkerError) -> _Stop:
        """Record the compile's failure (the first one counts), end the optimizer at its
        next step, and return the :class:`_Stop` to raise now."""
        with self._lock:
            if self._failure is None:
                self._failure = failure
            self._stopped.set()
        return _Stop()

    def check(self) -> None:
        """Raise :class:`_Stop` when the compile must end."""
        ctx = self.ctx
        if self._stopped.is_set() or ctx.cancelled.is_set() or ctx.expired():
            raise _Stop()

    # Annotated with builtins only: DSPy may read a metric's annotations at run time.
    def metric(self, example: object, prediction: object, trace: object = None, *rest: object, **kwargs: object) -> float:
        """DSPy's metric: the host's score of the prediction."""
        self.check()
        from .dspy_engine import ENGINE

        which, index = self._where.get(id(example), (None, None))
        args: dict[str, Any] = {
            "example": self._demo(example),
            "prediction": ENGINE._outputs(self.compiled, prediction),
            "trace": trace is not None,
        }
        if index is not None:
            args["index"], args["set"] = index, which
        try:
            result = self.ctx.call(METRIC_TOOL, args)
        except ToolError as exc:
            raise self.fail(WorkerError(exc.code, f"the metric failed: {exc.message}")) from None
        except (Cancelled, DeadlineExceeded):
            raise _Stop() from None
        score = result.get("score") if isinstance(result, dict) else None
        if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
            raise self.fail(WorkerError("internal", f"the metric returned {result!r}, not {{\"score\": number}}"))
        with self._lock:
            self.calls += 1
            self.total += score
            event = self._event("metric", float(score))
        self.events.put(event)
        return float(score)

    def printed(self, text: str) -> None:
        """Log each complete line DSPy printed at DEBUG. A partial line waits for its end;
        blank lines, and lines redrawn with carriage returns (the progress bars of DSPy's
        ``Evaluate``, which tqdm writes to ``sys.stdout``), are dropped."""
        with self._lock:
            lines = (self._printed + text).split("\n")
            self._printed = lines.pop()
        for line in lines:
            if line.strip() and "\r" not in line:
                self.ctx.logger.debug(line.rstrip(), extra={"optimizer": self.name, "source": "print"})

    def evaluated(self, score: float) -> None:
        with self._lock:
            self.evaluations += 1
            self.best = score if self.best is None else max(self.best, score)
            event = self._event("evaluation", score)
        self.events.put(event)

    def _event(self, kind: str, score: float) -> dict[str, Any]:
        event: dict[str, Any] = {"event": kind, "calls": self.calls, "score": score, "mean": self.total / self.calls if self.calls else 0.0,
                 "evaluations": self.evaluations}
        if self.best is not None:
            event["best"] = self.best
        return event

    def _demo(self, example: object) -> dict[str, Any]:
        """An example (or a demo DSPy made) as a demo of the spec: the fields it has, a
        null one included (an ``Optional`` input left out stays out, as in a run)."""
        from .plain import plain  # dataclasses and the values only when an optimizer runs

        demo: dict[str, Any] = {"inputs": {}, "outputs": {}}
        for side, fields in (("inputs", self.compiled.inputs), ("outputs", self.compiled.declared_outputs)):
            for f in fields:
                value = _get(example, f.name, _ABSENT)
                if value is not _ABSENT:
                    demo[side][f.name] = plain(value)
        reasoning = _get(example, "reasoning")
        if isinstance(reasoning, str) and reasoning and self.compiled.kind == "chain_of_thought":
            demo["reasoning"] = reasoning
        return demo

    def _main(self) -> None:
        try:
            result = self._optimize()
            error = None
        except _Stop:
            result, error = None, self._failure
            if error is None:
                error = Cancelled(self.ctx.cancel_reason) if self.ctx.cancelled.is_set() else DeadlineExceeded(
                    f"request {self.ctx.id} ({self.ctx.command}) ran past its deadline in the optimizer")
        except WorkerError as exc:
            result, error = None, exc
        except Exception as exc:  # noqa: BLE001 - DSPy's optimizers raise many kinds
            from .dspy_engine import _coded

            coded = _coded(exc, self.config)
            result, error = None, WorkerError(coded.code, f"{self.name}: {coded.message}")
        self.printed("\n")  # the last partial line
        self.events.put((_DONE, result, error))

    def _optimize(self) -> dict[str, Any]:
        dspy, compiled = self.dspy, self.compiled
        from .dspy_engine import ENGINE, _answering_predictor, dspy_adapter
        from .kinds import KIND_CHAIN_OF_THOUGHT

        signature = ENGINE.signature(dspy, compiled)
        student = dspy.ChainOfThought(signature) if compiled.kind == KIND_CHAIN_OF_THOUGHT else dspy.Predict(signature)
        original_instructions = _answering_predictor(student, [f.name for f in compiled.outputs]).signature.instructions
        trainset, valset = self.examples["trainset"] or [], self.examples["valset"]
        metric = self.metric if self.has_metric else None
        params = dict(self.params)
        t = dspy.teleprompt
        self.ctx.logger.info("optimizer started", extra={"optimizer": self.name, "trainset": len(trainset)})
        with dspy.context(lm=self.lm, adapter=dspy_adapter(dspy, self.config), callbacks=[_Hook(self)]):
            self.check()
            if self.name == "LabeledFewShot":
                program = t.LabeledFewShot(**params).compile(student, trainset=trainset)
            elif self.name == "BootstrapFewShot":
                program = t.BootstrapFewShot(metric=metric, **params).compile(student, trainset=trainset)
            elif self.name == "BootstrapFewShotWithRandomSearch":
                params.setdefault("num_threads", DEFAULT_NUM_THREADS)
                program = t.BootstrapFewShotWithRandomSearch(metric=metric, **params).compile(
                    student, trainset=trainset, valset=valset)
            else:
                params.setdefault("num_threads", DEFAULT_NUM_THREADS)
                compile_kwargs = {}
                if "num_trials" in params:
                    compile_kwargs["num_trials"] = params.pop("num_trials")
                if "minibatch_size" in params:
                    size = params.pop("minibatch_size")
                    compile_kwargs["minibatch"] = size > 0
                    if size > 0:
                        compile_kwargs["minibatch_size"] = size
                if not params.get("auto"):
                    params["auto"] = None
                program = t.MIPROv2(metric=metric, verbose=False, **params).compile(
                    student, trainset=trainset, valset=valset, **compile_kwargs)
        self.check()
        predictor = _answering_predictor(program, [f.name for f in compiled.outputs])
        demos = [self._demo(d) for d in (predictor.demos if predictor is not None else [])]
        instructions = predictor.signature.instructions if predictor is not None else original_instructions
        if instructions == original_instructions:
            instructions = compiled.instructions  # not changed: keep the spec's (and its hash)
        from .spec import CompiledSpec

        try:
            checked = CompiledSpec({**compiled.spec, "instructions": instructions, "demos": demos})
        except WorkerError as exc:
            raise WorkerError("internal", f"{self.name} made a program the spec refuses: {exc.message}") from None
        result: dict[str, Any] = {"instructions": checked.instructions, "demos": list(checked.demos)}
        score = _score(program)
        if score is not None:
            result["score"] = score
        self.ctx.logger.info("optimizer done", extra={"optimizer": self.name, "demos": len(demos), "score": score})
        return result


def _score(program: Any) -> float | None:
    """The best candidate's score, when the optimizer scored candidates."""
    score = getattr(program, "score", None)
    if score is None:
        candidates = getattr(program, "candidate_programs", None)
        if candidates:
            score = candidates[0].get("score")
    return float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None


#: What :func:`_get` gives for a name an example does not hold.
_ABSENT = object()


def _get(example: Any, name: str, default: Any = None) -> Any:
    """The value ``example`` holds under ``name``, else ``default``."""
    try:
        return example[name] if name in example else default
    except Exception:  # noqa: BLE001 - a demo DSPy made may be any mapping-like object
        return getattr(example, name, default)
