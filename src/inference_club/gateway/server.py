"""Running the gateway under uvicorn on a socket we bind ourselves (so port 0 works)."""

import asyncio
import logging
import os
import socket
from dataclasses import replace

import uvicorn

from inference_club.allocator import keep_freed_memory
from inference_club.eventloop import event_loop_factory, shorten_gil_waits
from inference_club.gateway.app import create_app
from inference_club.gateway.coalescing import CoalescingHttpToolsProtocol
from inference_club.gateway.direct_messages import DirectMessagesProtocol
from inference_club.gateway.settings import GatewaySettings
from inference_club.heap import settle_long_running_heap
from inference_club.protocol import MAX_FRAME_SIZE

logger = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        msg = f"cannot listen on {host}:{port}: {exc.strerror}"
        raise OSError(exc.errno, msg) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


async def serve(settings: GatewaySettings) -> None:
    """Serve until cancelled or signalled."""
    sock = bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    if settings.port == 0:
        # The asset URLs need the real port when none was given.
        settings = replace(settings, port=port)
    config = uvicorn.Config(
        # The process lives long: what startup made is kept out of full collections, which
        # come rarely.
        create_app(
            settings,
            after_startup=settle_long_running_heap,
            # uvicorn's own default; the app applies it where the client's address is read.
            forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        ),
        proxy_headers=False,
        loop="auto",
        http=CoalescingHttpToolsProtocol,
        ws=DirectMessagesProtocol,
        ws_max_size=MAX_FRAME_SIZE + 16,
        # The tunnel runs its own heartbeats; uvicorn's pings would double them.
        ws_ping_interval=None,
        ws_per_message_deflate=False,
        lifespan="on",
        log_level="warning",
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=5,
        backlog=2048,
    )
    server = uvicorn.Server(config)
    logger.info("gateway listening", extra={"url": f"http://{settings.host}:{port}"})
    print(f"inference-club gateway listening on http://{settings.host}:{port}", flush=True)
    await server.serve(sockets=[sock])


def run(settings: GatewaySettings) -> None:
    """Blocking entry point for the CLI."""
    shorten_gil_waits()
    keep_freed_memory()
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(serve(settings))
