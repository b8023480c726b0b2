"""A tunnel's messages reach the installed sink as they are read, never ahead of queued ones."""

import asyncio
import weakref
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from inference_club.gateway.coalescing import CoalescingHttpToolsProtocol, CoalescingTransport
from inference_club.gateway.direct_messages import (
    DirectMessages,
    direct_messages,
)
from inference_club.protocol.websocket_frames import frame_header
from tests.support.in_process import serve_in_process


async def _accepted(scope: Any, receive: Any, send: Any) -> DirectMessages | None:
    """Accept a WebSocket and return its direct hand-over (None for any other scope)."""
    if scope["type"] != "websocket":
        return None
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    direct = direct_messages(scope)
    assert direct is not None
    return direct


# One message of each WebSocket header length: 7-bit, 16-bit and 64-bit.
SIZES = (0, 1, 125, 126, 65535, 65536, 70001)


class OrderApp:
    """Installs a sink at once, then records what it and the ASGI queue are handed."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []
        self.direct_arrived = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        direct = await _accepted(scope, receive, send)
        if direct is None:
            return

        def sink(data: bytes) -> None:
            self.seen.append(("direct", bytes(data)))
            self.direct_arrived.set()

        direct.install(sink)
        await send({"type": "websocket.send", "bytes": b"installed"})
        for _ in range(2):
            message = await receive()
            data = message.get("bytes") or message.get("text", "").encode()
            self.seen.append(("queued", data))
        await send({"type": "websocket.send", "bytes": b"drained"})
        await asyncio.wait_for(self.direct_arrived.wait(), 5)
        await send({"type": "websocket.close", "code": 1000})


class HoldingApp:
    """Accepts, installs a sink that refers to the connection, and waits for the client to go."""

    def __init__(self) -> None:
        self.protocol: weakref.ref[Any] | None = None
        self.websocket: weakref.ref[Any] | None = None
        self.ended = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        direct = await _accepted(scope, receive, send)
        if direct is None:
            return
        self.protocol = weakref.ref(direct._protocol)
        self.websocket = weakref.ref(direct._protocol.conn)  # websockets' connection state
        direct.install(
            lambda data: direct.write_parts([data[:2], data[2:]]) if direct.ready() else None
        )
        await send({"type": "websocket.send", "bytes": b"installed"})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        self.ended.set()


class RecordingHttpProtocol(CoalescingHttpToolsProtocol):
    """The gateway's HTTP protocol, keeping a weak reference to each one made."""

    made: ClassVar[list[weakref.ref[CoalescingHttpToolsProtocol]]] = []

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        RecordingHttpProtocol.made.append(weakref.ref(self))
        super().connection_made(transport)


@pytest.fixture
async def server() -> AsyncIterator[tuple[OrderApp, int]]:
    app = OrderApp()
    running, sock = await serve_in_process(app)
    yield app, sock.getsockname()[1]
    await running.shutdown(sockets=[sock])


class RawClient:
    """A WebSocket client that decides which messages share one write to the socket."""

    def __init__(self, port: int) -> None:
        self.protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/"))
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.protocol.send_request(self.protocol.connect())
        self.flush()

    def flush(self) -> None:
        assert self.writer is not None
        # Everything queued leaves in one write, so the server reads it in one go.
        self.writer.write(b"".join(self.protocol.data_to_send()))

    async def next_frames(self, count: int) -> list[tuple[Opcode, bytes]]:
        """The next ``count`` data and control frames (the close ends the list early)."""
        assert self.reader is not None
        frames: list[tuple[Opcode, bytes]] = []
        while len(frames) < count:
            for event in self.protocol.events_received():
                if isinstance(event, Frame):
                    if event.opcode is Opcode.CLOSE:
                        return frames
                    frames.append((event.opcode, bytes(event.data)))
            if len(frames) < count:
                data = await asyncio.wait_for(self.reader.read(1 << 20), 5)
                if not data:
                    return frames
                self.protocol.receive_data(data)
        return frames

    async def next_binary(self) -> bytes | None:
        """The next binary message, or None once the server closed."""
        assert self.reader is not None
        while True:
            for event in self.protocol.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.BINARY:
                    return bytes(event.data)
                if isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                    return None
            data = await asyncio.wait_for(self.reader.read(65536), 5)
            if not data:
                return None
            self.protocol.receive_data(data)


async def test_a_message_read_behind_a_queued_one_keeps_its_place(
    server: tuple[OrderApp, int],
) -> None:
    """With a sink installed, a binary message read in the same call as a text message
    (which only ASGI carries) queues behind it; once the queue is empty, binary messages
    go to the sink."""
    app, port = server
    client = RawClient(port)
    await client.open()
    assert await client.next_binary() == b"installed"

    client.protocol.send_text(b"t1")
    client.protocol.send_binary(b"m1")
    client.flush()
    assert await client.next_binary() == b"drained"
    client.protocol.send_binary(b"m2")
    client.flush()
    assert await client.next_binary() is None

    assert app.seen == [("queued", b"t1"), ("queued", b"m1"), ("direct", b"m2")]


@pytest.mark.usefixtures("without_the_cycle_collector")
async def test_a_closed_connection_is_freed_without_the_cycle_collector() -> None:
    """A dropped connection leaves no reference cycle, so a frozen tunnel's objects go as
    soon as its task ends instead of waiting for a full collection."""
    app = HoldingApp()
    RecordingHttpProtocol.made.clear()
    running, sock = await serve_in_process(app, http=RecordingHttpProtocol)
    try:
        client = RawClient(sock.getsockname()[1])
        await client.open()
        assert await client.next_binary() == b"installed"
        assert app.protocol is not None
        assert app.websocket is not None
        assert app.protocol() is not None

        assert client.writer is not None
        client.writer.transport.abort()  # the agent's network drops: no closing handshake
        client.writer = None
        await asyncio.wait_for(app.ended.wait(), 5)
        for _ in range(5):  # the ASGI task finishes and lets go of the connection
            await asyncio.sleep(0)

        assert app.protocol() is None
        assert app.websocket() is None
        # The HTTP protocol the connection began with went at the upgrade already.
        assert [protocol() for protocol in RecordingHttpProtocol.made] == [None]
    finally:
        await running.shutdown(sockets=[sock])


async def test_binary_messages_read_from_the_socket_keep_their_order_around_a_ping() -> None:
    """Binary messages of every header length, written in one go with a ping among them,
    reach the sink whole and in order (it echoes them), and websockets still answers the
    ping; the echoes' frames are ones the client's own parser accepts."""
    app = HoldingApp()
    running, sock = await serve_in_process(app)
    try:
        client = RawClient(sock.getsockname()[1])
        client.protocol.max_message_size = None
        await client.open()
        assert await client.next_binary() == b"installed"
        messages = [bytes((size + index) % 256 for index in range(size)) for size in SIZES]

        for message in messages[:3]:
            client.protocol.send_binary(message)
        client.protocol.send_ping(b"between")
        for message in messages[3:]:
            client.protocol.send_binary(message)
        client.flush()
        frames = await client.next_frames(len(messages) + 1)

        assert [data for opcode, data in frames if opcode is Opcode.BINARY] == messages
        assert [data for opcode, data in frames if opcode is Opcode.PONG] == [b"between"]
    finally:
        await running.shutdown(sockets=[sock])


async def test_plain_binary_messages_do_not_pass_through_websockets_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once the sink is installed, plain binary messages are read from the socket's bytes;
    websockets' parser (which keeps a generator and lists per message) sees none of them."""
    app = HoldingApp()
    running, sock = await serve_in_process(app)
    try:
        client = RawClient(sock.getsockname()[1])
        await client.open()
        assert await client.next_binary() == b"installed"
        parsed: list[bytes] = []
        parse = WebSocketsSansIOProtocol.data_received

        def spy(protocol: WebSocketsSansIOProtocol, data: bytes) -> None:
            parsed.append(data)
            parse(protocol, data)

        monkeypatch.setattr(WebSocketsSansIOProtocol, "data_received", spy)

        for message in (b"one", b"two" * 100, b"three" * 20000):
            client.protocol.send_binary(message)
            client.flush()
            assert await client.next_binary() == message

        assert parsed == []
    finally:
        await running.shutdown(sockets=[sock])


class _SocketWrites(asyncio.Transport):
    """What reaches the socket layer, write by write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return False


async def test_a_message_leaves_in_the_call_that_writes_it_not_at_the_turns_end() -> None:
    """The outbox gathers a turn's later messages itself, so the gateway's coalescing
    transport sends each message it writes at once: a request reaches the agent without
    waiting for the turn's other callbacks."""
    socket_writes = _SocketWrites()
    transport = CoalescingTransport(socket_writes, asyncio.get_running_loop())
    direct = DirectMessages(SimpleNamespace(transport=transport))  # type: ignore[arg-type]

    direct.write_parts([b"head:", b"body"])

    assert socket_writes.writes == [frame_header(9) + b"head:body"]
    await asyncio.sleep(0)
    assert len(socket_writes.writes) == 1
