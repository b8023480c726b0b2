"""The agent's direct tunnel reader in front of a real aiohttp WebSocket connection, on every
event loop the agent runs on (their transports differ)."""

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import websockets
from aiohttp import WSMsgType

from inference_club.agent.tunnel_reader import TunnelReader
from inference_club.protocol.websocket_frames import frame_header

from .fakes import WAIT, wait_until

# One of each header length: 7-bit, 16-bit and 64-bit.
SIZES = (0, 1, 125, 126, 65535, 65536, 70001)
MAX_SIZE = 1 << 20

Script = Callable[[websockets.ServerConnection], Awaitable[None]]


def _payload(size: int) -> bytes:
    return bytes((index * 7 + size) % 256 for index in range(size))


def _frame(first_byte: int, payload: bytes) -> bytes:
    """A short unmasked frame as a server sends it: FIN, opcode and length, then payload."""
    assert len(payload) < 126
    return bytes((first_byte, len(payload))) + payload


BINARY, TEXT, CONTINUATION, FIN = 0x02, 0x01, 0x00, 0x80


class Scripted:
    """A WebSocket server that, once the client says ``go``, runs the test's script."""

    def __init__(self) -> None:
        self.script: Script | None = None

    async def handle(self, connection: websockets.ServerConnection) -> None:
        async for message in connection:
            if message == "go" and self.script is not None:
                await self.script(connection)


class Connected:
    """A client WebSocket with a reader in front of it, and what reached the reader's sink."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, server: Scripted) -> None:
        self.ws = ws
        self.server = server
        self.sunk: list[bytes] = []
        reader = TunnelReader.install(ws, MAX_SIZE)
        assert reader is not None
        self.reader = reader

    async def run(self, script: Script) -> None:
        self.server.script = script
        await self.ws.send_str("go")

    async def send(self, *messages: bytes | str) -> None:
        """Have the server send ``messages``, each as the websockets package sends it."""

        async def script(connection: websockets.ServerConnection) -> None:
            for message in messages:
                await connection.send(message)

        await self.run(script)

    async def send_at_once(self, *frames: bytes) -> None:
        """Have the server write ``frames`` in one write, so they are read together."""

        async def script(connection: websockets.ServerConnection) -> None:
            connection.transport.write(b"".join(frames))

        await self.run(script)

    async def failed(self, code: int) -> None:
        """The connection failed with ``code`` in aiohttp, and nothing reached the sink."""
        message = await self.receive()
        assert message.type in (WSMsgType.ERROR, WSMsgType.CLOSE, WSMsgType.CLOSED)
        assert self.ws.close_code == code
        assert self.sunk == []

    async def receive(self) -> aiohttp.WSMessage:
        return await self.ws.receive(timeout=WAIT)


@pytest.fixture
async def connected() -> AsyncIterator[Connected]:
    """A reader on a client WebSocket connected to a ``Scripted`` server (the websockets
    package's, which can send a message in fragments)."""
    server = Scripted()
    async with (
        websockets.serve(server.handle, "127.0.0.1", 0, max_size=None) as listening,
        aiohttp.ClientSession() as session,
    ):
        port = next(iter(listening.sockets)).getsockname()[1]
        ws = await session.ws_connect(f"ws://127.0.0.1:{port}/", max_msg_size=MAX_SIZE)
        connected = Connected(ws, server)
        connected.reader.take(connected.sunk.append)
        yield connected
        await ws.close()


async def test_binary_messages_of_every_length_reach_the_sink_whole_and_in_order(
    connected: Connected,
) -> None:
    """Each binary message is handed to the sink as it is read, and aiohttp is left nothing:
    the text message after them is the first thing ``receive`` gets."""
    payloads = [_payload(size) for size in SIZES]

    await connected.send(*payloads, "after")

    message = await connected.receive()
    assert (message.type, message.data) == (WSMsgType.TEXT, "after")
    assert connected.sunk == payloads


async def test_what_follows_a_message_aiohttp_holds_waits_behind_it(
    connected: Connected,
) -> None:
    """A text message goes to aiohttp; binary messages read while aiohttp still holds it go
    there too, so ``receive`` gets them in order after it; once aiohttp is read empty, the
    next binary message goes to the sink again."""
    await connected.send_at_once(
        _frame(FIN | BINARY, b"first"),
        _frame(FIN | TEXT, b"text"),
        _frame(FIN | BINARY, b"second"),
        _frame(FIN | BINARY, b"third"),
    )

    message = await connected.receive()
    assert (message.type, message.data) == (WSMsgType.TEXT, "text")
    for expected in (b"second", b"third"):
        message = await connected.receive()
        assert (message.type, message.data) == (WSMsgType.BINARY, expected)
    assert connected.sunk == [b"first"]

    await connected.send(b"fourth")
    await wait_until(lambda: connected.sunk == [b"first", b"fourth"])


async def test_a_message_in_fragments_is_read_whole_by_aiohttp(connected: Connected) -> None:
    """A fragmented message (continuation frames) is aiohttp's to join, and the message right
    behind it waits behind it there; a later one goes to the sink."""
    await connected.send_at_once(
        _frame(BINARY, b"frag"),
        _frame(CONTINUATION, b"men"),
        _frame(FIN | CONTINUATION, b"ted"),
        _frame(FIN | BINARY, b"whole"),
    )

    for expected in (b"fragmented", b"whole"):
        message = await connected.receive()
        assert (message.type, message.data) == (WSMsgType.BINARY, expected)

    await connected.send(b"later")
    await wait_until(lambda: connected.sunk == [b"later"])


async def test_a_binary_frame_inside_a_fragmented_message_is_aiohttp_s_to_refuse(
    connected: Connected,
) -> None:
    """A whole binary frame between a message's fragments breaks the protocol: it goes to
    aiohttp, which fails the connection, instead of to the sink."""
    await connected.send_at_once(_frame(BINARY, b"begun"), _frame(FIN | BINARY, b"intruder"))

    await connected.failed(aiohttp.WSCloseCode.PROTOCOL_ERROR)


async def test_a_message_over_the_limit_is_refused_by_aiohttp(connected: Connected) -> None:
    """A frame over the size limit is not held here: aiohttp gets it and fails the
    connection as it would without the reader, and the sink gets nothing more."""
    await connected.send(b"x" * MAX_SIZE, b"after")  # aiohttp takes less than its limit

    await connected.failed(aiohttp.WSCloseCode.MESSAGE_TOO_BIG)


async def test_a_close_from_the_server_reaches_aiohttp(connected: Connected) -> None:
    """The server's close frame, and the connection's end, are aiohttp's as before."""

    async def script(connection: websockets.ServerConnection) -> None:
        await connection.send(b"last")
        await connection.close(code=4001, reason="done")

    await connected.run(script)

    message = await connected.receive()
    assert message.type is WSMsgType.CLOSE
    assert connected.ws.close_code == 4001
    assert connected.sunk == [b"last"]


async def test_once_stopped_everything_goes_to_aiohttp(connected: Connected) -> None:
    """After ``stop`` the reader only passes bytes on."""
    connected.reader.stop()

    await connected.send(b"read by aiohttp")

    message = await connected.receive()
    assert (message.type, message.data) == (WSMsgType.BINARY, b"read by aiohttp")
    assert connected.sunk == []


class _Inner(asyncio.Protocol):
    """Records what a reader hands on: every call's bytes."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        self.calls.append(data)


class _IdleQueue:
    """What the reader checks of aiohttp's queue: here, always empty."""

    _buffer: deque[object] = deque()
    _stalled_reader = None

    def is_eof(self) -> bool:
        return False

    def exception(self) -> None:
        return None


def test_frames_split_anywhere_come_out_whole() -> None:
    """Fed one byte at a time, binary frames of every header length reach the sink, and a
    text frame among them reaches aiohttp in one piece, each once whole."""
    payloads = [_payload(size) for size in SIZES]
    text = _frame(FIN | TEXT, b"text")
    wire = b"".join(frame_header(len(payload)) + payload for payload in payloads[:3])
    wire += text
    wire += b"".join(frame_header(len(payload)) + payload for payload in payloads[3:])
    inner = _Inner()
    sunk: list[bytes] = []
    reader = TunnelReader(inner, _IdleQueue(), MAX_SIZE)
    reader.take(sunk.append)

    for index in range(len(wire)):
        reader.data_received(wire[index : index + 1])

    assert sunk == payloads
    assert inner.calls == [text]


def test_frames_aiohttp_gets_together_go_in_one_call() -> None:
    """Frames not taken that come one after another are handed to aiohttp at once, not one
    call each (each call makes a parked aiohttp parser copy its backlog again)."""
    texts = [_frame(FIN | TEXT, b"one"), _frame(FIN | TEXT, b"two")]
    binary = _frame(FIN | BINARY, b"taken")
    last = _frame(FIN | TEXT, b"three")
    inner = _Inner()
    sunk: list[bytes] = []
    reader = TunnelReader(inner, _IdleQueue(), MAX_SIZE)
    reader.take(sunk.append)

    reader.data_received(b"".join((*texts, binary, last)))

    assert inner.calls == [b"".join(texts), last]
    assert sunk == [b"taken"]


def test_nothing_is_taken_before_take_but_frames_are_followed() -> None:
    """Before ``take`` every frame goes to aiohttp whole, however the bytes are split, so the
    reader knows where each frame ends when it starts taking."""
    inner = _Inner()
    reader = TunnelReader(inner, _IdleQueue(), MAX_SIZE)
    first = frame_header(300) + _payload(300)
    wire = first + _frame(FIN | BINARY, b"second")

    reader.data_received(wire[:100])
    reader.data_received(wire[100:])
    sunk: list[bytes] = []
    reader.take(sunk.append)
    reader.data_received(_frame(FIN | BINARY, b"third"))

    assert inner.calls == [wire]
    assert sunk == [b"third"]


async def test_nothing_after_a_failed_frame_is_taken(connected: Connected) -> None:
    """A frame aiohttp refuses (a reserved opcode) fails the connection there; a binary
    message right behind it is not handled as if nothing happened."""
    await connected.send_at_once(_frame(FIN | 0x03, b"reserved"), _frame(FIN | BINARY, b"after"))

    await connected.failed(aiohttp.WSCloseCode.PROTOCOL_ERROR)


async def test_nothing_after_a_close_is_taken(connected: Connected) -> None:
    """Once the server's close frame went to aiohttp, a binary frame behind it is not taken."""
    close = _frame(FIN | 0x08, (4001).to_bytes(2, "big") + b"bye")

    await connected.send_at_once(close, _frame(FIN | BINARY, b"after"))

    message = await connected.receive()
    assert message.type is WSMsgType.CLOSE
    assert connected.ws.close_code == 4001
    assert connected.sunk == []


async def test_a_ping_between_fragments_leaves_the_message_whole(connected: Connected) -> None:
    """A control frame may come between a message's fragments (RFC 6455, 5.4): aiohttp
    answers it, the message is still aiohttp's to join, and the reader takes the next one."""
    await connected.send_at_once(
        _frame(BINARY, b"frag"),
        _frame(FIN | 0x09, b"ping"),
        _frame(FIN | CONTINUATION, b"ment"),
    )

    message = await connected.receive()
    assert (message.type, message.data) == (WSMsgType.BINARY, b"fragment")

    await connected.send(b"later")
    await wait_until(lambda: connected.sunk == [b"later"])


async def test_a_failure_reaches_receive_as_an_error_carrying_it(connected: Connected) -> None:
    """``fail`` stops the reader and makes ``receive`` return the failure next, without
    cancelling it (which would mark the connection as abnormally closed)."""
    failure = ValueError("could not handle a message")
    connected.reader.fail(failure)

    message = await connected.receive()

    assert message.type is WSMsgType.ERROR
    assert message.data is failure
    assert connected.ws.close_code is None

    await connected.send(b"read by aiohttp")
    message = await connected.receive()
    assert (message.type, message.data) == (WSMsgType.BINARY, b"read by aiohttp")
    assert connected.sunk == []
