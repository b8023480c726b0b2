"""One request stream: the gateway's frames in, an HTTP request to a local server, frames back."""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from inference_club.agent.backend_client import (
    BackendClient,
    BackendError,
    BackendResponse,
    PendingResponse,
    RequestBody,
)
from inference_club.agent.headers import request_headers, response_headers
from inference_club.agent.images import MAX_IMAGE_REPLY, carries_image_urls, inline_image_urls
from inference_club.agent.request_log import RequestLog
from inference_club.agent.settings import BackendSettings
from inference_club.protocol import (
    BACKEND_TIMEOUT,
    Body,
    CloseCode,
    End,
    Error,
    Frame,
    ProtocolError,
    ReceiveWindow,
    Request,
    Response,
    SendWindow,
    Window,
)

logger = logging.getLogger(__name__)

SendFrame = Callable[[Frame], Awaitable[None]]
SendFrames = Callable[[Sequence[Frame]], Awaitable[None]]
# Queues frames, in order, unless the tunnel is backed up; never waits.
TrySendFrames = Callable[[Sequence[Frame]], bool]
# The same for one body chunk of a stream, without a frame object.
TrySendBody = Callable[[int, bytes], bool]

_EVENT_STREAM = "text/event-stream"
# A stream's head that arrives this close to its deadline is left for the task to send.
_DEADLINE_MARGIN = 1.0


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """The per-connection limits the gateway set in its welcome."""

    max_body_chunk: int
    initial_window: int


class StreamRelay:
    """Relays one stream; the tunnel feeds it the gateway's body, end and window frames.

    ``run`` relays it in a task of its own. A request that ``send_early`` sent needs no task
    while it waits: ``answer_without_task`` relays a small whole reply from the callback that
    sees it arrive, and hands anything else (a stream, a failure, the deadline) to ``run``.
    A request for an event stream has its task waiting, but its reply's head and first
    events still leave from the callback that reads them; the task goes on from there.
    """

    def __init__(
        self,
        request: Request,
        backend: BackendSettings | None,
        *,
        http: BackendClient,
        send: SendFrame,
        send_many: SendFrames,
        limits: StreamLimits,
        request_log: RequestLog | None = None,
        try_send: TrySendFrames | None = None,
        try_send_body: TrySendBody | None = None,
    ) -> None:
        self.request = request
        self._started = time.monotonic()
        # The response head is due by then; relative to the loop's clock, like its timeouts.
        self._deadline = asyncio.get_running_loop().time() + request.timeout
        self.send_window = SendWindow(limits.initial_window)
        self._backend = backend
        self._http = http
        self._send = send
        self._send_many = send_many
        self._try_send = try_send
        self._try_send_body = try_send_body
        self._limits = limits
        # The largest body frame this stream sends: a chunk, and never more than the window.
        self._largest_piece = min(limits.max_body_chunk, limits.initial_window)
        self._request_log = request_log
        # The request body as it arrives, None after its last chunk; bounded by the window.
        # A deque and one waiter rather than asyncio.Queue: one reader, and every stream has one.
        self._body: deque[bytes | None] = deque()
        self._body_waiter: asyncio.Future[None] | None = None
        self._buffered = 0
        self._body_ended = False
        self._receive_window = ReceiveWindow(limits.initial_window)
        self._status: int | None = None
        self._bytes_in = 0
        self._bytes_out = 0
        self._received = 0
        self._granted = 0
        # What ``send_early`` took: the whole body, and the request if it could be sent.
        self._early = False
        self._early_body: bytes | None = None
        self._pending: PendingResponse | None = None
        # While answering without a task: how to hand over to one, and the deadline's timer.
        self._answering = False
        # Called with this relay, never bound to it: a relay must not refer to itself, or
        # each one would wait for the cycle collector to be freed.
        self._start_task: Callable[[StreamRelay], None] | None = None
        self._on_answered: Callable[[StreamRelay], None] | None = None
        self._deadline_timer: asyncio.TimerHandle | None = None
        # Whether a stream's head went to the gateway from the call that read it.
        self._head_sent = False

    def feed(self, data: bytes) -> None:
        """Queue one request body chunk; the gateway may never exceed the window it was given."""
        if self._body_ended:
            return
        self._received += len(data)
        self._buffered += len(data)
        if self._buffered > self._limits.initial_window:
            msg = f"stream {self.request.stream_id}: request body overran its flow-control window"
            raise ProtocolError(msg, CloseCode.PROTOCOL_ERROR)
        if data:
            self._put_body(data)

    @property
    def body_ended(self) -> bool:
        """Whether the gateway has sent the End of the request body."""
        return self._body_ended

    def ungranted(self) -> int:
        """Request body bytes received but not yet granted back to the gateway."""
        return self._received - self._granted

    def end_body(self) -> None:
        """The gateway sent the whole request body."""
        if not self._body_ended:
            self._body_ended = True
            self._put_body(None)

    def _put_body(self, piece: bytes | None) -> None:
        self._body.append(piece)
        waiter, self._body_waiter = self._body_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _next_body_piece(self) -> bytes | None:
        """The next request body chunk, waiting for it; None once the body ended."""
        while not self._body:
            waiter = self._body_waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._body_waiter = None
        return self._body.popleft()

    async def run(self) -> None:
        """Relay the request and its response, then log one line about it."""
        outcome = "aborted"  # the tunnel went away under the stream
        try:
            outcome = await self._relay()
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except ConnectionError:
            raise  # the tunnel went away under the stream: nobody is left to tell
        except Exception:
            logger.exception("relaying failed", extra={"stream_id": self.request.stream_id})
            outcome = "agent_error"
            with contextlib.suppress(ConnectionError):
                await self._fail("agent_error", "the agent failed to relay this request")
        finally:
            self._end(outcome)

    def _end(self, outcome: str) -> None:
        """The stream is over: no more credit to wait for, and its line is logged."""
        self.send_window.close()
        request_log = self._request_log
        # Checked first: building the line's fields costs more than the check.
        if request_log is not None and request_log.enabled():
            request_log.add(self._log_fields(outcome, time.monotonic() - self._started))

    def _log_fields(self, outcome: str, seconds: float) -> dict[str, object]:
        request = self.request
        return {
            "stream_id": request.stream_id,
            "model": request.model,
            "method": request.method,
            "path": request.path,
            "status": self._status,
            "outcome": outcome,
            "duration_ms": round(seconds * 1000),
            "bytes_in": self._bytes_in,
            "bytes_out": self._bytes_out,
        }

    async def _relay(self) -> str:
        backend = self._backend
        if backend is None:
            message = f"no local server serves model {self.request.model!r}"
            return await self._fail("unknown_model", message)
        try:
            async with asyncio.timeout_at(self._deadline):
                response = await self._open(backend)
        except TimeoutError:
            message = f"the model server did not answer within {self.request.timeout:g} s"
            return await self._fail(BACKEND_TIMEOUT, message)
        except (BackendError, OSError) as exc:
            message = f"cannot reach the model server ({_describe(exc)})"
            return await self._fail("backend_unreachable", message)
        outcome = "aborted"
        try:
            self._status = response.status
            content_type = response.header("content-type") or ""
            if carries_image_urls(self.request.path, response.status, content_type):
                outcome = await self._relay_inlined(response, backend)
            elif self._fits_one_message(response, content_type):
                outcome = await self._relay_whole(response)
            else:
                outcome = await self._relay_streamed(response)
        finally:
            if outcome == "ok":
                response.release()
            else:
                # Closing rather than releasing drops the TCP connection, so the model server
                # sees its client go away (cancel, dropped tunnel) and stops generating.
                response.close()
        return outcome

    def _fits_one_message(self, response: BackendResponse, content_type: str) -> bool:
        """A small reply of known length; never an event stream, whose events cannot wait."""
        length = response.content_length
        return (
            length is not None
            and length <= min(self._limits.max_body_chunk, self.send_window.credit)
            and not content_type.lower().startswith(_EVENT_STREAM)
        )

    async def _relay_whole(self, response: BackendResponse) -> str:
        """A small reply read whole and sent with its head and end in one message."""
        try:
            body = await response.read_all()
        except (BackendError, OSError) as exc:
            message = f"the model server dropped the response midway ({_describe(exc)})"
            return await self._fail("backend_disconnected", message)
        await self._send_whole(response, body)
        return "ok"

    async def _relay_streamed(self, response: BackendResponse) -> str:
        """Each piece of the reply goes to the gateway as soon as the backend wrote it.

        While the window has credit and the tunnel is not backed up, a piece is queued on the
        tunnel as the backend connection receives it, without waking this task.
        """
        stream_id = self.request.stream_id
        if not self._head_sent:  # else sent, and the sink set, as the head arrived
            head = Response(stream_id, response.status, response_headers(response.headers))
            await self._send(head)
            if self._try_send_body is not None:
                response.sink_body(self._sink_body)
        try:
            while True:
                try:
                    chunk = await response.read_chunk()
                except (BackendError, OSError) as exc:
                    message = f"the model server dropped the response midway ({_describe(exc)})"
                    return await self._fail("backend_disconnected", message)
                if not chunk:
                    break
                await self._send_body(chunk)
        finally:
            response.sink_body(None)
        await self._send(End(stream_id))
        return "ok"

    def _sink_body(self, chunk: bytes) -> bool:
        """Queue ``chunk`` on the tunnel now if it fits the window in one frame."""
        size = len(chunk)
        if size > self._largest_piece:
            return False
        if not self.send_window.try_spend(size):
            return False
        assert self._try_send_body is not None  # only installed with one
        if not self._try_send_body(self.request.stream_id, chunk):
            self.send_window.grant(size)  # not sent: the credit is still ours
            return False
        self._bytes_out += size
        return True

    async def _relay_inlined(self, response: BackendResponse, backend: BackendSettings) -> str:
        """An image reply, read whole so images the backend only links to go inline."""
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := await response.read_chunk():
                size += len(chunk)
                if size > MAX_IMAGE_REPLY:
                    message = "the image reply is too large to relay"
                    return await self._fail("backend_too_large", message)
                chunks.append(chunk)
        except (BackendError, OSError) as exc:
            message = f"the model server dropped the response midway ({_describe(exc)})"
            return await self._fail("backend_disconnected", message)
        body = b"".join(chunks)
        body = await inline_image_urls(body, backend, self._http, self.request.timeout)
        await self._send_whole(response, body)
        return "ok"

    async def _send_whole(self, response: BackendResponse, body: bytes) -> None:
        """Head, body and end of a reply read whole: one message when the window allows."""
        if len(body) > min(self._limits.max_body_chunk, self.send_window.credit):
            stream_id = self.request.stream_id
            head = Response(stream_id, response.status, response_headers(response.headers))
            await self._send(head)
            await self._send_body(body)
            await self._send(End(stream_id))
            return
        if body:
            await self.send_window.acquire(len(body))  # the credit is there: no wait
        await self._send_many(self._whole_frames(response, body))
        self._bytes_out += len(body)

    def _whole_frames(self, response: BackendResponse, body: bytes) -> list[Frame]:
        stream_id = self.request.stream_id
        frames: list[Frame] = [
            Response(stream_id, response.status, response_headers(response.headers))
        ]
        if body:
            frames.append(Body(stream_id, body))
        frames.append(End(stream_id))
        return frames

    def send_early(self) -> None:
        """Send the request from the frame handler, when its whole body came with it and a
        connection to the model server is idle: it leaves a loop turn before this stream's
        task first runs. Otherwise the task sends it, as always."""
        backend = self._backend
        if backend is None or not self._body_ended or self._early:
            return
        first = self._body.popleft()
        self._early = True
        self._early_body = body = None if first is None else self._whole_body(first)
        request = self.request
        headers = request_headers(request.headers, backend)
        # A request that cannot be sent fails the same way in the task, which reports it.
        with contextlib.suppress(Exception):
            self._pending = self._http.send_now(request.method, self._url(backend), headers, body)
        if self._pending is not None and self._asks_for_a_stream():
            self._pending.when_head(self._stream_head_arrived)

    def _stream_head_arrived(self, response: BackendResponse) -> None:
        """The head of a reply to a request that asked for a stream: when it is an event
        stream, it goes to the gateway now, and the body after it as it arrives, rather than
        once the stream's task has run. Anything else waits for the task, as does a head that
        comes near the deadline (whose timer may end the task before it sees the head)."""
        if self._head_sent or self._try_send is None or self._try_send_body is None:
            return
        if asyncio.get_running_loop().time() > self._deadline - _DEADLINE_MARGIN:
            return
        content_type = response.header("content-type") or ""
        if not content_type.lower().startswith(_EVENT_STREAM) or carries_image_urls(
            self.request.path, response.status, content_type
        ):
            return
        head = Response(self.request.stream_id, response.status, response_headers(response.headers))
        if not self._try_send((head,)):
            return
        self._head_sent = True
        self._status = response.status
        response.sink_body(self._sink_body, before_reading=True)

    def answer_without_task(
        self,
        start_task: Callable[["StreamRelay"], None],
        answered: Callable[["StreamRelay"], None],
    ) -> bool:
        """Wait for the reply to the request ``send_early`` sent without a task of its own.

        A small reply that arrives whole goes to the gateway from the callback that sees it,
        with no task for the stream. ``start_task`` is called instead for anything else: a
        reply to stream or too large for one message, an image reply, a failed exchange, a
        tunnel that pushes back, or no head by the deadline. Its ``run`` takes over from there.
        ``answered`` is called once the reply went out without it. Both are called with this
        relay.

        False, with nothing done, when no request was sent early, or when the request asks for
        an event stream: its task should be waiting already when the head arrives.
        """
        pending = self._pending
        if pending is None or self._start_task is not None or self._asks_for_a_stream():
            return False
        self._answering = True
        self._start_task = start_task
        self._on_answered = answered
        loop = asyncio.get_running_loop()
        self._deadline_timer = loop.call_at(self._deadline, self._hand_to_task)
        pending.when_answered(self._answered)
        return True

    def _asks_for_a_stream(self) -> bool:
        """Whether the client asked for an event stream: its reply is relayed by the task,
        which then waits for the head already, rather than starts once the head arrived."""
        for name, value in self.request.headers:
            if name.lower() == "accept" and _EVENT_STREAM in value.lower():
                return True
        return False

    @property
    def answering(self) -> bool:
        """Whether the stream waits for its reply without a task (see ``answer_without_task``)."""
        return self._answering

    def stop_answering(self) -> None:
        """The stream was cancelled, or its tunnel dropped, while waiting without a task: hang
        up, so the model server stops working on it."""
        if self._stop_waiting():
            self.abandon_early()
            self._end("cancelled")

    def _stop_waiting(self) -> bool:
        if not self._answering:
            return False
        self._answering = False
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        return True

    def _hand_to_task(self) -> None:
        if self._stop_waiting():
            assert self._start_task is not None
            self._start_task(self)

    def _answered(self) -> None:
        if not self._answering:
            return  # handed over or cancelled meanwhile
        pending = self._pending
        response = pending.answered() if pending is not None else None
        if response is None or not self._relay_answered(response):
            self._hand_to_task()

    def _relay_answered(self, response: BackendResponse) -> bool:
        """Send a small reply that came whole, now; False when it needs the task (which also
        reports anything that went wrong here: nothing was sent then)."""
        try:
            content_type = response.header("content-type") or ""
            if (
                not response.complete
                or carries_image_urls(self.request.path, response.status, content_type)
                or not self._fits_one_message(response, content_type)
                or self._try_send is None
            ):
                return False
            body = response.body()
            frames = self._whole_frames(response, body)
        except Exception:
            return False
        size = len(body)
        if size and not self.send_window.try_spend(size):
            return False
        if not self._try_send(frames):
            if size:
                self.send_window.grant(size)  # not sent: the credit is still ours
            return False
        self._stop_waiting()
        self._pending = None
        self._status = response.status
        self._bytes_out += size
        response.release()
        self._end("ok")
        assert self._on_answered is not None
        self._on_answered(self)
        return True

    def abandon_early(self) -> None:
        """Hang up on a request ``send_early`` sent and the task never waited for (it was
        cancelled before it ran)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.abandon()

    async def _open(self, backend: BackendSettings) -> BackendResponse:
        pending, self._pending = self._pending, None
        if pending is not None:
            return await pending.response()
        data = self._early_body if self._early else await self._request_body()
        request = self.request
        headers = request_headers(request.headers, backend)
        return await self._http.request(request.method, self._url(backend), headers, data)

    def _url(self, backend: BackendSettings) -> str:
        request = self.request
        path = request.path if request.path.startswith("/") else f"/{request.path}"
        return f"{backend.url}{path}?{request.query}" if request.query else f"{backend.url}{path}"

    async def _request_body(self) -> RequestBody:
        # Waiting for the first frame tells a bodiless request from a streamed one without
        # waiting for the whole body.
        first = await self._next_body_piece()
        if first is None:
            return None
        if self._body_ended:
            # Bytes rather than a stream: they go with a Content-Length, in one write.
            return self._whole_body(first)
        return self._stream_body(first)

    def _whole_body(self, first: bytes) -> bytes:
        """The body that has arrived complete; the gateway has nothing left to send on it."""
        chunks = [first]
        while (chunk := self._body.popleft()) is not None:
            chunks.append(chunk)
        body = first if len(chunks) == 1 else b"".join(chunks)
        self._buffered = 0
        self._bytes_in = len(body)
        return body

    async def _stream_body(self, first: bytes) -> AsyncIterator[bytes]:
        chunk: bytes | None = first
        while chunk is not None:
            self._buffered -= len(chunk)
            yield chunk
            # The backend connection has taken the chunk: the gateway may send that much more.
            self._bytes_in += len(chunk)
            increment = self._receive_window.consumed(len(chunk))
            if increment:
                self._granted += increment
                await self._send(Window(self.request.stream_id, increment))
            chunk = await self._next_body_piece()

    async def _send_body(self, chunk: bytes) -> None:
        """Send what the backend produced right away, in pieces the window allows."""
        largest = self._largest_piece
        offset = 0
        while offset < len(chunk):
            size = min(len(chunk) - offset, largest)
            if 0 < self.send_window.credit < size:
                size = self.send_window.credit
            await self.send_window.acquire(size)
            await self._send(Body(self.request.stream_id, chunk[offset : offset + size]))
            offset += size
            self._bytes_out += size

    async def _fail(self, error_type: str, message: str) -> str:
        await self._send(Error(self.request.stream_id, error_type, message))
        return error_type


def _describe(exc: BaseException) -> str:
    """What went wrong, without addresses or anything from the backend's URL."""
    if isinstance(exc, BackendError):
        return str(exc)  # written to name neither
    return type(exc).__name__
