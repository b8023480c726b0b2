"""The agent's messages written straight to the tunnel's socket arrive whole and in order,
among the ones aiohttp writes, at a real WebSocket server."""

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from inference_club.agent.tunnel_writer import TunnelWriter


@pytest.fixture
async def server() -> AsyncIterator[tuple[TestServer, list[bytes]]]:
    received: list[bytes] = []

    async def tunnel(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            assert message.type is aiohttp.WSMsgType.BINARY
            received.append(message.data)
        return ws

    app = web.Application()
    app.router.add_get("/tunnel", tunnel)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    yield test_server, received
    await test_server.close()


async def test_messages_arrive_whole_and_in_order(server: tuple[TestServer, list[bytes]]) -> None:
    """Messages of every header length, written directly and through aiohttp in turn."""
    test_server, received = server
    sizes = (0, 1, 125, 126, 65535, 65536, 70001)
    messages = [bytes((index + size) % 251 for index in range(size)) for size in sizes]
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(test_server.make_url("/tunnel")) as ws,
    ):
        writer = TunnelWriter.of(ws)
        assert writer is not None  # aiohttp shows the transport its writer uses
        for number, message in enumerate(messages):
            if number % 2:
                await ws.send_bytes(message)
            else:
                assert writer.ready()
                writer.write_now(message)
        await ws.close()
        assert not writer.ready()
    for _ in range(100):
        if len(received) == len(messages):
            break
        await asyncio.sleep(0.01)

    assert received == messages
