"""Test-only commands, registered only when the worker runs with ``--diagnostics``.

They let host-side tests provoke every failure mode: slow and hung handlers, stray
writes to stdout, crashes, stderr floods, a corrupted protocol stream and grandchildren.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from .errors import WorkerError
from .log import flush_logs
from .protocol import write_all
from .registry import Arg, command

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from collections.abc import Generator
    from typing import Any, NoReturn

    from .context import Context

log = logging.getLogger("dspgo_worker.diagnostics")


@command("echo", args={"value": Arg("any", required=True)}, description="Return value unchanged.", diagnostics=True)
async def echo(args: dict[str, Any], ctx: Context) -> Any:
    """A coroutine: it never blocks, so it runs on the loop, not on a thread."""
    return args["value"]


@command(
    "sleep",
    args={"seconds": Arg("float", required=True)},
    description="Sleep, cancellably; result {slept}.",
    diagnostics=True,
)
def sleep(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    seconds = args["seconds"]
    if seconds < 0:
        raise WorkerError("invalid_argument", "command 'sleep': argument 'seconds' must not be negative")
    ctx.sleep(seconds)
    return {"slept": seconds}


@command(
    "print_stdout",
    args={"text": Arg("str", required=True)},
    description="print() the text and write it to fd 1 like C code would; result {printed}.",
    diagnostics=True,
)
def print_stdout(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    text = args["text"]
    print(text, flush=True)
    write_all(1, text.encode("utf-8", "replace"))
    return {"printed": len(text)}


@command(
    "crash",
    args={"status": Arg("int", default=1)},
    description="Exit the process at once with the given status.",
    diagnostics=True,
)
def crash(args: dict[str, Any], ctx: Context) -> NoReturn:
    status = args["status"]
    if not 0 <= status <= 255:
        raise WorkerError("invalid_argument", "command 'crash': argument 'status' must be in [0, 255]")
    log.warning("crashing on request", extra={"status": status})
    flush_logs()
    os._exit(status)


@command("hang", args={}, description="Block until cancelled, deadline or shutdown.", diagnostics=True)
def hang(args: dict[str, Any], ctx: Context) -> NoReturn:
    ctx.logger.info("hang started")
    while True:
        ctx.wait()
        ctx.check()


@command(
    "stderr_flood",
    args={"lines": Arg("int", required=True), "line_bytes": Arg("int", default=100)},
    description="Write lines of line_bytes bytes (newline included) to stderr; result {written}.",
    diagnostics=True,
)
def stderr_flood(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    lines, line_bytes = args["lines"], args["line_bytes"]
    if lines < 0 or line_bytes < 1:
        raise WorkerError("invalid_argument", "command 'stderr_flood': need lines >= 0 and line_bytes >= 1")
    line = b"x" * (line_bytes - 1) + b"\n"
    per_chunk = max(1, 65536 // line_bytes)
    sys.stderr.flush()
    left = lines
    while left:
        ctx.check()
        n = min(left, per_chunk)
        write_all(2, line * n)
        left -= n
    return {"written": lines * line_bytes}


@command(
    "garbage",
    args={"hex": Arg("str", required=True)},
    description="Write raw bytes onto the protocol output (corrupts the stream on purpose).",
    diagnostics=True,
)
def garbage(args: dict[str, Any], ctx: Context) -> None:
    try:
        data = bytes.fromhex(args["hex"])
    except ValueError as exc:
        raise WorkerError("invalid_argument", f"command 'garbage': argument 'hex' is not hex: {exc}") from None
    ctx.worker.write_raw(data)
    return None


@command(
    "stream_count",
    args={
        "n": Arg("int", required=True, description="how many integers to yield"),
        "fail_at": Arg("int", description="raise an error instead of yielding this integer"),
    },
    description="A generator: yields 0 to n-1 (chunks of a stream), then returns {count}.",
    diagnostics=True,
)
def stream_count(args: dict[str, Any], ctx: Context) -> Generator[int, None, dict[str, Any]]:
    n, fail_at = args["n"], args["fail_at"]
    if n < 0:
        raise WorkerError("invalid_argument", "command 'stream_count': argument 'n' must not be negative")
    return _count(n, fail_at, ctx)


def _count(n: int, fail_at: int | None, ctx: Context) -> Generator[int, None, dict[str, Any]]:
    produced = 0
    completed = False
    try:
        for i in range(n):
            if i == fail_at:
                raise RuntimeError(f"stream_count failed at {i}")
            yield i
            produced += 1
        completed = True
        return {"count": n}
    finally:
        # Tests of the worker read this to know the generator was closed (its finally ran).
        ctx.logger.info("stream_count finished", extra={"produced": produced, "completed": completed})


@command(
    "call_tool",
    args={
        "tool": Arg("str", required=True, description="the host tool to call"),
        "args": Arg("object", default={}, description="its arguments"),
        "tools": Arg("array", default=[], description="the tool descriptors the host lets this request use"),
        "timeout": Arg("float", description="seconds to wait for the result (default: until the deadline)"),
    },
    description="Call a host tool with ctx.call and return its result.",
    diagnostics=True,
)
def call_tool(args: dict[str, Any], ctx: Context) -> Any:
    return ctx.call(args["tool"], args["args"], args["timeout"])


@command(
    "modules",
    args={"prefix": Arg("str", default="", description="only the modules whose name starts with this")},
    description="The names of the modules loaded in the worker process, sorted; result {modules}.",
    diagnostics=True,
)
def modules(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    prefix = args["prefix"]
    return {"modules": sorted(name for name in list(sys.modules) if name.startswith(prefix))}


@command(
    "spawn_child",
    args={"seconds": Arg("float", required=True)},
    description="Start a grandchild process sleeping that long; result {pid}.",
    diagnostics=True,
)
def spawn_child(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    if args["seconds"] < 0:
        raise WorkerError("invalid_argument", "command 'spawn_child': argument 'seconds' must not be negative")
    import subprocess  # only here: not loaded by a worker that never spawns

    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; time.sleep(float(sys.argv[1]))", repr(args["seconds"])],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
    )
    # Reap it when it ends so it never lingers as a zombie; the thread just blocks in wait().
    threading.Thread(target=child.wait, name=f"reap-{child.pid}", daemon=True).start()
    return {"pid": child.pid}
