"""Built-in control commands: ping, describe, cancel, shutdown.

They run inline on the reader thread, so they answer even when every pool thread is busy.
"""

from __future__ import annotations

from .registry import Arg, command

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from typing import Any

    from .context import Context


@command(
    "ping",
    args={"initialization": Arg("bool", default=False, description="true for the host's init ping")},
    description="Liveness check; with initialization=true, the worker's version and capabilities.",
    inline=True,
    strict=False,
)
def ping(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Answer the init ping with :meth:`Worker.hello`, a plain ping with ``pong``."""
    if args["initialization"]:
        return ctx.worker.hello()
    return {"pong": True, "worker_id": ctx.worker.config.worker_id, "pid": ctx.worker.pid}


@command("describe", args={}, description="List the commands with their argument schemas.", inline=True)
def describe(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Answer with :meth:`Worker.describe`."""
    return ctx.worker.describe()


@command(
    "cancel",
    args={"id": Arg("int", required=True, description="id of the request to cancel")},
    description="Cancel a queued request (answered canceled) or ask a running one to stop.",
    inline=True,
)
def cancel(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Result ``{"id", "state": "queued"|"running"|"unknown"}``; idempotent."""
    return {"id": args["id"], "state": ctx.worker.cancel(args["id"])}


@command(
    "shutdown",
    args={},
    description="Stop reading, cancel pending requests, let running ones answer, exit 0.",
    inline=True,
    strict=False,
)
def shutdown(args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Answered ``{"stopping": true}`` before the worker starts stopping."""
    ctx.worker.request_stop("shutdown requested by the host")
    return {"stopping": True}
