"""One live tunnel: the handshake with the gateway, the frame loop and the streams it carries."""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

import aiohttp

from inference_club import __version__
from inference_club.agent.backend_client import BackendClient
from inference_club.agent.discovery import Catalog
from inference_club.agent.errors import TunnelRejected
from inference_club.agent.relay import StreamLimits, StreamRelay
from inference_club.agent.request_log import RequestLog
from inference_club.agent.settings import AgentSettings
from inference_club.agent.tunnel_reader import TunnelReader
from inference_club.agent.tunnel_writer import TunnelWriter
from inference_club.protocol import (
    MAX_BODY_CHUNK,
    MAX_FRAME_SIZE,
    PROTOCOL_VERSION,
    Cancel,
    CloseCode,
    End,
    Frame,
    Hello,
    ModelCard,
    Models,
    Outbox,
    Ping,
    Pong,
    ProtocolError,
    Request,
    Welcome,
    Window,
    decode,
    read_message,
)

logger = logging.getLogger(__name__)

# One frame or one batch of frames per WebSocket message; the extra bytes are the frame header.
MAX_MESSAGE = MAX_FRAME_SIZE + 5

_CLOSED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)
# Close codes after which reconnecting right away cannot help.
_REJECTIONS = {
    CloseCode.AUTHENTICATION_FAILED: (
        "the gateway rejected the provider token; check --token / INFERENCE_CLUB_TOKEN"
    ),
    CloseCode.UNSUPPORTED_VERSION: (
        f"the gateway does not speak tunnel protocol version {PROTOCOL_VERSION}; "
        "upgrade inference-club on this machine or on the gateway"
    ),
    CloseCode.REPLACED: (
        "another agent connected with the same provider token and replaced this one"
    ),
}


# A dead gateway is noticed between one and this many heartbeat silences after its last frame.
_DEADLINE_SLACK = 1.25


class TunnelSession:
    """The protocol over one connected WebSocket; ``serve`` runs until the tunnel closes."""

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        settings: AgentSettings,
        http: BackendClient,
        catalog: Callable[[], Catalog],
        request_log: RequestLog,
    ) -> None:
        self._ws = ws
        self._settings = settings
        self._http = http
        self._catalog = catalog
        # Frames of many streams sent in one loop turn leave as one message, written to the
        # socket when the turn ends, or by one writer task while the socket pushes back
        # (aiohttp's drain waiter is not for concurrent writers).
        self._outbox = Outbox(ws.send_bytes, direct=TunnelWriter.of(ws), at_turn_end=True)
        # Each open stream's relay, and its task once it has one.
        self._streams: dict[int, tuple[StreamRelay, asyncio.Task[None] | None]] = {}
        # Streams that ended before their request body did: the rest of the body is granted
        # and dropped, so a gateway still sending it is never left waiting for credit.
        self._draining: set[int] = set()
        # Streams opened by the batch being handled, whose requests may leave at its end.
        self._opened: list[StreamRelay] = []
        self._announced: tuple[ModelCard, ...] = ()
        self._request_log = request_log
        self.welcome: Welcome | None = None
        self._limits: StreamLimits | None = None
        # The gateway's messages read straight from the socket once frames are served (in
        # front of aiohttp from before the hello, to see every frame); the silence deadline
        # they move; what failed handling one, for the serving task.
        self._reader = TunnelReader.install(ws, MAX_MESSAGE)
        self._deadline: asyncio.Timeout | None = None
        self._silence = 0.0
        self._direct_failure: Exception | None = None

    async def send(self, frame: Frame) -> None:
        """Put one frame on the tunnel; safe to call from many tasks.

        Returns once the frame is queued, or once the queue is below its high-water mark.
        """
        await self._outbox.send_soon((frame,))

    async def send_many(self, frames: Sequence[Frame]) -> None:
        """Put several frames on the tunnel, in order; safe like ``send``."""
        await self._outbox.send_soon(frames)

    def try_send(self, frames: Sequence[Frame]) -> bool:
        """Queue frames, in order, unless the tunnel is backed up or gone; never waits."""
        return self._outbox.try_post(frames)

    def try_send_body(self, stream_id: int, data: bytes) -> bool:
        """``try_send`` for one body chunk, without a frame object."""
        return self._outbox.try_post_body(stream_id, data)

    def _post(self, frame: Frame) -> None:
        """Queue a reply the frame handler owes (pong, credit) without waiting or a task."""
        with contextlib.suppress(ConnectionError):  # the tunnel closed: nothing is owed
            self._outbox.post((frame,))

    async def close(self) -> None:
        """Stop sending: frames not yet written are dropped."""
        await self._outbox.close()

    async def handshake(self, cards: tuple[ModelCard, ...]) -> Welcome:
        """Say hello with the models, and wait for the gateway's welcome."""
        await self.send(
            Hello(
                PROTOCOL_VERSION,
                __version__,
                cards,
                guest_concurrency=self._settings.guest_concurrency,
            )
        )
        self._announced = cards
        message = await self._ws.receive(timeout=self._settings.connect_timeout)
        if message.type in _CLOSED:
            raise _closed_error(self._ws.close_code, "before the welcome")
        if message.type is not aiohttp.WSMsgType.BINARY:
            msg = f"expected a welcome frame, got a {message.type.name.lower()} message"
            raise ProtocolError(msg, CloseCode.PROTOCOL_ERROR)
        welcome = decode(message.data)
        if not isinstance(welcome, Welcome):
            msg = f"expected a welcome frame, got {type(welcome).__name__}"
            raise ProtocolError(msg, CloseCode.PROTOCOL_ERROR)
        if welcome.protocol_version != PROTOCOL_VERSION:
            raise TunnelRejected(
                _REJECTIONS[CloseCode.UNSUPPORTED_VERSION], CloseCode.UNSUPPORTED_VERSION
            )
        if not (
            0 < welcome.max_body_chunk <= MAX_BODY_CHUNK
            and welcome.initial_window > 0
            and welcome.heartbeat_interval > 0
        ):
            msg = "welcome frame carries impossible limits"
            raise ProtocolError(msg, CloseCode.PROTOCOL_ERROR)
        self.welcome = welcome
        self._limits = StreamLimits(welcome.max_body_chunk, welcome.initial_window)
        return welcome

    async def announce(self, cards: tuple[ModelCard, ...]) -> None:
        """Send the model list if it differs from the one the gateway has."""
        if cards == self._announced:
            return
        self._announced = cards
        await self.send(Models(cards))

    async def serve(self) -> str:
        """Handle frames until the tunnel closes; returns why it closed, for the log.

        Raises TunnelRejected when the gateway closes with a code that forbids a quick retry.
        Every stream still in flight is cancelled on the way out.
        """
        assert self.welcome is not None, "handshake() first"
        silence = self._settings.heartbeat_misses * self.welcome.heartbeat_interval
        try:
            return await self._receive(silence)
        except _GatewayClosed as closed:
            return str(closed)
        except ProtocolError as exc:
            self._stop_reading_directly()
            await self._ws.close(code=exc.code, message=exc.reason.encode())
            return f"protocol error: {exc.reason}"
        finally:
            self._stop_reading_directly()
            await self._abort_all()

    async def _receive(self, silence: float) -> str:
        """Dispatch every message until the tunnel closes or stays silent for ``silence``.

        The gateway's plain binary messages are handled as the socket reads them
        (``TunnelReader``); this task reads what aiohttp is handed (the close, anything sent
        while aiohttp still held messages) and fails with what failed handling one directly.
        """
        loop = asyncio.get_running_loop()
        self._silence = silence
        try:
            async with asyncio.timeout(silence * _DEADLINE_SLACK) as deadline:
                self._deadline = deadline
                if self._reader is not None:
                    self._reader.take(self._on_direct_message)
                while True:
                    message = await self._ws.receive()
                    self._heard(loop.time())
                    if message.type is aiohttp.WSMsgType.BINARY:
                        self._handle_message(message.data)
                    elif message.type in _CLOSED:
                        raise _closed_error(self._ws.close_code, "") from None
                    elif message.type is aiohttp.WSMsgType.ERROR:
                        if (failure := self._direct_failure) is not None:
                            raise failure
                        return f"connection error ({type(message.data).__name__})"
                    else:
                        msg = f"unexpected {message.type.name.lower()} message on the tunnel"
                        raise ProtocolError(msg, CloseCode.PROTOCOL_ERROR)
        except TimeoutError:
            self._stop_reading_directly()
            await self._ws.close(code=CloseCode.HEARTBEAT_TIMEOUT, message=b"no heartbeat")
            return f"no frame from the gateway for {silence:g} s"
        finally:
            self._deadline = None

    def _heard(self, now: float) -> None:
        """A message arrived. Moving the deadline on every message would cost more than reading
        one; it moves only once nearer than the silence, so a dead gateway is noticed between
        one silence and _DEADLINE_SLACK silences after its last message."""
        deadline = self._deadline
        if deadline is None:
            return
        when = deadline.when()
        if when is not None and when < now + self._silence and not deadline.expired():
            deadline.reschedule(now + self._silence * _DEADLINE_SLACK)

    def _handle_message(self, data: bytes) -> None:
        """Every frame of one message; all are handled before any stream task runs, so a
        request that came with its whole body sees that body complete."""
        read_message(data, self._on_body, self._dispatch)
        self._start_opened()

    def _on_direct_message(self, data: bytes) -> None:
        """A message read straight from the socket. What fails here must not reach the
        socket's callback: the serving task gets it from ``receive`` next, and fails with it
        as if it had read the message itself."""
        try:
            self._handle_message(data)
        except Exception as exc:
            self._direct_failure = exc
            reader, self._reader = self._reader, None
            if reader is not None:
                reader.fail(exc)
            return
        self._heard(asyncio.get_running_loop().time())

    def _stop_reading_directly(self) -> None:
        """From now on aiohttp reads everything: the tunnel is failing or closing."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.stop()

    def _dispatch(self, frame: Frame) -> None:
        """Handle one frame without waiting, so a slow stream never stalls the reader."""
        match frame:
            case Request():
                self._open_stream(frame)
            case End():
                if entry := self._streams.get(frame.stream_id):
                    entry[0].end_body()
                self._draining.discard(frame.stream_id)
            case Window():
                if entry := self._streams.get(frame.stream_id):
                    entry[0].send_window.grant(frame.increment)
            case Cancel():
                self._on_cancel(frame.stream_id)
            case Ping():
                self._post(Pong(frame.payload))
            case Pong():
                pass
            case _:
                msg = f"the gateway may not send a {type(frame).__name__} frame"
                raise ProtocolError(msg, CloseCode.PROTOCOL_ERROR)

    def _on_body(self, stream_id: int, data: bytes) -> None:
        if entry := self._streams.get(stream_id):
            entry[0].feed(data)
        elif stream_id in self._draining and data:
            self._post(Window(stream_id, len(data)))

    def _on_cancel(self, stream_id: int) -> None:
        self._draining.discard(stream_id)
        if entry := self._streams.pop(stream_id, None):
            _stop(*entry)

    def _open_stream(self, request: Request) -> None:
        if request.stream_id in self._streams:
            msg = f"stream {request.stream_id} opened twice"
            raise ProtocolError(msg, CloseCode.PROTOCOL_ERROR)
        assert self._limits is not None
        relay = StreamRelay(
            request,
            self._catalog().backend_for(request.model),
            http=self._http,
            send=self.send,
            send_many=self.send_many,
            limits=self._limits,
            request_log=self._request_log,
            try_send=self.try_send,
            try_send_body=self.try_send_body,
        )
        # Its task, if it needs one, starts once the batch that opened it is handled.
        self._streams[request.stream_id] = (relay, None)
        self._opened.append(relay)

    def _start_opened(self) -> None:
        """The batch is handled: each stream it opened starts, unless a frame of the batch
        cancelled it. One that came with its whole body sends its request now, before any
        task runs, and waits for a small reply without a task (see ``StreamRelay``)."""
        if not self._opened:
            return  # most messages open nothing (chunks, credit, pings)
        opened, self._opened = self._opened, []
        for relay in opened:
            if not self._holds(relay, None):
                continue
            relay.send_early()
            if not relay.answer_without_task(self._start_task, self._answered):
                self._start_task(relay)

    def _holds(self, relay: StreamRelay, task: asyncio.Task[None] | None) -> bool:
        entry = self._streams.get(relay.request.stream_id)
        return entry is not None and entry[0] is relay and entry[1] is task

    def _start_task(self, relay: StreamRelay) -> None:
        if not self._holds(relay, None):
            return
        stream_id = relay.request.stream_id
        task = asyncio.create_task(relay.run(), name=f"stream-{stream_id}")
        self._streams[stream_id] = (relay, task)
        task.add_done_callback(lambda done: self._forget(relay, done))

    def _answered(self, relay: StreamRelay) -> None:
        """A stream's reply went out without a task: the stream is over."""
        stream_id = relay.request.stream_id
        if self._holds(relay, None):
            del self._streams[stream_id]

    def _forget(self, relay: StreamRelay, task: asyncio.Task[None]) -> None:
        relay.abandon_early()
        stream_id = relay.request.stream_id
        entry = self._streams.get(stream_id)
        if entry is not None and entry[1] is task:
            del self._streams[stream_id]
            if not relay.body_ended and not self._ws.closed:
                self._draining.add(stream_id)
                if leftover := relay.ungranted():
                    self._post(Window(stream_id, leftover))
        if not task.cancelled() and (exc := task.exception()) is not None:
            # A send on a tunnel that just closed; the stream was lost with it.
            logger.debug(
                "stream ended with the tunnel", extra={"stream_id": stream_id, "error": exc}
            )

    async def _abort_all(self) -> None:
        """Cancel every backend request: a home GPU never keeps generating for nobody."""
        entries = list(self._streams.values())
        self._streams.clear()
        self._draining.clear()
        self._opened.clear()
        for relay, task in entries:
            _stop(relay, task)
        tasks = [task for _, task in entries if task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _stop(relay: StreamRelay, task: asyncio.Task[None] | None) -> None:
    """Cancel a stream, whether its task relays it or it waits for its reply without one."""
    if task is not None:
        task.cancel()
    else:
        relay.stop_answering()


class _GatewayClosed(ConnectionError):
    """The gateway closed the tunnel with a code that allows reconnecting."""


def _closed_error(code: int | None, when: str) -> Exception:
    if code is not None and code in _REJECTIONS:
        return TunnelRejected(_REJECTIONS[CloseCode(code)], code)
    suffix = f" {when}" if when else ""
    return _GatewayClosed(f"the gateway closed the connection{suffix} (code {code})")
