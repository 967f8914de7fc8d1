"""Token usage of a run's LM calls, and the native engine's reply cache."""

from __future__ import annotations

import threading
from collections import OrderedDict

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from typing import Any

USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


class Usage:
    """Token usage summed over the LM calls of one execution."""

    __slots__ = ("counts", "reported")

    def __init__(self) -> None:
        self.counts = dict.fromkeys(USAGE_KEYS, 0)
        self.reported = False

    def add(self, usage: Any) -> None:
        """Add an OpenAI ``usage`` object (anything else is ignored)."""
        if not isinstance(usage, dict):
            return
        for key in USAGE_KEYS:
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                self.counts[key] += value
                self.reported = True

    def result(self) -> dict[str, Any] | None:
        """``{"prompt_tokens", "completion_tokens", "total_tokens"}``, or None when no call
        reported usage."""
        if not self.reported:
            return None
        counts = dict(self.counts)
        if not counts["total_tokens"]:
            counts["total_tokens"] = counts["prompt_tokens"] + counts["completion_tokens"]
        return counts


class ReplyCache:
    """Replies by request body, in this process's memory, the oldest dropped past
    ``size`` entries (``cache`` of ``configure_lm``; never on disk)."""

    def __init__(self, size: int = 4096) -> None:
        from collections import OrderedDict

        self.size = size
        self._lock = threading.Lock()
        self._replies: OrderedDict[bytes, str] = OrderedDict()

    def get(self, key: bytes) -> str | None:
        with self._lock:
            reply = self._replies.get(key)
            if reply is not None:
                self._replies.move_to_end(key)
            return reply

    def put(self, key: bytes, reply: str) -> None:
        with self._lock:
            self._replies[key] = reply
            self._replies.move_to_end(key)
            while len(self._replies) > self.size:
                self._replies.popitem(last=False)


#: The native engine's reply cache (the dspy engine uses DSPy's, kept in memory too).
REPLY_CACHE = ReplyCache()
