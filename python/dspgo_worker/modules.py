"""Custom DSPy modules that programs of kind ``module`` run (docs/dspy.md, "Custom modules").

A ``--handlers`` module (``python.handlers``) registers each module class, or a function
that makes one, under a name; a program spec of kind ``module`` names it (``spec.module``)
and may carry its saved state (``spec.state``, what ``module.save("program.json")``
writes), which is loaded into a new instance before its first run::

    import dspy
    from dspgo_worker import dspy_module

    @dspy_module("rag")
    class RAG(dspy.Module):
        def __init__(self):
            super().__init__()
            self.draft = dspy.ChainOfThought("question -> draft")
            self.answer = dspy.Predict("question, draft -> answer")

        def forward(self, question):
            draft = self.draft(question=question).draft
            return self.answer(question=question, draft=draft)

    dspy_module("rag-short", lambda: RAG())   # a factory works too

Only names registered here can run: a caller cannot make a worker import anything.
"""

from __future__ import annotations

import threading

from .errors import WorkerError
from .protocol import quote

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from typing import Any, Callable

#: The characters of a module name besides ASCII letters and digits.
_NAME_EXTRA = frozenset("_.-")
#: The longest module name.
MAX_MODULE_NAME = 128


def is_module_name(name: object) -> bool:
    """Whether ``name`` is a module name: 1 to 128 ASCII letters, digits, ``_``, ``-``
    and ``.`` (what Go's ``internal/program`` takes for ``spec.module``)."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_MODULE_NAME
        and all(c.isascii() and (c.isalnum() or c in _NAME_EXTRA) for c in name)
    )

_lock = threading.Lock()
_factories: dict[str, Callable[[], Any]] = {}


def dspy_module(name: str, factory: Callable[[], Any] | None = None) -> Any:
    """Register ``factory`` (a ``dspy.Module`` subclass, or any callable taking no
    arguments that returns a ``dspy.Module``) under ``name`` for programs of kind
    ``module``; without ``factory``, a class decorator that registers the class it
    decorates and returns it. ``ValueError`` for a name that is not 1 to 128 letters,
    digits, ``_``, ``-`` and ``.``, or that is registered already."""
    if not is_module_name(name):
        raise ValueError(f"module name {name!r} may hold only letters, digits, '_', '-' and '.' (at most 128)")
    if factory is None:
        def register(cls: Any) -> Any:
            dspy_module(name, cls)
            return cls

        return register
    if not callable(factory):
        raise ValueError(f"module {name!r}: the factory {factory!r} is not callable")
    with _lock:
        if name in _factories:
            raise ValueError(f"module {name!r} is registered twice")
        _factories[name] = factory
    return factory


def module_names() -> list[str]:
    """The registered names, sorted."""
    with _lock:
        return sorted(_factories)


def module_factory(name: str) -> Callable[[], Any]:
    """The factory registered under ``name``; ``failed_precondition`` naming the
    registered ones when there is none (the spec is valid, the worker lacks the module)."""
    with _lock:
        factory = _factories.get(name)
    if factory is None:
        known = ", ".join(quote(n) for n in module_names()) or "none"
        raise WorkerError(
            "failed_precondition",
            f"no module {quote(name)} is registered on this worker (registered: {known}); "
            "register it with dspgo_worker.dspy_module in a module of python.handlers",
        )
    return factory


def unregister(name: str) -> None:
    """Remove a registration (tests)."""
    with _lock:
        _factories.pop(name, None)
