"""Command line entry point: ``python3 -m dspgo_worker [options]``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from .log import LEVELS, flush_logs, setup_logging
from .programs import DEFAULT_MAX_SPEC_BYTES
from .protocol import DEFAULT_MAX_FRAME_BYTES, HEADER_LIMIT, FrameWriter
from .version import __version__
from .worker import EXIT_HANDLERS, Worker, WorkerConfig

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Callable, NoReturn

#: Smallest accepted --max-frame-bytes (room for the init ping reply).
MIN_FRAME_BYTES = 1024

#: The garbage collector's thresholds while serving (``gc.set_threshold``; Python's
#: default is 700, 10, 10). A call in flight holds its coroutines, frames, futures and
#: connection for as long as its language model takes, so nearly every object it makes
#: survives the young collections: with thousands of calls in flight, collecting every
#: 700 net allocations spent a tenth of the worker's CPU traversing them.
GC_THRESHOLDS = (20_000, 20, 20)

log = logging.getLogger("dspgo_worker")


def _bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be in [{low}, {high if high is not None else 'inf'}]: {value}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a non-negative number of seconds: {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (usage errors exit with status 2)."""
    parser = argparse.ArgumentParser(
        prog="python3 -m dspgo_worker",
        description="dspgo Python worker: serves length-prefixed JSON requests on stdin/stdout.",
    )
    parser.add_argument("--version", action="version", version=f"dspgo_worker {__version__}")
    parser.add_argument("--worker-id", default=f"worker-{os.getpid()}", help="name used in logs and replies")
    parser.add_argument(
        "--max-concurrency", type=_bounded_int(1), default=4, help="threads running user commands (default 4)"
    )
    parser.add_argument(
        "--max-frame-bytes",
        type=_bounded_int(MIN_FRAME_BYTES, HEADER_LIMIT),
        default=DEFAULT_MAX_FRAME_BYTES,
        help=f"largest frame body read or written (default {DEFAULT_MAX_FRAME_BYTES})",
    )
    parser.add_argument(
        "--handlers",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE so its @command handlers register (repeatable)",
    )
    parser.add_argument("--diagnostics", action="store_true", help="enable the test-only commands")
    parser.add_argument(
        "--stop-grace", type=_seconds, default=0.5, help="seconds running requests get to answer at shutdown"
    )
    parser.add_argument(
        "--max-specs", type=_bounded_int(1), default=4096, help="compiled program specs kept (LRU, default 4096)"
    )
    parser.add_argument(
        "--max-spec-bytes", type=_bounded_int(1), default=DEFAULT_MAX_SPEC_BYTES,
        help=f"bytes of compiled program specs kept, their canonical JSON counted (LRU, default {DEFAULT_MAX_SPEC_BYTES})",
    )
    parser.add_argument(
        "--run-id", default="", help="the host run's id (also in DSPGO_RUN_ID); lets a later host reap orphans"
    )
    parser.add_argument("--log-level", choices=list(LEVELS), default="info")
    return parser


def redirect_stdio() -> tuple[int, int]:
    """Keep private duplicates of fd 0 and fd 1 for the protocol; protect them from stray I/O.

    Afterwards fd 0 is ``/dev/null`` (``input()`` cannot steal frames) and fd 1 is a copy
    of fd 2, with ``sys.stdout = sys.stderr``, so ``print`` or C code writing to fd 1 ends
    up on stderr instead of corrupting the stream. Returns ``(read_fd, write_fd)``, both
    non-inheritable.
    """
    read_fd = os.dup(0)
    write_fd = os.dup(1)
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(devnull, 0)
    finally:
        os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return read_fd, write_fd


def exit_now(status: int) -> NoReturn:
    """Flush the logs and end the process at once (stray non-daemon threads cannot block it)."""
    flush_logs()
    os._exit(status)


def tune_gc() -> None:
    """Set up the garbage collector for serving: what start-up made (modules, the command
    table) is frozen out of every later collection (``gc.freeze``), and the collections
    run at :data:`GC_THRESHOLDS`. Memory is still freed by reference counting at once;
    only cycles wait longer."""
    import gc

    gc.freeze()  # (no collection first: it would cost milliseconds of start-up)
    gc.set_threshold(*GC_THRESHOLDS)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Parse flags, set up fds and logging, load handler modules, serve, exit."""
    options = build_parser().parse_args(argv)
    read_fd, write_fd = redirect_stdio()
    setup_logging(options.worker_id, options.log_level)
    for module in options.handlers:
        try:
            importlib.import_module(module)
        except BaseException as exc:  # SystemExit at import time counts too
            log.error(
                "cannot load handler module %r: %s: %s", module, type(exc).__name__, exc,
                extra={"handler_module": module}, exc_info=True,
            )
            exit_now(EXIT_HANDLERS)
    config = WorkerConfig(
        worker_id=options.worker_id,
        max_concurrency=options.max_concurrency,
        max_frame_bytes=options.max_frame_bytes,
        diagnostics=options.diagnostics,
        stop_grace=options.stop_grace,
        max_specs=options.max_specs,
        max_spec_bytes=options.max_spec_bytes,
    )
    reader = open(read_fd, "rb", buffering=65536)
    worker = Worker(config, reader, FrameWriter(write_fd))
    log.info(
        "worker started",
        extra={
            "pid": os.getpid(),
            "version": __version__,
            "commands": sorted(worker.commands),
            "max_concurrency": config.max_concurrency,
            "diagnostics": config.diagnostics,
        },
    )
    tune_gc()
    try:
        status = worker.serve()
    except KeyboardInterrupt:
        log.info("interrupted")
        status = 130
    exit_now(status)
