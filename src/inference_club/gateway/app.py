"""The gateway's ASGI application, built by a factory from its settings."""

import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from inference_club.gateway.admission import Admission
from inference_club.gateway.asgi import ASGIApp, Receive, Scope, Send
from inference_club.gateway.assets import ASSET_ROUTE, AssetStore, serve_asset
from inference_club.gateway.direct_chat import DirectChat, direct_chat
from inference_club.gateway.heartbeats import Heartbeats
from inference_club.gateway.metering import UsageWriter
from inference_club.gateway.presence import PresenceWriter
from inference_club.gateway.quotas import QuotaLedger
from inference_club.gateway.ratelimit import MemoryRateCounter, RateCounter, RedisRateCounter
from inference_club.gateway.redis_client import RedisClient
from inference_club.gateway.registry import ProviderRegistry
from inference_club.gateway.services import Services
from inference_club.gateway.settings import GatewaySettings
from inference_club.gateway.tunnel import TUNNEL_PATH, tunnel_endpoint
from inference_club.gateway.tunnel_heap import TunnelHeap
from inference_club.gateway.uploads import sweep_stale_uploads
from inference_club.gateway.v1 import V1App
from inference_club.gateway.web import web_middleware, web_routes
from inference_club.protocol import CloseCode
from inference_club.store import Store, default_database_url

logger = logging.getLogger(__name__)


class GatewayApp:
    """Routes /v1 straight to the API (the hot path) and everything else to the site.

    Only the site reads the client's address (sign-in throttling), so only the site takes it
    from a trusted reverse proxy's ``X-Forwarded-For`` (``forwarded_allow_ips``, as uvicorn's
    option of that name); /v1 requests and the tunnel skip that work.
    """

    def __init__(
        self,
        settings: GatewaySettings,
        after_startup: Callable[[], None] | None = None,
        forwarded_allow_ips: str = "127.0.0.1",
    ) -> None:
        self.settings = settings
        self._after_startup = after_startup
        self._services: Services | None = None
        self.v1 = V1App(self.services)
        self.site = Starlette(
            routes=[
                Route("/healthz", self._health),
                Route(ASSET_ROUTE, self._asset, methods=["GET", "HEAD"]),
                *web_routes(self.services),
            ],
            middleware=[
                Middleware(ProxyHeadersMiddleware, trusted_hosts=forwarded_allow_ips),
                *web_middleware(self.services),
            ],
            lifespan=self._lifespan,
        )

    def services(self) -> Services:
        """The running gateway's services (only during the lifespan)."""
        if self._services is None:
            msg = "the gateway is not started"
            raise RuntimeError(msg)
        return self._services

    def direct_request(
        self,
        cycle: RequestResponseCycle,
        start_task: Callable[[ASGIApp], None],
        on_done: Callable[[], None],
    ) -> DirectChat | None:
        """The HTTP protocol's offer of a request before its task starts (``DirectRequests``):
        taken when it is a text completion that may be sent directly (``direct_chat``)."""
        if self._services is None:
            return None
        return direct_chat(self._services, cycle, start_task, on_done)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            await self.v1(scope, receive, send)
            return
        if scope["type"] == "websocket" and scope["path"] == TUNNEL_PATH:
            await tunnel_endpoint(scope, receive, send, self.services())
            return
        await self.site(scope, receive, send)

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        settings = self.settings
        database_url = settings.database_url or default_database_url(settings.data_dir)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        sweep_stale_uploads(settings.data_dir / "tmp")
        store = await Store.open(database_url)
        assets = AssetStore(settings.data_dir, store, settings.base_url)
        # Writing through the asset store links each record to the assets its request made.
        usage = UsageWriter(assets.record_usage)
        usage.start()
        rate_counter: RateCounter = (
            RedisRateCounter(RedisClient(settings.redis_url))
            if settings.redis_url
            else MemoryRateCounter()
        )
        registry = ProviderRegistry()
        admission = Admission(registry.candidates, settings.queue_timeout)
        registry.on_capacity = admission.dispatch_all
        self._services = Services(
            settings=settings,
            store=store,
            registry=registry,
            usage=usage,
            assets=assets,
            rate_counter=rate_counter,
            admission=admission,
            quotas=QuotaLedger(store),
            presence=PresenceWriter(
                store.mark_providers_seen,
                lambda: [c.provider_id for c in registry.connections()],
            ),
            heartbeats=Heartbeats(registry.connections, settings.heartbeat_interval),
            tunnel_heap=TunnelHeap(),
        )
        self._services.presence.start()
        self._services.heartbeats.start()
        if self._after_startup is not None:
            self._after_startup()
        try:
            yield
        finally:
            for connection in self._services.registry.connections():
                await connection.close(CloseCode.GOING_AWAY, "the gateway is shutting down")
            self._services.tunnel_heap.close()
            await self._services.heartbeats.stop()
            await self._services.presence.stop()
            await self._services.quotas.stop()
            await usage.stop()
            await rate_counter.close()
            await store.close()
            self._services = None

    async def _asset(self, request: Request) -> Response:
        return await serve_asset(request, self.services().assets)

    async def _health(self, _request: Request) -> JSONResponse:
        services = self.services()
        return JSONResponse({"status": "ok", "providers_online": len(services.registry)})


def create_app(
    settings: GatewaySettings,
    after_startup: Callable[[], None] | None = None,
    forwarded_allow_ips: str = "127.0.0.1",
) -> GatewayApp:
    """A gateway ASGI app for ``settings``; ``after_startup`` runs once its services are up."""
    return GatewayApp(settings, after_startup, forwarded_allow_ips)
