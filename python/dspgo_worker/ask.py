"""One prompt's request and reply on the native engine, as DSPy 3.4.1's adapters make
them (:func:`ask`): the ChatAdapter's request and, when the reply does not parse, the
JSONAdapter request ChatAdapter falls back to (:func:`ask_json`); or, with ``dspy_adapter``
json, the JSONAdapter's request alone. Used for a program's prompt and for each of a
ReAct's prompts (its steps and its extraction), as each is a DSPy predictor with the
configured adapter."""

from __future__ import annotations

import logging

from .chat_format import CHAT, JSON, OutputError, build_messages, parse_json_reply, parse_sections
from .response_format import json_response_format

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from collections.abc import AsyncGenerator
    from typing import Any

    from .context import Context
    from .openai_provider import OpenAIProvider
    from .spec import CompiledSpec
    from .usage import Usage

log = logging.getLogger("dspgo_worker.engines")


async def ask(
    provider: OpenAIProvider, compiled: CompiledSpec, inputs: dict[str, Any], ctx: Context, usage: Usage | None = None,
    fmt: str = CHAT,
) -> dict[str, Any]:
    """The outputs of one ChatAdapter request for ``compiled`` on ``inputs`` (not
    streamed), read as ``ChatAdapter.parse`` reads them (:func:`parse_sections`), or, when
    they do not parse, those of :func:`ask_json`; with ``fmt`` :data:`JSON` (the
    JSONAdapter configured), those of :func:`ask_json` alone, as JSONAdapter falls back to
    nothing. The prompt is handed over, not kept here: the provider drops it once it has
    the body."""
    if fmt == JSON:
        return await ask_json(provider, compiled, inputs, ctx, usage)
    reply = await provider.complete(build_messages(compiled, inputs), ctx, usage=usage)
    try:
        return parse_sections(compiled, reply)
    except OutputError as exc:
        return await ask_json(provider, compiled, inputs, ctx, usage, exc)


async def ask_json(
    provider: OpenAIProvider, compiled: CompiledSpec, inputs: dict[str, Any], ctx: Context, usage: Usage | None,
    failed: OutputError | None = None,
) -> dict[str, Any]:
    """The request DSPy 3.4.1's JSONAdapter sends (the messages of :func:`build_messages`
    with ``fmt`` JSON, and the ``response_format`` DSPy's model catalog calls for,
    :func:`~dspgo_worker.response_format.json_response_format`), its reply read as
    JSONAdapter reads it (:func:`parse_json_reply`): the configured adapter's, or
    ChatAdapter's fallback for a reply that did not parse (``failed``, where DSPy's parse
    raises ``AdapterParseError``; None, the default, for none). The call is one of the
    run's: its usage is added to ``usage``, it answers from the reply cache when
    configured, and it ends with the request's deadline or cancel. When its reply does
    not parse, the :class:`OutputError` names the field (in both replies after a
    ``failed`` one). A streamed reply is never followed by this fallback: DSPy does not
    fall back after stream output (:func:`~dspgo_worker.chunks.stream_outputs`)."""
    if failed is not None:
        log.info(
            "the LM's reply does not parse; asking again in JSON, as DSPy's ChatAdapter falls back to JSONAdapter",
            extra={"request_id": ctx.id, "error": failed.message},
        )
    messages, response_format = _request(provider, compiled, inputs, JSON)
    reply = await provider.complete(messages, ctx, usage=usage, response_format=response_format)
    try:
        return parse_json_reply(compiled, reply)
    except OutputError as exc:
        if failed is None:
            raise
        raise OutputError(f"{failed.message}; asked again for JSON, as DSPy's JSONAdapter asks: {exc.message}") from None


def ask_stream(
    provider: OpenAIProvider, compiled: CompiledSpec, inputs: dict[str, Any], ctx: Context, usage: Usage | None = None,
    fmt: str = CHAT,
) -> AsyncGenerator[str, None]:
    """The text pieces of one streamed request for ``compiled`` on ``inputs``: the
    ChatAdapter's, or with ``fmt`` :data:`JSON` the JSONAdapter's (its messages and
    ``response_format``), which :func:`~dspgo_worker.chunks.stream_outputs` reads with the
    same ``fmt``. No second request follows a streamed one. The prompt is handed over, not
    kept here: the provider drops it once it has the body."""
    messages, response_format = _request(provider, compiled, inputs, fmt)
    return provider.stream(messages, ctx, usage=usage, response_format=response_format)


def _request(
    provider: OpenAIProvider, compiled: CompiledSpec, inputs: dict[str, Any], fmt: str,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The messages and ``response_format`` of a request in the adapter format ``fmt``:
    ChatAdapter's messages and none, or JSONAdapter's messages and the ``response_format``
    DSPy's model catalog calls for (:func:`~dspgo_worker.response_format.json_response_format`)."""
    response_format = json_response_format(compiled, provider.config.model) if fmt == JSON else None
    return build_messages(compiled, inputs, fmt=fmt), response_format
