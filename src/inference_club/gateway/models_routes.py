"""``GET /v1/models``: every model the caller may reach, one entry per model id."""

from typing import Any

import orjson

from inference_club.gateway.asgi import send_json
from inference_club.gateway.context import RequestContext
from inference_club.gateway.errors import NoProvider
from inference_club.gateway.registry import Candidate


def model_entries(ctx: RequestContext) -> dict[str, dict[str, Any]]:
    """Model id → its /v1/models entry, merging providers that serve the same id.

    Remembered per caller view until the providers or the sharing change; callers must not
    modify what they get.
    """
    return ctx.services.registry.memo(("entries", *_view(ctx)), lambda: _model_entries(ctx))


def _view(ctx: RequestContext) -> tuple[Any, ...]:
    """Everything besides the providers that decides what the caller sees."""
    caller = ctx.caller
    return (ctx.services.registry.sharing.revision, caller.user_id, caller.groups)


def _model_entries(ctx: RequestContext) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    owners: dict[str, bool] = {}
    for candidate in ctx.services.registry.visible(ctx.caller):
        card = candidate.card
        own = candidate.connection.owner_id == ctx.caller.user_id
        entry = entries.get(card.id)
        if entry is None:
            entries[card.id] = _entry(candidate)
            owners[card.id] = own
            continue
        entry["providers"].append(candidate.connection.provider_name)
        if own and not owners[card.id]:
            # The caller's own provider names the model when there is one.
            entry["owned_by"] = candidate.connection.provider_name
            owners[card.id] = True
    for entry in entries.values():
        entry["providers"].sort()
    return entries


def _entry(candidate: Candidate) -> dict[str, Any]:
    card = candidate.card
    return {
        "id": card.id,
        "object": "model",
        "created": candidate.connection.connected_at,
        "owned_by": candidate.connection.provider_name,
        "service_type": card.service_type,
        "input_modalities": list(card.input_modalities),
        "output_modalities": list(card.output_modalities),
        "supported_features": list(card.supported_features),
        "context_length": card.context_length,
        "providers": [candidate.connection.provider_name],
    }


async def list_models(ctx: RequestContext) -> None:
    """The OpenAI model list, with inference-club's capability fields."""
    body = ctx.services.registry.memo(("list", *_view(ctx)), lambda: _list_body(ctx))
    ctx.exchange.status = 200
    await send_json(ctx.send, 200, body, ctx.extra_headers)


def _list_body(ctx: RequestContext) -> bytes:
    entries = model_entries(ctx)
    return orjson.dumps({"object": "list", "data": [entries[key] for key in sorted(entries)]})


async def retrieve_model(ctx: RequestContext, model: str) -> None:
    """One model's entry, as ``GET /v1/models/{model}``."""
    ctx.exchange.model = model
    entry = model_entries(ctx).get(model)
    if entry is None:
        raise NoProvider.for_model(model)
    ctx.exchange.status = 200
    await send_json(ctx.send, 200, orjson.dumps(entry), ctx.extra_headers)
