"""The agent: keeps one tunnel to the gateway open and relays its requests to local servers."""

import asyncio
import contextlib
import logging
from types import TracebackType

import aiohttp

from inference_club.agent.backend_client import BackendClient
from inference_club.agent.backoff import Backoff
from inference_club.agent.discovery import Catalog, Discovery
from inference_club.agent.errors import TunnelRejected
from inference_club.agent.request_log import RequestLog
from inference_club.agent.settings import AgentSettings
from inference_club.agent.tunnel import MAX_MESSAGE, TunnelSession
from inference_club.heap import settle_long_running_heap
from inference_club.protocol import ProtocolError

logger = logging.getLogger(__name__)

# Idle connections to a model server stay open this long, so bursts reuse them.
_BACKEND_KEEPALIVE = 30.0


class Agent:
    """Start it, and it connects, announces its models and serves requests until stopped.

    ``connected`` is set while a tunnel is up (after the gateway's welcome).
    """

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self.connected = asyncio.Event()
        self.provider: str | None = None
        self.catalog = Catalog()
        # Completed handshakes since start; tests watch it to see reconnections.
        self.connections = 0
        self._session: TunnelSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._backend_http: BackendClient | None = None
        self._tunnel_http: aiohttp.ClientSession | None = None
        self._discovery: Discovery | None = None
        self._request_log = RequestLog(
            logging.getLevelNamesMapping().get(settings.request_log_level.upper(), logging.INFO)
        )
        # Seconds the last tunnel stayed up after its welcome; long-lived ones reset the backoff.
        self._lifetime = 0.0

    async def __aenter__(self) -> "Agent":
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Begin discovering models and connecting, in the background."""
        if self._task is not None:
            msg = "the agent is already started"
            raise RuntimeError(msg)
        # One client for every request keeps one pool of keep-alive connections; it has no
        # cap on connections, as the gateway's per-model limits are the only ones. It keeps no
        # cookies: one member's must never ride along on another's request.
        self._backend_http = BackendClient(
            connect_timeout=self.settings.connect_timeout, keepalive=_BACKEND_KEEPALIVE
        )
        # A total timeout on this session would also bound the tunnel's lifetime.
        self._tunnel_http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.settings.connect_timeout),
            trust_env=True,
        )
        self._discovery = Discovery(self.settings, self._backend_http)
        self._task = asyncio.create_task(self._run(), name="inference-club-agent")

    async def stop(self) -> None:
        """Close the tunnel, abort every request in flight and release the HTTP clients."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._backend_http is not None:
            self._backend_http.close()
        if self._tunnel_http is not None:
            await self._tunnel_http.close()
        self._backend_http = self._tunnel_http = None
        self._request_log.flush()
        self.connected.clear()

    async def wait(self) -> None:
        """Wait until the agent stops (it only does when stopped or cancelled)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def rediscover(self) -> Catalog:
        """Ask the backends for their models now; tell the gateway if the list changed."""
        assert self._discovery is not None, "start() first"
        catalog = await self._discovery.discover()
        if catalog.cards != self.catalog.cards:
            logger.info("models changed", extra={"models": len(catalog.cards)})
        self.catalog = catalog
        session = self._session
        if session is not None:
            with contextlib.suppress(ConnectionError):
                await session.announce(catalog.cards)
        return catalog

    async def _run(self) -> None:
        await self.rediscover()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._rediscover_forever())
            group.create_task(self._connect_forever())

    async def _rediscover_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.rediscover_interval)
            try:
                await self.rediscover()
            except Exception:
                # Discovery must never take the tunnel down with it.
                logger.exception("model discovery failed")

    async def _connect_forever(self) -> None:
        settings = self.settings
        backoff = Backoff(settings.backoff_base, settings.backoff_cap)
        while True:
            self._lifetime = 0.0
            welcomed = self.connections
            delay: float | None = None
            try:
                reason = await self._connect_once()
            except TunnelRejected as exc:
                logger.error(str(exc), extra={"close_code": exc.code})
                reason, delay = "rejected by the gateway", backoff.cap
            except (aiohttp.ClientError, OSError, TimeoutError, ProtocolError) as exc:
                reason = _describe(exc)
            except Exception as exc:
                # A bug must cost one connection, not the agent: keep serving after a redial.
                logger.exception("tunnel failed")
                reason = _describe(exc)
            if self._lifetime > settings.backoff_reset_after:
                backoff.reset()
            if delay is None:
                delay = backoff.next_delay()
            event = "disconnected" if self.connections > welcomed else "cannot connect"
            logger.info(event, extra={"reason": reason, "retry_in_s": round(delay, 3)})
            await asyncio.sleep(delay)

    async def _connect_once(self) -> str:
        """One connection from dial to close; returns why it ended."""
        assert self._tunnel_http is not None
        assert self._backend_http is not None
        settings = self.settings
        try:
            async with asyncio.timeout(settings.connect_timeout):
                ws = await self._tunnel_http.ws_connect(
                    settings.tunnel_url,
                    headers={"Authorization": f"Bearer {settings.token}"},
                    max_msg_size=MAX_MESSAGE,
                    autoping=True,
                    heartbeat=None,
                    timeout=aiohttp.ClientWSTimeout(
                        ws_receive=None, ws_close=settings.close_timeout
                    ),
                )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (401, 403):
                msg = f"the gateway rejected the provider token (HTTP {exc.status})"
                raise TunnelRejected(msg, exc.status) from None
            msg = f"no tunnel endpoint at the server URL (HTTP {exc.status}); check --server"
            raise ConnectionError(msg) from None
        async with ws:
            session = TunnelSession(
                ws, settings, self._backend_http, lambda: self.catalog, self._request_log
            )
            try:
                return await self._serve_session(ws, session)
            finally:
                await session.close()

    async def _serve_session(
        self, ws: aiohttp.ClientWebSocketResponse, session: TunnelSession
    ) -> str:
        """Handshake, announce and serve one connected tunnel; returns why it ended."""
        try:
            welcome = await session.handshake(self.catalog.cards)
        except ProtocolError as exc:
            await ws.close(code=exc.code, message=exc.reason.encode())
            raise
        loop = asyncio.get_running_loop()
        connected_at = loop.time()
        self._session = session
        self.provider = welcome.provider
        self.connections += 1
        logger.info(
            "connected",
            extra={"provider": welcome.provider, "models": len(self.catalog.cards)},
        )
        try:
            # The list may have changed while the handshake was in flight.
            await session.announce(self.catalog.cards)
            self.connected.set()
            return await session.serve()
        finally:
            self._lifetime = loop.time() - connected_at
            self._session = None
            self.connected.clear()


async def run_agent(settings: AgentSettings) -> None:
    """Run an agent until cancelled (Ctrl-C, SIGTERM, or the caller's task being cancelled)."""
    async with Agent(settings) as agent:
        # The process lives long: what startup made is kept out of full collections, which
        # come rarely.
        settle_long_running_heap()
        await agent.wait()


def _describe(exc: BaseException) -> str:
    """A reason for the log; aiohttp's messages name the gateway's host, never the token."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
