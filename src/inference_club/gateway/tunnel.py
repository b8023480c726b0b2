"""The WebSocket endpoint agents dial out to: authenticate, handshake, then pump frames."""

import asyncio
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect

from inference_club.gateway.auth import bearer_token
from inference_club.gateway.connection import ProviderConnection
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


async def tunnel_endpoint(websocket: WebSocket, services: Services) -> None:
    """Serve one agent's tunnel from handshake to close."""
    await websocket.accept()
    token = bearer_token(websocket.headers.get("authorization"))
    provider = await services.store.authenticate_provider(token) if token else None
    if provider is None:
        await websocket.close(CloseCode.AUTHENTICATION_FAILED, "invalid provider token")
        return
    try:
        hello = await _receive_hello(websocket)
    except ProtocolError as exc:
        await websocket.close(exc.code, exc.reason)
        return
    except (WebSocketDisconnect, TimeoutError):
        return
    connection = ProviderConnection(
        provider_id=provider.id,
        provider_name=provider.name,
        owner_id=provider.owner_id,
        models=hello.models,
        guest_concurrency=hello.guest_concurrency,
        send_bytes=websocket.send_bytes,
        close_socket=websocket.close,
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
    logger.info(
        "provider connected",
        extra={"provider": provider.name, "models": len(connection.models)},
    )
    try:
        await _pump(websocket, connection)
    finally:
        connection.fail_streams(connection.close_reason or "the provider disconnected")
        services.registry.remove(connection)
        services.presence.seen(provider.id)
        logger.info("provider disconnected", extra={"provider": provider.name})


async def _receive_hello(websocket: WebSocket) -> Hello:
    async with asyncio.timeout(HELLO_TIMEOUT):
        data = await websocket.receive_bytes()
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


async def _pump(websocket: WebSocket, connection: ProviderConnection) -> None:
    while not connection.closed:
        try:
            message = await websocket.receive()
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes")
        if data is None:
            await connection.close(CloseCode.MALFORMED_FRAME, "text messages are not frames")
            return
        try:
            await connection.handle_message(data)
        except ProtocolError as exc:
            logger.warning(
                "closing tunnel on protocol error",
                extra={"provider": connection.provider_name, "reason": exc.reason},
            )
            await connection.close(exc.code, exc.reason)
            return
