"""dspgo_worker: the Python worker process of dspgo (standard library only).

Run it as ``python3 -m dspgo_worker [options]`` with this directory's parent on
``PYTHONPATH``. The host writes requests to the worker's stdin and reads responses from
its stdout, both as length-prefixed JSON frames (:mod:`dspgo_worker.protocol`); logs are
JSON lines on stderr (:mod:`dspgo_worker.log`). Anything else written to stdout (``print``,
C extensions) is redirected to stderr, and stdin is replaced by ``/dev/null``, so the
frame stream cannot be corrupted.

Options: ``--worker-id``, ``--max-concurrency`` (default 4), ``--max-frame-bytes``
(default 16777216), ``--handlers MODULE`` (repeatable), ``--diagnostics`` (test commands),
``--stop-grace SECONDS`` (default 0.5), ``--max-specs`` (compiled specs cached, default
4096), ``--max-spec-bytes`` (their canonical JSON's bytes, default 67108864), ``--log-level`` (debug, info, warning, error).

Commands: the control commands ``ping``, ``describe``, ``cancel``, ``shutdown``
(:mod:`dspgo_worker.control`) and the program command set ``configure_lm``,
``create_program``, ``execute_program``, ``delete_program``, ``get_stats``, ``reset``
(:mod:`dspgo_worker.programs`; specs in :mod:`dspgo_worker.spec` and the modules it
names, the dummy LM in :mod:`dspgo_worker.dummy`, LM configurations in
:mod:`dspgo_worker.lmconfig`, providers in :mod:`dspgo_worker.providers`, the engines
selected in :mod:`dspgo_worker.engines`), and ``compile_program``
(:mod:`dspgo_worker.optimize`: a DSPy optimizer, LabeledFewShot, BootstrapFewShot,
BootstrapFewShotWithRandomSearch or MIPROv2, run on a spec and a training set; its metric
is the host's tool ``metric``, its progress a stream of chunks, its result the optimized
instructions and demos; it needs dspy, an OpenAI-compatible LM, and optuna for MIPROv2;
docs/protocol.md, "Compiling a program").

Exit statuses:

* 0: normal end, after a ``shutdown`` request or end of stdin;
* 1: unexpected runtime error (stdin could not be read);
* 2: usage error (bad command line);
* 3: protocol violation by the host: a frame larger than ``--max-frame-bytes`` (which is
  also what JSON written without the length header looks like), or the stream ending
  inside a frame (truncated header or body);
* 4: a ``--handlers`` module failed to import;
* other: the status of a deliberate ``crash`` diagnostics command; 130 on SIGINT.

Streams and calls to the host (docs/protocol.md, "Both directions"): a handler that is a
generator function streams what it yields when the request has ``stream`` (its return
value is the result); ``ctx.call(tool, args)`` runs a tool of the host and returns its
result or raises :class:`ToolError`; ``ctx.tools`` lists the request's tool descriptors.

Writing commands::

    from dspgo_worker import command, Arg, WorkerError

    @command("get_program", args={"program_id": Arg("str", required=True)})
    def get_program(args, ctx):
        ctx.check()  # raises if cancelled or past the deadline
        raise WorkerError("not_found", f"program {args['program_id']!r} not found")

Registering a custom ``dspy.Module`` for programs of kind ``module``
(:mod:`dspgo_worker.modules`)::

    from dspgo_worker import dspy_module

    @dspy_module("rag")
    class RAG(dspy.Module):
        ...
"""

from .context import Context
from .errors import ERROR_CODES, Cancelled, DeadlineExceeded, ToolError, WorkerError
from .modules import dspy_module
from .registry import Arg, Command, Registry, command, default_registry
from .version import PROTOCOL_VERSION, __version__

# Register the built-in, program and diagnostics commands on the default registry.
from . import control as _control  # noqa: F401  isort:skip
from . import programs as _programs  # noqa: F401  isort:skip
from . import optimize as _optimize  # noqa: F401  isort:skip
from . import diagnostics as _diagnostics  # noqa: F401  isort:skip

__all__ = [
    "Arg",
    "Cancelled",
    "Command",
    "Context",
    "DeadlineExceeded",
    "ERROR_CODES",
    "PROTOCOL_VERSION",
    "Registry",
    "ToolError",
    "WorkerError",
    "__version__",
    "command",
    "default_registry",
    "dspy_module",
]
