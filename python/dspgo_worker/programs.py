"""The program command set (docs/protocol.md): configure_lm, create_program,
execute_program, delete_program, get_stats and reset.

The host keeps every program; a worker only caches compiled specs by hash, in a bounded
LRU (``--max-specs``, default 4096), and runs them with the configured language models: the
default one, and any number of named ones (``configure_lm``'s ``name``) that an execution
chooses with ``lm``.
That state (:class:`ProgramState`) belongs to the :class:`~dspgo_worker.worker.Worker`
serving the request (``ctx.worker.state("programs", ...)``), never to the module, so two
workers in one process share nothing.

Behaviour, arguments, results and error codes are those of the Go mock
(``adapters/mock/handler.go``): an unknown ``spec_hash`` without a ``spec`` is
``not_found`` with error type ``SpecNotFound`` (the host then resends the spec); a
``spec`` whose hash differs from ``spec_hash`` is ``invalid_argument``; inputs are
converted to their declared types, ``invalid_argument`` naming the field.

``execute_program`` streams when the request asks for it (``stream``): each chunk is
``{"field", "delta"}``, fields in output order, and the final result is what it is
without a stream. A ``react`` spec runs a ReAct loop whose tools are the request's
``tools`` (called on the host with ``ctx.call``), at most ``max_iters`` steps; its result
adds the ``trajectory``.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from collections import OrderedDict

from .errors import WorkerError
from .modules import module_factory
from .protocol import json_type_name, quote
from .registry import Arg, command, missing_argument

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    from .context import Context
    from .lmconfig import LMConfig
    from .spec import CompiledSpec
    from .worker import Worker

log = logging.getLogger("dspgo_worker.programs")
_handler_log = logging.getLogger("dspgo_worker.handler")  # the logger of ctx.logger

_modules: dict[str, Any] = {}


def _lazy(name: str) -> ModuleType:
    """The package's module ``name`` (spec, lm, engines), imported on first use: a worker
    that has not run a program command yet has neither compiled nor loaded them."""
    module = _modules.get(name)
    if module is None:
        module = _modules[name] = importlib.import_module(f"{__package__}.{name}")
    return module


#: Compiled specs a worker keeps unless told otherwise.
DEFAULT_MAX_SPECS = 4096
#: The bytes of compiled specs a worker keeps, each counted by its canonical JSON
#: (``--max-spec-bytes``): a few large specs (instructions of megabytes) would otherwise
#: hold memory the count of specs does not bound.
DEFAULT_MAX_SPEC_BYTES = 64 << 20
#: Bounds and default of ``execute_program``'s ``max_iters`` (the default is dspy.ReAct's, 20).
MIN_ITERS, MAX_ITERS, DEFAULT_MAX_ITERS = 1, 100, 20


def validate_tools(raw: list[Any]) -> list[dict[str, Any]]:
    """``execute_program``'s ``tools``: ``[{"name", "description"?, "schema"?}]`` with the
    defaults filled in (``""`` and ``{}``); ``invalid_argument`` naming the field."""
    tools = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        at = f"tools[{i}]"
        if not isinstance(item, dict):
            raise WorkerError("invalid_argument", f"{at} must be an object, got {json_type_name(item)}")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise WorkerError("invalid_argument", f"{at}.name must be a non-empty string, got {json_type_name(name)}")
        if name in names:
            raise WorkerError("invalid_argument", f"{at}.name {quote(name)} is used twice")
        names.add(name)
        description = item.get("description")
        if description is None:
            description = ""
        elif not isinstance(description, str):
            raise WorkerError("invalid_argument", f"{at}.description must be a string, got {json_type_name(description)}")
        schema = item.get("schema")
        if schema is None:
            schema = {}
        elif not isinstance(schema, dict):
            raise WorkerError("invalid_argument", f"{at}.schema must be an object, got {json_type_name(schema)}")
        tools.append({"name": name, "description": description, "schema": schema})
    return tools


class SpecNotFound(WorkerError):
    """``execute_program`` named a spec hash this worker has not compiled and sent no spec.
    Code ``not_found``; the response's error type is ``SpecNotFound``, which tells the host
    to resend with the spec."""

    def __init__(self, spec_hash: str) -> None:
        super().__init__("not_found", f"spec {quote(spec_hash)} is not compiled on this worker; send the spec")


class LMNotFound(WorkerError):
    """``execute_program`` named an LM configuration no ``configure_lm`` set (code
    ``not_found``, naming it). The host's broadcasts give every worker every name, so it
    means the name was never configured, or ``reset`` dropped it."""

    def __init__(self, name: str) -> None:
        super().__init__("not_found", f"LM {quote(name)} is not configured (configure_lm with \"name\": {quote(name)} sets it)")


#: How many named LM configurations a worker keeps (the default aside; Go's
#: ``program.MaxNamedLMs``): no caller grows a worker's memory, or the shared state a new
#: remote host replays, without bound.
MAX_NAMED_LMS = 1024


class ProgramState:
    """One worker's language-model configurations and compiled-spec cache (an LRU).

    The configurations are kept by name: ``""`` is the default (the dummy until
    ``configure_lm`` replaces it), which an execution naming no LM runs with; every other
    name is one ``configure_lm`` with that ``name`` set."""

    def __init__(self, worker: Worker | None = None) -> None:
        config = getattr(worker, "config", None)
        self.max_specs = getattr(config, "max_specs", DEFAULT_MAX_SPECS) or DEFAULT_MAX_SPECS
        self.max_spec_bytes = getattr(config, "max_spec_bytes", DEFAULT_MAX_SPEC_BYTES) or DEFAULT_MAX_SPEC_BYTES
        self._lock = threading.Lock()
        self._specs: OrderedDict[str, CompiledSpec] = OrderedDict()
        self._spec_bytes = 0  # the sizes of the specs in _specs
        self._new_spec: type[CompiledSpec] = _lazy("spec").CompiledSpec
        self._default_lm: LMConfig = _lazy("lmconfig").LMConfig()
        self._lms: dict[str, LMConfig] = {"": self._default_lm}

    @property
    def lm(self) -> LMConfig:
        """The default configuration."""
        return self._lms[""]

    def lm_named(self, name: str = "") -> LMConfig:
        """The configuration of ``name`` (``""``: the default); :class:`LMNotFound` when
        none has that name."""
        config = self._lms.get(name)  # the dict is replaced whole, never changed in place: no lock
        if config is None:
            raise LMNotFound(name)
        return config

    def lm_names(self) -> dict[str, LMConfig]:
        """The named configurations (the default left out), by name."""
        return {name: config for name, config in self._lms.items() if name}

    def set_lm(self, config: LMConfig, name: str = "") -> None:
        """Set the configuration of ``name`` (``""``: the default); the others stay.
        ``resource_exhausted`` for a name that would be one more than
        :data:`MAX_NAMED_LMS`."""
        with self._lock:
            if name not in self._lms and len(self._lms) > MAX_NAMED_LMS:  # the default is one of them
                raise WorkerError(
                    "resource_exhausted",
                    f"a worker keeps at most {MAX_NAMED_LMS} named LM configurations: {quote(name)} would be one more (reset drops them)",
                )
            self._lms = {**self._lms, name: config}

    def compile(self, raw: Any) -> CompiledSpec:
        """Compile a spec (``invalid_argument`` if bad) and cache it; the cached object is
        returned when the hash is known already. The least recently used specs are dropped
        while more than ``max_specs`` are kept or their sizes add up to more than
        ``max_spec_bytes`` (the newest always stays); a host sends a dropped one again."""
        compiled = self._new_spec(raw)
        with self._lock:
            cached = self._specs.get(compiled.hash)
            if cached is not None:
                self._specs.move_to_end(compiled.hash)
                return cached
            self._specs[compiled.hash] = compiled
            self._spec_bytes += compiled.size
            while len(self._specs) > 1 and (len(self._specs) > self.max_specs or self._spec_bytes > self.max_spec_bytes):
                self._spec_bytes -= self._specs.popitem(last=False)[1].size
        return compiled

    def lookup(self, spec_hash: str) -> CompiledSpec | None:
        with self._lock:
            compiled = self._specs.get(spec_hash)
            if compiled is not None:
                self._specs.move_to_end(spec_hash)
            return compiled

    def delete(self, spec_hash: str) -> bool:
        with self._lock:
            dropped = self._specs.pop(spec_hash, None)
            if dropped is None:
                return False
            self._spec_bytes -= dropped.size
            return True

    def spec_bytes(self) -> int:
        """The sizes of the cached specs, added up."""
        with self._lock:
            return self._spec_bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._specs)

    def reset(self) -> None:
        """Drop every compiled spec and named language model and restore the dummy."""
        with self._lock:
            self._specs.clear()
            self._spec_bytes = 0
            self._lms = {"": self._default_lm}


def program_state(ctx: Context) -> ProgramState:
    """The program state of the worker serving ``ctx``."""
    worker = ctx.worker
    if worker is None:
        raise WorkerError("failed_precondition", f"command {ctx.command!r} needs a worker")
    return worker.state("programs", ProgramState)


def rss_bytes() -> int:
    """Resident memory of this process (``VmRSS`` of /proc/self/status), 0 if unknown."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    parts = line.split()
                    return int(parts[1]) * (1024 if len(parts) < 3 or parts[2].lower() == "kb" else 1)
    except (OSError, ValueError, IndexError):
        pass
    return 0


# --- commands ----------------------------------------------------------------------------


@command(
    "configure_lm",
    args={
        "provider": Arg("str", required=True, description="dummy or openai (a new worker runs the dummy)"),
        "model": Arg("str", description="model name; required for openai"),
        "base_url": Arg("str", description="OpenAI-compatible base URL (default https://api.openai.com/v1)"),
        "api_key_env": Arg("str", description="environment variable holding the API key (default OPENAI_API_KEY)"),
        "temperature": Arg("float", description="sampling temperature, 0 to 2"),
        "max_tokens": Arg("int", description="token cap of one completion (0: the provider's default)"),
        "timeout_ms": Arg("int", description="time-out of one LM request (0: 60000)"),
        "engine": Arg("str", description="auto (dspy when importable), native or dspy"),
        "dspy_adapter": Arg("str", description="the DSPy adapter of the prompts: chat (default), json, xml or baml (the dspy engine)"),
        "verify": Arg("bool", default=False, description="check the configuration with one small request now"),
        "delay_ms": Arg("int", description="wait this long before each execution (for tests of deadlines)"),
        "fail_after_chunks": Arg("int", description="dummy provider: a streamed execution fails after this many chunks (for tests of streams)"),
        "cache": Arg("bool", default=False, description="answer a request identical to an earlier one from this worker's memory (default false: every execution calls the LM)"),
        "image_urls": Arg("bool", default=False, description="let images be given by http, https or gs URL, which the model's server fetches (default false: data: URIs only)"),
        "script": Arg(
            "array",
            description='dummy provider only: the react steps, each {"tool": name, "args": {...}} or {"finish": true}',
        ),
        "name": Arg(
            "str",
            default="",
            description="the configuration's name, chosen by execute_program's lm; letters, digits, _ and -, at most 64 "
            "(default: the default LM, which executions naming none run with)",
        ),
    },
    description="Set the default language model, or the one of the given name; lists every bad field at once.",
)
async def configure_lm(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Result ``{"provider", "model", "engine"}`` (``engine``: native or dspy, what runs)."""
    lmconfig = _lazy("lmconfig")
    config = lmconfig.validate_lm_args(args)
    if config.provider != "dummy":  # its key stays out of the worker's stderr from now on
        _lazy("redact").watch_secret(config.effective_api_key_env)
    engines = _lazy("engines")
    # Resolving may import dspy (seconds, blocking): on a worker thread.
    engine = await ctx.run_sync(lambda: engines.resolve_engine(config))
    config = lmconfig.with_engine(config, engine)
    if args["verify"]:
        if config.resolved_engine == "dspy":  # what the dspy engine needs beyond the endpoint (its key)
            from .dspy_engine import DspyEngine

            await ctx.run_sync(lambda: DspyEngine.make_lm(engines.import_dspy(), config))
        await _lazy("providers").make_provider(config).verify(ctx)
    name = args["name"]
    program_state(ctx).set_lm(config, name)
    log.info("language model configured", extra={"request_id": ctx.id, "lm_name": name, **config.describe()})
    return {"provider": config.provider, "model": config.model, "engine": config.resolved_engine}


@command(
    "create_program",
    args={
        "program_id": Arg("str", description="the host's id of the program, for logs only"),
        "spec": Arg("object", required=True, description="{signature: {inputs, outputs, models?}, instructions, kind, demos?, module?, state?}"),
    },
    description="Validate, compile and cache a program spec; idempotent. Result {spec_hash}.",
)
async def create_program(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    compiled = program_state(ctx).compile(args["spec"])
    if compiled.module is not None:
        module_factory(compiled.module)  # failed_precondition when not registered here
    if _handler_log.isEnabledFor(logging.DEBUG):
        ctx.logger.debug("program compiled", extra={"program_id": args["program_id"], "spec_hash": compiled.hash})
    return {"spec_hash": compiled.hash}


@command(
    "execute_program",
    args={
        "program_id": Arg("str", description="the host's id of the program, for logs only"),
        "spec_hash": Arg("str", default="", description="hash of the spec to run (required unless spec is sent)"),
        "spec": Arg("object", description="the spec itself, when the worker may not know the hash"),
        "inputs": Arg("object", required=True, description="the program's inputs by name"),
        "tools": Arg("array", description="the host tools the program may call: [{name, description, schema}]"),
        "max_iters": Arg("int", description=f"most steps of a react loop, {MIN_ITERS} to {MAX_ITERS} (default {DEFAULT_MAX_ITERS})"),
        "lm": Arg("str", default="", description="name of the LM configuration to run with (default: the default LM)"),
    },
    description="Run a program by spec hash (and spec) on inputs. Result {outputs, spec_hash} (and trajectory for react).",
)
async def execute_program(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """The result; a streamed request has its chunks sent first (``ctx.send_chunk``)."""
    tools = validate_tools(args["tools"] or [])
    max_iters = args["max_iters"]
    if max_iters is None:
        max_iters = DEFAULT_MAX_ITERS
    elif not MIN_ITERS <= max_iters <= MAX_ITERS:
        raise WorkerError("invalid_argument", f"max_iters must be from {MIN_ITERS} to {MAX_ITERS}, got {max_iters}")
    ctx.tools = tools
    state = program_state(ctx)
    spec_hash = args["spec_hash"]
    if args["spec"] is None and not spec_hash:
        raise missing_argument("execute_program", "spec_hash")  # required unless spec is sent
    if args["spec"] is not None:
        compiled = state.compile(args["spec"])
        if spec_hash and spec_hash != compiled.hash:
            raise WorkerError(
                "invalid_argument",
                f"spec_hash {quote(spec_hash)} does not match the spec, whose hash is {quote(compiled.hash)}",
            )
    else:
        found = state.lookup(spec_hash)
        if found is None:
            raise SpecNotFound(spec_hash)
        compiled = found
    converted = compiled.convert_inputs(args["inputs"])
    config = state.lm_named(args["lm"])
    if compiled.media_inputs:
        media = _lazy("media")
        for at, url in (*media.image_urls(compiled.media_inputs, converted, "input"), *media.demo_image_urls(compiled)):
            media.refuse_image_url(config, url, at)
    if config.delay_ms:
        await ctx.sleep_async(config.delay_ms / 1000.0)
    ctx.check()
    engine = _lazy("engines").make_engine(config)
    outputs, trajectory, usage = await engine.aexecute(compiled, converted, config, ctx, tools, max_iters, ctx.stream is not None)
    return _result(outputs, trajectory, usage, compiled.hash)


def _result(
    outputs: dict[str, Any], trajectory: list[dict[str, Any]] | None, usage: dict[str, Any] | None, spec_hash: str
) -> dict[str, Any]:
    result: dict[str, Any] = {"outputs": outputs, "spec_hash": spec_hash}
    if trajectory is not None:
        result["trajectory"] = trajectory
    if usage is not None:
        result["usage"] = usage
    return result


@command(
    "delete_program",
    args={"spec_hash": Arg("str", required=True, description="hash of the spec to drop")},
    description="Drop a compiled spec; not_found when it is not cached. Result {deleted: true}.",
)
async def delete_program(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    if not program_state(ctx).delete(args["spec_hash"]):
        raise WorkerError("not_found", f"spec {quote(args['spec_hash'])} is not compiled on this worker")
    return {"deleted": True}


@command("get_stats", args={}, description="Counters of this worker: calls, failures, memory, LM, uptime.")
async def get_stats(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    worker = ctx.worker
    state = program_state(ctx)
    calls, failures = worker.counters.snapshot()
    lm = state.lm
    lms = {name: {"provider": c.provider, "model": c.model} for name, c in sorted(state.lm_names().items())}
    return {
        "worker_id": worker.config.worker_id,
        "pid": os.getpid(),
        "programs": len(state),
        "calls": calls,
        "failures": failures,
        "in_flight": worker.in_flight(exclude=ctx.id),
        "rss_bytes": rss_bytes(),
        "lm": {"provider": lm.provider, "model": lm.model},
        "lms": lms,
        "uptime_ms": int((time.monotonic() - worker.counters.started) * 1000),
    }


@command("reset", args={}, description="Drop every cached spec, counter and named LM and restore the dummy LM.")
async def reset(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    program_state(ctx).reset()
    ctx.worker.counters.reset()
    log.info("worker state reset", extra={"request_id": ctx.id})
    return {"reset": True}
