"""JSON logging on stderr: one object per line.

Every record, including those of user handler modules, uncaught exceptions and Python
warnings, becomes ``{"time", "level", "msg", "worker_id", "logger", ...extra}`` where
``time`` is RFC 3339 UTC with milliseconds and ``level`` is debug, info, warning or error.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any, TextIO

#: Accepted ``--log-level`` values.
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def _level_name(levelno: int) -> str:
    """Map a logging level to one of debug, info, warning, error (critical is error)."""
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


def format_time(created: float) -> str:
    """RFC 3339 UTC time with milliseconds, e.g. ``2024-05-01T12:00:00.123Z``."""
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class JSONFormatter(logging.Formatter):
    """Formats a record as one JSON line; ``extra`` keys are added after the fixed ones."""

    def __init__(self, worker_id: str) -> None:
        super().__init__()
        self.worker_id = worker_id

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": format_time(record.created),
            "level": _level_name(record.levelno),
            "msg": record.getMessage(),
            "worker_id": self.worker_id,
            "logger": record.name,
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _scrub(text: str) -> str:
    """``text`` scrubbed of the watched secrets; as it is while the redact module is not
    loaded (an idle worker's), since a secret is watched only through it."""
    redact = sys.modules.get(f"{__package__}.redact")
    return redact.scrub(text) if redact is not None else text


class ScrubbedStream:
    """A text stream that writes to ``stream`` whole lines with every configured LM's key
    redacted (:func:`~dspgo_worker.redact.scrub`): the worker's ``sys.stderr`` (and
    ``sys.stdout``), so that what any library writes or logs there (DSPy's and LiteLLM's
    records of a failed LM call, which may quote the key as the endpoint echoed it) keeps
    the key out of the host's log and of the stderr tail a crash's error carries. A line
    is written when it ends, or at :meth:`flush`."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._pending = ""
        # Reentrant: scrubbing allocates, so a collection may run a __del__ that logs,
        # on this thread, while it holds the lock.
        self._lock = threading.RLock()

    def write(self, text: str) -> int:
        with self._lock:
            joined = self._pending + text
            end = joined.rfind("\n") + 1
            self._pending = joined[end:]  # before the scrub: a nested write finds it done
            if end:
                self.stream.write(_scrub(joined[:end]))
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self.stream.write(_scrub(self._pending))
                self._pending = ""
            self.stream.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, encoding, isatty…: the stream's own
        return getattr(self.stream, name)


def setup_logging(worker_id: str, level: str = "info", stream: TextIO | None = None) -> None:
    """Send all logging (root logger) as JSON lines to ``stream`` (default ``sys.stderr``).

    Also routes ``warnings`` and uncaught exceptions (main and other threads) through it.
    Without ``stream``, ``sys.stderr`` (and ``sys.stdout`` when it is ``sys.stderr``)
    becomes a :class:`ScrubbedStream` first.
    """
    if stream is None and not isinstance(sys.stderr, ScrubbedStream):
        scrubbed = ScrubbedStream(sys.stderr)
        if sys.stdout is sys.stderr:
            sys.stdout = scrubbed
        sys.stderr = scrubbed
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JSONFormatter(worker_id))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    logging.captureWarnings(True)

    log = logging.getLogger("dspgo_worker")

    def excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        log.error("uncaught exception: %s", exc, exc_info=(exc_type, exc, tb))

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        thread = args.thread.name if args.thread is not None else "?"
        log.error(
            "uncaught exception in thread %s: %s",
            thread,
            args.exc_value,
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]  # logging takes a None value too
        )

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook


def flush_logs() -> None:
    """Flush every handler of the root logger and the standard streams."""
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:  # noqa: BLE001 - flushing before an exit: nothing left to report to
            pass
    for stream in (sys.stderr, sys.stdout):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - flushing before an exit: nothing left to report to
            pass
