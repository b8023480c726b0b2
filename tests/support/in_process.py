"""An ASGI app served by uvicorn in the test's own event loop, with the gateway's protocols."""

import socket
from typing import Any, Literal

import uvicorn

from inference_club.gateway.coalescing import CoalescingHttpToolsProtocol
from inference_club.gateway.direct_messages import DirectMessagesProtocol


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
