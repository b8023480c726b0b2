"""The outbox: frames of one loop turn leave together, in order, within the size limit."""

import asyncio
from collections.abc import Sequence

import pytest

from inference_club.protocol import (
    Body,
    End,
    Outbox,
    Ping,
    Window,
    decode_message,
    encode,
    encode_body_parts,
    pack_message_parts,
)


class Socket:
    """Records messages; can block or fail writes."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.error: Exception | None = None

    async def write(self, message: bytes) -> None:
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        self.messages.append(message)


async def test_frames_sent_in_one_turn_by_many_tasks_leave_as_one_message() -> None:
    """Ten streams sending in the same turn cost one message, frames in send order."""
    socket = Socket()
    outbox = Outbox(socket.write)
    frames = [Body(stream_id, b"chunk %d" % stream_id) for stream_id in range(1, 11)]

    await asyncio.gather(*(outbox.send([frame]) for frame in frames))

    assert len(socket.messages) == 1
    assert decode_message(socket.messages[0]) == frames
    await outbox.close()


async def test_sends_in_later_turns_are_not_held_back() -> None:
    """A frame sent alone goes out alone, as itself (no batch wrapper)."""
    socket = Socket()
    outbox = Outbox(socket.write)

    await outbox.send([Ping(b"12345678")])
    await outbox.send([Window(3, 100), End(3)])

    assert socket.messages[0] == encode(Ping(b"12345678"))
    assert decode_message(socket.messages[1]) == [Window(3, 100), End(3)]
    await outbox.close()


async def test_senders_wait_while_the_socket_is_congested() -> None:
    """A send returns only once its frames are written: back-pressure reaches the sender."""
    socket = Socket()
    socket.gate.clear()
    outbox = Outbox(socket.write)

    sending = asyncio.create_task(outbox.send([End(1)]))
    await asyncio.sleep(0.05)
    assert not sending.done()
    socket.gate.set()
    await asyncio.wait_for(sending, 1)

    assert decode_message(socket.messages[0]) == [End(1)]
    await outbox.close()


async def test_a_failed_write_fails_its_senders_and_every_later_send() -> None:
    """A write that raises ends the outbox: its senders and later ones get ConnectionError."""
    socket = Socket()
    socket.error = RuntimeError("socket closed")
    outbox = Outbox(socket.write)

    with pytest.raises(ConnectionError):
        await outbox.send([End(1)])
    with pytest.raises(ConnectionError):
        await outbox.send([End(2)])
    await outbox.close()


async def test_close_fails_waiting_senders_and_stops_the_writer() -> None:
    """Closing while a send waits on a congested socket fails that send; nothing is left running."""
    socket = Socket()
    socket.gate.clear()
    outbox = Outbox(socket.write)
    sending = asyncio.create_task(outbox.send([End(1)]))
    await asyncio.sleep(0.01)
    queued = asyncio.create_task(outbox.send([End(2)]))
    await asyncio.sleep(0.01)

    await outbox.close()

    with pytest.raises(ConnectionError):
        await queued
    with pytest.raises((ConnectionError, asyncio.CancelledError)):
        await sending
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "tunnel-outbox"]


def test_packing_into_parts_makes_the_same_messages_without_copying_body_data() -> None:
    """Messages left in parts join into the same messages as the frames encoded whole, and a
    body's data is one of those parts, the very object given (not a copy of it)."""
    data = [bytes([n]) * 1000 for n in range(10)]
    encoded = [encode_body_parts(1, chunk) for chunk in data] + [encode(End(1))]
    whole = [encode(Body(1, chunk)) for chunk in data] + [encode(End(1))]

    parts = pack_message_parts(encoded, limit=3500)

    assert [b"".join(m) for m in parts] == [b"".join(m) for m in pack_message_parts(whole, 3500)]
    assert len(parts) == 4
    for chunk in data:
        assert any(part is chunk for message in parts for part in message)
    frames = [frame for message in parts for frame in decode_message(b"".join(message))]
    assert frames == [*(Body(1, chunk) for chunk in data), End(1)]


def test_packing_keeps_every_message_within_the_limit_and_the_order() -> None:
    """Frames too many for one message spill into the next; none is split or reordered."""
    frames = [Body(1, bytes([n]) * 1000) for n in range(10)]
    encoded = [encode(frame) for frame in frames]

    messages = [b"".join(parts) for parts in pack_message_parts(encoded, limit=3500)]

    assert len(messages) == 4
    assert all(len(message) <= 3500 for message in messages)
    assert [frame for message in messages for frame in decode_message(message)] == frames


def test_a_frame_alone_is_a_message_of_itself_whatever_the_limit() -> None:
    """One frame is sent as itself, not in a batch: a body as its header and its data (the
    very object given), even past the limit, which only decides how frames are grouped."""
    chunk = b"x" * 5000
    header, data = encode_body_parts(3, chunk)

    (message,) = pack_message_parts([(header, data)], limit=3500)
    (end_message,) = pack_message_parts([encode(End(3))], limit=3500)

    assert message == [header, chunk]
    assert message[1] is chunk
    assert decode_message(b"".join(message)) == [Body(3, chunk)]
    assert end_message == [encode(End(3))]


async def test_post_queues_without_waiting_even_on_a_congested_socket() -> None:
    """post() returns at once while a write is stuck; the frame follows in order later."""
    socket = Socket()
    socket.gate.clear()
    outbox = Outbox(socket.write)
    stuck = asyncio.create_task(outbox.send([End(1)]))
    await asyncio.sleep(0.01)

    outbox.post([Ping(b"87654321")])  # no await: returns at once
    assert socket.messages == []
    socket.gate.set()
    await asyncio.wait_for(stuck, 1)
    for _ in range(10):
        await asyncio.sleep(0)

    frames = [frame for message in socket.messages for frame in decode_message(message)]
    assert frames == [End(1), Ping(b"87654321")]
    await outbox.close()


async def test_send_soon_returns_before_the_write_when_the_queue_is_short() -> None:
    """Below the high-water mark a sender does not wait for the socket at all."""
    socket = Socket()
    socket.gate.clear()
    outbox = Outbox(socket.write, high_water=1000)

    await asyncio.wait_for(outbox.send_soon([Body(1, b"x" * 100)]), 1)
    await asyncio.wait_for(outbox.send_soon([End(1)]), 1)

    assert socket.messages == []
    socket.gate.set()
    await outbox.send([Ping(b"00000000")])  # written after everything before it
    frames = [frame for message in socket.messages for frame in decode_message(message)]
    assert frames == [Body(1, b"x" * 100), End(1), Ping(b"00000000")]
    await outbox.close()


async def test_send_soon_waits_once_the_queue_passes_the_high_water_mark() -> None:
    """A congested socket still pushes back: past the mark, a sender waits for the write."""
    socket = Socket()
    socket.gate.clear()
    outbox = Outbox(socket.write, high_water=1000)

    await outbox.send_soon([Body(1, b"a" * 600)])
    await asyncio.sleep(0.01)  # the writer takes it and is stuck on the socket
    await asyncio.wait_for(outbox.send_soon([Body(1, b"b" * 600)]), 1)  # below the mark
    blocked = asyncio.create_task(outbox.send_soon([Body(1, b"c" * 600)]))
    await asyncio.sleep(0.05)
    assert not blocked.done()

    socket.gate.set()
    await asyncio.wait_for(blocked, 1)
    frames = [frame for message in socket.messages for frame in decode_message(message)]
    assert frames == [Body(1, b"a" * 600), Body(1, b"b" * 600), Body(1, b"c" * 600)]
    await outbox.close()


async def test_send_soon_after_a_failed_write_raises() -> None:
    """Frames queued without waiting still learn of a dead socket at their next send."""
    socket = Socket()
    socket.error = RuntimeError("socket closed")
    outbox = Outbox(socket.write)

    await outbox.send_soon([End(1)])  # queued; the write fails later
    for _ in range(5):
        await asyncio.sleep(0)
    with pytest.raises(ConnectionError):
        await outbox.send_soon([End(2)])
    await outbox.close()


async def test_try_post_queues_below_the_mark_and_refuses_past_it_or_after_a_failure() -> None:
    """try_post never waits: it queues in order while the queue is short, refuses (queuing
    nothing) once past the high-water mark, and refuses on a failed outbox."""
    socket = Socket()
    socket.gate.clear()
    outbox = Outbox(socket.write, high_water=1000)
    assert outbox.try_post([Body(1, b"a" * 600)])
    await asyncio.sleep(0.01)  # the writer takes it and is stuck on the socket
    assert outbox.try_post([Body(1, b"b" * 600)])
    assert outbox.try_post([Body(1, b"c" * 600)])  # the queue was at 600: still below
    assert not outbox.try_post([Body(1, b"d" * 10)])  # now past the mark
    socket.gate.set()
    await outbox.send([End(1)])
    frames = [frame for message in socket.messages for frame in decode_message(message)]
    assert frames == [Body(1, b"a" * 600), Body(1, b"b" * 600), Body(1, b"c" * 600), End(1)]
    socket.error = RuntimeError("socket closed")
    await outbox.send_soon([End(2)])
    for _ in range(5):
        await asyncio.sleep(0)
    assert not outbox.try_post([End(3)])
    await outbox.close()


class DirectSocket:
    """A socket the outbox may write to without waiting, while it says it is ready."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        # Each message as the parts it was written in.
        self.parts: list[list[bytes]] = []
        self.is_ready = True
        self.error: Exception | None = None

    def ready(self) -> bool:
        return self.is_ready

    def write_parts(self, parts: Sequence[bytes]) -> None:
        if self.error is not None:
            raise self.error
        self.messages.append(b"".join(parts))
        self.parts.append(list(parts))


async def test_a_turns_first_frames_go_direct_at_once_and_the_rest_together() -> None:
    """The first frames of a turn are written in the call that queued them; the frames queued
    after them in that turn leave as one message when it ends. The writer is never used."""
    socket, direct = Socket(), DirectSocket()
    outbox = Outbox(socket.write, direct=direct)
    frames = [Body(stream_id, b"chunk %d" % stream_id) for stream_id in range(1, 6)]

    outbox.post([Ping(b"first")])
    assert [decode_message(message) for message in direct.messages] == [[Ping(b"first")]]
    for frame in frames:
        outbox.post([frame])
    await outbox.send_soon([End(1)])
    assert len(direct.messages) == 1  # gathered, not yet written: the turn has not ended
    await asyncio.sleep(0)
    assert [decode_message(message) for message in direct.messages[1:]] == [[*frames, End(1)]]

    await outbox.send([End(2)])  # a new turn: written in the call, so nothing to wait for
    assert [decode_message(message) for message in direct.messages[2:]] == [[End(2)]]
    assert socket.messages == []
    await outbox.close()


@pytest.mark.parametrize("at_turn_end", [False, True])
async def test_frames_wait_for_the_writer_while_the_direct_socket_pushes_back(
    at_turn_end: bool,
) -> None:
    """A socket that is not ready sends the frames through the writer; frames queued while
    the writer holds a batch follow it, even once the socket is ready again."""
    socket, direct = Socket(), DirectSocket()
    direct.is_ready = False
    socket.gate.clear()
    outbox = Outbox(socket.write, direct=direct, at_turn_end=at_turn_end)

    first = asyncio.create_task(outbox.send([Body(1, b"first")]))
    for _ in range(3):
        await asyncio.sleep(0)  # the writer takes the batch and waits on the socket
    direct.is_ready = True
    second = asyncio.create_task(outbox.send([Body(1, b"second")]))
    for _ in range(3):
        await asyncio.sleep(0)
    assert direct.messages == []
    socket.gate.set()
    await asyncio.gather(first, second)

    assert [decode_message(message) for message in socket.messages] == [
        [Body(1, b"first")],
        [Body(1, b"second")],
    ]
    assert direct.messages == []
    # With the writer idle again, the next turn goes direct.
    await outbox.send([End(1)])
    assert [decode_message(message) for message in direct.messages] == [[End(1)]]
    await outbox.close()


async def test_a_failed_direct_write_fails_its_senders_and_later_sends() -> None:
    """An error from the direct socket reaches the senders of that turn and every later one."""
    socket, direct = Socket(), DirectSocket()
    direct.error = OSError("connection reset")
    outbox = Outbox(socket.write, direct=direct)

    with pytest.raises(ConnectionError, match="connection reset"):
        await outbox.send([Body(1, b"lost")])
    with pytest.raises(ConnectionError):
        await outbox.send_soon([End(1)])
    assert socket.messages == []
    await outbox.close()


async def test_at_turn_end_a_turns_frames_leave_in_one_write_when_it_ends() -> None:
    """With ``at_turn_end``, nothing is written in the calls that queue frames, even the turn's
    first; all of them leave as one message once the turn ends, and a waiting sender is done
    then. The writer is never used."""
    socket, direct = Socket(), DirectSocket()
    outbox = Outbox(socket.write, direct=direct, at_turn_end=True)
    frames = [Body(stream_id, b"chunk %d" % stream_id) for stream_id in range(1, 4)]

    for frame in frames:
        assert outbox.try_post_body(frame.stream_id, frame.data)
    outbox.post([Ping(b"beat")])
    assert direct.messages == []
    await outbox.send([End(1)])  # returns once the turn's one write is done
    assert [decode_message(message) for message in direct.messages] == [
        [*frames, Ping(b"beat"), End(1)]
    ]

    outbox.post([End(2)])  # the next turn: one more write, at its end
    assert len(direct.messages) == 1
    await asyncio.sleep(0)
    assert [decode_message(message) for message in direct.messages[1:]] == [[End(2)]]
    assert socket.messages == []
    await outbox.close()


async def test_body_data_reaches_the_direct_socket_as_given_not_copied() -> None:
    """A chunk posted as a body, and one sent in a Body frame, are parts of the message the
    socket is given: the same objects, never copied next to their headers."""
    socket, direct = Socket(), DirectSocket()
    outbox = Outbox(socket.write, direct=direct, at_turn_end=True)
    posted, sent = b"p" * 60000, b"s" * 5000

    assert outbox.try_post_body(1, posted)
    await outbox.send([Body(2, sent), End(2)])

    assert [decode_message(message) for message in direct.messages] == [
        [Body(1, posted), Body(2, sent), End(2)]
    ]
    assert any(part is posted for part in direct.parts[0])
    assert any(part is sent for part in direct.parts[0])

    assert outbox.try_post_body(3, posted)  # alone in its message: sent as itself
    await outbox.send([])
    assert decode_message(direct.messages[1]) == [Body(3, posted)]
    assert any(part is posted for part in direct.parts[1])
    await outbox.close()


async def test_at_turn_end_frames_go_through_the_writer_while_the_socket_pushes_back() -> None:
    """A socket that is not ready when the turn ends hands the frames to the writer, and a
    sender waiting for them is done once the writer wrote them."""
    socket, direct = Socket(), DirectSocket()
    direct.is_ready = False
    outbox = Outbox(socket.write, direct=direct, at_turn_end=True)

    await asyncio.wait_for(outbox.send([Body(1, b"held"), End(1)]), 1)

    assert direct.messages == []
    assert [decode_message(message) for message in socket.messages] == [[Body(1, b"held"), End(1)]]
    await outbox.close()
