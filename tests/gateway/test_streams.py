"""A request's stream on the gateway: events in order, waking its reader, bounded by its window."""

import asyncio

import pytest

from inference_club.gateway.exchange import Exchange
from inference_club.gateway.forwarding import Upstream
from inference_club.gateway.relay import collect_body
from inference_club.gateway.streams import WIDEST_WINDOW, StreamLost, TunnelStream
from inference_club.protocol import Body, End, Frame, Response, Window


async def _stream(window: int = 100, *, post: bool = False) -> tuple[TunnelStream, list[Frame]]:
    sent: list[Frame] = []

    async def send(frame: Frame) -> None:
        sent.append(frame)

    stream = TunnelStream(
        1,
        send,
        lambda _id: None,
        initial_window=window,
        max_chunk=50,
        post_frame=sent.append if post else None,
    )
    return stream, sent


class Sink:
    """Takes body chunks while ``open``."""

    def __init__(self) -> None:
        self.taken: list[bytes] = []
        self.open = True

    def __call__(self, data: bytes) -> bool:
        if self.open:
            self.taken.append(data)
        return self.open


def deliver_around_a_refusal(stream: TunnelStream, sink: Sink) -> None:
    """Chunks "1", "2" and "3", the sink refusing "2"."""
    stream.deliver(Body(1, b"1"))
    sink.open = False
    stream.deliver(Body(1, b"2"))
    sink.open = True
    stream.deliver(Body(1, b"3"))


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


async def _parked(stream: TunnelStream) -> asyncio.Task[object]:
    """A reader waiting for the stream's next event."""
    reader: asyncio.Task[object] = asyncio.create_task(stream.next_event())
    await asyncio.sleep(0)
    return reader


async def test_a_body_sink_takes_chunks_while_the_reader_waits_and_grants_their_credit() -> None:
    """Chunks go to the sink without waking the reader; credit goes back in halves of the window."""
    stream, sent = await _stream(window=100, post=True)
    sink = Sink()
    stream.sink_bodies(sink)
    reader = await _parked(stream)
    for data in (b"a" * 30, b"b" * 30, b"c" * 30):
        assert stream.deliver(Body(1, data))
    assert sink.taken == [b"a" * 30, b"b" * 30, b"c" * 30]
    assert sent == [Window(1, 60)]
    # Taken chunks do not count against the window: far more than it can pass.
    for _ in range(10):
        assert stream.deliver(Body(1, b"d" * 50))
    assert not reader.done()
    stream.deliver(End(1))
    assert await asyncio.wait_for(reader, 1) == End(1)


async def test_chunks_queue_while_the_reader_holds_one_or_the_sink_refuses() -> None:
    """Order holds: a chunk the sink refused, and every chunk that follows until the reader has
    drained them and waits again, is queued for the reader."""
    stream, _ = await _stream(window=100, post=True)
    sink = Sink()
    stream.sink_bodies(sink)
    reader = await _parked(stream)
    deliver_around_a_refusal(stream, sink)
    assert sink.taken == [b"1"]
    first = await asyncio.wait_for(reader, 1)
    assert isinstance(first, Body)
    # The reader holds "2" (say, a write waiting for the client): "4" must not overtake it.
    stream.deliver(Body(1, b"4"))
    assert sink.taken == [b"1"]
    assert stream.with_ready_bodies(first.data) == b"234"
    reader = await _parked(stream)
    stream.deliver(Body(1, b"5"))
    assert sink.taken == [b"1", b"5"]
    reader.cancel()


async def test_a_sink_before_reading_takes_chunks_until_one_is_queued() -> None:
    """Before the reader starts on the body, chunks go to the sink with nobody waiting, behind
    a head the reader has yet to take; once one is queued, the rest queue behind it until the
    reader has consumed them."""
    stream, _ = await _stream(window=100, post=True)
    sink = Sink()
    stream.deliver(Response(1, 200, ()))
    stream.sink_bodies(sink, before_reading=True)
    deliver_around_a_refusal(stream, sink)
    assert sink.taken == [b"1"]

    assert await stream.next_event() == Response(1, 200, ())
    second = await stream.next_event()
    assert isinstance(second, Body)
    assert stream.with_ready_bodies(second.data) == b"23"
    stream.deliver(Body(1, b"4"))  # the reader holds "23": "4" must not overtake it
    await stream.consumed(2)
    stream.deliver(Body(1, b"5"))  # "4" waits in the queue: "5" goes behind it
    assert sink.taken == [b"1"]
    assert await stream.next_event() == Body(1, b"4")
    assert await stream.next_event() == Body(1, b"5")
    await stream.consumed(2)
    stream.deliver(Body(1, b"6"))  # nothing queued or held
    assert sink.taken == [b"1", b"6"]


async def test_without_a_sink_or_a_poster_chunks_are_queued() -> None:
    """Removing the sink queues chunks again; a stream that cannot post credit never sinks."""
    stream, _ = await _stream(window=100, post=True)
    sink = Sink()
    stream.sink_bodies(sink)
    stream.sink_bodies(None)
    reader = await _parked(stream)
    stream.deliver(Body(1, b"x"))
    assert sink.taken == []
    assert await asyncio.wait_for(reader, 1) == Body(1, b"x")
    unposted, _ = await _stream(window=100)
    unposted.sink_bodies(sink)
    reader = await _parked(unposted)
    unposted.deliver(Body(1, b"y"))
    assert sink.taken == []
    assert await asyncio.wait_for(reader, 1) == Body(1, b"y")


async def test_widening_the_window_lets_the_agent_send_up_to_the_total_at_once() -> None:
    """One Window frame grants what a reply read whole may still bring; the stream then takes
    that much unread, and no more; widening again to the same total sends nothing."""
    stream, sent = await _stream(window=100)
    await stream.widen_window(1000)
    assert sent == [Window(1, 900)]
    assert stream.deliver(Body(1, b"x" * 1000))
    assert stream.deliver(Body(1, b"x" * 50))
    assert not stream.deliver(Body(1, b"x"))

    await stream.widen_window(1000)
    await stream.widen_window(500)
    assert sent == [Window(1, 900)]


async def test_a_reply_read_whole_needs_no_grant_once_past_half_the_window() -> None:
    """An agent that sends while its credit lasts and waits for grants otherwise sends a
    reply twenty windows long: the reader widens the window at half a window, so the agent
    waits for credit once, not once a window, and every byte arrives in order."""
    stream, sent = await _stream(window=100)
    reply = bytes(range(256)) * 8  # 2,048 bytes
    credit, waits, granted = 100, 0, 0

    async def agent() -> None:
        nonlocal credit, waits, granted
        for offset in range(0, len(reply), 50):
            chunk = reply[offset : offset + 50]
            while True:
                fresh = [frame.increment for frame in sent[granted:] if isinstance(frame, Window)]
                granted = len(sent)
                credit += sum(fresh)
                if credit >= len(chunk):
                    break
                waits += 1  # out of credit: let the reader run, then look for grants
                await asyncio.sleep(0)
            credit -= len(chunk)
            assert stream.deliver(Body(1, chunk))
        stream.deliver(End(1))

    upstream = Upstream(None, stream, Response(1, 200, ()))  # type: ignore[arg-type]
    sending = asyncio.create_task(agent())
    body = await collect_body(upstream, Exchange(endpoint="images.generations"), 10_000)
    await sending

    assert body == reply
    assert waits == 1
    assert Window(1, 9_900) in sent


async def test_a_reply_within_half_the_window_widens_nothing() -> None:
    """A small reply (a chat completion) costs no extra frame."""
    stream, sent = await _stream(window=100)
    stream.deliver(Body(1, b"x" * 40))
    stream.deliver(End(1))
    upstream = Upstream(None, stream, Response(1, 200, ()))  # type: ignore[arg-type]

    assert await collect_body(upstream, Exchange(endpoint="chat.completions"), 10_000) == b"x" * 40
    assert sent == []


async def test_widening_stops_at_the_widest_window() -> None:
    """However large the reply may be, it runs at most ``WIDEST_WINDOW`` ahead of its reader,
    so one reply cannot queue tens of megabytes on the tunnel ahead of every other stream."""
    stream, sent = await _stream(window=100)
    await stream.widen_window(500 * 1024 * 1024)
    assert sent == [Window(1, WIDEST_WINDOW - 100)]
