"""The native engine's prompt and reply, in DSPy's ChatAdapter format: a system message
describing the fields and the ``[[ ## field ## ]]`` structure, a user message with the
inputs (:func:`build_messages`, few-shot demos as earlier turns), and the reply's sections
parsed and converted to the outputs' types (:func:`parse_sections`, :func:`parse_reply`).
With ``fmt=JSON``, the messages of DSPy's JSONAdapter, which ChatAdapter falls back to when
a reply does not parse, and their reply read as a JSON object (:func:`parse_json_reply`).
"""

from __future__ import annotations

import inspect
import json
import os
import re

from .constraints import constraints_line
from .errors import WorkerError
from .fieldtypes import (
    AUDIO,
    BOOL,
    DATE,
    DATETIME,
    DICT,
    FILE,
    FLOAT,
    HISTORY,
    IMAGE,
    INT,
    LIST,
    LITERAL,
    MODEL,
    OPTIONAL,
    STR,
    TUPLE,
    UNION,
    FieldType,
)
from .kinds import KIND_CHAIN_OF_THOUGHT, REASONING_FIELD
from .media import map_media
from .protocol import quote
from .spec import CompiledSpec
from .values import copy_value, parse_output

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, Callable

    from .signature import Field

class OutputError(WorkerError):
    """An output the language model did not produce, or produced in a form that does not
    convert to the field's type. Code ``internal``; the message names the field."""

    def __init__(self, message: str) -> None:
        super().__init__("internal", message)


#: The prompt formats (the names ``dspy_adapter`` gives DSPy's adapters): DSPy 3.4.1's
#: ChatAdapter's ``[[ ## field ## ]]`` sections, and its JSONAdapter's JSON object, which
#: ChatAdapter asks for when a reply does not parse.
CHAT = "chat"
JSON = "json"

#: The characters that end a line, as ``str.splitlines`` (which DSPy's ChatAdapter cuts a
#: reply with) ends one, as a character class's contents; ``\r\n`` ends one too.
_BREAKS = r"\n\r\v\f\x1c-\x1e\x85\u2028\u2029"
#: What ends a line: ``\r\n`` or one of :data:`_BREAKS`. Spelt as the class, then a ``\n``
#: when the class's character was ``\r``, not as ``\r\n|[…]``: a search then skips to
#: the class's characters instead of trying the pattern at every character (about twice
#: as fast to stream a reply).
LINE_BREAK = re.compile(rf"[{_BREAKS}](?:(?<=\r)\n)?")
#: The white space that ``str.strip()`` removes and that does not end a line (``\s`` is
#: ``str.isspace``), as a character class.
LINE_SPACE = rf"[^\S{_BREAKS}]"
#: A header's text before its name, and after it: ``[[ ## name ## ]]``, as DSPy 3.4.1's
#: ``field_header_pattern`` spells it (single spaces only; a name is ``\w+``).
HEADER_OPEN = "[[ ## "
HEADER_CLOSE = " ## ]]"
#: A header, its name the group 1. It starts a section only at a line's start, after
#: white space (:func:`split_sections`): a literal search, which the regex engine runs
#: fast, where a pattern starting with a look-behind would be tried at every character.
HEADER = re.compile(re.escape(HEADER_OPEN) + r"(\w+)" + re.escape(HEADER_CLOSE))
#: A character that ends a line, one of white space that does not, and a run of those
#: (read backwards from a header's start: :func:`split_sections`).
_BREAK_CHAR = re.compile(f"[{_BREAKS}]")
_SPACE_CHAR = re.compile(LINE_SPACE)
_SPACE_RUN = re.compile(LINE_SPACE + "*")


def _type_note(t: FieldType) -> str:
    """What the prompt says of an output's type, as DSPy 3.4.1's ``translate_field_type``
    says it: nothing for str, a bool's ``True or False``, a single int or float value, a
    Literal's values, else the type's JSON schema (:func:`dspy_schema`)."""
    if t.kind == STR:
        return ""
    if t.kind == BOOL:
        return "must be True or False"
    if t.kind in (INT, FLOAT):
        return f"must be a single {t.kind} value"
    if t.kind == LITERAL:
        return "must exactly match (no extra characters) one of: " + "; ".join(str(v) for v in t.values)
    return "must adhere to the JSON schema: " + json.dumps(dspy_schema(t), ensure_ascii=False)


def dspy_schema(t: FieldType) -> Any:
    """The JSON schema DSPy 3.4.1 writes of a type (``_get_json_schema``): pydantic's, each
    object's ``type`` first and its other keys in sorted order (a model's properties and
    ``$defs`` too)."""

    def ordered(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ordered(value[k]) for k in sorted(value, key=lambda k: (k != "type", k))}
        if isinstance(value, list):
            return [ordered(v) for v in value]
        return value

    return ordered(t.json_schema())


#: DSPy's names of the types that are classes (``get_annotation_name``: the class's name).
_CLASS_NAMES = {DATE: "date", DATETIME: "datetime", HISTORY: "History", IMAGE: "Image", FILE: "File", AUDIO: "Audio"}


def _dspy_literal_text(v: Any) -> str:
    """A Literal's value as DSPy 3.4.1 writes it in a type's name
    (``_quoted_string_for_literal_type_annotation``): a string in single quotes, or double
    ones when it holds a single quote and no double one, a single quote escaped when it
    holds both, nothing else escaped; any other value ``str()``: ``True``, ``None``, ``1.5``."""
    if not isinstance(v, str):
        return str(v)
    if "'" in v and '"' not in v:
        return f'"{v}"'
    return "'" + (v.replace("'", "\\'") if '"' in v else v) + "'"


def dspy_type_name(t: FieldType) -> str:
    """A type's name as DSPy 3.4.1 writes it in a prompt (``get_annotation_name`` of the
    Python type the dspy engine gives DSPy): ``Union[int, NoneType]`` for ``Optional[int]``,
    ``tuple[int, Ellipsis]`` for ``tuple[int, ...]``, ``date`` for ``datetime.date``,
    ``Image`` for ``dspy.Image``, a model's name for a model."""
    kind = t.kind
    if kind in _CLASS_NAMES:
        return _CLASS_NAMES[kind]
    if kind == MODEL:
        return t.model.name
    if kind == LIST:
        return f"list[{dspy_type_name(t.elem)}]"
    if kind == DICT:
        return f"dict[{dspy_type_name(t.key) if t.key is not None else STR}, {dspy_type_name(t.elem)}]"
    if kind == TUPLE:
        if t.variadic:
            return f"tuple[{dspy_type_name(t.elem)}, Ellipsis]"
        return "tuple[" + ", ".join(dspy_type_name(m) for m in t.members) + "]"
    if kind == LITERAL:
        return "Literal[" + ", ".join(_dspy_literal_text(v) for v in t.values) + "]"
    if kind == UNION:
        return "Union[" + ", ".join(dspy_type_name(m) for m in t.members) + "]"
    if kind == OPTIONAL:
        members = t.elem.members if t.elem.kind == UNION else (t.elem,)
        return "Union[" + ", ".join(dspy_type_name(m) for m in members) + ", NoneType]"
    return kind  # str, int, float, bool, Any


def describe_fields(fields: Iterable[Field], reasoning: bool = False) -> list[str]:
    """The numbered field lines of a system message, as DSPy 3.4.1's
    ``get_field_description_string`` writes them: the name, the type's name
    (:func:`dspy_type_name`), a colon, then the description (for a chain of thought's
    first field, the reasoning, none: DSPy's is its ``${reasoning}`` placeholder), the
    list's text stripped; under a field's line, its constraints' (DSPy's "Constraints:"
    line, :func:`~dspgo_worker.constraints.constraints_line`)."""
    lines = []
    for i, f in enumerate(fields, 1):
        name = STR if reasoning and i == 1 else dspy_type_name(f.type)
        description = "" if reasoning and i == 1 else f.description
        lines.append(f"{i}. `{f.name}` ({name}): {description}")
        if f.constraints:
            lines.append(constraints_line(f.constraints))
    # DSPy strips the list's text: the white space that ends its last line goes.
    return "\n".join(lines).strip().split("\n") if lines else []


#: What DSPy's ChatAdapter (3.4.1, ``Adapter.format_demos``) writes first in the user message
#: of a demo that lacks a field or holds a null, and for a missing output field of one.
INCOMPLETE_DEMO_PREFIX = "This is an example of the task, though some input or output fields are not supplied."
MISSING_IN_INCOMPLETE_DEMO = "Not supplied for this particular example. "
#: ... and for a missing output field of a complete demo (never written: a complete demo has them all).
MISSING_IN_COMPLETE_DEMO = "Not supplied for this conversation history message. "


def format_demo_value(value: Any) -> str:
    """A demo's value as DSPy's ``format_field_value`` writes it: a list or dict as JSON
    (``json.dumps`` with its default separators; int keys as strings; a model's value, its
    fields in the model's order, as DSPy writes a model's ``model_dump``), anything else with
    ``str`` (``True``, ``None``, ``1.0``). (DSPy writes a list held by a ``str`` field as a
    numbered list; a demo's ``str`` field never holds one.)"""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def demo_messages(compiled: CompiledSpec, fmt: str = CHAT) -> list[dict[str, Any]]:
    """The spec's demos as DSPy's ChatAdapter (3.4.1; with ``fmt`` :data:`JSON`, its
    JSONAdapter, whose assistant messages are JSON objects) formats them for the signature the
    engine prompts with (the inputs; ``reasoning`` then the outputs for chain_of_thought,
    the outputs otherwise): a user message with the demo's inputs and an assistant message
    with its outputs, for each demo. As ``Adapter.format_demos`` does, the demos that are
    not complete (a chain_of_thought demo without reasoning, a null value, a field left
    out) come first, in order (those that lack every input or every output left out, as
    DSPy leaves them out; reasoning counts as an output), each user message starting with
    :data:`INCOMPLETE_DEMO_PREFIX` and a missing
    output written :data:`MISSING_IN_INCOMPLETE_DEMO`; then the complete ones, in order.
    The contents are ``format_user_message_content`` and
    ``format_assistant_message_content``'s. Made once per compiled spec and format."""
    key = "demo_messages" if fmt == CHAT else f"demo_messages_{fmt}"
    made: list[dict[str, Any]] | None = compiled.extras.get(key)
    if made is not None:
        return made
    fields = (*compiled.inputs, *compiled.outputs)
    complete, incomplete = [], []
    for demo in compiled.demos:
        values = {**demo["inputs"], **demo["outputs"]}
        if "reasoning" in demo:
            values[REASONING_FIELD] = demo["reasoning"]
        if all(values.get(f.name) is not None for f in fields):
            complete.append(values)
        elif demo["inputs"] and (demo["outputs"] or "reasoning" in demo):  # else DSPy leaves it out
            incomplete.append(values)
    made = []
    for group, prefix, missing in (
        (incomplete, INCOMPLETE_DEMO_PREFIX, MISSING_IN_INCOMPLETE_DEMO),
        (complete, "", MISSING_IN_COMPLETE_DEMO),
    ):
        for values in group:
            made.append({"role": "user", "content": user_content(compiled.inputs, values, prefix, media=Media())})
            made.append({"role": "assistant", "content": assistant_content(compiled.outputs, values, missing, fmt)})
    compiled.extras[key] = made
    return made


def build_messages(compiled: CompiledSpec, inputs: dict[str, Any], fmt: str = CHAT) -> list[dict[str, Any]]:
    """The chat messages for one run: a system message describing the fields and the
    ``[[ ## field ## ]]`` structure, the demos (:func:`demo_messages`), and a user message
    holding the inputs, then the closing instruction. With ``fmt`` :data:`JSON` (default
    :data:`CHAT`), the messages DSPy 3.4.1's JSONAdapter writes instead: the same but for
    the structure the system message shows the outputs in (a JSON object), the closing
    instruction and the assistant turns (JSON objects)."""
    system, closing = prompt_parts(compiled, fmt)
    history = next((f for f in compiled.inputs if f.type.kind == HISTORY), None)
    fields = [f for f in compiled.inputs if f is not history]
    user = user_content(fields, inputs, reminder=closing, media=Media())
    turns = conversation_messages(compiled, history, inputs[history.name]["messages"], closing, fmt) if history is not None else []
    return [{"role": "system", "content": system}, *demo_messages(compiled, fmt), *turns, {"role": "user", "content": user}]


#: The name LiteLLM (1.x, which DSPy 3.4.1 sends through) gives a file sent without one;
#: OpenAI's API wants a name with a file's data.
DEFAULT_FILENAME = "my_file.pdf"

#: Stands for an image or a file in a user message's text until the text is cut into
#: content parts. Random, so that no input's text can place one (DSPy's own markers in an
#: input's text stay text); letters and digits only, so that JSON writes it as it is.
MEDIA_MARK = "dspgomedia" + os.urandom(16).hex()


class Media:
    """The images and files of one user message, in the order its text holds them.
    :meth:`mark` puts :data:`MEDIA_MARK` in a value where it holds one; :meth:`content`
    cuts the text there into content parts, as DSPy 3.4.1 cuts a user message at its
    custom-type markers (``_expand_legacy_custom_type_markers_in_chat_message``): a
    ``text`` part for each non-empty piece between them, and an ``image_url`` part
    (``{"url"}``) for each image, a ``file`` part (``{"file_data", "filename"}``) for each
    file, an ``input_audio`` part (``{"data", "format"}``) for each sound, as DSPy's
    ``format`` of each writes them and LiteLLM sends them (a file without a name named
    :data:`DEFAULT_FILENAME`)."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[dict[str, Any]] = []

    def mark(self, f: Field, value: Any) -> Any:
        if not f.type.media:
            return value
        return map_media(f.type, value, self._add)

    def _add(self, kind: str, value: dict[str, Any]) -> str:
        if kind == FILE:
            self.parts.append({"type": "file", "file": {"filename": DEFAULT_FILENAME, **value}})
        elif kind == AUDIO:
            self.parts.append({"type": "input_audio", "input_audio": {"data": value["data"], "format": value["audio_format"]}})
        else:
            self.parts.append({"type": "image_url", "image_url": {"url": value["url"]}})
        return MEDIA_MARK

    def content(self, text: str) -> str | list[dict[str, Any]]:
        if not self.parts:
            return text
        pieces = text.split(MEDIA_MARK)
        parts: list[dict[str, Any]] = []
        for i, piece in enumerate(pieces):
            if piece:
                parts.append({"type": "text", "text": piece})
            if i < len(self.parts):
                parts.append(self.parts[i])
        return parts


def conversation_messages(
    compiled: CompiledSpec, history: Field, messages: list[dict[str, Any]], closing: str, fmt: str = CHAT
) -> list[dict[str, Any]]:
    """A ``dspy.History`` input's messages as earlier turns, as DSPy 3.4.1's ChatAdapter
    writes them (``format_conversation_history``, without tool calls): for each message,
    a user turn with the values it holds of the other inputs (and the closing
    instruction when it holds one of them), none when it holds none, then an assistant
    turn with every output (``None`` for one it lacks) ending ``[[ ## completed ## ]]``
    (with ``fmt`` :data:`JSON`, a JSON object: :func:`assistant_content`).
    Values are written as DSPy's ``format_field_value`` writes them."""
    inputs = [f for f in compiled.inputs if f is not history]
    turns = []
    for message in messages:
        reminder = closing if any(f.name in message for f in inputs) else ""
        user = user_content(inputs, message, reminder=reminder)
        if user:
            turns.append({"role": "user", "content": user})
        turns.append({"role": "assistant", "content": assistant_content(compiled.outputs, message, fmt=fmt)})
    return turns


def user_content(
    inputs: Iterable[Field], values: dict[str, Any], prefix: str = "", reminder: str = "", media: Media | None = None
) -> str | list[dict[str, Any]]:
    """DSPy's ChatAdapter ``format_user_message_content``: ``prefix``, then a section for
    each of ``inputs`` that ``values`` holds, then ``reminder`` (the reply format's, for
    a turn that asks for one), separated by blank lines: a run's user message, a demo's,
    a conversation's earlier turn. With ``media`` (for values of the inputs' types: a
    run's or a demo's, not a conversation's messages, whose values are any), content
    parts when the values hold an image or a file."""
    mark = media.mark if media is not None else (lambda f, v: v)
    parts = [prefix, *(f"[[ ## {f.name} ## ]]\n{format_field_value(f, mark(f, values[f.name]))}" for f in inputs if f.name in values)]
    if reminder:
        parts.append(reminder)
    parts.append("")
    text = "\n\n".join(parts).strip()
    return media.content(text) if media is not None else text


def assistant_content(outputs: Iterable[Field], values: dict[str, Any], missing: Any = None, fmt: str = CHAT) -> str:
    """DSPy's ChatAdapter ``format_assistant_message_content``: a section for each of
    ``outputs``, ``missing`` (default None) for one ``values`` lacks, then
    ``[[ ## completed ## ]]``. With ``fmt`` :data:`JSON`, JSONAdapter's: a JSON object of
    the same values, indented by 2 (``json.dumps(..., indent=2, ensure_ascii=False)``;
    the values are JSON already, as DSPy's ``serialize_for_json`` makes them)."""
    if fmt == JSON:
        return json.dumps({f.name: values.get(f.name, missing) for f in outputs}, indent=2, ensure_ascii=False)
    body = "\n\n".join(f"[[ ## {f.name} ## ]]\n{format_field_value(f, values.get(f.name, missing))}" for f in outputs)
    return body.strip() + "\n\n[[ ## completed ## ]]\n"


def format_field_value(f: Field, value: Any) -> str:
    """A value of a demo, of a conversation's message or of a ReAct trajectory's entry as
    DSPy's ``format_field_value`` writes it: a list held by a ``str`` field as a numbered
    list of «quoted» items (:func:`_blob`; ``N/A`` when empty; a demo's converted values
    never hold one), any other list or dict as JSON, anything else with ``str``."""
    if isinstance(value, list) and f.type.kind == STR:
        if not value:
            return "N/A"
        if len(value) == 1:
            return _blob(f, value[0])
        return "\n".join(f"[{i}] {_blob(f, v)}" for i, v in enumerate(value, 1))
    return format_demo_value(value)


def _blob(f: Field, item: Any) -> str:
    """DSPy's ``_format_blob``: one item of a numbered list. A string is «quoted» (in
    «««…»»» with its lines indented when it holds a line break or a guillemet); a list or
    a dict, which DSPy tests for those as elements or keys, is «quoted» as Python writes
    it when it holds none. On anything else DSPy 3.4.1 fails (``TypeError``,
    ``AttributeError``), and so does this: ``invalid_argument`` naming the field."""
    if isinstance(item, str):
        if "\n" not in item and "«" not in item and "»" not in item:
            return f"«{item}»"
        return "«««\n    " + item.replace("\n", "\n    ") + "\n»»»"
    if isinstance(item, (list, dict)) and "\n" not in item and "«" not in item and "»" not in item:
        return f"«{item}»"
    raise WorkerError(
        "invalid_argument",
        f"{quote(f.name)}: DSPy 3.4.1 cannot write a list holding {type(item).__name__} {_short(item)} "
        "as a str field's value (its numbered list takes strings, lists and dicts)",
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"


def default_instructions(compiled: CompiledSpec) -> str:
    """The instructions DSPy 3.4.1 gives a signature that has none
    (``_default_instructions``): "Given the fields `a`, `b`, produce the fields `c`." of the
    spec's inputs and declared outputs."""
    return f"Given the fields {', '.join(f'`{f.name}`' for f in compiled.inputs)}, produce the fields " \
        f"{', '.join(f'`{f.name}`' for f in compiled.declared_outputs)}."


def prompt_parts(compiled: CompiledSpec, fmt: str = CHAT) -> tuple[str, str]:
    """What every prompt of a spec shares: the system message and the user message's
    closing instruction, of DSPy 3.4.1's ChatAdapter (``fmt`` :data:`CHAT`, the default)
    or of its JSONAdapter (:data:`JSON`: the outputs' structure a JSON object of their
    placeholders, ``json.dumps(..., indent=2)``, and a closing instruction asking for a JSON
    object). Made once per compiled spec and format."""
    key = "prompt_parts" if fmt == CHAT else f"prompt_parts_{fmt}"
    made: tuple[str, str] | None = compiled.extras.get(key)
    if made is not None:
        return made
    outputs = compiled.outputs
    # DSPy joins the parts with blank lines, so a signature of no inputs leaves an empty
    # part: a blank line under "Your input fields are:" and two more before the outputs.
    system = [
        "Your input fields are:",
        *(describe_fields(compiled.inputs) or [""]),
        "Your output fields are:",
        *describe_fields(outputs, reasoning=compiled.kind == KIND_CHAIN_OF_THOUGHT),
    ]
    system.append("All interactions will be structured in the following way, with the appropriate values filled in.")
    if fmt == JSON:
        system += ["", "Inputs will have the following structure:", ""]
    if not compiled.inputs:
        system += ["", ""] if fmt == CHAT else [""]
    for i, f in enumerate(compiled.inputs):
        system += ["", f"[[ ## {f.name} ## ]]", f"{{{f.name}}}"] if fmt == CHAT or i else [f"[[ ## {f.name} ## ]]", f"{{{f.name}}}"]
    placeholders = {}
    for f in outputs:
        note = _type_note(f.type)
        placeholders[f.name] = f"{{{f.name}}}" + (f"        # note: the value you produce {note}" if note else "")
        if fmt == CHAT:
            system += ["", f"[[ ## {f.name} ## ]]", placeholders[f.name]]
    if fmt == JSON:
        system += ["", "Outputs will be a JSON object with the following fields.", "", json.dumps(placeholders, indent=2, ensure_ascii=False)]
    else:
        system += ["", "[[ ## completed ## ]]"]
    objective = compiled.instructions or default_instructions(compiled)
    # As DSPy reads a signature's instructions (inspect.cleandoc) and writes them
    # (format_task_description: each of their lines on a line of its own, indented).
    objective = inspect.cleandoc(objective)
    system.append("In adhering to this structure, your objective is: " + ("\n" + " " * 8).join(["", *objective.splitlines()]))
    order = []
    for f in outputs:
        part = f"`[[ ## {f.name} ## ]]`" if fmt == CHAT else f"`{f.name}`"
        if f.type.kind != STR:
            part += f" (must be formatted as a valid Python {dspy_type_name(f.type)})"
        order.append(part)
    if fmt == JSON:
        closing = "Respond with a JSON object in the following order of fields: " + ", then ".join(order) + "."
    else:
        closing = (
            "Respond with the corresponding output fields, starting with the field "
            + ", then ".join(order)
            + ", and then ending with the marker for `[[ ## completed ## ]]`."
        )
    made = compiled.extras[key] = ("\n".join(system), closing)
    return made


def split_sections(reply: str) -> dict[str, str]:
    """The ``[[ ## name ## ]]`` sections of a reply, the first of each name, as DSPy
    3.4.1's ``ChatAdapter.parse`` finds them. The reply is cut into lines as
    ``str.splitlines`` cuts it; a line starts a section when, stripped, it starts with a
    header spelt exactly ``[[ ## name ## ]]``; the rest of that line, stripped, is the
    section's first line when not empty, and every other line belongs to the section
    above it (none before the first header). A section's text is its lines joined with
    ``\\n``, stripped. ``completed`` is a name like any other. As DSPy takes the rest of a
    header's line from the unstripped line at the header's length, an indented header's
    section starts with the header's last characters (``"  [[ ## a ## ]] x"`` gives
    ``"]] x"``)."""
    sections: dict[str, str] = {}
    last = None  # (line start, header start, header end, name) of the section being read, when it is its name's first
    backwards = None  # the reply reversed, made when a header follows white space
    for m in HEADER.finditer(reply):
        start = m.start()
        if start and _SPACE_CHAR.match(reply, start - 1) is not None:
            # Walk back over the white space before the header: in the reversed reply, a
            # forward match. Each walk reads white space between two headers, so all
            # the walks read the reply at most once.
            if backwards is None:
                backwards = reply[::-1]
            back = len(reply) - start  # where the header's start is in the reversed reply
            run = _SPACE_RUN.match(backwards, back)
            if run is not None:  # always (a run may be empty)
                start -= run.end() - back
        if start and _BREAK_CHAR.match(reply, start - 1) is None:
            continue  # inside a line: text of the section above
        if last is not None:
            _add_section(sections, reply, *last, start)
        last = (start, m.start(), m.end(), m.group(1)) if m.group(1) not in sections else None
    if last is not None:
        _add_section(sections, reply, *last, len(reply))
    return sections


def _add_section(sections: dict[str, str], reply: str, line: int, start: int, end: int, name: str, stop: int) -> None:
    """Add the section of the header ``reply[start:end]`` named ``name``, on the line that
    starts at ``line``; the section ends at ``stop``."""
    eol = LINE_BREAK.search(reply, end, stop)
    # DSPy's line[match.end():], the match being in the stripped line: from the line's
    # start plus the header's length.
    first = reply[line + end - start : eol.start() if eol is not None else stop].strip()
    lines = reply[eol.end() : stop].splitlines() if eol is not None else []
    sections[name] = "\n".join([first, *lines] if first else lines).strip()


def parse_sections(compiled: CompiledSpec, reply: str) -> dict[str, Any]:
    """The outputs in a reply, each converted to its type, as DSPy 3.4.1's
    ``ChatAdapter.parse`` reads them: the sections (:func:`split_sections`), an output left
    out taking its default (or null when Optional); :class:`OutputError` naming the field
    when one is missing or does not convert, and for an empty reply: where DSPy's
    ChatAdapter raises ``AdapterParseError`` and asks again through JSONAdapter."""
    if not reply:
        raise OutputError("the LM's reply is empty")
    return convert_outputs(compiled, split_sections(reply), "in the LM's reply", _no_section, text=True)


def _no_section(name: str) -> str:
    return f" (no [[ ## {name} ## ]] section)"


def parse_reply(compiled: CompiledSpec, reply: str) -> dict[str, Any]:
    """The outputs in a reply that no second request can follow (a streamed one, after
    which DSPy does not fall back either): :func:`parse_sections`, but when an output
    would be missing and the reply has no header line, the reply read as a JSON object
    holding the outputs, by :func:`parse_json_reply`."""
    try:
        return parse_sections(compiled, reply)
    except OutputError:
        if not reply or split_sections(reply) or find_json_object(reply) is None:
            raise
    return parse_json_reply(compiled, reply)


def parse_json_reply(compiled: CompiledSpec, reply: str) -> dict[str, Any]:
    """The outputs in a reply to DSPy 3.4.1's JSONAdapter prompt, as ``JSONAdapter.parse``
    reads them: the reply's JSON object (:func:`find_json_object`), its keys that are no
    output ignored, each value read as DSPy's ``parse_value`` reads it, an output left out
    taking its default (or null when Optional); :class:`OutputError` naming the field
    when one is missing or does not convert, or when the reply holds no JSON object, and
    for an empty reply."""
    if not reply:
        raise OutputError("the LM's reply is empty")
    fields = find_json_object(reply)
    if fields is None:
        first = compiled.outputs[0].name if compiled.outputs else ""
        raise OutputError(f"output {quote(first)} is missing in the LM's JSON reply (it holds no JSON object)")
    return convert_outputs(compiled, fields, "in the LM's JSON reply", text=True)


#: Reads one JSON value from a position of a text, the text after it left alone.
_JSON_DECODER = json.JSONDecoder()
#: The ``{`` a reply's JSON object is looked for at, at most (:func:`find_json_object`): a
#: failed try costs up to the reply's length (the error's line is counted), so trying
#: every one would take time quadratic in the reply's length.
MAX_JSON_STARTS = 32


def find_json_object(text: str) -> dict[str, Any] | None:
    """The JSON object a reply holds, as DSPy 3.4.1's JSONAdapter finds it for the common
    cases (``json_repair.loads``, then the first balanced ``{…}``): the whole reply
    (white space around it ignored) when it is one, else the first object that starts at
    one of its first :data:`MAX_JSON_STARTS` (32) ``{`` and is valid JSON, the text before
    and after it ignored (a Markdown code fence, a sentence around it, a top-level array
    holding it); None when there is none. json_repair's repairs of broken JSON (missing
    quotes or brackets, single quotes, trailing commas, comments) are not made: such a
    reply holds no object here."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = None
    if isinstance(value, dict):
        return value
    at = text.find("{")
    for _ in range(MAX_JSON_STARTS):
        if at == -1:
            break
        try:
            value = _JSON_DECODER.raw_decode(text, at)[0]
        except (ValueError, RecursionError):
            value = None
        if isinstance(value, dict):
            return value
        at = text.find("{", at + 1)
    return None


def convert_outputs(compiled: CompiledSpec, raw: dict[str, Any], where: str, hint: Callable[[str], str] = lambda name: "", text: bool = False) -> dict[str, Any]:
    """The raw outputs as values of their declared types, by
    :func:`~dspgo_worker.values.parse_output`: with ``text``, what the LM wrote (a
    section's text, a JSON reply's value), read as DSPy's ``parse_value`` reads it (a
    JSON reply's null too: ``"None"`` for a ``str`` output, as DSPy makes it); else a
    DSPy prediction's values, checked by pydantic's lax mode and otherwise unchanged. An
    output that is absent takes its default (a copy) when it has one, else is null when it
    is Optional, as DSPy 3.4.1's ``apply_output_field_defaults`` fills it; any other absent
    output (or null prediction value where the type allows none) is an
    :class:`OutputError`."""
    out: dict[str, Any] = {}
    for f in compiled.outputs:
        if f.name not in raw and f.default is not None:
            out[f.name] = copy_value(f.default)
            continue
        if f.name not in raw and f.type.kind == OPTIONAL:
            out[f.name] = None
            continue
        if f.name not in raw or (not text and raw[f.name] is None and not f.type.nullable):
            raise OutputError(f"output {quote(f.name)} is missing {where}{hint(f.name)}")
        try:
            out[f.name] = parse_output(f.type, raw[f.name], f"output {f.name}", text=text)
        except ValueError as exc:
            raise OutputError(str(exc)) from None
    return out


def unfence(text: str) -> str:
    s = text.strip()
    if s.startswith("```"):
        s = s.split("\n", 1)[1] if "\n" in s else ""
        if s.rstrip().endswith("```"):
            s = s.rstrip()[:-3]
    return s

