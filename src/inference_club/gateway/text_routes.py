"""``/v1/chat/completions`` and ``/v1/completions``: JSON in, JSON or SSE out."""

from dataclasses import dataclass
from typing import Any

import orjson

from inference_club.gateway.asgi import parse_json_object, read_body
from inference_club.gateway.context import RequestContext
from inference_club.gateway.direct_body import direct_body
from inference_club.gateway.disconnect import start_disconnect_watch
from inference_club.gateway.dispatch import forward
from inference_club.gateway.errors import BadRequest
from inference_club.gateway.exchange import Exchange
from inference_club.gateway.forwarding import OutgoingRequest, Upstream
from inference_club.gateway.relay import relay_buffered, relay_stream, usage_of_json
from inference_club.gateway.routing import choose, split_model
from inference_club.gateway.sse import UsageTap

_JSON_HEADERS = (("content-type", "application/json"), ("accept", "application/json"))
_SSE_HEADERS = (("content-type", "application/json"), ("accept", "text/event-stream"))

# Each text endpoint: the backend's path (relative to its /v1) and the field it requires.
TEXT_ENDPOINTS = {
    "/v1/chat/completions": ("/chat/completions", "messages"),
    "/v1/completions": ("/completions", "prompt"),
}


async def chat_completions(ctx: RequestContext) -> None:
    """Proxy a chat completion to an llm provider."""
    path, required = TEXT_ENDPOINTS["/v1/chat/completions"]
    await _text_completion(ctx, path, required=required)


async def completions(ctx: RequestContext) -> None:
    """Proxy a legacy text completion to an llm provider."""
    path, required = TEXT_ENDPOINTS["/v1/completions"]
    await _text_completion(ctx, path, required=required)


async def _text_completion(ctx: RequestContext, path: str, *, required: str) -> None:
    body = await read_body(ctx.scope, ctx.receive, ctx.services.settings.max_request_bytes)
    start_disconnect_watch(ctx)
    request = parse_text_request(body, required, ctx.exchange)
    candidates = choose(ctx, request.model, "llm")
    outgoing, strip_usage = text_outgoing(request, path, body)
    upstream = await forward(ctx, candidates, outgoing)
    await relay_text(ctx, upstream, streaming=request.streaming, strip_usage=strip_usage)


async def relay_text(
    ctx: RequestContext,
    upstream: Upstream,
    *,
    streaming: bool,
    strip_usage: bool = False,
    head_written: bool = False,
    tap: UsageTap | None = None,
) -> None:
    """The provider's reply to the client: as a stream, or whole with its usage read.

    ``head_written``: a stream's head went out already (see ``relay_stream``), and ``tap``
    read the chunks that followed it meanwhile."""
    if streaming:
        tap = tap or UsageTap(strip_usage=strip_usage)
        await relay_stream(
            ctx.send,
            upstream,
            ctx.exchange,
            ctx.extra_headers,
            tap,
            direct=direct_body(ctx.scope),
            head_written=head_written,
        )
    else:
        await relay_buffered(
            ctx.send,
            upstream,
            ctx.exchange,
            ctx.extra_headers,
            read_usage=usage_of_json,
            direct=direct_body(ctx.scope),
        )


# Not frozen: made per request (``inference_club.protocol.frames`` says what that saves).
@dataclass(slots=True)
class TextRequest:
    """A text completion request, checked: its fields, its model and whether it streams."""

    fields: dict[str, Any]
    model: str
    streaming: bool


def parse_text_request(body: bytes, required: str, exchange: Exchange) -> TextRequest:
    """The request in ``body``, or a 400 that says what is wrong with it; its model goes on
    ``exchange`` once known, so a request refused after that is metered under it."""
    fields = parse_json_object(body)
    model = exchange.model = _require_model(fields)
    _validate(fields, required)
    return TextRequest(fields, model, fields.get("stream") is True)


def text_outgoing(request: TextRequest, path: str, body: bytes) -> tuple[OutgoingRequest, bool]:
    """What to send the backend, and whether the usage chunk must be kept from the client.

    ``body`` goes as it is, unless a pinned model must be renamed; a stream always asks the
    backend for its usage chunk (for metering), which is stripped when the client did not ask.
    """
    strip_usage = False
    if request.streaming:
        body, strip_usage = _with_usage_requested(body, request.fields)
    model_id, _pinned = split_model(request.model)
    if model_id != request.model:
        # The backend knows the model by its own id, not by the pinned form.
        request.fields["model"] = model_id
        body = orjson.dumps(request.fields)
    outgoing = OutgoingRequest(
        method="POST",
        path=path,
        model=model_id,
        body=body,
        headers=_SSE_HEADERS if request.streaming else _JSON_HEADERS,
    )
    return outgoing, strip_usage


def _require_model(request: dict[str, Any]) -> str:
    model = request.get("model")
    if model is None:
        raise BadRequest("Missing required parameter: 'model'.", param="model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' must be a non-empty string.", param="model")
    return model


def _validate(request: dict[str, Any], required: str) -> None:
    value = request.get(required)
    if value is None:
        raise BadRequest(f"Missing required parameter: '{required}'.", param=required)
    if required == "messages" and (not isinstance(value, list) or not value):
        raise BadRequest("'messages' must be a non-empty array.", param="messages")
    if required == "prompt" and not isinstance(value, str | list):
        raise BadRequest("'prompt' must be a string or an array.", param="prompt")
    stream = request.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean.", param="stream")


def _with_usage_requested(body: bytes, request: dict[str, Any]) -> tuple[bytes, bool]:
    """Ask the backend for the usage chunk; say whether the client did not ask for it."""
    if "stream_options" not in request:
        # Kept in the fields too, for a body that is encoded again (a pinned model renamed).
        request["stream_options"] = {"include_usage": True}
        # Splice after the opening brace: no re-encoding of the client's body.
        start = body.index(b"{") + 1
        spliced = body[:start] + b'"stream_options":{"include_usage":true},' + body[start:]
        if body[start:].lstrip().startswith(b"}"):
            spliced = body[:start] + b'"stream_options":{"include_usage":true}' + body[start:]
        return spliced, True
    options = request["stream_options"]
    if options is None:
        # Present as null: a splice would leave it later in the body, where it wins.
        request["stream_options"] = {"include_usage": True}
        return orjson.dumps(request), True
    if not isinstance(options, dict):
        raise BadRequest("'stream_options' must be an object.", param="stream_options")
    if options.get("include_usage") is True:
        return body, False
    request["stream_options"] = {**options, "include_usage": True}
    return orjson.dumps(request), True
