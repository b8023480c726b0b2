"""The agent's direct tunnel writer on a real aiohttp WebSocket connection, on every event loop
the agent runs on (their transports differ)."""

import asyncio
import subprocess
import sys
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

    writer.write_parts([messages[0]])
    await ws.send_bytes(b"through aiohttp")
    writer.write_parts([messages[1]])
    writer.write_parts([messages[2]])

    assert await receiver.next() == (WSMsgType.BINARY, messages[0])
    assert await receiver.next() == (WSMsgType.BINARY, b"through aiohttp")
    assert await receiver.next() == (WSMsgType.BINARY, messages[1])
    assert await receiver.next() == (WSMsgType.BINARY, messages[2])


async def test_a_message_written_in_parts_arrives_as_the_parts_joined(
    connected: tuple[aiohttp.ClientWebSocketResponse, Receiver],
) -> None:
    """A message given as parts (small ones, and large ones written without being joined)
    arrives as one binary message of the parts joined, in order with the others."""
    ws, receiver = connected
    writer = TunnelWriter.of(ws)
    assert writer is not None
    messages = [
        [b"\x12\x00\x00\x00\x01", bytes(range(256)) * 256],
        [b"\x30", b"\x00\x00\x00\x03", b"abc", bytes(range(7)) * 10000, b"tail"],
        [b"x", b"y"],
    ]

    for parts in messages:
        writer.write_parts(parts)

    for parts in messages:
        assert await receiver.next() == (WSMsgType.BINARY, b"".join(parts))


async def test_the_writer_is_not_ready_once_the_websocket_closes(
    connected: tuple[aiohttp.ClientWebSocketResponse, Receiver],
) -> None:
    """After the close no frame may follow it: the writer says it is not ready, so the outbox
    leaves the frames to aiohttp's own path, which refuses them."""
    ws, _ = connected
    writer = TunnelWriter.of(ws)
    assert writer is not None

    await ws.close()

    assert not writer.ready()


def test_the_agent_masks_its_frames_without_the_gateways_websockets_package() -> None:
    """The agent's install has no ``websockets`` (only the gateway's does): the agent still
    loads, and masks each frame's payload byte by byte with its key, as a server unmasks it."""
    probe = """
import sys
sys.modules["websockets"] = None  # as if not installed: importing it fails
import inference_club.agent.core
from inference_club.protocol.websocket_frames import frame_header, masked_frame_parts
key = bytes((1, 154, 255, 60))
for size in (0, 1, 5, 125, 126, 70001):
    payload = bytes((index * 7 + size) % 256 for index in range(size))
    expected = bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))
    header = frame_header(size, masked=True)
    assert b"".join(masked_frame_parts([payload], key)) == header + key + expected, size
    assert b"".join(masked_frame_parts([payload[:3], payload[3:]], key)) == header + key + expected
print("masked")
"""
    result = subprocess.run(  # noqa: S603 - the test's own interpreter
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "masked"
