"""A request's stream on the gateway: events in order, waking its reader, bounded by its window."""

import asyncio

import pytest

from inference_club.gateway.streams import StreamLost, TunnelStream
from inference_club.protocol import Body, End, Frame, Response


async def _stream(window: int = 100) -> tuple[TunnelStream, list[Frame]]:
    sent: list[Frame] = []

    async def send(frame: Frame) -> None:
        sent.append(frame)

    return TunnelStream(1, send, lambda _id: None, initial_window=window, max_chunk=50), sent


async def test_events_come_out_in_the_order_they_arrived() -> None:
    """Events delivered before anyone reads are read back in order."""
    stream, _ = await _stream()
    events = [Response(1, 200, ()), Body(1, b"a"), Body(1, b"b"), End(1)]
    for event in events:
        assert stream.deliver(event)

    assert [await stream.next_event() for _ in events] == events


async def test_a_waiting_reader_wakes_on_the_next_event_and_on_a_loss() -> None:
    """A reader blocked on an empty stream gets the event delivered later, then the loss."""
    stream, _ = await _stream()
    reading = asyncio.create_task(stream.next_event())
    await asyncio.sleep(0)
    assert not reading.done()

    stream.deliver(Body(1, b"x"))
    assert await asyncio.wait_for(reading, 1) == Body(1, b"x")

    reading = asyncio.create_task(stream.next_event())
    await asyncio.sleep(0)
    stream.lose("the tunnel failed")
    assert await asyncio.wait_for(reading, 1) == StreamLost("the tunnel failed")


async def test_a_cancelled_reader_leaves_the_stream_readable() -> None:
    """Cancelling a read (a timeout) does not stop the next read from getting the event."""
    stream, _ = await _stream()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(stream.next_event(), 0.01)

    stream.deliver(End(1))
    assert await asyncio.wait_for(stream.next_event(), 1) == End(1)


async def test_a_second_reader_at_once_is_refused() -> None:
    """Two readers would race for events: the second one is an error, not a silent hang."""
    stream, _ = await _stream()
    first = asyncio.create_task(stream.next_event())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await stream.next_event()
    stream.deliver(End(1))
    assert await asyncio.wait_for(first, 1) == End(1)


async def test_body_past_the_window_is_refused() -> None:
    """The agent may not send more than its window plus one chunk before the reader drains."""
    stream, _ = await _stream(window=100)
    assert stream.deliver(Body(1, b"x" * 100))
    assert stream.deliver(Body(1, b"x" * 50))
    assert not stream.deliver(Body(1, b"x"))


async def test_chunks_already_queued_are_joined_up_to_the_next_other_event() -> None:
    """A reader catching up takes every body chunk waiting behind the one it has, not the End."""
    stream, _ = await _stream()
    for event in (Body(1, b"a"), Body(1, b"b"), Body(1, b"c"), End(1)):
        stream.deliver(event)

    first = await stream.next_event()
    assert isinstance(first, Body)
    assert stream.with_ready_bodies(first.data) == b"abc"
    assert stream.with_ready_bodies(b"z") == b"z"
    assert await stream.next_event() == End(1)
