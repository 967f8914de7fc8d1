"""Streamed outputs: the chunks (``{"field", "delta"}``) of a run, cut from typed values
(:func:`value_deltas`) or from a reply read as it arrives (:class:`ReplyStreamer`, which
hands on each field's text as its section is recognised)."""

from __future__ import annotations

import re

from .canonical import canonical_json
from .chat_format import (
    CHAT,
    HEADER,
    HEADER_CLOSE,
    HEADER_OPEN,
    JSON,
    LINE_BREAK,
    LINE_SPACE,
    parse_json_reply,
    parse_reply,
)
from .spec import CompiledSpec

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Iterator
    from typing import Any

    from .context import Context

_SPACE_CUT = re.compile(r"(?<=[^ ])(?= )")


def text_deltas(text: str) -> list[str]:
    """``text`` cut before every space that follows a non-space character
    (``"answer 1a2b 3c4d"`` gives ``"answer"``, ``" 1a2b"``, ``" 3c4d"``); an empty text is
    one empty delta."""
    return _SPACE_CUT.split(text) if text else [""]


def value_text(value: Any) -> str:
    """The text of an output value: a string itself, anything else its canonical JSON."""
    if isinstance(value, str):
        return value
    return canonical_json(value).decode("utf-8")


def value_deltas(value: Any) -> list[str]:
    """The dummy LM's chunks of an output value (docs/protocol.md, "Dummy LM chunks"): a
    string cut by :func:`text_deltas`, any other value one delta of its canonical JSON."""
    if isinstance(value, str):
        return text_deltas(value)
    return [value_text(value)]


def output_chunks(compiled: CompiledSpec, outputs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield the ``{"field", "delta"}`` chunks of finished outputs, in output order."""
    for f in compiled.outputs:
        for delta in value_deltas(outputs[f.name]):
            yield {"field": f.name, "delta": delta}


#: The white space at a line's start, and the name of a header.
_SPACES = re.compile(LINE_SPACE + "*")
_WORD = re.compile(r"\w*")


def _any_start(atoms: list[str]) -> str:
    """A pattern matching any start (the empty one and the whole too) of the sequence of
    patterns ``atoms``: ``(?:a(?:b(?:c)?)?)?``."""
    pattern = ""
    for atom in reversed(atoms):
        pattern = f"(?:{atom}{pattern})?"
    return pattern


#: A header at a line's start; the start of a line that may be a header's start (or all
#: of one) up to the end of the text so far.
_HEADER_AT = re.compile(f"({LINE_SPACE}*){HEADER.pattern}")
_HEADER_PREFIX_AT = re.compile(
    LINE_SPACE + "*" + _any_start([*map(re.escape, HEADER_OPEN), r"\w+", *map(re.escape, HEADER_CLOSE)]) + r"\Z"
)
#: A line end after which a header starts, or may start (the line is read again by
#: :meth:`ReplyStreamer._line_start`). Each try reads at most the next line's start, so
#: a search is linear in the text.
_MAY_START_HEADER = re.compile(f"(?:{LINE_BREAK.pattern})(?=(?:{_HEADER_AT.pattern})|(?:{_HEADER_PREFIX_AT.pattern}))")
#: Where the streamer is in a line: past its start (which was no header's), or in its
#: start, which may still be a header's: in its white space, in the text before the
#: name, in the name, in the text after it.
_BODY, _SPACE, _OPENING, _NAME, _CLOSING = range(5)


class ReplyStreamer:
    """Turns a reply arriving in pieces into the text deltas of its output fields.

    A field's text is handed on as soon as its ``[[ ## field ## ]]`` section is
    recognised, as :func:`~dspgo_worker.chat_format.split_sections` will read it from the
    whole reply: a header only at a line's start (after white space), every line end
    (``\\r\\n``, ``\\r``, ``\\u2028``, …) as ``\\n``, the first section of each name, stripped
    of surrounding white space (the header's own line stripped too), and a section after
    ``[[ ## completed ## ]]`` still read. The start of a line is held back until it is
    known to be a header's or not, and white space at the end of a section's text so far
    until more text follows it in the section (it is dropped if the section ends first);
    the rest is handed on as it arrives. Fields come in output order: a section that arrives
    before its turn is kept and handed on when its turn comes. :meth:`finish` hands on
    the fields not streamed yet, from the parsed outputs when the reply had no section
    for them (a JSON reply).
    """

    def __init__(self, compiled: CompiledSpec) -> None:
        self.names = [f.name for f in compiled.outputs]
        self.parts: list[str] = []  # the whole reply
        self._next = 0  # index in names of the field whose turn it is
        self._phase = _SPACE  # where in a line the text so far ends (a reply starts a line)
        self._line: list[str] = []  # the start of the line, held while it may be a header
        self._indent = 0  # the length of its white space
        self._matched = 0  # how much of HEADER_OPEN, the name or HEADER_CLOSE it holds
        self._cr = False  # the text so far ends with \r: a \n next ends the same line
        self._header_line = False  # the line is a header's (its end strips the section's first line)
        self._section: str | None = None  # the output section being read (first occurrence)
        self._live = False  # the section is the field whose turn it is
        self._started = False  # its leading white space is skipped
        self._space: list[str] = []  # trailing white space held back
        self._sent = False  # a delta of it was handed on
        self._seen: set[str] = set()
        self._held: dict[str, list[str]] = {}  # sections that came before their turn
        self._emitted: set[str] = set()

    def feed(self, piece: str) -> list[tuple[str, str]]:
        """``(field, delta)`` pairs that ``piece`` completes."""
        self.parts.append(piece)
        out: list[tuple[str, str]] = []
        i, n = 0, len(piece)
        if n and self._cr:
            self._cr = False
            if piece[0] == "\n":
                i = 1
        while i < n:
            if self._phase != _BODY:
                i = self._line_start(piece, i, out)
                continue
            if self._header_line:  # a header's line: to its end, which strips it
                m = LINE_BREAK.search(piece, i)
                if m is None:
                    self._content(piece[i:], out)
                    break
                self._content(piece[i : m.start()], out)
                self._end_header_line()
            else:  # lines up to the next that may start with a header
                m = _MAY_START_HEADER.search(piece, i)
                if m is None:
                    self._content(LINE_BREAK.sub("\n", piece[i:]), out)
                    break
                self._content(LINE_BREAK.sub("\n", piece[i : m.start()]), out)
            self._content("\n", out)
            self._phase, self._indent, self._matched = _SPACE, 0, 0
            i = m.end()
            self._cr = i == n and m.group() == "\r"
        return _joined(out)

    def finish(self, outputs: dict[str, Any]) -> list[tuple[str, str]]:
        """The deltas of the fields not handed on yet, once the whole reply is parsed into
        ``outputs``."""
        out: list[tuple[str, str]] = []
        self._not_header(out)  # a line's start that the reply ends in is no header
        self._end_section(out)
        for name in self.names[self._next :]:
            if name in self._emitted:
                continue
            held = self._held.pop(name, None)
            text = "".join(held).strip() if held is not None else value_text(outputs[name])
            out.append((name, text))
            self._emitted.add(name)
        return _joined(out)

    def _line_start(self, piece: str, i: int, out: list[Any]) -> int:
        """Read the start of a line from ``piece[i:]`` as far as it may be a header's,
        holding it back; return where the reading stopped."""
        n = len(piece)
        phase = self._phase
        if phase == _SPACE and not self._line:  # at the line's start: the whole header, or none?
            m = _HEADER_AT.match(piece, i)
            if m is not None:
                self._line.append(m.group())
                self._indent = m.end(1) - i
                self._header(out)
                return m.end()
            if _HEADER_PREFIX_AT.match(piece, i) is None:
                self._not_header(out)
                return i
        if phase == _SPACE or phase == _NAME:
            m = (_SPACES if phase == _SPACE else _WORD).match(piece, i)
            j = m.end() if m is not None else i
            if j > i:
                self._line.append(piece[i:j])
            if phase == _SPACE:
                self._indent += j - i
                if j < n:
                    self._phase, self._matched = _OPENING, 0
            else:
                self._matched += j - i
                if j < n and not self._matched:
                    self._not_header(out)  # a name is at least one character
                elif j < n:
                    self._phase, self._matched = _CLOSING, 0
            return j
        literal = HEADER_OPEN if phase == _OPENING else HEADER_CLOSE
        j, k = i, self._matched
        while j < n and k < len(literal) and piece[j] == literal[k]:
            j += 1
            k += 1
        if j > i:
            self._line.append(piece[i:j])
        self._matched = k
        if k == len(literal):
            if phase == _OPENING:
                self._phase, self._matched = _NAME, 0
            else:
                self._header(out)
        elif j < n:
            self._not_header(out)
        return j

    def _not_header(self, out: list[Any]) -> None:
        """The line's start held back is no header's: it is text of the section."""
        if self._phase == _BODY:
            return
        text = "".join(self._line)
        self._line = []
        self._phase = _BODY
        self._content(text, out)

    def _header(self, out: list[Any]) -> None:
        """The line's start held back is a header: a new section starts."""
        text = "".join(self._line)
        self._line = []
        self._phase = _BODY
        self._end_section(out)
        self._start_section(text[self._indent + len(HEADER_OPEN) : -len(HEADER_CLOSE)])
        self._header_line = True
        # DSPy takes the rest of the line at the header's length from the line's start,
        # white space included: an indented header's section starts with the header's
        # last characters, as many as the white space (split_sections).
        if self._indent:
            self._content(text[-self._indent :], out)

    def _end_header_line(self) -> None:
        """A header's line ends: the section's first line is stripped."""
        self._header_line = False
        name = self._section
        if name is None:
            return
        if self._live:
            self._space = []
        else:
            self._held[name] = ["".join(self._held[name]).rstrip()]

    def text(self) -> str:
        return "".join(self.parts)

    def _start_section(self, name: str) -> None:
        self._started = False
        self._space = []
        self._sent = False
        if name in self.names and name not in self._seen:
            self._seen.add(name)
            self._section = name
            self._live = self.names.index(name) == self._next
            if not self._live:
                self._held[name] = []
        else:
            self._section = None
            self._live = False

    def _content(self, text: str, out: list[Any]) -> None:
        if not text or self._section is None:
            return
        if not self._live:
            self._held[self._section].append(text)
            return
        if not self._started:
            text = text.lstrip()
            if not text:
                return
            self._started = True
        body = text.rstrip()
        if not body:
            self._space.append(text)
            return
        tail = text[len(body) :]
        if self._space:
            body = "".join(self._space) + body
        self._space = [tail] if tail else []
        out.append((self._section, body))
        self._sent = True

    def _end_section(self, out: list[Any]) -> None:
        name, live = self._section, self._live
        self._section = None
        self._live = False
        if name is None or not live:
            return
        if not self._sent:
            out.append((name, ""))
        self._emitted.add(name)
        self._advance(out)

    def _advance(self, out: list[Any]) -> None:
        """Move the turn past the fields handed on, handing on the held ones in turn."""
        names = self.names
        while self._next < len(names):
            name = names[self._next]
            if name in self._emitted:
                self._next += 1
            elif name in self._held and name != self._section:
                out.append((name, "".join(self._held.pop(name)).strip()))
                self._emitted.add(name)
                self._next += 1
            else:
                break


def _joined(deltas: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``deltas`` with each run of one field's made one delta."""
    if len(deltas) < 2:
        return deltas
    out: list[tuple[str, str]] = []
    run: list[str] = []
    for i, (name, delta) in enumerate(deltas):
        run.append(delta)
        if i + 1 == len(deltas) or deltas[i + 1][0] != name:
            out.append((name, "".join(run)))
            run = []
    return out


async def stream_outputs(
    compiled: CompiledSpec, pieces: AsyncGenerator[str, None], ctx: Context, reader: CompiledSpec | None = None,
    fmt: str = CHAT,
) -> dict[str, Any]:
    """Send the ``{"field", "delta"}`` chunks of ``compiled``'s outputs in a reply
    arriving as the text ``pieces`` with ``ctx.send_chunk``; return the outputs the whole
    reply holds, parsed as the reply of ``reader`` (default ``compiled``; a ReAct's
    extraction, whose reasoning comes before the outputs and is not streamed) by
    :func:`~dspgo_worker.chat_format.parse_reply`: no second request, as DSPy 3.4.1's
    ChatAdapter makes none to JSONAdapter after stream output, but a reply without header
    line read as a JSON object. With ``fmt`` :data:`~dspgo_worker.chat_format.JSON` (the
    JSONAdapter's reply, default ChatAdapter's), the reply is read whole by
    :func:`~dspgo_worker.chat_format.parse_json_reply` and each field sent whole, as the
    dspy engine sends a JSON reply's. ``pieces`` is closed in the end, however it ends."""
    streamer = ReplyStreamer(compiled)
    whole: list[str] = []  # a JSON reply's pieces
    try:
        async for piece in pieces:
            if fmt == JSON:
                whole.append(piece)
                continue
            for name, delta in streamer.feed(piece):
                await ctx.send_chunk({"field": name, "delta": delta})
    finally:
        await pieces.aclose()
    if fmt == JSON:
        outputs = parse_json_reply(reader or compiled, "".join(whole))
    else:
        outputs = parse_reply(reader or compiled, streamer.text())
    for name, delta in streamer.finish(outputs):
        await ctx.send_chunk({"field": name, "delta": delta})
    return outputs
