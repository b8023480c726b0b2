"""The coalescing transport: the writes of one loop turn reach the socket as one write."""

import asyncio
import socket
import time
from typing import Any

from inference_club.gateway.coalescing import CoalescingTransport, sends_lines_whole
from inference_club.gateway.direct_body import direct_body
from tests.support.in_process import serve_in_process


class RecordingTransport(asyncio.Transport):
    """Records what reaches the socket layer."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.protocol: asyncio.BaseProtocol | None = None

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def get_write_buffer_size(self) -> int:
        return 0

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol


async def test_writes_of_one_turn_go_out_together_at_its_end() -> None:
    """Head and body written back to back become one socket write, after the turn."""
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())

    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(bytearray(b"{}"))
    assert inner.writes == []
    assert transport.get_write_buffer_size() == 21
    await asyncio.sleep(0)

    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    assert transport.get_write_buffer_size() == 0


async def test_writes_of_later_turns_are_not_held_back() -> None:
    """A write in a later turn goes out in its own turn: nothing waits for more data."""
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())

    transport.write(b"data: 1\n\n")
    await asyncio.sleep(0)
    transport.write(b"data: 2\n\n")
    await asyncio.sleep(0)

    assert inner.writes == [b"data: 1\n\n", b"data: 2\n\n"]


async def test_lines_written_now_leave_at_once_behind_what_the_turn_queued() -> None:
    """A tunnel message sent now goes out in the call that sends it, joined to the turn's
    earlier writes in their order; nothing is left for the turn's end."""
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())

    transport.writelines_now([b"head", b"-body"])
    assert inner.writes == [b"head-body"]
    transport.write(b"pong;")
    transport.writelines_now([b"next", b"-message"])
    assert inner.writes == [b"head-body", b"pong;next-message"]
    assert transport.get_write_buffer_size() == 0
    await asyncio.sleep(0)
    assert inner.writes == [b"head-body", b"pong;next-message"]

    inner.closed = True
    transport.writelines_now([b"too", b"late"])
    assert inner.writes == [b"head-body", b"pong;next-message"]


async def test_close_sends_what_is_queued_first_and_abort_drops_it() -> None:
    """close() flushes before closing; abort() discards the queue."""
    loop = asyncio.get_running_loop()
    closing_inner = RecordingTransport()
    closing = CoalescingTransport(closing_inner, loop)
    aborting_inner = RecordingTransport()
    aborting = CoalescingTransport(aborting_inner, loop)

    closing.write(b"last words")
    closing.close()
    aborting.write(b"never sent")
    aborting.abort()
    await asyncio.sleep(0)

    assert (closing_inner.writes, closing_inner.closed) == ([b"last words"], True)
    assert (aborting_inner.writes, aborting_inner.aborted) == ([], True)


async def test_nothing_is_written_to_a_transport_that_closed_meanwhile() -> None:
    """Data queued before the peer went away is dropped rather than written to a dead socket."""
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())

    transport.write(b"too late")
    inner.closed = True
    await asyncio.sleep(0)

    assert inner.writes == []


async def test_a_protocol_switch_reaches_the_real_transport() -> None:
    """The WebSocket upgrade hands the real connection to the new protocol."""
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    protocol = asyncio.Protocol()

    transport.set_protocol(protocol)

    assert inner.protocol is protocol


BUSY_AFTER_WRITING = 0.5


async def fetch_timed(app: Any, ending: bytes) -> tuple[bytes, float]:
    """Serve ``app`` on the coalescing protocol; one GET's reply up to ``ending``, and how long
    it took to arrive."""
    server, listener = await serve_in_process(app)
    port = listener.getsockname()[1]

    def fetch() -> tuple[bytes, float]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            sent = time.monotonic()
            reply = b""
            while not reply.endswith(ending):
                reply += client.recv(4096)
            return reply, time.monotonic() - sent

    try:
        return await asyncio.to_thread(fetch)
    finally:
        await server.shutdown(sockets=[listener])


async def test_a_complete_reply_leaves_before_the_work_the_app_does_after_it() -> None:
    """The app's last body message puts the reply on the socket at once, even when the app
    then keeps the event loop busy (metering) before the turn ends."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-length", b"4")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"done"})
        time.sleep(BUSY_AFTER_WRITING)  # noqa: ASYNC251 - the loop is kept busy on purpose

    reply, elapsed = await fetch_timed(app, b"done")

    assert reply.startswith(b"HTTP/1.1 200")
    assert elapsed < BUSY_AFTER_WRITING / 2


async def test_a_flushed_stream_start_leaves_before_the_turn_ends() -> None:
    """A streamed reply's head and first chunk, flushed through the request's direct writer,
    reach the client while the loop is still busy in the same turn."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        writer = direct_body(scope)
        assert writer is not None
        writer.flush()
        time.sleep(BUSY_AFTER_WRITING)  # noqa: ASYNC251 - the loop is kept busy on purpose
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    reply, elapsed = await fetch_timed(app, b"5\r\nfirst\r\n")

    assert reply.startswith(b"HTTP/1.1 200")
    assert elapsed < BUSY_AFTER_WRITING / 2


def _turn_of_large_writes(new_loop: Any) -> tuple[bytes, bytes, bool]:
    """On a loop from ``new_loop``: a turn's small and large writes through a real socket;
    what was written, what the peer read, and whether the lines were sent whole."""
    pieces = [b"head", bytes(range(256)) * 400, b"mid", bytes(range(255, -1, -1)) * 300]

    async def run() -> tuple[bytes, bool]:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        inner, _ = await loop.create_connection(asyncio.Protocol, sock=ours)
        reader, writer = await asyncio.open_connection(sock=theirs)
        transport = CoalescingTransport(inner, loop)  # type: ignore[arg-type]
        try:
            for piece in pieces:
                transport.write(piece)
            received = await asyncio.wait_for(reader.readexactly(sum(map(len, pieces))), 5)
            return received, sends_lines_whole(inner)
        finally:
            transport.abort()
            writer.close()

    loop = new_loop()
    try:
        received, whole = loop.run_until_complete(run())
    finally:
        loop.close()
    return b"".join(pieces), received, whole


def test_a_turns_large_writes_reach_the_peer_whole_and_in_order_on_every_loop() -> None:
    """A turn's writes over 16 KB go to uvloop's transport as a list it sends without
    joining (asyncio's joins them first, or misses back-pressure): on both loops the peer
    reads exactly what was written, in order."""
    import uvloop  # noqa: PLC0415 - the gateway's install has it

    for new_loop, sends_whole in ((uvloop.new_event_loop, True), (asyncio.new_event_loop, False)):
        written, received, whole = _turn_of_large_writes(new_loop)
        assert received == written
        assert whole is sends_whole
