"""One request's stream on a provider's tunnel, as the gateway sees it."""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from inference_club.protocol import (
    MAX_BODY_CHUNK,
    Body,
    Cancel,
    End,
    Error,
    Frame,
    ReceiveWindow,
    Response,
    SendWindow,
    Window,
)


@dataclass(frozen=True, slots=True)
class StreamLost:
    """The stream ended without an End: the tunnel dropped or the client left."""

    reason: str
    by_client: bool = False


StreamEvent = Response | Body | End | Error | StreamLost
# Tuples, not unions: ``End | Error`` written in a check makes a new union object each time.
_ENDED_BY_AGENT = (End, Error)
# The events after which a stream has no more.
FINAL_EVENTS = (End, Error, StreamLost)
# How far ahead of the reader a reply read whole may run: a generated image whole, while one
# reply cannot queue tens of megabytes on the tunnel ahead of every other stream.
WIDEST_WINDOW = 8 * 1024 * 1024
FrameSender = Callable[[Frame], Awaitable[None]]
FramePoster = Callable[[Frame], None]
# Takes a body chunk as it arrives; False when it cannot now, and the chunk is queued instead.
BodySink = Callable[[bytes], bool]


class TunnelStream:
    """Events arriving for one request, plus the credits to send its body and grant the reply's."""

    __slots__ = (
        "_body_sink",
        "_buffered",
        "_ended_by_agent",
        "_events",
        "_initial_window",
        "_listener",
        "_on_close",
        "_post_frame",
        "_receive_window",
        "_send_frame",
        "_sink_before_reading",
        "_waiter",
        "_window",
        "closed",
        "max_chunk",
        "send_window",
        "stream_id",
    )

    def __init__(
        self,
        stream_id: int,
        send_frame: FrameSender,
        on_close: Callable[[int], None],
        *,
        initial_window: int,
        max_chunk: int = MAX_BODY_CHUNK,
        post_frame: FramePoster | None = None,
    ) -> None:
        self.stream_id = stream_id
        self._send_frame = send_frame
        self._post_frame = post_frame
        self._body_sink: BodySink | None = None
        self._sink_before_reading = False
        self._on_close = on_close
        # The agent may not send more than the window allows, so this queue stays bounded.
        # A deque and one waiter rather than asyncio.Queue: one reader, and every chunk of
        # every stream passes here.
        self._events: deque[StreamEvent] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._listener: Callable[[StreamEvent], None] | None = None
        self.send_window = SendWindow(initial_window)
        self._receive_window = ReceiveWindow(initial_window)
        self._initial_window = initial_window
        # What the agent may have sent and not had granted back: the window, widened once
        # for a reply read whole.
        self._window = initial_window
        self._buffered = 0
        self.max_chunk = max_chunk
        self.closed = False
        # The agent ended the stream (its end or its error) and forgot it: a cancel would be
        # a frame each way for nothing.
        self._ended_by_agent = False

    def deliver(self, event: StreamEvent) -> bool:
        """Queue an event from the tunnel; False if the peer overran this stream's window."""
        if isinstance(event, Body):
            return self.deliver_body(event.data)
        if isinstance(event, _ENDED_BY_AGENT):
            self._ended_by_agent = True
        self._push(event)
        return True

    def deliver_body(self, data: bytes) -> bool:
        """Take a body chunk from the tunnel; False if the peer overran this stream's window.

        The chunk goes to the body sink instead of the queue when one is set, the reader waits
        for its next event (so it holds no chunk of its own, and none is queued) and the sink
        takes it; its credit is then granted back at once.
        """
        sink = self._body_sink
        if (
            sink is not None
            and (self._waiter is not None or (self._sink_before_reading and not self._buffered))
            and sink(data)
        ):
            self._granted(len(data))
            return True
        self._buffered += len(data)
        if self._buffered > self._window + self.max_chunk:
            return False
        self._push(Body(self.stream_id, data))
        return True

    def _push(self, event: StreamEvent) -> None:
        self._events.append(event)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        elif self._listener is not None:
            self._listener(event)

    def listen(self, listener: Callable[[StreamEvent], None] | None) -> None:
        """Call ``listener`` with each event queued while nobody waits in ``next_event``,
        once it is queued (None: stop). It may read the events queued so far with
        ``whole_reply``."""
        self._listener = listener

    def whole_reply(self) -> tuple[Response, list[bytes]] | None:
        """The head and body chunks when the queue holds exactly a whole reply (a head, body
        chunks, the end); None otherwise. Nothing is taken: ``next_event`` still returns them.
        """
        events = self._events
        if len(events) < 2 or not isinstance(events[-1], End):
            return None
        head = events[0]
        if not isinstance(head, Response):
            return None
        chunks = []
        for index in range(1, len(events) - 1):
            event = events[index]
            if not isinstance(event, Body):
                return None
            chunks.append(event.data)
        return head, chunks

    def first_event(self) -> StreamEvent | None:
        """The event ``next_event`` would return now, without taking it."""
        return self._events[0] if self._events else None

    @property
    def buffered(self) -> int:
        """Reply body bytes queued here and not yet consumed."""
        return self._buffered

    @property
    def initial_window(self) -> int:
        """The reply's flow-control window: how much the agent sends before credit returns."""
        return self._initial_window

    async def next_event(self) -> StreamEvent:
        """The next event of this stream, in order (one reader at a time)."""
        while not self._events:
            if self._waiter is not None:
                msg = "a stream's events have one reader at a time"
                raise RuntimeError(msg)
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter:  # cancelled while waiting
                    self._waiter = None
        return self._events.popleft()

    def has_event(self) -> bool:
        """Whether ``next_event`` would return without waiting."""
        return bool(self._events)

    def with_ready_bodies(self, data: bytes) -> bytes:
        """``data`` joined with the body chunks queued right behind it (no wait)."""
        events = self._events
        if not events or not isinstance(events[0], Body):
            return data
        parts = [data]
        while events and isinstance(head := events[0], Body):
            parts.append(head.data)
            events.popleft()
        return b"".join(parts)

    def sink_bodies(self, sink: BodySink | None, *, before_reading: bool = False) -> None:
        """Hand body chunks to ``sink`` as they arrive (None: queue them again).

        Only while the reader waits for its next event, so chunks never overtake ones it
        holds; ``before_reading``: also while no chunk is queued or held at all (the reader
        has not started on the body). Needs a ``post_frame`` to grant credit without waiting;
        without one, chunks are queued.
        """
        self._body_sink = sink if self._post_frame is not None else None
        self._sink_before_reading = before_reading and self._body_sink is not None

    def _granted(self, size: int) -> None:
        increment = self._receive_window.consumed(size)
        if increment and not self.closed and self._post_frame is not None:
            self._post_frame(Window(self.stream_id, increment))

    async def widen_window(self, total: int) -> None:
        """The reply is read whole, up to ``total`` bytes, whatever the client does: let the
        agent send that much (at most ``WIDEST_WINDOW``) without waiting for credit a window
        at a time. Its bytes are held here either way; the reader enforces ``total``."""
        extra = min(total, WIDEST_WINDOW) - self._window
        if extra <= 0 or self.closed:
            return
        self._window += extra
        await self._send_frame(Window(self.stream_id, extra))

    async def consumed(self, size: int) -> None:
        """The client took ``size`` bytes of the reply; grant them back when worth a frame."""
        self._buffered -= size
        increment = self._receive_window.consumed(size)
        if increment and not self.closed:
            await self._send_frame(Window(self.stream_id, increment))

    async def send_body(self, data: bytes) -> None:
        """Send request body bytes in chunks the agent has granted credit for."""
        view = memoryview(data)
        for offset in range(0, len(view), self.max_chunk):
            chunk = bytes(view[offset : offset + self.max_chunk])
            await self.send_window.acquire(len(chunk))
            await self._send_frame(Body(self.stream_id, chunk))

    async def send_end(self) -> None:
        """The request body is complete."""
        await self._send_frame(End(self.stream_id))

    def lose(self, reason: str, *, by_client: bool = False) -> None:
        """End the stream from this side: wake the reader and fail any waiting sender."""
        if self.closed:
            return
        self._push(StreamLost(reason, by_client))
        self.send_window.close()

    async def cancel(self, reason: str, *, by_client: bool = False) -> None:
        """Abort the stream at the agent (and so at the local model server), unless the agent
        ended it already."""
        if self.closed:
            return
        self.lose(reason, by_client=by_client)
        self.close()
        if not self._ended_by_agent:
            await self._send_frame(Cancel(self.stream_id))

    def close(self) -> None:
        """Forget the stream on its connection; later frames for it are dropped."""
        if not self.closed:
            self.closed = True
            self.send_window.close()
            self._on_close(self.stream_id)
