"""``dspy.Image``, ``dspy.File`` and ``dspy.Audio`` values, content the model takes beside
the prompt's text (Go's ``internal/program`` media.go, image.go, file.go and audio.go): the
URLs an image may have (:func:`image_url_problem`), DSPy's text of one content part
(:func:`media_part` reads it), :func:`map_media`, which replaces each image, file and sound
(or date and datetime) in a converted value by what the caller makes of it (a
``dspy.Image``, a placeholder in a prompt's text),
and the checks that keep images by URL (:func:`refuse_image_urls`) and DSPy's custom-type
markers (:func:`json_strings`, :func:`defuse_custom_types`) out of prompts where they may
not be.
"""

from __future__ import annotations

import ipaddress
import json

from .errors import WorkerError
from .fieldtypes import AUDIO, DICT, FILE, IMAGE, LIST, OPTIONAL, TUPLE, FieldType

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any, Callable

    from .lmconfig import LMConfig
    from .signature import Field
    from .spec import CompiledSpec

#: The markers around a DSPy custom type's content parts in text, as DSPy (3.4.1,
#: ``dspy.Type``) writes an image into a prompt and into a saved program's demos.
CUSTOM_TYPE_START = "<<CUSTOM-TYPE-START-IDENTIFIER>>"
CUSTOM_TYPE_END = "<<CUSTOM-TYPE-END-IDENTIFIER>>"

#: What a ``dspy.Image`` takes, for errors.
IMAGE_WANT = f'expected {IMAGE}, a data: URI or an http, https or gs URL, or an object {{"url": one}}'
#: What a ``dspy.File`` takes, for errors.
FILE_WANT = f'expected {FILE}, a data: URI or an object {{"file_data": a data: URI, "filename": its name}}'
#: What a ``dspy.Audio`` takes, for errors.
AUDIO_WANT = f'expected {AUDIO}, a data:audio/… URI or an object {{"data": base64, "audio_format": "wav"}}'


def media_note(media: str) -> str:
    """What a media type is, for errors (Go's ``MediaNote``)."""
    if media == FILE:
        return "a file for the model to read"
    if media == AUDIO:
        return "a sound for the model to hear"
    return "an image for the model to see"


def is_plain(s: str) -> bool:
    """Whether ``s`` holds no space, control character, ``<`` or ``>`` (Go's ``isPlain``):
    none of them belongs in a URL or a data: URI, and ``<`` and ``>`` would let a value
    hold DSPy's custom-type markers."""
    return not any(c <= " " or c in "\x7f<>" for c in s)


def image_url_problem(u: str) -> str:
    """Why ``u`` is not an image's URL, or ``""`` when it is one: a ``data:`` URI, or an
    http, https or gs URL with a host (the scheme in any case), as ``dspy.Image`` takes
    them, with no space, control character, ``<`` or ``>`` (:func:`is_plain`), and a host
    in brackets an IPv6 address, as Python's URL parser wants it. A local file's path is
    refused: a worker never reads one on a caller's word."""
    if not u:
        return "an image's URL is empty"
    if not is_plain(u):
        return "an image's URL may not hold a space, a control character, < or >"
    if u.startswith("data:"):
        return ""
    scheme, sep, rest = u.partition("://")
    if not sep or scheme.lower() not in ("http", "https", "gs"):
        return "an image is a data: URI or an http, https or gs URL (a local file's path is not read: give its data: URI)"
    host = rest
    for i, c in enumerate(rest):
        if c in "/?#":
            host = rest[:i]
            break
    if not host:
        return "an image's URL has no host"
    if "[" in host or "]" in host:
        inner, closed, _ = host.partition("[")[2].partition("]")
        try:
            ipaddress.IPv6Address(inner if closed and "%" not in inner else "")
        except ValueError:
            return "an image's URL has a host in [ ] that is not an IPv6 address"
    if not host.isascii():
        return "an image's URL has a host that is not ASCII (write it in punycode)"
    return ""


def media_part(s: str, part: str, want: str) -> dict[str, Any]:
    """The object of DSPy's text of one content part of type ``part`` (``image_url``,
    ``file``), as ``dspy.Image`` and ``dspy.File`` write it into a prompt and a saved
    program's demos (``<<CUSTOM-TYPE-START-IDENTIFIER>>[{"type": "image_url", "image_url":
    {"url": …}}]<<CUSTOM-TYPE-END-IDENTIFIER>>``); ``ValueError`` (``want`` says what was
    expected) for any other text (Go's ``mediaPart``)."""
    bad = ValueError(f"{want}: a DSPy custom type's text that is not one {part} part")
    if not (s.startswith(CUSTOM_TYPE_START) and s.endswith(CUSTOM_TYPE_END)):
        raise bad
    try:
        parts = json.loads(s[len(CUSTOM_TYPE_START) : len(s) - len(CUSTOM_TYPE_END)])
    except ValueError:
        raise bad from None
    if not (isinstance(parts, list) and len(parts) == 1 and isinstance(parts[0], dict) and parts[0].get("type") == part):
        raise bad
    obj = parts[0].get(part)
    if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
        raise bad
    return obj


def map_media(t: FieldType, v: Any, media: Callable[[str, Any], Any], held: str = "media") -> Any:
    """``v``, a converted value of type ``t``, with each image (``{"url": u}``), file
    (``{"file_data": d, "filename"?: n}``) and sound (``{"data", "audio_format"}``) in it
    replaced by ``media(its kind, it)`` (Go's ``MapMedia``); the lists and dicts that hold
    one are copied, the rest is ``v``'s. ``held="moment"`` maps each date and datetime
    (their text) instead."""
    found = getattr(t, held)
    if v is None or not found:
        return v
    kind = t.kind
    if kind == found:  # the value itself, not a container of it
        return media(kind, v)
    if kind == OPTIONAL:
        return map_media(t.elem, v, media, held)
    if kind == DICT:
        return {k: map_media(t.elem, e, media, held) for k, e in v.items()}
    if kind == TUPLE and not t.variadic:
        return [map_media(m, e, media, held) for m, e in zip(t.members, v)]
    if kind in (LIST, TUPLE):
        return [map_media(t.elem, e, media, held) for e in v]
    return v


def image_urls(fields: Iterable[Field], values: dict[str, Any], label: str) -> list[tuple[str, str]]:
    """The URLs of the images in ``values`` (inputs by name, converted), each with whose it
    is (``label``, then the field's name: ``input photo``, ``demo 2 input photo``)."""
    found: list[tuple[str, str]] = []
    for f in fields:
        if f.name in values:

            def note(kind: str, value: dict[str, Any], at: str = f"{label} {f.name}") -> None:
                if kind == IMAGE:
                    found.append((at, value["url"]))

            map_media(f.type, values[f.name], note)
    return found


def demo_image_urls(compiled: CompiledSpec) -> list[tuple[str, str]]:
    """:func:`image_urls` of the spec's demos (``demo 2 input photo``), found once per
    compiled spec and kept in its ``extras``."""
    found: list[tuple[str, str]] | None = compiled.extras.get("demo_image_urls")
    if found is None:
        found = [u for i, demo in enumerate(compiled.demos) for u in image_urls(compiled.media_inputs, demo["inputs"], f"demo {i} input")]
        compiled.extras["demo_image_urls"] = found
    return found


def refuse_image_urls(config: LMConfig, fields: Iterable[Field], values: dict[str, Any], label: str) -> None:
    """Raise ``failed_precondition`` when ``values`` (inputs by name, converted; ``label``
    says whose: ``input``, ``trainset[2] input``) hold an image given by URL that ``config``
    does not take (:func:`refuse_image_url`)."""
    for at, url in image_urls(fields, values, label):
        refuse_image_url(config, url, at)


def refuse_image_url(config: LMConfig, url: str, label: str) -> None:
    """Raise ``failed_precondition`` naming ``label`` when ``url`` is not a data: URI and
    ``config`` takes data: URIs only (``image_urls`` false, a provider other than the
    dummy, which fetches nothing). The model's server would fetch the URL, wherever it
    points."""
    if config.image_urls or config.provider == "dummy" or url.startswith("data:"):
        return
    raise WorkerError(
        "failed_precondition",
        f"{label}: an image given by URL would be fetched by the model's server from wherever it points; "
        "this LM takes data: URIs only (lm.image_urls lets it take URLs)",
    )


def images_in_dspy_state(state: Any, convert: Callable[[FieldType, Any, str], Any]) -> list[str]:
    """The URLs of the images in a module's saved state, where DSPy saves a demo's image
    or file as its text (:func:`media_part`). Each such text is converted by ``convert``
    (:func:`~dspgo_worker.values.convert`, which raises ``ValueError`` for an image whose
    URL or a file whose data it refuses, and for any other text holding DSPy's custom-type
    marker, of which DSPy would make content parts for the model)."""
    urls: list[str] = []
    for s in json_strings(state):
        if CUSTOM_TYPE_START in s:
            if not s.startswith(CUSTOM_TYPE_START) or s.count(CUSTOM_TYPE_START) > 1:
                raise ValueError(f"a text holding {CUSTOM_TYPE_START} that is not DSPy's text of one image, file or sound")
            part = _part_type(s)
            if part == "file":
                convert(FieldType(FILE), s, "a demo's file")
            elif part == "input_audio":
                convert(FieldType(AUDIO), s, "a demo's sound")
            else:
                urls.append(convert(FieldType(IMAGE), s, "a demo's image")["url"])
    return urls


def _part_type(s: str) -> str:
    """The type of the first content part of DSPy's text of some, or ``""``."""
    try:
        parts = json.loads(s[len(CUSTOM_TYPE_START) : len(s) - len(CUSTOM_TYPE_END)])
        return str(parts[0]["type"])
    except (ValueError, LookupError, TypeError):
        return ""


def json_strings(value: Any) -> Iterator[str]:
    """Every string of ``value`` (any JSON value), an object's keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from json_strings(k)
            yield from json_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from json_strings(v)


def defuse_custom_types(value: Any) -> Any:
    """``value`` (any JSON value) with DSPy's custom-type start marker in its strings
    written in lower case, which DSPy does not read as one: for text from outside the
    program, such as a tool's observation, which DSPy puts in a user message, where it
    would otherwise make content parts of it (an image by URL past ``lm.image_urls``)."""
    if isinstance(value, str):
        return value.replace(CUSTOM_TYPE_START, CUSTOM_TYPE_START.lower()) if CUSTOM_TYPE_START in value else value
    if isinstance(value, dict):
        return {defuse_custom_types(k): defuse_custom_types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [defuse_custom_types(v) for v in value]
    return value


#: The content parts the dspy engine lets reach the LM, besides text.
_PARTS = ("image_url", "file", "input_audio")


def refuse_parts(messages: Any, image_urls: bool) -> None:
    """Raise unless every content part of ``messages`` (the chat DSPy's adapter made for
    one LM call) is text, an image (given by URL only when ``image_urls``), a file with
    its data (no ``file_id``) or a sound: the last check before a request, whatever text
    (an LM's own output in a ReAct trajectory, a custom module's step) DSPy made content
    parts of. ``failed_precondition`` for an image by URL, ``invalid_argument`` else."""
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else ():
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                continue
            body = part.get(kind) if isinstance(part, dict) and isinstance(kind, str) else None
            if kind not in _PARTS or not isinstance(body, dict):
                raise WorkerError("invalid_argument", f"a message to the LM holds a {kind!r} content part, which dspgo does not send")
            if kind == "image_url" and not image_urls and not str(body.get("url", "")).startswith("data:"):
                raise WorkerError(
                    "failed_precondition",
                    "a message to the LM holds an image given by URL, which the model's server would fetch from wherever it "
                    "points; this LM takes data: URIs only (lm.image_urls lets it take URLs)",
                )
            if kind == "file" and "file_id" in body:
                raise WorkerError(
                    "invalid_argument",
                    "a message to the LM names a file stored with the model's provider (file_id), which the worker's key "
                    "would fetch: dspgo sends files as their data",
                )
