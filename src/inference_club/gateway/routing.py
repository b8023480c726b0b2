"""Choosing providers for a request: reachable, online, and of the right service type."""

from inference_club.gateway.context import RequestContext
from inference_club.gateway.errors import NoProvider
from inference_club.gateway.registry import Caller, Candidate, ProviderRegistry

# Which /v1 endpoint serves each service type, for the message of a wrong-type request.
ENDPOINT_OF_SERVICE = {
    "llm": "/v1/chat/completions",
    "stt": "/v1/audio/transcriptions",
    "tts": "/v1/audio/speech",
    "image": "/v1/images/generations",
}


def split_model(model: str) -> tuple[str, str | None]:
    """``model@provider`` pins a provider; plain ``model`` lets the gateway choose."""
    name, sep, provider = model.rpartition("@")
    if sep and name and provider:
        return name, provider
    return model, None


def choose(ctx: RequestContext, model: str, service_type: str) -> list[Candidate]:
    """Candidates for ``model`` of ``service_type``, least loaded first; 404 when there are none."""
    return choose_in(ctx.services.registry, ctx.caller, model, service_type)


def choose_in(
    registry: ProviderRegistry, caller: Caller, model: str, service_type: str
) -> list[Candidate]:
    """``choose`` for a caller, before a request context exists."""
    model_id, pinned = split_model(model)
    candidates = registry.candidates(caller, model_id)
    if pinned is not None:
        candidates = [c for c in candidates if c.connection.provider_name == pinned]
    if not candidates:
        raise NoProvider.for_model(model)
    matching = [c for c in candidates if c.card.service_type == service_type]
    if not matching:
        actual = candidates[0].card.service_type
        raise NoProvider(
            f"Model '{model}' is a {actual} model and cannot serve this endpoint; "
            f"use {ENDPOINT_OF_SERVICE[actual]}.",
            param="model",
        )
    return matching
