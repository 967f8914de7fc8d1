"""The wire format: length-prefixed JSON frames, shared with the Go codec (``protocol/``).

A frame is a 4-byte big-endian unsigned length ``N`` followed by ``N`` bytes holding one
UTF-8 JSON object. Every message carries an integer ``id`` in ``[0, 2**53)``.

Decoding failures raise :class:`FrameError` whose ``kind`` is one of :data:`ERROR_KINDS`
(the same names the Go codec uses, see ``protocol/testdata/vectors.json``):

* ``truncated_header`` / ``truncated_body``: the stream ended inside a frame;
* ``frame_too_large``: the header announces more than the limit (the body is never read);
* ``invalid_utf8``, ``invalid_json`` (also empty body, ``NaN``/``Infinity``, trailing data),
  ``not_object``, ``missing_id``, ``invalid_id``: the body cannot be read as a message.

The first three leave the stream unusable; the others only lose one frame.

Requests (host to worker) are ``{"id", "command", "args"?, "session"?, "deadline_ms"?,
"stream"?}``; responses are ``{"id", "success": true, "result", "chunks"?}`` or
``{"id", "success": false, "error": {"code", "message", "type"?, "traceback"?}, "chunks"?}``
(``chunks`` when the request asked for a stream).

Frames with a ``kind`` (docs/protocol.md, "Both directions"): the host sends ``credit``
(``{"id", "kind", "credit"}``, more room for the stream of request ``id``) and ``result``
(``{"id", "kind", "success", "result"|"error"}``, the answer to the worker's call ``id``);
the worker sends ``chunk`` (``{"id", "kind", "seq", "data"}``), ``call`` (``{"id", "kind",
"parent", "tool", "args"}``) and ``cancel`` (``{"id", "kind"}``, it stopped waiting for
call ``id``). Any other kind reaching the worker is refused with ``unimplemented``.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import time
from collections import namedtuple

from .errors import ERROR_CODES, WorkerError

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from typing import Any, BinaryIO

#: Default and largest accepted body size in bytes (16 MiB), see ``--max-frame-bytes``.
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024

#: Ids are below this bound so that every JSON implementation reads them exactly.
ID_LIMIT = 2**53

#: Kinds of :class:`FrameError`.
ERROR_KINDS = (
    "truncated_header",
    "truncated_body",
    "frame_too_large",
    "invalid_utf8",
    "invalid_json",
    "not_object",
    "missing_id",
    "invalid_id",
)

#: Kinds after which the byte stream cannot be resynchronised.
FATAL_KINDS = frozenset({"truncated_header", "truncated_body", "frame_too_large"})

HEADER = struct.Struct(">I")

#: Largest body size a 4-byte header can announce.
HEADER_LIMIT = 2**32 - 1

_log = logging.getLogger("dspgo_worker.protocol")


class FrameError(Exception):
    """A frame that cannot be read or decoded; ``kind`` is one of :data:`ERROR_KINDS`."""

    def __init__(self, kind: str, message: str) -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown frame error kind {kind!r}")
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message

    @property
    def fatal(self) -> bool:
        """True when the stream cannot be read any further after this error."""
        return self.kind in FATAL_KINDS


# --- reading ---------------------------------------------------------------------------


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    """Read ``n`` bytes, fewer only at end of stream (handles short reads)."""
    first = stream.read(n)
    if not first or len(first) == n:
        return first or b""
    parts = [first]
    got = len(first)
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _too_large_message(header: bytes, size: int, max_bytes: int) -> str:
    """Explain a ``frame_too_large`` header, spotting JSON sent without the length header."""
    message = f"frame header announces {size} bytes, over the limit of {max_bytes} bytes"
    if header[:1] in (b"{", b"["):
        message += (
            f"; the header bytes {header!r} look like the start of JSON: the peer seems to be"
            " sending JSON without the 4-byte length header"
        )
    return message


def _truncated_header(got: int) -> FrameError:
    return FrameError("truncated_header", f"stream ended after {got} of {HEADER.size} header bytes")


def _truncated_body(got: int, size: int) -> FrameError:
    return FrameError("truncated_body", f"stream ended after {got} of {size} body bytes")


def read_frame(stream: BinaryIO, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes | None:
    """Read one frame body from a binary stream.

    Returns ``None`` at a clean end of stream (EOF exactly at a frame boundary). Raises
    :class:`FrameError` (``truncated_header``, ``truncated_body`` or ``frame_too_large``);
    an oversized frame is refused from its header alone, its body is neither read nor
    allocated.
    """
    header = _read_exact(stream, HEADER.size)
    if not header:
        return None
    if len(header) < HEADER.size:
        raise _truncated_header(len(header))
    (size,) = HEADER.unpack(header)
    if size > max_bytes:
        raise FrameError("frame_too_large", _too_large_message(header, size, max_bytes))
    body = _read_exact(stream, size)
    if len(body) < size:
        raise _truncated_body(len(body), size)
    return body


class FrameParser:
    """Cuts frame bodies out of bytes as they arrive (a non-blocking reader's side of
    :func:`read_frame`): :meth:`feed` takes what one read returned and gives the whole
    frames it completes, :meth:`end` tells whether the stream ended at a frame boundary.

    The errors are :func:`read_frame`'s: ``frame_too_large`` from the header alone (its
    body is never buffered), ``truncated_header``/``truncated_body`` at the end.
    """

    __slots__ = ("_buf", "_max")

    def __init__(self, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_bytes

    def feed(self, data: bytes) -> list[bytes]:
        """The bodies of the frames ``data`` completes, in order (maybe none). A refused
        header behind whole frames is raised by the next call (``feed(b"")`` will do)."""
        buf = self._buf
        if buf:
            buf += data
            view: bytes | bytearray = buf
        else:
            view = data  # the usual case: whole frames in one read, nothing kept
        bodies: list[bytes] = []
        pos = 0
        end = len(view)
        unpack = HEADER.unpack_from
        while end - pos >= HEADER.size:
            (size,) = unpack(view, pos)
            if size > self._max:
                if bodies:
                    break  # the frames before it first: the next feed raises
                raise FrameError("frame_too_large", _too_large_message(bytes(view[pos : pos + HEADER.size]), size, self._max))
            start = pos + HEADER.size
            if end - start < size:
                break
            bodies.append(bytes(view[start : start + size]))
            pos = start + size
        if view is buf:
            del buf[:pos]
        elif pos < end:
            buf += view[pos:]
        return bodies

    def end(self) -> None:
        """The stream ended: raise ``truncated_header``/``truncated_body`` if a frame was
        cut off."""
        buf = self._buf
        if not buf:
            return
        if len(buf) < HEADER.size:
            raise _truncated_header(len(buf))
        (size,) = HEADER.unpack_from(buf)
        raise _truncated_body(len(buf) - HEADER.size, size)


# --- decoding ----------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# Numbers beyond a double's range (1e400) are valid JSON and decode to an
# infinity: refusing the frame would leave its id unanswered, so the command
# that reads the value refuses it instead (input conversion takes only
# finite numbers, and canonical JSON none that is not).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def is_valid_id(value: Any) -> bool:
    """True for a message id: an int (not a bool) in ``[0, 2**53)``."""
    return type(value) is int and 0 <= value < ID_LIMIT


def decode_message(body: bytes) -> dict[str, Any]:
    """Decode a frame body into a message object with a valid ``id``.

    Raises :class:`FrameError` with kind ``invalid_utf8``, ``invalid_json``, ``not_object``,
    ``missing_id`` or ``invalid_id``.
    """
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FrameError("invalid_utf8", f"frame body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    if not text or text.isspace():  # (isspace: no copy of a large body, as strip() makes)
        raise FrameError("invalid_json", "frame body is empty")
    try:
        message = _DECODER.decode(text)
    except RecursionError:
        raise FrameError("invalid_json", "frame body is nested too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise FrameError("invalid_json", f"frame body is not valid JSON: {exc}") from None
    if not isinstance(message, dict):
        raise FrameError("not_object", f"frame body is JSON {json_type_name(message)}, not an object")
    if "id" not in message:
        raise FrameError("missing_id", "message has no id")
    if not is_valid_id(message["id"]):
        raise FrameError(
            "invalid_id", f"id must be an integer in [0, 2^53), got {json_type_name(message['id'])} {message['id']!r}"
        )
    return message


def recover_message(body: bytes) -> dict[str, Any] | None:
    """The message of a body that is not UTF-8 (``invalid_utf8``), read with its bad bytes
    replaced, when that gives an object with a valid ``id``; else ``None``.

    The bytes are bad but the id is known (they sit inside strings), so the message can be
    answered (``invalid_argument``) instead of leaving its sender waiting.
    """
    try:
        message = _DECODER.decode(bytes(body).decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return None
    if isinstance(message, dict) and is_valid_id(message.get("id")):
        return message
    return None


#: The escapes Go's ``strconv.Quote`` writes by name.
_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v", '"': '\\"', "\\": "\\\\"}


def quote(s: str) -> str:
    """A double-quoted string, as Go's ``%q`` (``strconv.Quote``) writes it, so that errors
    read alike in both languages: printable characters as they are (non-ASCII ones too),
    ``\\n``, ``\\t``… and ``\\"``, ``\\\\`` by name, other control characters ``\\x00``, other
    characters that do not print ``\\u00a0`` or ``\\U0001f000``."""
    out = ['"']
    for c in s:
        escaped = _GO_ESCAPES.get(c)
        if escaped is None:
            if c.isprintable():
                escaped = c
            else:
                n = ord(c)
                escaped = f"\\x{n:02x}" if n < 0x80 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"
        out.append(escaped)
    out.append('"')
    return "".join(out)


def json_type_name(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# --- encoding ----------------------------------------------------------------------------


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_body(obj: Any) -> bytes:
    """Encode a message as compact UTF-8 JSON, keys in the order given.

    Lone surrogates (which UTF-8 cannot hold; ``json`` decodes an escaped ``"\\ud800"``
    to one) become U+FFFD, as Go's encoder does. Raises ``TypeError``/``ValueError`` for
    values JSON cannot hold (unknown types, NaN, circular references).
    """
    text = _ENCODER.encode(obj)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").encode("utf-8")


def encode_frame(obj: Any, max_bytes: int | None = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """Encode a message as a whole frame (header + body).

    Raises :class:`FrameError` ``frame_too_large`` when the body exceeds ``max_bytes``
    (``None``: no limit besides the 4-byte header), and the errors of :func:`encode_body`.
    """
    body = encode_body(obj)
    limit = HEADER_LIMIT if max_bytes is None else min(max_bytes, HEADER_LIMIT)
    if len(body) > limit:
        raise FrameError("frame_too_large", f"message of {len(body)} bytes exceeds the frame limit of {limit} bytes")
    return HEADER.pack(len(body)) + body


def success_response(request_id: int, result: Any) -> dict[str, Any]:
    """``{"id", "success": true, "result"}``."""
    return {"id": request_id, "success": True, "result": result}


def error_response(
    request_id: int, code: str, message: str, type: str | None = None, traceback: str | None = None
) -> dict[str, Any]:
    """``{"id", "success": false, "error": {"code", "message", "type"?, "traceback"?}}``."""
    error = {"code": code, "message": message}
    if type is not None:
        error["type"] = type
    if traceback is not None:
        error["traceback"] = traceback
    return {"id": request_id, "success": False, "error": error}


# --- requests ----------------------------------------------------------------------------


class Request(
    namedtuple("Request", ("id", "command", "args", "session", "deadline_ms", "stream"), defaults=(None,))
):
    """A validated request: ``id``, ``command``, ``args`` (defaults to ``{}``), ``session``,
    ``deadline_ms`` and ``stream`` (the initial credit of a streamed request; each ``None``
    when absent)."""

    __slots__ = ()


#: The largest initial credit a request may ask for (``stream``).
MAX_STREAM_CREDIT = 4096

#: The kinds of frame a host sends besides requests.
HOST_KINDS = ("credit", "result")


def valid_stream(value: Any) -> bool:
    """True for a ``stream`` field's value: an integer from 1 to :data:`MAX_STREAM_CREDIT`."""
    return type(value) is int and 1 <= value <= MAX_STREAM_CREDIT


def parse_request(message: dict[str, Any]) -> Request:
    """Check the request fields of a decoded message (whose id is already valid).

    Unknown top-level fields are ignored, except ``kind``: a message with a ``kind`` is
    not a request (the worker handles ``credit`` and ``result`` frames before this), and
    raises ``unimplemented``. Optional fields may be absent or ``null``. Raises
    :class:`WorkerError` ``invalid_argument`` naming the offending field.
    """
    if "kind" in message:
        raise WorkerError(
            "unimplemented",
            f"message kind {message['kind']!r} is not supported by this worker"
            f" (it reads requests and the kinds {', '.join(HOST_KINDS)})",
        )
    command = message.get("command")
    if command is None:
        raise WorkerError("invalid_argument", "request field 'command' is missing")
    if not isinstance(command, str) or not command:
        raise WorkerError(
            "invalid_argument", f"request field 'command' must be a non-empty string, got {json_type_name(command)}"
        )
    args = message.get("args")
    if args is None:
        args = {}
    elif not isinstance(args, dict):
        raise WorkerError("invalid_argument", f"request field 'args' must be an object, got {json_type_name(args)}")
    session = message.get("session")
    if session is not None and not isinstance(session, str):
        raise WorkerError("invalid_argument", f"request field 'session' must be a string, got {json_type_name(session)}")
    deadline_ms = message.get("deadline_ms")
    if deadline_ms is not None and not is_valid_id(deadline_ms):
        raise WorkerError(
            "invalid_argument",
            f"request field 'deadline_ms' must be a non-negative integer, got {json_type_name(deadline_ms)} {deadline_ms!r}",
        )
    stream = message.get("stream")
    if stream is not None and not valid_stream(stream):
        raise WorkerError(
            "invalid_argument",
            f"request field 'stream' must be an integer from 1 to {MAX_STREAM_CREDIT}, got {json_type_name(stream)} {stream!r}",
        )
    return Request(message["id"], command, args, session, deadline_ms, stream)


# --- frames with a kind --------------------------------------------------------------------


class Credit(namedtuple("Credit", ("id", "credit"))):
    """A ``credit`` frame: ``credit`` more chunks for the stream of request ``id``."""

    __slots__ = ()


class CallResult(namedtuple("CallResult", ("id", "success", "result", "error"))):
    """A ``result`` frame: the host's answer to the worker's call ``id``. ``error`` is
    ``{"code", "message", "type"?}`` when ``success`` is false (a code this version does
    not know, or a plain-string error, reads as ``unknown``), else ``None``."""

    __slots__ = ()


def parse_credit(message: dict[str, Any]) -> Credit:
    """The fields of a ``credit`` frame; ``invalid_argument`` naming ``credit`` when it is
    not a non-negative integer."""
    credit = message.get("credit")
    if not is_valid_id(credit):
        raise WorkerError(
            "invalid_argument",
            f"credit frame field 'credit' must be a non-negative integer, got {json_type_name(credit)} {credit!r}",
        )
    return Credit(message["id"], credit)


def parse_result(message: dict[str, Any]) -> CallResult:
    """The fields of a ``result`` frame; ``invalid_argument`` naming the field when
    ``success`` is not a boolean, a failure has no error, or a success has one."""
    success = message.get("success")
    if not isinstance(success, bool):
        raise WorkerError(
            "invalid_argument", f"result frame field 'success' must be a boolean, got {json_type_name(success)}"
        )
    if success:
        if message.get("error") is not None:
            raise WorkerError("invalid_argument", "result frame has success true and an error (a failure is success false)")
        return CallResult(message["id"], True, message.get("result"), None)
    raw = message.get("error")
    if isinstance(raw, str):
        return CallResult(message["id"], False, None, {"code": "unknown", "message": raw})
    if not isinstance(raw, dict):
        raise WorkerError(
            "invalid_argument", f"result frame field 'error' must be an object, got {json_type_name(raw)}"
        )
    code = raw.get("code")
    message_text = raw.get("message")
    error = {
        "code": code if isinstance(code, str) and code in ERROR_CODES else "unknown",
        "message": message_text if isinstance(message_text, str) else "",
    }
    if isinstance(raw.get("type"), str) and raw["type"]:
        error["type"] = raw["type"]
    return CallResult(message["id"], False, None, error)


def chunk_message(request_id: int, seq: int, data: Any) -> dict[str, Any]:
    """``{"id", "kind": "chunk", "seq", "data"}``: chunk ``seq`` of request ``id``'s stream."""
    return {"id": request_id, "kind": "chunk", "seq": seq, "data": data}


def call_message(call_id: int, parent: int, tool: str, args: Any) -> dict[str, Any]:
    """``{"id", "kind": "call", "parent", "tool", "args"}``: the worker calls a host tool."""
    return {"id": call_id, "kind": "call", "parent": parent, "tool": tool, "args": args}


def call_cancel_message(call_id: int) -> dict[str, Any]:
    """``{"id", "kind": "cancel"}``: the worker stopped waiting for its call ``id``."""
    return {"id": call_id, "kind": "cancel"}


def with_chunks(response: dict[str, Any], chunks: int) -> dict[str, Any]:
    """A final response of a streamed request: ``chunks`` added after the other fields."""
    response["chunks"] = chunks
    return response


# --- writing -----------------------------------------------------------------------------


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to a file descriptor, looping over partial writes."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


#: Bytes of frames queued behind a write in progress beyond which a writer waits for the
#: queue to drain (a host that reads slowly holds the writers back, not the memory).
MAX_QUEUED_BYTES = 4 * 1024 * 1024


class FrameWriter:
    """Writes frames to the protocol output fd; one frame is never interleaved with another.

    A thread that writes while another thread is writing queues its frame and returns at
    once (it waits only while the queue holds over :data:`MAX_QUEUED_BYTES`); the writing
    thread writes what was queued meanwhile, several frames per system call, until the
    queue is empty. Frames reach the fd in the order their writes were queued, so the
    frames of one thread keep their order.

    After a write error (the host closed the pipe) or :meth:`close`, writes are dropped and
    return False; frames queued then are dropped with them.
    """

    def __init__(self, fd: int, max_queued: int = MAX_QUEUED_BYTES) -> None:
        self.fd = fd
        self._max_queued = max_queued
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # the queue shrank or the writing stopped
        self._queue: list[bytes] = []
        self._queued_bytes = 0
        self._waiting = 0  # writers waiting for room, and close
        self._writing = False
        self._closed = False
        self._error: OSError | None = None

    def write(self, data: bytes) -> bool:
        """Write or queue ``data`` (one or more whole frames); True unless dropped."""
        with self._lock:
            if self._writing:
                while self._writing and self._queued_bytes >= self._max_queued and self._open():
                    self._waiting += 1
                    try:
                        self._idle.wait()
                    finally:
                        self._waiting -= 1
                if not self._open():
                    return False
                if self._writing:
                    self._queue.append(data)
                    self._queued_bytes += len(data)
                    return True
            elif not self._open():
                return False
            self._writing = True
        return self._drain(data)

    def _open(self) -> bool:
        return not self._closed and self._error is None

    def _drain(self, data: bytes) -> bool:
        """Write ``data``, then what other threads queue meanwhile, until nothing is queued.

        The caller set ``_writing``; this clears it. True when ``data`` was written."""
        written = False
        try:
            while True:
                write_all(self.fd, data)
                written = True
                with self._lock:
                    queue = self._queue
                    if not queue or not self._open():
                        self._stop_writing_locked()
                        return True
                    data = queue[0] if len(queue) == 1 else b"".join(queue)
                    self._queue = []
                    self._queued_bytes = 0
                    if self._waiting:
                        self._idle.notify_all()
        except OSError as exc:
            with self._lock:
                self._error = exc
                self._stop_writing_locked()
            _log.error("cannot write to the protocol output, dropping further responses: %s", exc)
            return written

    def _stop_writing_locked(self) -> None:
        self._writing = False
        self._queue = []
        self._queued_bytes = 0
        if self._waiting:
            self._idle.notify_all()

    def close(self, timeout: float) -> None:
        """Stop writing: waits up to ``timeout`` for the frames being written and queued,
        then drops all writes."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._lock:
            while self._writing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._waiting += 1
                try:
                    self._idle.wait(left)
                finally:
                    self._waiting -= 1
            self._closed = True
