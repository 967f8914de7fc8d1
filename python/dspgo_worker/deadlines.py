"""Many deadlines on one event loop for the price of one timer.

``loop.call_at`` keeps a heap of ``TimerHandle`` objects ordered by a Python ``__lt__``,
so each timer costs a handle and a dozen Python calls to push, and as many again when
the heap is cleaned of cancelled ones. A worker with thousands of calls in flight sets
one or two deadlines per call, and nearly all are cancelled long before they fall due.
:class:`Deadlines` keeps them in a heap of plain lists (compared in C), with one loop
timer for the earliest, and forgets removed ones lazily (the heap is rebuilt when they
outnumber the live ones). The timer stays armed when the last deadline goes (it fires
once and finds nothing): requests that come one at a time then arm no timer each.
"""

from __future__ import annotations

import heapq
import itertools
import types
import weakref

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Coroutine, Generator
    from typing import Any, Callable, TypeVar

    T = TypeVar("T")

#: A heap this small is never rebuilt.
MIN_REBUILD = 64


class Deadlines:
    """Calls ``fn(arg)`` on ``loop`` once ``loop.time()`` reaches a deadline added with
    :meth:`add`, unless :meth:`remove` came first. Used on the loop's thread only."""

    __slots__ = ("_loop", "_heap", "_live", "_handle", "_due", "_seq")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # A weak reference: the loop is the key of this object in _by_loop.
        self._loop = weakref.ref(loop)
        self._heap: list[list[Any]] = []  # [when, seq, fn, arg]; fn None once removed
        self._live = 0
        # The loop timer armed, held weakly: the loop's own heap keeps it, and a strong
        # reference from here would keep a closed loop alive through _by_loop.
        self._handle: weakref.ref[asyncio.TimerHandle] | None = None
        self._due = 0.0  # when _handle fires
        self._seq = itertools.count()

    def __len__(self) -> int:
        """The deadlines added and neither due nor removed yet."""
        return self._live

    def add(self, when: float, fn: Callable[[Any], object], arg: Any) -> list[Any]:
        """Call ``fn(arg)`` at ``when`` (a ``loop.time()`` value); returns the entry that
        :meth:`remove` takes."""
        entry = [when, next(self._seq), fn, arg]
        heapq.heappush(self._heap, entry)
        self._live += 1
        if self._armed() is None or when < self._due:
            self._schedule(when)
        return entry

    def remove(self, entry: list[Any]) -> None:
        """Forget a deadline (nothing when it fell due or was removed already)."""
        if entry[2] is None:
            return
        entry[2] = entry[3] = None
        self._live -= 1
        heap = self._heap
        if len(heap) > MIN_REBUILD and len(heap) > 2 * self._live:
            self._heap = [e for e in heap if e[2] is not None]
            heapq.heapify(self._heap)
        if not self._live:
            # The loop timer stays armed: it fires once at its time and finds
            # nothing, where cancelling it here and arming another for the
            # next deadline would cost two loop calls per request when
            # requests come one at a time.
            self._heap = []

    def _armed(self) -> asyncio.TimerHandle | None:
        """The loop timer armed, if any."""
        return None if self._handle is None else self._handle()

    def _schedule(self, when: float) -> None:
        armed = self._armed()
        if armed is not None:
            armed.cancel()
        loop = self._loop()
        if loop is None:  # (a loop that is gone runs nothing)
            return
        self._due = when
        self._handle = weakref.ref(loop.call_at(when, self._fire))

    def _fire(self) -> None:
        self._handle = None
        heap = self._heap
        loop = self._loop()
        if loop is None:
            return
        # The loop runs a timer up to its clock's resolution early: what it ran for is due.
        now = max(loop.time(), self._due)
        due = []
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if entry[2] is not None:
                due.append((entry[2], entry[3]))
                entry[2] = entry[3] = None
                self._live -= 1
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
        if heap:
            self._schedule(heap[0][0])
        for fn, arg in due:
            try:
                fn(arg)
            except Exception as exc:  # noqa: BLE001 - as a loop's timer: reported, the others run
                loop.call_exception_handler({"message": "a deadline's callback failed", "exception": exc})


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = weakref.WeakKeyDictionary()


def deadlines(loop: asyncio.AbstractEventLoop) -> Deadlines:
    """The :class:`Deadlines` of ``loop`` (made on first use, gone with the loop)."""
    found = _by_loop.get(loop)
    if found is None:
        found = _by_loop[loop] = Deadlines(loop)
    return found


@types.coroutine
def resume(coro: Coroutine[Any, Any, T], yielded: Any) -> Generator[Any, Any, T]:
    """``await coro`` once its first step was taken by hand (``coro.send(None)``) and
    yielded ``yielded``: as a task's deadline may be armed only once the task suspends
    (a step runs to its end uninterrupted, so a handler that answers in its first step
    needs none)."""
    while True:
        # The task waits for what coro awaits (a future, or None to let others run)
        # and resumes this with None once it may go on, or throws in a cancellation.
        try:
            yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - thrown into the awaiting task: coro's to handle
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            continue
        # What coro awaited is done: from here on it is awaited as any other.
        return (yield from coro)  # type: ignore[no-any-return]
