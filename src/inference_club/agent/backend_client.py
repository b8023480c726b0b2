"""A lean HTTP/1.1 client for the agent's requests to local model servers."""

import asyncio
import base64
import os
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from inference_club.agent.backend_connection import (
    BackendError,
    BackendResponse,
    CannotConnect,
    Connection,
    InvalidResponse,
    RequestBody,
    ServerDisconnected,
)

__all__ = [
    "BackendClient",
    "BackendError",
    "BackendResponse",
    "CannotConnect",
    "InvalidResponse",
    "PendingResponse",
    "RequestBody",
    "ServerDisconnected",
]

_ORIGIN = re.compile(r"(https?)://([^/?#]*)(.*)", re.IGNORECASE | re.DOTALL)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Methods that never carry a body; the others get "Content-Length: 0" when they have none.
_BODILESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "CONNECT", "TRACE"})
# Request headers the client sets itself, or must look at.
_SPECIAL = frozenset({"host", "content-length", "transfer-encoding", "authorization", "connection"})


@dataclass(slots=True)
class _Origin:
    """Scheme, host and port of a backend, what every request to it starts with, its idle pool."""

    host: str
    port: int
    tls: bool
    host_line: str
    basic_auth: str | None
    idle: list[Connection] = field(default_factory=list)


# Not frozen: made per request (``inference_club.protocol.frames`` says what that saves).
@dataclass(slots=True)
class _Exchange:
    """One request, ready to write on a connection to ``origin``."""

    origin: _Origin
    head: bytes
    body: RequestBody
    length: int | None
    head_request: bool
    keep_alive: bool

    def send_on(self, connection: Connection) -> "asyncio.Future[BackendResponse]":
        return connection.send(
            self.head,
            self.body,
            self.length,
            head_request=self.head_request,
            keep_alive=self.keep_alive,
        )


class PendingResponse:
    """A request written on a pooled connection, whose response head has yet to be awaited."""

    __slots__ = ("_connection", "_exchange", "_head", "_send_fresh")

    def __init__(
        self,
        exchange: _Exchange,
        connection: Connection,
        head: "asyncio.Future[BackendResponse]",
        send_fresh: Callable[[_Exchange], Awaitable[BackendResponse]],
    ) -> None:
        self._exchange = exchange
        self._send_fresh = send_fresh
        self._connection = connection
        self._head = head

    async def response(self) -> BackendResponse:
        """The response, once its head arrived (await once)."""
        try:
            return await _head_of(self._connection, self._head)
        except ServerDisconnected:
            # The server closed the pooled connection while it sat idle; a body already
            # consumed cannot be sent again, and a server that answered did get it.
            body = self._exchange.body
            if self._connection.received or not (body is None or isinstance(body, bytes)):
                raise
        return await self._send_fresh(self._exchange)

    def when_answered(self, callback: Callable[[], None]) -> None:
        """Have ``callback`` called once the whole response is in (at once, from the
        connection's parser), and once the response head arrived, the exchange failed or it
        was abandoned (soon, from the loop); ``answered`` then tells which. The first call
        that finds what it waits for acts; the callback must let the other pass."""
        self._connection.when_complete(callback)
        self._head.add_done_callback(lambda _head: callback())

    def when_head(self, callback: Callable[[BackendResponse], None]) -> None:
        """Have ``callback`` called with the response once its head is in, from the
        connection's parser; never when the exchange fails first (``response()`` says how)."""
        self._connection.when_head(callback)

    def answered(self) -> BackendResponse | None:
        """The response, if its head has arrived; None while it has not, or when the exchange
        failed (``response()`` then says how, and sends it again where it can)."""
        head = self._head
        if not head.done() or head.cancelled() or head.exception() is not None:
            return None
        return head.result()

    def abandon(self) -> None:
        """Never to be awaited: hang up, so the server stops working on it."""
        head = self._head
        if not head.cancel() and not head.cancelled():
            head.exception()  # settled already: seen, so nothing warns that nobody waited
        self._connection.close()


async def _head_of(
    connection: Connection, head: "asyncio.Future[BackendResponse]"
) -> BackendResponse:
    try:
        return await head
    except BaseException:
        # Cancelled or timed out: hanging up tells the server to stop working on it.
        connection.close()
        raise


class BackendClient:
    """Keeps a keep-alive pool per origin, with no cap on connections; ``close`` drops them all.

    Nothing else is kept between requests: no cookies, and redirects are not followed.
    """

    def __init__(self, *, connect_timeout: float, keepalive: float = 30.0) -> None:
        self._connect_timeout = connect_timeout
        self._keepalive = keepalive
        self._origins: dict[str, _Origin] = {}
        self._connections: set[Connection] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    async def request(
        self,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]] = (),
        body: RequestBody = None,
    ) -> BackendResponse:
        """Send a request; returns once the response head arrived.

        ``body`` is sent with a Content-Length when it is bytes, and chunked when it is an
        async iterator, unless ``headers`` carry a Content-Length. A ``user:password@`` in the
        URL becomes Basic authorization unless ``headers`` already authorize the request.
        """
        exchange = self._prepare(method, url, headers, body)
        pending = self._send_pooled(exchange)
        if pending is not None:
            return await pending.response()
        return await self._send_fresh(exchange)

    def send_now(
        self,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> PendingResponse | None:
        """Write a request in this call, on an idle pooled connection to its server; None (and
        nothing sent) when no connection is idle. Like ``request`` otherwise, whole bodies only.

        Await the result's ``response()``, or ``abandon()`` it.
        """
        return self._send_pooled(self._prepare(method, url, headers, body))

    def close(self) -> None:
        """Drop every connection, idle or in use."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for origin in self._origins.values():
            for connection in origin.idle:
                connection.parked = False
            origin.idle.clear()
        for connection in list(self._connections):
            connection.close()
        self._connections.clear()

    def _prepare(
        self, method: str, url: str, headers: Iterable[tuple[str, str]], body: RequestBody
    ) -> _Exchange:
        if self._closed:
            msg = "the backend client is closed"
            raise RuntimeError(msg)
        origin, target = self._locate(url)
        head, length, keep_alive = _head(method, target, headers, body, origin)
        return _Exchange(origin, head, body, length, method == "HEAD", keep_alive)

    def _send_pooled(self, exchange: _Exchange) -> PendingResponse | None:
        connection = self._idle(exchange.origin)
        if connection is None:
            return None
        try:
            head = exchange.send_on(connection)
        except BaseException:
            connection.close()
            raise
        return PendingResponse(exchange, connection, head, self._send_fresh)

    async def _send_fresh(self, exchange: _Exchange) -> BackendResponse:
        connection = await self._connect(exchange.origin)
        return await _head_of(connection, exchange.send_on(connection))

    def _locate(self, url: str) -> tuple[_Origin, str]:
        match = _ORIGIN.fullmatch(url)
        if match is None:
            msg = "a backend URL must start with http:// or https://"
            raise ValueError(msg)
        key = url[: match.end(2)]
        rest = match.group(3)
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _origin_of(key)
        target = rest.partition("#")[0]
        if not target.startswith("/"):
            target = "/" + target
        return origin, target

    def _idle(self, origin: _Origin) -> Connection | None:
        idle = origin.idle
        while idle:
            # The most recently used first: the least likely to have been closed by the server.
            connection = idle.pop()
            connection.parked = False
            if connection.is_usable():
                return connection
            connection.close()
        return None

    async def _connect(self, origin: _Origin) -> Connection:
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if origin.tls:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: Connection(origin.idle, self._park, self._forget),
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls is not None else None,
                )
        except TimeoutError:
            raise
        except OSError as exc:
            raise CannotConnect(_reason(exc), exc.errno) from None
        self._connections.add(connection)
        return connection

    def _park(self, connection: Connection) -> None:
        """Keep a connection whose exchange ended cleanly for the next request."""
        if self._closed:
            connection.close()
            return
        loop = asyncio.get_running_loop()
        connection.idle_since = loop.time()
        connection.parked = True
        connection.pool.append(connection)
        if self._sweeper is None:
            self._sweeper = loop.call_at(connection.idle_since + self._keepalive, self._sweep)

    def _forget(self, connection: Connection) -> None:
        self._connections.discard(connection)
        if connection.parked:
            connection.parked = False
            connection.pool.remove(connection)

    def _sweep(self) -> None:
        """Close connections idle for the keep-alive timeout; come back for the next ones."""
        self._sweeper = None
        loop = asyncio.get_running_loop()
        expired = loop.time() - self._keepalive
        oldest: float | None = None
        for origin in self._origins.values():
            for connection in list(origin.idle):
                if connection.idle_since <= expired:
                    connection.close()
                elif oldest is None or connection.idle_since < oldest:
                    oldest = connection.idle_since
        if oldest is not None:
            self._sweeper = loop.call_at(oldest + self._keepalive, self._sweep)


def _origin_of(prefix: str) -> _Origin:
    """What a ``scheme://[user:password@]host[:port]`` prefix says, worked out once."""
    parts = urlsplit(prefix)
    host = parts.hostname
    if not host:
        msg = "a backend URL must name a host"
        raise ValueError(msg)
    default = _DEFAULT_PORTS[parts.scheme]
    try:
        port = parts.port or default
    except ValueError:
        # Not the message of urlsplit's error: a misplaced password would be quoted in it.
        msg = "a backend URL has an invalid port"
        raise ValueError(msg) from None
    shown = host if host.isascii() else host.encode("idna").decode("ascii")
    if ":" in shown:
        shown = f"[{shown}]"  # an IPv6 address
    if port != default:
        shown = f"{shown}:{port}"
    basic_auth = None
    if parts.username is not None or parts.password is not None:
        credentials = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        basic_auth = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
    return _Origin(host, port, parts.scheme == "https", f"Host: {shown}", basic_auth)


def _head(
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    body: RequestBody,
    origin: _Origin,
) -> tuple[bytes, int | None, bool]:
    """The request's head, the length a streamed body promised, and whether to keep alive."""
    if " " in method or " " in target:
        msg = "a request method or path contains a space"
        raise ValueError(msg)
    lines = [f"{method} {target} HTTP/1.1", origin.host_line]
    length: int | None = None
    authorized = False
    keep_alive = True
    for name, value in headers:
        lowered = name.lower()
        if lowered in _SPECIAL:
            if lowered == "content-length":
                if not value.isdigit():
                    msg = "the request's Content-Length is not a number"
                    raise ValueError(msg)
                length = int(value)
                continue
            if lowered in ("host", "transfer-encoding"):
                continue  # the client frames the request and names the host itself
            if lowered == "authorization":
                authorized = True
            elif lowered == "connection" and "close" in value.lower():
                keep_alive = False
        lines.append(f"{name}: {value}")
    if body is None or isinstance(body, bytes):
        length = None  # the body at hand says how long it is
    if framing := _framing(method, body, length):
        lines.append(framing)
    if origin.basic_auth is not None and not authorized:
        lines.append(f"Authorization: {origin.basic_auth}")
    text = "\r\n".join(lines)
    # A line break inside a name or value would let it write headers (or requests) of its own.
    breaks = len(lines) - 1
    if text.count("\n") != breaks or text.count("\r") != breaks or "\0" in text:
        msg = "a request header contains a line break"
        raise ValueError(msg)
    return (text + "\r\n\r\n").encode("latin-1"), length, keep_alive


def _framing(method: str, body: RequestBody, length: int | None) -> str | None:
    """The header that tells the server where the body ends."""
    if body is None:
        return None if method in _BODILESS_METHODS else "Content-Length: 0"
    if isinstance(body, bytes):
        return f"Content-Length: {len(body)}"
    return "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"


def _reason(exc: OSError) -> str:
    """Why a connection failed, without the address it was made to."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "certificate verify failed"
    if isinstance(exc, ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, socket.gaierror):
        return "the host name does not resolve"
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return "connection failed"
