"""One request stream: the gateway's frames in, an HTTP request to a local server, frames back."""

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from inference_club.agent.images import MAX_IMAGE_REPLY, carries_image_urls, inline_image_urls
from inference_club.agent.settings import BackendSettings
from inference_club.protocol import (
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
Headers = tuple[tuple[str, str], ...]

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# The agent sets its own Host, and a backend gets its own key, never a credential from upstream.
_DROPPED_REQUEST_HEADERS = _HOP_BY_HOP | {"host", "authorization"}
# The gateway frames the body itself, so a length from the backend would only mislead it.
_DROPPED_RESPONSE_HEADERS = _HOP_BY_HOP | {"content-length"}


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """The per-connection limits the gateway set in its welcome."""

    max_body_chunk: int
    initial_window: int


class StreamRelay:
    """Relays one stream; the tunnel feeds it the gateway's body, end and window frames."""

    def __init__(
        self,
        request: Request,
        backend: BackendSettings | None,
        *,
        http: aiohttp.ClientSession,
        send: SendFrame,
        limits: StreamLimits,
        log_level: int = logging.INFO,
    ) -> None:
        self.request = request
        self.send_window = SendWindow(limits.initial_window)
        self._backend = backend
        self._http = http
        self._send = send
        self._limits = limits
        self._log_level = log_level
        self._body: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._buffered = 0
        self._body_ended = False
        self._receive_window = ReceiveWindow(limits.initial_window)
        self._status: int | None = None
        self._bytes_in = 0
        self._bytes_out = 0
        self._received = 0
        self._granted = 0

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
            self._body.put_nowait(data)

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
            self._body.put_nowait(None)

    async def run(self) -> None:
        """Relay the request and its response, then log one line about it."""
        started = time.monotonic()
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
            self.send_window.close()
            logger.log(
                self._log_level,
                "request",
                extra={
                    "stream_id": self.request.stream_id,
                    "model": self.request.model,
                    "method": self.request.method,
                    "path": self.request.path,
                    "status": self._status,
                    "outcome": outcome,
                    "duration_ms": round((time.monotonic() - started) * 1000),
                    "bytes_in": self._bytes_in,
                    "bytes_out": self._bytes_out,
                },
            )

    async def _relay(self) -> str:
        stream_id = self.request.stream_id
        if self._backend is None:
            message = f"no local server serves model {self.request.model!r}"
            return await self._fail("unknown_model", message)
        try:
            async with asyncio.timeout(self.request.timeout):
                response = await self._open(self._backend)
        except TimeoutError:
            message = f"the model server did not answer within {self.request.timeout:g} s"
            return await self._fail("backend_timeout", message)
        except (aiohttp.ClientError, OSError) as exc:
            message = f"cannot reach the model server ({_describe(exc)})"
            return await self._fail("backend_unreachable", message)
        completed = False
        try:
            self._status = response.status
            content_type = response.headers.get("content-type", "")
            if carries_image_urls(self.request.path, response.status, content_type):
                outcome = await self._relay_inlined(response, self._backend)
                completed = outcome == "ok"
                return outcome
            await self._send(Response(stream_id, response.status, _response_headers(response)))
            while True:
                try:
                    chunk = await response.content.readany()
                except (aiohttp.ClientError, OSError) as exc:
                    message = f"the model server dropped the response midway ({_describe(exc)})"
                    return await self._fail("backend_disconnected", message)
                if not chunk:
                    break
                await self._send_body(chunk)
            await self._send(End(stream_id))
            completed = True
        finally:
            if completed:
                response.release()
            else:
                # Closing rather than releasing drops the TCP connection, so the model server
                # sees its client go away (cancel, dropped tunnel) and stops generating.
                response.close()
        return "ok"

    async def _relay_inlined(
        self, response: aiohttp.ClientResponse, backend: BackendSettings
    ) -> str:
        """An image reply, read whole so images the backend only links to go inline."""
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := await response.content.readany():
                size += len(chunk)
                if size > MAX_IMAGE_REPLY:
                    message = "the image reply is too large to relay"
                    return await self._fail("backend_too_large", message)
                chunks.append(chunk)
        except (aiohttp.ClientError, OSError) as exc:
            message = f"the model server dropped the response midway ({_describe(exc)})"
            return await self._fail("backend_disconnected", message)
        body = b"".join(chunks)
        body = await inline_image_urls(body, backend, self._http, self.request.timeout)
        stream_id = self.request.stream_id
        await self._send(Response(stream_id, response.status, _response_headers(response)))
        await self._send_body(body)
        await self._send(End(stream_id))
        return "ok"

    async def _open(self, backend: BackendSettings) -> aiohttp.ClientResponse:
        path = self.request.path if self.request.path.startswith("/") else f"/{self.request.path}"
        url = f"{backend.url}{path}"
        if self.request.query:
            url = f"{url}?{self.request.query}"
        # Waiting for the first frame tells a bodiless request from a streamed one without
        # waiting for the whole body.
        first = await self._body.get()
        data = None if first is None else self._stream_body(first)
        return await self._http.request(
            self.request.method,
            url,
            headers=self._request_headers(backend),
            data=data,
            allow_redirects=False,
        )

    def _request_headers(self, backend: BackendSettings) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict()
        named_by_connection = _connection_tokens(
            value for name, value in self.request.headers if name.lower() == "connection"
        )
        for name, value in self.request.headers:
            lowered = name.lower()
            if lowered not in _DROPPED_REQUEST_HEADERS and lowered not in named_by_connection:
                headers.add(name, value)
        headers.update(backend.auth_headers())
        # Bodies are relayed byte for byte, and the gateway reads usage from them.
        headers.setdefault("Accept-Encoding", "identity")
        return headers

    async def _stream_body(self, first: bytes) -> AsyncIterator[bytes]:
        chunk: bytes | None = first
        while chunk is not None:
            self._buffered -= len(chunk)
            yield chunk
            # aiohttp has taken the chunk: the gateway may send that much more.
            self._bytes_in += len(chunk)
            increment = self._receive_window.consumed(len(chunk))
            if increment:
                self._granted += increment
                await self._send(Window(self.request.stream_id, increment))
            chunk = await self._body.get()

    async def _send_body(self, chunk: bytes) -> None:
        """Send what the backend produced right away, in pieces the window allows."""
        largest = min(self._limits.max_body_chunk, self._limits.initial_window)
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


def _response_headers(response: aiohttp.ClientResponse) -> Headers:
    headers: CIMultiDictProxy[str] = response.headers
    named_by_connection = _connection_tokens(headers.getall("connection", []))
    return tuple(
        (name.lower(), value)
        for name, value in headers.items()
        if name.lower() not in _DROPPED_RESPONSE_HEADERS and name.lower() not in named_by_connection
    )


def _connection_tokens(values: Iterable[str]) -> frozenset[str]:
    """Header names a ``Connection`` header marks as hop-by-hop."""
    return frozenset(
        token.strip().lower() for value in values for token in value.split(",") if token.strip()
    )


def _describe(exc: BaseException) -> str:
    """What went wrong, without addresses or anything from the backend's URL."""
    if isinstance(exc, aiohttp.ClientConnectorError) and exc.os_error.errno:
        return os.strerror(exc.os_error.errno).lower()
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "incomplete body"
    return type(exc).__name__
