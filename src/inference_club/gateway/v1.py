"""The /v1 API as one small ASGI app: route, authenticate, handle, meter."""

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from inference_club.gateway.asgi import (
    ClientGone,
    Message,
    RawHeaders,
    Receive,
    Scope,
    Send,
    send_error,
)
from inference_club.gateway.audio_routes import speech, transcriptions, voices
from inference_club.gateway.auth import authenticate
from inference_club.gateway.context import RequestContext
from inference_club.gateway.disconnect import stop_disconnect_watch
from inference_club.gateway.errors import ApiError, BadRequest, RateLimited
from inference_club.gateway.exchange import Exchange
from inference_club.gateway.image_routes import edits, generations
from inference_club.gateway.models_routes import list_models, retrieve_model
from inference_club.gateway.ratelimit import RateDecision
from inference_club.gateway.registry import Caller
from inference_club.gateway.services import Services
from inference_club.gateway.text_routes import chat_completions, completions
from inference_club.store import KeyIdentity, UsageRecord

logger = logging.getLogger(__name__)

Handler = Callable[[RequestContext], Awaitable[None]]

# (method, path) → (handler, the endpoint name usage records carry)
ROUTES: dict[tuple[str, str], tuple[Handler, str]] = {
    ("GET", "/v1/models"): (list_models, "models"),
    ("POST", "/v1/chat/completions"): (chat_completions, "chat.completions"),
    ("POST", "/v1/completions"): (completions, "completions"),
    ("POST", "/v1/audio/transcriptions"): (transcriptions, "audio.transcriptions"),
    ("POST", "/v1/audio/speech"): (speech, "audio.speech"),
    ("GET", "/v1/audio/voices"): (voices, "audio.voices"),
    ("POST", "/v1/images/generations"): (generations, "images.generations"),
    ("POST", "/v1/images/edits"): (edits, "images.edits"),
}
_PATHS = frozenset(path for _method, path in ROUTES)
_MODEL_PREFIX = "/v1/models/"
# Recorded when the client left before the answer was complete (nginx's convention).
CLIENT_CLOSED_REQUEST = 499


class UnknownRoute(BadRequest):
    """404 for a path the API does not have (OpenAI answers the same way)."""

    status = 404


class V1App:
    """The OpenAI-compatible API; ``services`` is read per request because the lifespan makes it."""

    def __init__(self, services: Callable[[], Services]) -> None:
        self._services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one /v1 request and leave one usage record for it."""
        await serve(self._services(), scope, receive, send)


async def serve(
    services: Services,
    scope: Scope,
    receive: Receive,
    send: Send,
    counted: RateDecision | None = None,
) -> None:
    """Serve one /v1 request and leave one usage record for it; ``counted`` is the rate
    decision when the request was counted already (a direct request handed to its task)."""
    run = RequestRun(services, Exchange(endpoint="unknown"), send)
    await run.guard(lambda: _handle(run, scope, receive, counted))


async def _handle(
    run: "RequestRun", scope: Scope, receive: Receive, counted: RateDecision | None
) -> None:
    handler = _resolve(scope["method"], scope["path"], run.exchange)
    run.identity = await authenticate(scope, run.services.store)
    await _admit(run.services, run.identity, run.extra_headers, counted)
    await handler(run.context(scope, receive))


def _resolve(method: str, path: str, exchange: Exchange) -> Handler:
    route = ROUTES.get((method, path))
    if route is not None:
        handler, exchange.endpoint = route
        return handler
    if method == "GET" and path.startswith(_MODEL_PREFIX) and len(path) > len(_MODEL_PREFIX):
        model = path[len(_MODEL_PREFIX) :]
        exchange.endpoint = "models"
        return lambda ctx: retrieve_model(ctx, model)
    if path in _PATHS:
        raise UnknownRoute(f"Method {method} is not allowed on {path}.")
    raise UnknownRoute(f"Invalid URL ({method} {path}).")


class RequestRun:
    """One /v1 request from its start to its usage record: who made it, the headers every
    reply of it carries, and the error handling and metering around its handling."""

    __slots__ = ("_send", "ctx", "exchange", "extra_headers", "identity", "services")

    def __init__(
        self,
        services: Services,
        exchange: Exchange,
        send: Send,
        *,
        identity: KeyIdentity | None = None,
        extra_headers: RawHeaders | None = None,
    ) -> None:
        self.services = services
        self.exchange = exchange
        self._send = send
        self.identity = identity
        self.extra_headers: RawHeaders = extra_headers if extra_headers is not None else []
        self.ctx: RequestContext | None = None

    async def send(self, message: Message) -> None:
        """ASGI send, noting when the response starts."""
        if message["type"] == "http.response.start":
            self.exchange.response_started = True
        await self._send(message)

    def context(
        self, scope: Scope, receive: Receive, caller: Caller | None = None
    ) -> RequestContext:
        """The handler's context, once the caller is known."""
        identity = self.identity
        assert identity is not None, "a context is made for an authenticated request"
        if caller is None:
            groups = self.services.registry.sharing.groups_of(identity.user_id)
            caller = Caller(user_id=identity.user_id, groups=groups)
        self.ctx = RequestContext(
            scope=scope,
            receive=receive,
            send=self.send,
            services=self.services,
            identity=identity,
            exchange=self.exchange,
            caller=caller,
            extra_headers=self.extra_headers,
        )
        return self.ctx

    async def guard(self, handle: Callable[[], Awaitable[None]]) -> None:
        """Run ``handle``: answer its errors in the envelope, then close and meter."""
        exchange = self.exchange
        try:
            await handle()
        except ApiError as error:
            exchange.status = error.status
            exchange.error_type = exchange.error_type or error.type
            if exchange.client_gone:
                exchange.status = CLIENT_CLOSED_REQUEST
            elif exchange.response_started:
                logger.warning("error after the response started", extra={"error": error.type})
            else:
                await send_error(self._send, error, self.extra_headers)
        except (ClientGone, OSError):
            exchange.client_gone = True
            exchange.status = CLIENT_CLOSED_REQUEST
            exchange.error_type = exchange.error_type or "client_disconnected"
        finally:
            ctx, self.ctx = self.ctx, None  # the context's send refers back to this run
            if ctx is not None:
                await stop_disconnect_watch(ctx)
            stream = exchange.stream
            if stream is not None and not stream.closed:
                await stream.cancel("the request ended", by_client=exchange.client_gone)
            meter(self.services, self.identity, exchange)


async def _admit(
    services: Services, identity: KeyIdentity, headers: RawHeaders, counted: RateDecision | None
) -> None:
    """Sharing up to date, rate limit counted unless it was (and reported in ``headers``),
    quotas checked."""
    await services.registry.sharing.refresh(services.store, identity.sharing_revision)
    decision = counted
    if decision is None:
        decision = await services.rate_counter.hit(*rate_of(services, identity))
    headers.extend(decision.headers())
    if not decision.allowed:
        raise RateLimited(
            f"Rate limit of {decision.limit} requests per minute reached for this "
            f"API key; retry in {decision.reset} seconds.",
            code="rate_limit_exceeded",
        )
    await services.quotas.check(identity)


def rate_of(services: Services, identity: KeyIdentity) -> tuple[str, int]:
    """The rate counter's key for the request's API key, and its limit per minute."""
    limit = identity.requests_per_minute or services.settings.requests_per_minute
    return f"key:{identity.key_id}:{identity.key_prefix}", limit


def meter(services: Services, identity: KeyIdentity | None, exchange: Exchange) -> None:
    """Release what the request held and leave its usage record (its stream is closed)."""
    if exchange.slot is not None:
        services.admission.release(exchange.slot)
        exchange.slot = None
    if exchange.client_gone and exchange.status < 400:
        exchange.status = CLIENT_CLOSED_REQUEST
    if identity is not None:
        record = _usage_record(identity, exchange)
        services.usage.add(record)
        services.quotas.add(record)


def _usage_record(identity: KeyIdentity, exchange: Exchange) -> UsageRecord:
    prompt_tokens, completion_tokens = exchange.tokens()
    return UsageRecord(
        user_id=identity.user_id,
        api_key_id=identity.key_id,
        model=exchange.model,
        provider_id=exchange.provider_id,
        endpoint=exchange.endpoint,
        status_code=exchange.status,
        started_at=exchange.started_at,
        ended_at=datetime.now(UTC),
        ttfb_ms=exchange.ttfb_ms,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        audio_seconds=exchange.audio_seconds,
        image_count=exchange.image_count,
        error_type=exchange.error_type,
    )
