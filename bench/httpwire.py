"""A lean HTTP/1.1 client for load generation: keep-alive connections parsed by httptools.

No library sits in between, so the client costs microseconds per request and has no hidden
connection caps: the pool opens a new connection whenever none is idle.
"""

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

import httptools

from bench.sse import EventClock

_ERROR_BODY_PREFIX = 300
_CLOSED_EARLY = "connection closed before the response ended"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a path under test listens; ``api_key`` goes in the Authorization header only."""

    name: str
    host: str
    port: int
    api_key: str | None = field(default=None, repr=False)


def build_request(
    endpoint: Endpoint,
    method: str,
    path: str,
    body: bytes = b"",
    content_type: str = "application/json",
    headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    """The raw bytes of one request, built once and sent many times."""
    lines = [
        f"{method} {path} HTTP/1.1",
        f"host: {endpoint.host}:{endpoint.port}",
        "user-agent: inference-club-bench",
    ]
    if endpoint.api_key is not None:
        lines.append(f"authorization: Bearer {endpoint.api_key}")
    if body or method in ("POST", "PUT"):
        lines.append(f"content-type: {content_type}")
        lines.append(f"content-length: {len(body)}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Exchange:
    """The timings of one request while it is in flight; times are ``time.perf_counter()``."""

    __slots__ = (
        "body",
        "clock",
        "end",
        "error",
        "first_byte",
        "received",
        "scheduled",
        "sent",
        "status",
    )

    def __init__(self, scheduled: float, stream: bool) -> None:
        self.scheduled = scheduled
        self.sent = scheduled
        self.first_byte: float | None = None
        self.end: float | None = None
        self.status = 0
        self.error: str | None = None
        self.clock = EventClock() if stream else None
        self.body = bytearray()
        # Bytes of the response body (after transfer decoding).
        self.received = 0


class ClientConnection(asyncio.Protocol):
    """One keep-alive connection carrying one exchange at a time."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._exchange: Exchange | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._now = 0.0
        self.closed = False
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not inherit from asyncio.Transport but have its methods.
        self._transport = cast(asyncio.Transport, transport)

    def start(self, raw: bytes, exchange: Exchange, timeout: float) -> asyncio.Future[None]:
        """Send ``raw``; the future resolves (never raises) when the exchange is over."""
        assert self._transport is not None
        loop = asyncio.get_running_loop()
        self._exchange = exchange
        self._waiter = loop.create_future()
        self._timer = loop.call_later(timeout, self._time_out, timeout)
        exchange.sent = time.perf_counter()
        waiter = self._waiter
        if self.closed or self._transport.is_closing():
            # Lost between being handed out and this send (a server shedding connections
            # under overload); uvloop refuses the write. Like a connection closed while idle.
            self._finish(_CLOSED_EARLY)
        else:
            self._transport.write(raw)
        return waiter

    def close(self) -> None:
        """Close the connection; an exchange in flight ends with an error."""
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self._now = now
        exchange = self._exchange
        if exchange is None:
            return
        if exchange.first_byte is None:
            exchange.first_byte = now
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._finish(f"unparsable response: {exc}")

    def on_headers_complete(self) -> None:
        if self._exchange is not None:
            self._exchange.status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        exchange = self._exchange
        if exchange is None:
            return
        exchange.received += len(body)
        if exchange.clock is not None and exchange.status == 200:
            exchange.clock.feed(body, self._now)
        elif len(exchange.body) < _ERROR_BODY_PREFIX:
            exchange.body += body[: _ERROR_BODY_PREFIX - len(exchange.body)]

    def on_message_complete(self) -> None:
        if not self._parser.should_keep_alive():
            self.reusable = False
        self._finish(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        reason = f": {exc}" if exc else ""
        self._finish(f"{_CLOSED_EARLY}{reason}")

    def _time_out(self, timeout: float) -> None:
        self._finish(f"no complete response within {timeout:g} s")
        self.reusable = False
        if self._transport is not None:
            self._transport.abort()

    def _finish(self, error: str | None) -> None:
        exchange, waiter = self._exchange, self._waiter
        if exchange is None or waiter is None:
            return
        self._exchange = self._waiter = None
        if self._timer is not None:
            self._timer.cancel()
        exchange.end = self._now if error is None else time.perf_counter()
        if error is not None:
            self.reusable = False
            exchange.error = error
        elif not 200 <= exchange.status < 300:
            exchange.error = (
                f"HTTP {exchange.status}: {bytes(exchange.body).decode(errors='replace')}"
            )
        elif exchange.clock is not None and not exchange.clock.done:
            exchange.error = "stream ended without data: [DONE]"
        if not waiter.done():
            waiter.set_result(None)


class ConnectionPool:
    """Idle keep-alive connections to one endpoint; grows without a cap when all are busy."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._idle: list[ClientConnection] = []
        self._open: set[ClientConnection] = set()
        self.peak_open = 0

    def take_idle(self) -> ClientConnection | None:
        """An idle connection still open, if there is one."""
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
            self._open.discard(connection)
        return None

    async def connect(self) -> ClientConnection:
        """A new connection, counted in the pool."""
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            ClientConnection, self.endpoint.host, self.endpoint.port
        )
        self._open.add(connection)
        self.peak_open = max(self.peak_open, len(self._open))
        return connection

    def release(self, connection: ClientConnection) -> None:
        """Return a connection after its exchange; a spent one is closed instead."""
        if connection.reusable and not connection.closed:
            self._idle.append(connection)
        else:
            self._open.discard(connection)
            connection.close()

    def close(self) -> None:
        """Close every connection."""
        for connection in self._open:
            connection.close()
        self._open.clear()
        self._idle.clear()


async def perform(pool: ConnectionPool, raw: bytes, exchange: Exchange, timeout: float) -> None:
    """Run one exchange on a pooled connection; every failure lands in ``exchange.error``.

    A reused connection the server closed while idle fails before any byte comes back; that
    exchange is retried once on a new connection, as HTTP clients do, still timed from its
    scheduled start.
    """
    connection = pool.take_idle()
    if connection is not None:
        await connection.start(raw, exchange, timeout)
        pool.release(connection)
        dropped = (exchange.error or "").startswith(_CLOSED_EARLY)
        if exchange.first_byte is not None or not dropped:
            return
        exchange.error = None
        exchange.end = None
    try:
        connection = await asyncio.wait_for(pool.connect(), timeout)
    except (OSError, TimeoutError) as exc:
        exchange.error = f"connect failed: {exc!r}"
        exchange.end = time.perf_counter()
        return
    await connection.start(raw, exchange, timeout)
    pool.release(connection)
