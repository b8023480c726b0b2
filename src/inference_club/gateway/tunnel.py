"""The WebSocket endpoint agents dial out to: authenticate, handshake, then pump frames.

It speaks raw ASGI rather than through a framework's WebSocket object: every request crosses
this socket twice, and each layer of wrappers on receive and send costs on every message.
Once the tunnel is up, the agent's messages are handled as the server reads them (see
``direct_messages``); the ASGI pump still carries whatever the server queues (the close).
"""

import asyncio
import logging
from collections.abc import Coroutine

from inference_club.gateway.asgi import Message, Receive, Scope, Send, header
from inference_club.gateway.auth import bearer_token
from inference_club.gateway.connection import ProviderConnection
from inference_club.gateway.direct_messages import DirectMessages, MessageSink, direct_messages
from inference_club.gateway.services import Services
from inference_club.protocol import (
    PROTOCOL_VERSION,
    CloseCode,
    Hello,
    ProtocolError,
    Welcome,
    decode,
    encode,
)

logger = logging.getLogger(__name__)

HELLO_TIMEOUT = 10.0
TUNNEL_PATH = "/api/tunnel"
# Closes started from a message handler, which cannot wait for them; kept until they finish.
_closing: set[asyncio.Task[None]] = set()


class TunnelSocket:
    """The agent's WebSocket as the ASGI server hands it over: bytes in, bytes out, close."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self.closed = False

    async def accept(self) -> bool:
        """Complete the handshake; False when the client left before it."""
        message = await self._receive()
        if message["type"] != "websocket.connect":
            self.closed = True
            return False
        await self._send({"type": "websocket.accept"})
        return True

    async def receive(self) -> bytes | str | None:
        """The next message's data (str for a text message); None once the socket closed."""
        if self.closed:
            return None
        message: Message = await self._receive()
        if message["type"] == "websocket.receive":
            data: bytes | str | None = message.get("bytes")
            return data if data is not None else message.get("text") or ""
        self.closed = True
        return None

    async def send_bytes(self, data: bytes) -> None:
        """Send one binary message."""
        await self._send({"type": "websocket.send", "bytes": data})

    async def close(self, code: int, reason: str) -> None:
        """Close with ``code``; a socket already closed stays quiet."""
        if self.closed:
            return
        self.closed = True
        await self._send({"type": "websocket.close", "code": code, "reason": reason})


async def tunnel_endpoint(scope: Scope, receive: Receive, send: Send, services: Services) -> None:
    """Serve one agent's tunnel from handshake to close."""
    websocket = TunnelSocket(receive, send)
    if not await websocket.accept():
        return
    token = bearer_token(header(scope, b"authorization"))
    provider = await services.store.authenticate_provider(token) if token else None
    if provider is None:
        await websocket.close(CloseCode.AUTHENTICATION_FAILED, "invalid provider token")
        return
    try:
        hello = await _receive_hello(websocket)
    except ProtocolError as exc:
        await websocket.close(exc.code, exc.reason)
        return
    except (ConnectionError, TimeoutError):
        return
    direct = direct_messages(scope)
    connection = ProviderConnection(
        provider_id=provider.id,
        provider_name=provider.name,
        owner_id=provider.owner_id,
        models=hello.models,
        guest_concurrency=hello.guest_concurrency,
        send_bytes=websocket.send_bytes,
        close_socket=websocket.close,
        direct=direct,
    )
    await websocket.send_bytes(
        encode(
            Welcome(
                PROTOCOL_VERSION,
                provider.name,
                initial_window=connection.initial_window,
                heartbeat_interval=services.settings.heartbeat_interval,
            )
        )
    )
    previous = services.registry.add(connection)
    if previous is not None:
        await previous.close(CloseCode.REPLACED, "replaced by a newer connection")
    services.presence.seen(provider.id)
    services.tunnel_heap.joined()
    logger.info(
        "provider connected",
        extra={"provider": provider.name, "models": len(connection.models)},
    )
    if direct is not None:
        direct.install(_message_sink(connection, direct))
    try:
        await _pump(websocket, connection)
    finally:
        if direct is not None:
            direct.install(None)
        # Idempotent: fails the streams and stops the outbox if the pump ended first.
        await connection.close(CloseCode.GOING_AWAY, "the provider disconnected")
        services.registry.remove(connection)
        services.presence.seen(provider.id)
        # Named so the heap can tell they were freed: alive later means a cycle holds them.
        services.tunnel_heap.left(connection, asyncio.current_task(), direct)
        logger.info("provider disconnected", extra={"provider": provider.name})


async def _receive_hello(websocket: TunnelSocket) -> Hello:
    async with asyncio.timeout(HELLO_TIMEOUT):
        data = await websocket.receive()
    if data is None:
        msg = "the agent left before its hello"
        raise ConnectionError(msg)
    if isinstance(data, str):
        msg = "text messages are not frames"
        raise ProtocolError(msg, CloseCode.MALFORMED_FRAME)
    frame = decode(data)
    if not isinstance(frame, Hello):
        msg = "the first frame must be hello"
        raise ProtocolError(msg)
    if frame.protocol_version != PROTOCOL_VERSION:
        msg = (
            f"protocol version {frame.protocol_version} is not supported; "
            f"this gateway speaks {PROTOCOL_VERSION}"
        )
        raise ProtocolError(msg, CloseCode.UNSUPPORTED_VERSION)
    return frame


async def _pump(websocket: TunnelSocket, connection: ProviderConnection) -> None:
    while not connection.closed:
        try:
            data = await websocket.receive()
        except OSError:
            return
        if data is None:
            return
        if isinstance(data, str):
            await connection.close(CloseCode.MALFORMED_FRAME, "text messages are not frames")
            return
        try:
            connection.handle_message(data)
        except ProtocolError as exc:
            await _close_on_protocol_error(connection, exc)
            return


def _message_sink(connection: ProviderConnection, direct: DirectMessages) -> MessageSink:
    """Handles each message in the call that read it; an error closes the tunnel."""

    def sink(data: bytes) -> None:
        try:
            connection.handle_message(data)
        except ProtocolError as exc:
            direct.install(None)
            _close_soon(_close_on_protocol_error(connection, exc))
        except Exception:
            # What would end the ASGI task ends the tunnel: the agent reconnects.
            logger.exception("tunnel message failed", extra={"provider": connection.provider_name})
            direct.install(None)
            _close_soon(connection.close(CloseCode.INTERNAL_ERROR, "the gateway failed"))

    return sink


async def _close_on_protocol_error(connection: ProviderConnection, exc: ProtocolError) -> None:
    logger.warning(
        "closing tunnel on protocol error",
        extra={"provider": connection.provider_name, "reason": exc.reason},
    )
    await connection.close(exc.code, exc.reason)


def _close_soon(closing: Coroutine[None, None, None]) -> None:
    task = asyncio.get_running_loop().create_task(closing)
    _closing.add(task)
    task.add_done_callback(_closing.discard)
