"""A connected provider: its tunnel, the models it announced and the streams open on it."""

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from inference_club.gateway.streams import TunnelStream
from inference_club.protocol import (
    DEFAULT_INITIAL_WINDOW,
    MAX_BODY_CHUNK,
    MAX_STREAM_ID,
    CloseCode,
    DirectWriter,
    End,
    Error,
    Frame,
    ModelCard,
    Models,
    Outbox,
    Ping,
    Pong,
    ProtocolError,
    Response,
    Window,
    read_message,
)

logger = logging.getLogger(__name__)

SendBytes = Callable[[bytes], Awaitable[None]]
CloseSocket = Callable[[int, str], Awaitable[None]]


class ProviderConnection:
    """The gateway's end of one agent's tunnel."""

    def __init__(
        self,
        *,
        provider_id: int,
        provider_name: str,
        owner_id: int,
        models: tuple[ModelCard, ...],
        send_bytes: SendBytes,
        close_socket: CloseSocket,
        initial_window: int = DEFAULT_INITIAL_WINDOW,
        guest_concurrency: int | None = None,
        direct: DirectWriter | None = None,
    ) -> None:
        self.provider_id = provider_id
        self.provider_name = provider_name
        self.owner_id = owner_id
        self.models: dict[str, ModelCard] = {card.id: card for card in models}
        self.in_flight = 0
        # Admission's counters: requests holding a slot, per model and from guests.
        self.active: dict[str, int] = {}
        self.guest_active = 0
        self.guest_concurrency = guest_concurrency
        self.initial_window = initial_window
        self.last_received = time.monotonic()
        self.connected_at = int(time.time())
        self.closed = False
        self.close_reason = ""
        self._send_bytes = send_bytes
        self._close_socket = close_socket
        self._streams: dict[int, TunnelStream] = {}
        self._next_stream_id = 1
        # Frames of many streams sent in one loop turn leave as one message.
        self._outbox = Outbox(send_bytes, direct=direct)
        # Called with the new model list whenever the agent announces one.
        self.on_models: Callable[[ProviderConnection], None] = lambda _conn: None
        # Called once, the moment the tunnel is known closed or lost.
        self.on_closed: Callable[[ProviderConnection], None] = lambda _conn: None

    @property
    def capacity(self) -> int:
        """How many requests this provider takes at once, over all its models."""
        return max(1, sum(card.max_concurrency for card in self.models.values()))

    async def send(self, frame: Frame) -> None:
        """Send one frame; a closed tunnel makes this a no-op rather than an error."""
        await self.send_many((frame,))

    async def send_many(self, frames: Sequence[Frame]) -> None:
        """Send frames in order, batched with others sent in the same loop turn.

        Returns once they are queued, or once the queue is below its high-water mark.
        """
        if self.closed:
            return
        try:
            await self._outbox.send_soon(frames)
        except ConnectionError:
            self._lost_socket()

    def try_send_many(self, frames: Sequence[Frame]) -> bool:
        """Queue frames like ``send_many`` if that would not wait; False, with nothing queued,
        when the tunnel is closed, failed or over its high-water mark."""
        return not self.closed and self._outbox.try_post(frames)

    def _post(self, frame: Frame) -> None:
        """Queue a frame without waiting (pings, pongs): a slow tunnel holds up nobody."""
        try:
            self._outbox.post((frame,))
        except ConnectionError:
            self._lost_socket()

    def _lost_socket(self) -> None:
        # The socket is gone: every stream on it learns so now, not at its next read.
        self.fail_streams("the tunnel to the provider failed")

    def open_stream(self) -> TunnelStream:
        """Allocate a stream id for a new request."""
        stream_id = self._next_stream_id
        while stream_id in self._streams:
            stream_id = stream_id % MAX_STREAM_ID + 1
        self._next_stream_id = stream_id % MAX_STREAM_ID + 1
        stream = TunnelStream(
            stream_id,
            self.send,
            self._forget,
            initial_window=self.initial_window,
            max_chunk=MAX_BODY_CHUNK,
            post_frame=self._post,
        )
        self._streams[stream_id] = stream
        self.in_flight += 1
        return stream

    def _forget(self, stream_id: int) -> None:
        if self._streams.pop(stream_id, None) is not None:
            self.in_flight -= 1

    async def cancel(self, stream: TunnelStream) -> None:
        """Abort a stream at the agent (and so at the local model server)."""
        await stream.cancel("cancelled by the gateway")

    def handle_message(self, data: bytes) -> None:
        """Dispatch one message from the agent without waiting; protocol violations raise
        ProtocolError."""
        self.last_received = time.monotonic()
        read_message(data, self._on_body, self._dispatch)

    def _on_body(self, stream_id: int, data: bytes) -> None:
        stream = self._streams.get(stream_id)
        # Frames for a stream we already closed (cancel raced the reply) are dropped.
        if stream is not None and not stream.deliver_body(data):
            msg = f"stream {stream_id} overran its flow-control window"
            raise ProtocolError(msg)

    def _dispatch(self, frame: Frame) -> None:
        match frame:
            case Response() | End() | Error():
                # Only body chunks count against the window (``_on_body``).
                stream = self._streams.get(frame.stream_id)
                if stream is not None:
                    stream.deliver(frame)
            case Window():
                stream = self._streams.get(frame.stream_id)
                if stream is not None:
                    stream.send_window.grant(frame.increment)
            case Models():
                self.models = {card.id: card for card in frame.models}
                self.on_models(self)
            case Ping():
                self._post(Pong(frame.payload))
            case Pong():
                pass
            case _:
                msg = f"an agent may not send {type(frame).__name__.lower()} frames"
                raise ProtocolError(msg)

    async def heartbeat_once(self, now: float, interval: float) -> None:
        """Close the tunnel if the agent was silent for three intervals, else ping it."""
        if self.closed:
            return
        if now - self.last_received > 3 * interval:
            await self.close(CloseCode.HEARTBEAT_TIMEOUT, "no heartbeat from the agent")
            return
        # Queued without waiting: a tunnel slow to drain must not stall the heartbeat round.
        self._post(Ping(int(now * 1000).to_bytes(8, "big")))

    async def close(self, code: int, reason: str) -> None:
        """Close the tunnel and fail every open stream at once."""
        if self.closed:
            return
        self.close_reason = reason
        self.fail_streams(reason)
        await self._outbox.close()
        try:
            await self._close_socket(code, reason)
        except Exception:
            logger.debug("close on a dead socket", extra={"provider": self.provider_name})

    def fail_streams(self, reason: str) -> None:
        """Wake every open stream with a loss (the tunnel is gone)."""
        was_open, self.closed = not self.closed, True
        for stream in list(self._streams.values()):
            stream.lose(reason)
        if was_open:
            self.on_closed(self)
