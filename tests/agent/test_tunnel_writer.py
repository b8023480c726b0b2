"""The agent's direct tunnel writer on a real aiohttp WebSocket connection, on every event loop
the agent runs on (their transports differ)."""

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from inference_club.agent.tunnel_writer import TunnelWriter

from .fakes import WAIT, start_server


class Receiver:
    """A WebSocket server that keeps every message it reads, as aiohttp's reader checks it."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[WSMsgType, bytes | str]] = asyncio.Queue()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await self.messages.put((message.type, message.data))
        return ws

    async def next(self) -> tuple[WSMsgType, bytes | str]:
        return await asyncio.wait_for(self.messages.get(), WAIT)


@pytest.fixture
async def connected() -> AsyncIterator[tuple[aiohttp.ClientWebSocketResponse, Receiver]]:
    """A client WebSocket connected to a ``Receiver``."""
    receiver = Receiver()
    app = web.Application()
    app.router.add_get("/ws", receiver.handle)
    server = await start_server(app)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(str(server.make_url("/ws")))
        yield ws, receiver
        await ws.close()
    await server.close()


async def test_a_connected_websocket_gets_a_writer_whose_messages_arrive_whole_and_in_order(
    connected: tuple[aiohttp.ClientWebSocketResponse, Receiver],
) -> None:
    """Messages written directly, of each header length, arrive as binary messages, in order
    with the ones aiohttp writes itself."""
    ws, receiver = connected
    writer = TunnelWriter.of(ws)
    assert writer is not None
    assert writer.ready()
    messages = [b"first", b"\x00" * 125, bytes(range(256)) * 300]

    writer.write_now(messages[0])
    await ws.send_bytes(b"through aiohttp")
    writer.write_now(messages[1])
    writer.write_now(messages[2])

    assert await receiver.next() == (WSMsgType.BINARY, messages[0])
    assert await receiver.next() == (WSMsgType.BINARY, b"through aiohttp")
    assert await receiver.next() == (WSMsgType.BINARY, messages[1])
    assert await receiver.next() == (WSMsgType.BINARY, messages[2])


async def test_the_writer_is_not_ready_once_the_websocket_closes(
    connected: tuple[aiohttp.ClientWebSocketResponse, Receiver],
) -> None:
    """After the close, frames must go nowhere: the outbox's writer then fails its senders."""
    ws, _ = connected
    writer = TunnelWriter.of(ws)
    assert writer is not None

    await ws.close()

    assert not writer.ready()
