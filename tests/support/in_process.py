"""An ASGI app served by uvicorn in the test's own event loop, with the gateway's protocols."""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from inference_club.gateway import GatewaySettings
from inference_club.gateway.app import GatewayApp, create_app
from inference_club.gateway.coalescing import CoalescingHttpToolsProtocol
from inference_club.gateway.direct_messages import DirectMessagesProtocol
from inference_club.protocol import PROTOCOL_VERSION, Hello, ModelCard, Welcome, decode, encode


async def serve_in_process(
    app: Any,
    *,
    http: type[CoalescingHttpToolsProtocol] = CoalescingHttpToolsProtocol,
    lifespan: Literal["on", "off"] = "off",
) -> tuple[uvicorn.Server, socket.socket]:
    """Start serving ``app`` on a free loopback port; stop with ``server.shutdown(sockets=[sock])``.

    The WebSocket settings are the gateway's own (no uvicorn pings, no compression).
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        # As the gateway runs it: the app itself reads forwarded headers where it needs them.
        proxy_headers=False,
        http=http,
        ws=DirectMessagesProtocol,
        ws_ping_interval=None,
        ws_per_message_deflate=False,
        lifespan=lifespan,
        log_level="warning",
    )
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    return server, sock


@contextlib.asynccontextmanager
async def gateway_in_process(data_dir: Path) -> AsyncIterator[tuple[GatewayApp, int]]:
    """The real gateway app, started, served in this event loop; yields it and its port."""
    app = create_app(GatewaySettings(data_dir=data_dir, port=0))
    server, sock = await serve_in_process(app, lifespan="on")
    try:
        yield app, sock.getsockname()[1]
    finally:
        await server.shutdown(sockets=[sock])


async def connect_agent(port: int, token: str, model: str) -> ClientConnection:
    """A tunnel to the gateway on ``port`` offering ``model``, welcomed (the test plays the
    agent)."""
    url = f"ws://127.0.0.1:{port}/api/tunnel"
    ws = await connect(url, additional_headers={"Authorization": f"Bearer {token}"})
    await ws.send(encode(Hello(PROTOCOL_VERSION, "test", (ModelCard(model),))))
    welcome = await asyncio.wait_for(ws.recv(), 5)
    assert isinstance(welcome, bytes)
    assert isinstance(decode(welcome), Welcome)
    return ws


# The date uvicorn's main loop would put in every reply (a server started here does not run it).
SERVER_DATE = b"Thu, 26 Nov 2026 22:00:00 GMT"


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[int]:
    """``app`` on uvicorn with the gateway's HTTP protocol; yields its port."""
    server, sock = await serve_in_process(app)
    server.server_state.default_headers = [(b"date", SERVER_DATE)]
    try:
        yield sock.getsockname()[1]
    finally:
        await server.shutdown(sockets=[sock])


Reply = tuple[bytes, dict[bytes, bytes], bytes, bytes]


def read_reply(client: socket.socket, buffered: bytes = b"") -> Reply:
    """Status line, headers, body (by Content-Length) and what followed, from ``client``."""
    data = buffered
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        assert chunk, f"connection closed inside the head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = dict(line.split(b": ", 1) for line in lines)
    length = int(headers[b"content-length"])
    while len(rest) < length:
        chunk = client.recv(65536)
        assert chunk, "connection closed inside the body"
        rest += chunk
    return status, headers, rest[:length], rest[length:]
