"""The command registry: the ``@command`` decorator, argument schemas and their validation.

Handler modules register commands on the module-level :data:`default_registry`::

    from dspgo_worker import command, Arg

    @command("add", args={"a": Arg("int", required=True), "b": Arg("int", default=0)})
    def add(args, ctx):
        return {"sum": args["a"] + args["b"]}

A handler is called as ``handler(args, ctx)`` with the validated ``args`` (defaults filled
in) and a :class:`dspgo_worker.context.Context`. A plain function runs on one of the
worker's threads and may block; a coroutine function (``async def``) runs on the worker's
event loop and must not block (see :class:`~dspgo_worker.context.Context`): it costs no
thread however long it waits, which is what a command with thousands of requests in
flight wants. Inline commands are plain functions. A worker takes a snapshot of the registry
when it is built (:meth:`Registry.table`), so registering later does not change it.
"""

from __future__ import annotations

import math
import threading
from collections import namedtuple

from .errors import WorkerError
from .protocol import json_type_name

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Callable

    from .context import Context

    #: A command's handler: ``handler(args, ctx)``.
    Handler = Callable[[dict[str, Any], Context], Any]

#: Argument types and the JSON values each accepts.
ARG_TYPES: Mapping[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "any": lambda v: True,
}

#: ``co_flags`` of an ``async def`` function and of an async generator function (as in
#: ``inspect``, which is not imported here).
CO_COROUTINE = 0x80
CO_ASYNC_GENERATOR = 0x200


def _code_flags(fn: Any) -> int:
    """The ``co_flags`` of a Python function's code (0 for other callables)."""
    return int(getattr(getattr(fn, "__code__", None), "co_flags", 0))


def is_coroutine_function(fn: Any) -> bool:
    """Whether ``fn`` is an ``async def`` function (``inspect.iscoroutinefunction``
    without importing inspect)."""
    return bool(_code_flags(fn) & CO_COROUTINE)

#: Immutable default values, handed over as they are (others are copied for each request).
_IMMUTABLE = (type(None), bool, int, float, str)


class Arg(namedtuple("Arg", ("type", "required", "default", "description"), defaults=(False, None, ""))):
    """Schema of one command argument (an immutable record).

    ``type`` is one of :data:`ARG_TYPES` (``"int"`` rejects booleans, ``"float"`` accepts
    integers and hands them over as floats). A ``null`` value counts as absent, except for
    type ``"any"`` where ``null`` is a value. An absent optional argument gets a copy of
    ``default``.
    """

    __slots__ = ()

    def __new__(cls, type: str, required: bool = False, default: Any = None, description: str = "") -> Arg:
        if type not in ARG_TYPES:
            raise ValueError(f"unknown argument type {type!r}; known types: {', '.join(ARG_TYPES)}")
        if required and default is not None:
            raise ValueError("a required argument cannot have a default")
        if default is not None and not ARG_TYPES[type](default):
            raise ValueError(f"default {default!r} is not of type {type}")
        return super().__new__(cls, type, required, default, description)

    def fresh_default(self) -> Any:
        """The default, copied when it is mutable (a list or an object)."""
        default = self.default
        if isinstance(default, _IMMUTABLE):
            return default
        import copy

        return copy.deepcopy(default)

    def describe(self) -> dict[str, Any]:
        """The ``describe`` entry of this argument."""
        return {"type": self.type, "required": self.required, "description": self.description}


def missing_argument(command: str, name: str) -> WorkerError:
    """The error of command ``command`` missing its required argument ``name``, worded as
    every backend words it (Go's ``program.MissingArg``):
    ``command 'create_program': missing required argument 'spec'``."""
    return WorkerError("invalid_argument", f"command {command!r}: missing required argument {name!r}")


class Command(
    namedtuple(
        "Command",
        ("name", "handler", "args", "description", "inline", "diagnostics", "strict"),
        defaults=(None, "", False, False, True),
    )
):
    """A registered command (an immutable record). ``args=None`` means the arguments are
    passed on unchecked."""

    __slots__ = ()

    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """Check ``args`` against the schema and return a new dict with defaults filled in.

        Raises :class:`WorkerError` ``invalid_argument`` naming the argument: unknown
        (when ``strict``), missing while required, or of the wrong type.
        """
        schema = self.args
        if schema is None:
            return dict(args)
        if self.strict:
            for name in args:
                if name not in schema:
                    unknown = sorted(name for name in args if name not in schema)
                    accepted = ", ".join(sorted(schema)) or "none"
                    raise WorkerError(
                        "invalid_argument",
                        f"command {self.name!r}: unknown argument {', '.join(map(repr, unknown))} (accepted: {accepted})",
                    )
            result = {}
        else:
            result = {name: value for name, value in args.items() if name not in schema}
        for name, spec in schema.items():
            value = args.get(name)
            if value is None and (spec.type != "any" or name not in args):
                if spec.required:
                    raise missing_argument(self.name, name)
                default = spec.default
                result[name] = default if default is None else spec.fresh_default()
                continue
            if not ARG_TYPES[spec.type](value):
                raise WorkerError(
                    "invalid_argument",
                    f"command {self.name!r}: argument {name!r} must be of type {spec.type}, got {json_type_name(value)}",
                )
            if spec.type == "float":
                try:
                    value = float(value)  # type: ignore[arg-type]  # checked: a number
                except OverflowError:
                    value = math.inf
                if not math.isfinite(value):  # JSON's 1e400 decodes as inf: no argument's value
                    raise WorkerError(
                        "invalid_argument", f"command {self.name!r}: argument {name!r} is out of range"
                    )
            result[name] = value
        return result

    def describe(self) -> dict[str, Any]:
        """The ``describe`` entry of this command."""
        return {
            "name": self.name,
            "description": self.description,
            "inline": self.inline,
            "diagnostics": self.diagnostics,
            "args": {name: arg.describe() for name, arg in (self.args or {}).items()},
        }


class Registry:
    """A table of commands by name; names are unique."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}
        self._lock = threading.Lock()

    def register(self, cmd: Command) -> Command:
        """Add a command; raises ``ValueError`` if the name is taken."""
        if not isinstance(cmd.name, str) or not cmd.name:
            raise ValueError("a command name must be a non-empty string")
        if not callable(cmd.handler):
            raise TypeError(f"handler of command {cmd.name!r} is not callable")
        flags = _code_flags(cmd.handler)
        if flags & CO_ASYNC_GENERATOR:
            raise TypeError(
                f"handler of command {cmd.name!r} is an async generator: a coroutine handler streams with ctx.send_chunk"
            )
        if cmd.inline and flags & CO_COROUTINE:
            raise TypeError(f"handler of command {cmd.name!r} is a coroutine function: an inline command must be a plain function")
        for name, arg in (cmd.args or {}).items():
            if not isinstance(name, str) or not isinstance(arg, Arg):
                raise TypeError(f"command {cmd.name!r}: args must map names to Arg, got {name!r}: {arg!r}")
        with self._lock:
            if cmd.name in self._commands:
                raise ValueError(f"command {cmd.name!r} is already registered")
            self._commands[cmd.name] = cmd
        return cmd

    def command(
        self,
        name: str,
        *,
        args: Mapping[str, Arg] | None = None,
        description: str = "",
        inline: bool = False,
        diagnostics: bool = False,
        strict: bool = True,
    ) -> Callable[[Handler], Handler]:
        """Decorator registering ``handler(args, ctx)`` as command ``name``; returns it unchanged.

        ``inline`` commands run on the reader thread (keep them quick and non-blocking);
        ``diagnostics`` commands exist only when the worker runs with ``--diagnostics``;
        ``strict`` rejects arguments missing from ``args``.
        """

        def decorate(handler: Handler) -> Handler:
            self.register(
                Command(
                    name=name,
                    handler=handler,
                    args=dict(args) if args is not None else None,
                    description=description,
                    inline=inline,
                    diagnostics=diagnostics,
                    strict=strict,
                )
            )
            return handler

        return decorate

    def table(self, diagnostics: bool = False) -> dict[str, Command]:
        """A snapshot of the commands by name, diagnostics ones only if ``diagnostics``."""
        with self._lock:
            return {name: cmd for name, cmd in self._commands.items() if diagnostics or not cmd.diagnostics}


#: The registry ``@command`` writes to and the worker reads from.
default_registry = Registry()

#: ``@command(name, *, args=None, description="", inline=False, diagnostics=False, strict=True)``
command = default_registry.command
