"""One prompt's request and reply on the native engine, as DSPy 3.4.1's ChatAdapter makes
them (:func:`ask`): its ChatAdapter request and, when the reply does not parse, the
JSONAdapter request ChatAdapter falls back to (:func:`ask_json`). Used for a program's
prompt and for each of a ReAct's prompts (its steps and its extraction), as each is a
DSPy predictor with DSPy's default adapter."""

from __future__ import annotations

import logging

from .chat_format import JSON, OutputError, build_messages, parse_json_reply, parse_sections
from .response_format import json_response_format

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from typing import Any

    from .context import Context
    from .openai_provider import OpenAIProvider
    from .spec import CompiledSpec
    from .usage import Usage

log = logging.getLogger("dspgo_worker.engines")


async def ask(
    provider: OpenAIProvider, compiled: CompiledSpec, inputs: dict[str, Any], ctx: Context, usage: Usage | None = None,
) -> dict[str, Any]:
    """The outputs of one ChatAdapter request for ``compiled`` on ``inputs`` (not
    streamed), read as ``ChatAdapter.parse`` reads them (:func:`parse_sections`), or, when
    they do not parse, those of :func:`ask_json`. The prompt is handed over, not kept
    here: the provider drops it once it has the body."""
    reply = await provider.complete(build_messages(compiled, inputs), ctx, usage=usage)
    try:
        return parse_sections(compiled, reply)
    except OutputError as exc:
        return await ask_json(provider, compiled, inputs, ctx, usage, exc)


async def ask_json(
    provider: OpenAIProvider, compiled: CompiledSpec, inputs: dict[str, Any], ctx: Context, usage: Usage | None,
    failed: OutputError,
) -> dict[str, Any]:
    """DSPy 3.4.1's ChatAdapter's fallback, for a reply that did not parse (``failed``,
    where DSPy's parse raises ``AdapterParseError``): ask the LM again with the request its
    JSONAdapter sends (the same request but for the messages, :func:`build_messages` with
    ``fmt`` JSON, and the ``response_format`` DSPy's model catalog calls for,
    :func:`~dspgo_worker.response_format.json_response_format`) and read that reply as
    JSONAdapter reads it (:func:`parse_json_reply`). The call is one more of the run's:
    its usage is added to ``usage``, it answers from the reply cache when configured, and
    it ends with the request's deadline or cancel. When that reply does not parse either,
    the :class:`OutputError` names the field in both. Not for a streamed reply: DSPy does
    not fall back after stream output (:func:`~dspgo_worker.chunks.stream_outputs`)."""
    log.info(
        "the LM's reply does not parse; asking again in JSON, as DSPy's ChatAdapter falls back to JSONAdapter",
        extra={"request_id": ctx.id, "error": failed.message},
    )
    response_format = json_response_format(compiled, provider.config.model)
    reply = await provider.complete(build_messages(compiled, inputs, fmt=JSON), ctx, usage=usage, response_format=response_format)
    try:
        return parse_json_reply(compiled, reply)
    except OutputError as exc:
        raise OutputError(f"{failed.message}; asked again for JSON, as DSPy's JSONAdapter asks: {exc.message}") from None
