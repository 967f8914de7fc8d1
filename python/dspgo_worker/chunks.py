"""Streamed outputs: the chunks (``{"field", "delta"}``) of a run, cut from typed values
(:func:`value_deltas`) or from a reply read as it arrives (:class:`ReplyStreamer`, which
hands on each field's text as its section is recognised)."""

from __future__ import annotations

import re

from .canonical import canonical_json
from .chat_format import SECTION_HEADER, parse_reply
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


#: A prefix of a ``[[ ## name ## ]]`` header, up to the end of the text.
_HEADER_PREFIX = re.compile(r"\[(?:\[(?:\s*(?:#(?:#(?:\s*(?:\w+(?:\s*(?:#(?:#(?:\s*(?:\])?)?)?)?)?)?)?)?)?)?)?\Z")


class ReplyStreamer:
    """Turns a reply arriving in pieces into the text deltas of its output fields.

    A field's text is handed on as soon as its ``[[ ## field ## ]]`` section is
    recognised, as :func:`split_sections` will read it (the first section of each name,
    stripped of surrounding white space, nothing after ``[[ ## completed ## ]]``). Text
    that may be the start of a header is held back until it is known not to be; so is
    white space that may end a section. Fields come in output order: a section that
    arrives before its turn is kept and handed on when its turn comes. :meth:`finish`
    hands on the fields not streamed yet, from the parsed outputs when the reply had no
    section for them (a JSON reply).
    """

    def __init__(self, compiled: CompiledSpec) -> None:
        self.names = [f.name for f in compiled.outputs]
        self.parts: list[str] = []  # the whole reply
        self._next = 0  # index in names of the field whose turn it is
        self._pending = ""  # text not handed on yet: it may start a header
        self._section: str | None = None  # the output section being read (first occurrence)
        self._live = False  # the section is the field whose turn it is
        self._started = False  # its leading white space is skipped
        self._space = ""  # trailing white space held back
        self._sent = False  # a delta of it was handed on
        self._seen: set[str] = set()
        self._held: dict[str, list[str]] = {}  # sections that came before their turn
        self._emitted: set[str] = set()
        self._completed = False

    def feed(self, piece: str) -> list[tuple[str, str]]:
        """``(field, delta)`` pairs that ``piece`` completes."""
        self.parts.append(piece)
        out: list[tuple[str, str]] = []
        if self._completed:
            return out
        pending = self._pending + piece
        while True:
            m = SECTION_HEADER.search(pending)
            if m is None:
                break
            self._content(pending[: m.start()], out)
            self._end_section(out)
            pending = pending[m.end() :]
            if m.group(1) == "completed":
                self._completed = True
                self._pending = ""
                return out
            self._start_section(m.group(1))
        cut = len(pending)
        start = pending.find("[")
        while start != -1:
            if _HEADER_PREFIX.match(pending, start):
                cut = start
                break
            start = pending.find("[", start + 1)
        self._content(pending[:cut], out)
        self._pending = pending[cut:]
        return out

    def finish(self, outputs: dict[str, Any]) -> list[tuple[str, str]]:
        """The deltas of the fields not handed on yet, once the whole reply is parsed into
        ``outputs``."""
        out: list[tuple[str, str]] = []
        if not self._completed:
            self._content(self._pending, out)
            self._pending = ""
        self._end_section(out)
        for name in self.names[self._next :]:
            if name in self._emitted:
                continue
            held = self._held.pop(name, None)
            text = "".join(held).strip() if held is not None else value_text(outputs[name])
            out.append((name, text))
            self._emitted.add(name)
        return out

    def text(self) -> str:
        return "".join(self.parts)

    def _start_section(self, name: str) -> None:
        self._started = False
        self._space = ""
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
        combined = self._space + text
        body = combined.rstrip()
        self._space = combined[len(body) :]
        if body:
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


async def stream_outputs(compiled: CompiledSpec, pieces: AsyncGenerator[str, None], ctx: Context) -> dict[str, Any]:
    """Send the ``{"field", "delta"}`` chunks of a reply arriving as the text ``pieces``
    with ``ctx.send_chunk``; return the parsed outputs. ``pieces`` is closed in the end,
    however it ends."""
    streamer = ReplyStreamer(compiled)
    try:
        async for piece in pieces:
            for name, delta in streamer.feed(piece):
                await ctx.send_chunk({"field": name, "delta": delta})
    finally:
        await pieces.aclose()
    outputs = parse_reply(compiled, streamer.text())
    for name, delta in streamer.finish(outputs):
        await ctx.send_chunk({"field": name, "delta": delta})
    return outputs
