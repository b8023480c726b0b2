"""One HTTP/1.1 connection to a model server, and the response read from it as it arrives.

BackendError(AgentError)        the model server could not be asked or did not answer in HTTP;
│                               messages never name its address, user or key
├── CannotConnect               no TCP (or TLS) connection; ``reason`` says why
├── ServerDisconnected          the connection closed before the response ended
└── InvalidResponse             the bytes were not an HTTP/1.x response
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import cast

import httptools

from inference_club.agent.errors import AgentError
from inference_club.protocol import MAX_BODY_CHUNK

logger = logging.getLogger(__name__)

RequestBody = bytes | AsyncIterator[bytes] | None

# Unread response bytes past this stop reads from the socket until the consumer catches up, so
# a slow tunnel never makes the agent hold a whole stream.
_HIGH_WATER = 256 * 1024


class BackendError(AgentError):
    """Base class of the errors an exchange with a model server raises."""


class CannotConnect(BackendError):
    """No connection to the model server; ``reason`` is readable, like "connection refused"."""

    def __init__(self, reason: str, errno: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errno = errno


class ServerDisconnected(BackendError):
    """The model server closed the connection before its response ended."""

    def __init__(self) -> None:
        super().__init__("the server closed the connection")


class InvalidResponse(BackendError):
    """The model server answered with something that is not HTTP/1.x."""

    def __init__(self) -> None:
        super().__init__("invalid HTTP response from the model server")


class _Unexpected(Exception):
    """A response began while no request was waiting for one."""


class BackendResponse:
    """A response whose head has arrived; read its body, then ``release`` or ``close`` it.

    Header names are lower-case; values are decoded as latin-1, as they came.
    """

    __slots__ = (
        "_body_sink",
        "_complete",
        "_connection",
        "_done",
        "_error",
        "_parts",
        "_sink_before_reading",
        "_size",
        "_waiter",
        "content_length",
        "headers",
        "status",
    )

    def __init__(
        self,
        connection: "Connection",
        status: int,
        headers: list[tuple[str, str]],
        content_length: int | None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.content_length = content_length
        self._connection = connection
        self._parts: list[bytes] = []
        self._size = 0
        self._complete = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._done = False
        self._body_sink: Callable[[bytes], bool] | None = None
        self._sink_before_reading = False

    def header(self, name: str) -> str | None:
        """The first value of the header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def complete(self) -> bool:
        """Whether the whole body has arrived."""
        return self._complete

    def body(self) -> bytes:
        """The whole body, once ``complete``: what is left to read, without reading it."""
        parts = self._parts
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def read_chunk(self) -> bytes:
        """The body bytes that arrived since the last read, waiting for some; b"" at the end."""
        self._sink_before_reading = False
        while not self._parts:
            if self._complete:
                return b""
            if self._error is not None:
                raise self._error
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None
        parts = self._parts
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        parts.clear()
        self._size = 0
        self._connection.drained()
        return data

    async def read_all(self) -> bytes:
        """The rest of the body."""
        self._sink_before_reading = False
        if not self._complete:
            pieces = [await self.read_chunk()]
            while piece := await self.read_chunk():
                pieces.append(piece)
            return b"".join(pieces)
        data = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return data

    def release(self) -> None:
        """Done with it: the connection serves the next request if the exchange ended cleanly."""
        if not self._done:
            self._done = True
            self._connection.finish(complete=self._complete)

    def close(self) -> None:
        """Drop the connection now, so the server sees its client go away."""
        if not self._done:
            self._done = True
            self._connection.close()

    def sink_body(
        self, sink: Callable[[bytes], bool] | None, *, before_reading: bool = False
    ) -> None:
        """Hand body bytes to ``sink`` as they arrive (None: keep them for ``read_chunk``).

        Only while a reader waits in ``read_chunk`` with nothing kept (``before_reading``: or
        while nothing was read nor kept yet), so bytes never overtake ones read earlier; when
        ``sink`` returns False the bytes are kept as usual.
        """
        self._body_sink = sink
        self._sink_before_reading = before_reading and sink is not None

    def _feed(self, data: bytes) -> None:
        sink = self._body_sink
        if sink is not None and not self._parts:
            waiter = self._waiter
            reader_waits = waiter is not None and not waiter.done()
            if (reader_waits or self._sink_before_reading) and sink(data):
                return
        self._parts.append(data)
        self._size += len(data)
        if self._size > _HIGH_WATER:
            self._connection.hold()
        self._wake()

    def _finish(self) -> None:
        self._complete = True
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if not self._complete and self._error is None:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Connection(asyncio.Protocol):
    """An asyncio protocol speaking HTTP/1.1, one exchange at a time, parsed by httptools.

    ``pool`` is the idle list of its origin; ``parked`` says whether it is in it.
    """

    def __init__(
        self,
        pool: list["Connection"],
        on_idle: Callable[["Connection"], None],
        on_lost: Callable[["Connection"], None],
    ) -> None:
        self.pool = pool
        self.parked = False
        self.idle_since = 0.0
        # Whether any byte of a response arrived since the last request was sent.
        self.received = False
        self._on_idle = on_idle
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._lost = False
        self._closing = False
        # Why the connection ended, when it was not the server closing it: what readers get.
        self._error: BaseException | None = None
        self._head: asyncio.Future[BackendResponse] | None = None
        self._response: BackendResponse | None = None
        # Body pieces the parser found in the bytes being parsed: the response gets them as
        # one piece once the read is parsed, so a reply chunked small (16 KB pieces of audio)
        # crosses the tunnel in a frame per read, not a frame per piece.
        self._held: list[bytes] = []
        self._headers: list[tuple[str, str]] = []
        self._length: int | None = None
        self._chunked = False
        self._head_request = False
        self._may_reuse = False
        self._reusable = False
        self._body_sent = False
        self._writer: asyncio.Task[None] | None = None
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._read_paused = False
        # Called, once, in the calls that see the current response's head, and its end.
        self._on_head: Callable[[BackendResponse], None] | None = None
        self._on_complete: Callable[[], None] | None = None

    # -- the exchange, driven by the client and the response

    def send(
        self,
        head: bytes,
        body: RequestBody,
        length: int | None,
        *,
        head_request: bool,
        keep_alive: bool,
    ) -> "asyncio.Future[BackendResponse]":
        """Write one request; the future resolves with the response once its head arrived.

        A streamed body is written by a task of its own, so the response may start arriving
        (and be read) while the upload is still going.
        """
        transport = self._transport
        assert transport is not None
        loop = asyncio.get_running_loop()
        self.received = False
        self._headers = []
        self._length = None
        self._chunked = False
        self._head_request = head_request
        self._may_reuse = keep_alive
        self._reusable = False
        waiter: asyncio.Future[BackendResponse] = loop.create_future()
        self._head = waiter
        self._on_head = None
        self._on_complete = None
        if body is None:
            transport.write(head)
            self._body_sent = True
        elif isinstance(body, bytes):
            # One write, so a small request leaves in one segment; a big body is not copied.
            if len(body) < 65536:
                transport.write(head + body)
            else:
                transport.writelines((head, body))
            self._body_sent = True
        else:
            self._body_sent = False
            transport.write(head)
            self._writer = loop.create_task(self._write_stream(body, length))
        return waiter

    def when_head(self, callback: Callable[[BackendResponse], None]) -> None:
        """Call ``callback`` with the response to the request just sent as soon as its head is
        in: from the parser's callback that reads it, before its body."""
        self._on_head = callback

    def when_complete(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` as soon as the whole response to the request just sent is in:
        from the parser's callback that sees it end, before it reads any further byte."""
        self._on_complete = callback

    def finish(self, *, complete: bool) -> None:
        """The response is done with: back to the pool after a clean exchange, else closed."""
        self._response = None
        transport = self._transport
        if (
            complete
            and self._reusable
            and self._body_sent
            and not self._lost
            and transport is not None
            and not transport.is_closing()
        ):
            self._writer = None
            if self._read_paused:
                self._read_paused = False
                transport.resume_reading()
            self._on_idle(self)
        else:
            self.close()

    def close(self) -> None:
        """Drop the TCP connection at once, unsent bytes and all."""
        self._closing = True
        writer, self._writer = self._writer, None
        if writer is not None and not writer.done():
            writer.cancel()
        if self._transport is not None and not self._lost:
            self._transport.abort()

    def _abort(self, error: BaseException) -> None:
        """End the connection for ``error``, which readers of the response then get."""
        self._error = error
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    def is_usable(self) -> bool:
        """Still open, as far as the loop knows; the server may have closed it a moment ago."""
        return not self._lost and self._transport is not None and not self._transport.is_closing()

    def hold(self) -> None:
        """Too much unread body: stop reading from the socket until the reader drains it."""
        if not self._read_paused and self._transport is not None and not self._lost:
            self._read_paused = True
            self._transport.pause_reading()

    def drained(self) -> None:
        """The reader took everything buffered: read from the socket again."""
        if self._read_paused and self._transport is not None and not self._lost:
            self._read_paused = False
            self._transport.resume_reading()

    async def _write_stream(self, chunks: AsyncIterator[bytes], length: int | None) -> None:
        """Write a streamed body, chunked unless the caller gave its length."""
        transport = self._transport
        assert transport is not None
        try:
            sent = await self._write_chunks(transport, chunks, length)
            if self._lost:
                return
            if length is None:
                transport.write(b"0\r\n\r\n")
            elif sent != length:
                msg = "the request body is shorter than its Content-Length"
                raise ValueError(msg)
            self._body_sent = True
        except Exception as exc:
            self._abort(exc)  # the reader of the response gets it
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _write_chunks(
        self, transport: asyncio.Transport, chunks: AsyncIterator[bytes], length: int | None
    ) -> int:
        sent = 0
        async for chunk in chunks:
            if self._lost:
                break
            sent += len(chunk)
            if length is None:
                if chunk:  # an empty chunk would end the body
                    transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
            elif sent > length:
                msg = "the request body is longer than its Content-Length"
                raise ValueError(msg)
            else:
                transport.write(chunk)
            # Asking for the next chunk only while the transport's buffer is short paces the
            # upload by the server, and the tunnel's window grants with it.
            while self._write_paused and not self._lost:
                self._drain = asyncio.get_running_loop().create_future()
                await self._drain
        return sent

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self._release_held()
            response = self._response
            if response is not None and response.status == 101:
                return  # a switched protocol is not relayed: its bytes are dropped
            self._abort(InvalidResponse())
            return
        if self._held:
            self._release_held()

    def eof_received(self) -> bool:
        return False  # close our side too: a half-closed server has nothing more to say

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._on_head = None
        self._on_complete = None
        error = self._error or ServerDisconnected()
        head = self._head
        if head is not None and not head.done():
            head.set_exception(error)
        self._head = None
        response = self._response
        if response is not None:
            clean = exc is None and self._error is None and not self._closing
            if clean and response.content_length is None and not self._chunked:
                response._finish()  # a body framed by the end of the connection
            else:
                response._fail(error)
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)
        self._on_lost(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        if self._head is None:
            raise _Unexpected

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        if key == "content-length":
            self._length = int(text)
        elif key == "transfer-encoding" and "chunked" in text.lower():
            self._chunked = True
        self._headers.append((key, text))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200 and status != 101:
            # An interim response (100 Continue, 103 Early Hints): the real one follows.
            self._headers = []
            self._length = None
            self._chunked = False
            return
        bodyless = self._head_request or status in (101, 204, 304)
        length = 0 if bodyless else None if self._chunked else self._length
        response = BackendResponse(self, status, self._headers, length)
        self._response = response
        if bodyless:
            response._finish()
        if status == 101:
            self._may_reuse = False
        elif self._head_request:
            # httptools cannot be told that a HEAD reply has no body, so this parser would
            # wait for the length the head names: the next reply gets a fresh one.
            self._reusable = self._may_reuse and self._parser.should_keep_alive()
            self._parser = httptools.HttpResponseParser(self)
        head, self._head = self._head, None
        if head is not None and not head.done():
            head.set_result(response)
            on_head, self._on_head = self._on_head, None
            if on_head is not None:
                try:
                    on_head(response)
                except Exception:
                    # The response goes on to whoever awaits its head.
                    logger.exception("handling a response head failed")
        if self._head_request:
            self._completed()  # its parser will not say so: it was replaced

    def on_body(self, body: bytes) -> None:
        if self._response is not None and not self._response._complete:
            self._held.append(body)

    def _release_held(self) -> None:
        """Feed the held pieces to the response, joined into pieces of at most one tunnel
        frame's payload (bigger ones would only be cut up again)."""
        held = self._held
        if not held:
            return
        response = self._response
        if response is None or response._complete:
            held.clear()
            return
        if len(held) == 1:
            response._feed(held.pop())
            return
        group: list[bytes] = []
        size = 0
        for piece in held:
            if group and size + len(piece) > MAX_BODY_CHUNK:
                response._feed(group[0] if len(group) == 1 else b"".join(group))
                group, size = [], 0
            group.append(piece)
            size += len(piece)
        held.clear()
        response._feed(group[0] if len(group) == 1 else b"".join(group))

    def on_message_complete(self) -> None:
        self._release_held()
        response = self._response
        if response is None:
            return  # an interim response ended, or one nobody waits for any more
        self._reusable = self._may_reuse and self._parser.should_keep_alive()
        response._finish()
        self._completed()

    def _completed(self) -> None:
        """The current response is whole: call what ``when_complete`` set, once."""
        on_complete, self._on_complete = self._on_complete, None
        if on_complete is not None:
            try:
                on_complete()
            except Exception:
                # The response is whole either way; its reader still has it.
                logger.exception("handling a complete response failed")
