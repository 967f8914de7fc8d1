"""Error codes and the exceptions handlers raise to report them.

The codes are the wire strings of ``error.code`` in a failed response; the Go side
(``adapter.Code``) uses the same set.
"""

from __future__ import annotations

#: Every error code a response may carry.
ERROR_CODES = frozenset(
    {
        "unknown",
        "invalid_argument",
        "not_found",
        "already_exists",
        "unimplemented",
        "unavailable",
        "deadline_exceeded",
        "canceled",
        "resource_exhausted",
        "failed_precondition",
        "internal",
    }
)


class WorkerError(Exception):
    """An error with a specific wire code.

    Raise it from a handler to answer ``success: false`` with ``code`` instead of the
    ``internal`` code any other exception gets::

        raise WorkerError("not_found", f"program {pid!r} not found")
    """

    #: The error ``type`` the response reports instead of this class's name (the failure
    #: this error reports, such as a user module's ``ValueError``); None: this class's.
    error_type: str | None = None
    #: The traceback the response carries instead of this error's own (the failure's);
    #: None: this error's.
    trace: str | None = None

    def __init__(self, code: str, message: str) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}; known codes: {', '.join(sorted(ERROR_CODES))}")
        super().__init__(message)
        self.code = code
        self.message = message


class Cancelled(WorkerError):
    """The request was canceled (``cancel`` command or worker shutdown). Code ``canceled``."""

    def __init__(self, message: str = "request canceled") -> None:
        super().__init__("canceled", message)


class DeadlineExceeded(WorkerError):
    """The request's ``deadline_ms`` budget ran out. Code ``deadline_exceeded``."""

    def __init__(self, message: str = "deadline exceeded") -> None:
        super().__init__("deadline_exceeded", message)


class ToolError(WorkerError):
    """A call to a host tool (``ctx.call``) that the host answered with an error.

    ``code`` and ``message`` are the host's (a code this version does not know is read as
    ``unknown``); ``error_type`` is the host's error ``type`` when it gave one (a response
    whose handler lets this exception through reports that type); ``tool`` the tool's name.
    """

    def __init__(self, code: str, message: str, error_type: str | None = None, tool: str = "") -> None:
        super().__init__(code if code in ERROR_CODES else "unknown", message)
        self.error_type = error_type
        self.tool = tool


class ContextWindowExceeded(WorkerError):
    """The LM endpoint refused a prompt longer than the model's context window (OpenAI's
    error code ``context_length_exceeded``, which DSPy reads as its
    ``ContextWindowExceededError``). Code ``invalid_argument``."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_argument", message)


def invalid(message: str) -> WorkerError:
    """A WorkerError with code ``invalid_argument``."""
    return WorkerError("invalid_argument", message)
