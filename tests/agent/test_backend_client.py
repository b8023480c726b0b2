"""The agent's HTTP/1.1 client, against servers on 127.0.0.1 that speak HTTP by hand."""

import asyncio
import base64
import hashlib
import random
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from inference_club.agent.backend_client import (
    BackendClient,
    CannotConnect,
    InvalidResponse,
    ServerDisconnected,
)
from inference_club.agent.backend_connection import BackendResponse, Connection

from .fakes import WAIT, wait_until

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Seen:
    """One request as the server read it."""

    line: str
    headers: dict[str, str]
    body: bytes = b""


class RawServer:
    """A server on 127.0.0.1 that runs ``handler`` for each connection; counts connections."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.connections = 0
        self.seen: list[Seen] = []
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def start(self) -> "RawServer":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._ssl)
        return self

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def read_request(self, reader: asyncio.StreamReader) -> Seen:
        """Read one whole request, remember it and return it."""
        seen = await read_head(reader)
        seen.body = await read_body(reader, seen.headers)
        self.seen.append(seen)
        return seen

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()


async def read_head(reader: asyncio.StreamReader) -> Seen:
    head = await reader.readuntil(b"\r\n\r\n")
    line, *fields = head.decode("latin-1").split("\r\n")
    headers = {}
    for field in fields:
        if field:
            name, _, value = field.partition(":")
            headers[name.strip().lower()] = value.strip()
    return Seen(line, headers)


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readexactly(2)
        return body
    return await reader.readexactly(int(headers.get("content-length", "0")))


async def hold_open(reader: asyncio.StreamReader) -> None:
    """Keep a connection until the client goes away."""
    while await reader.read(65536):
        pass


def answering(reply: bytes, server: list[RawServer]) -> Handler:
    """A keep-alive handler that answers every request with ``reply``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server[0].read_request(reader)
            writer.write(reply)
            await writer.drain()

    return handler


def head_or(head_reply: bytes, other_reply: bytes) -> Handler:
    """A keep-alive handler answering HEAD requests with ``head_reply``, others with
    ``other_reply``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await read_head(reader)
            writer.write(head_reply if request.line.startswith("HEAD") else other_reply)
            await writer.drain()

    return handler


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[RawServer]]]:
    """Start raw servers; all are closed after the test."""
    servers: list[RawServer] = []

    async def make(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> RawServer:
        server = await RawServer(handler, ssl_context).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close()


@pytest.fixture
async def answering_server(serve) -> RawServer:
    """A keep-alive server answering every request with a 2-byte body."""
    holder: list[RawServer] = []
    holder.append(await serve(answering(OK, holder)))
    return holder[0]


@pytest.fixture
async def client() -> AsyncIterator[BackendClient]:
    """The client as the agent makes it."""
    backend_client = BackendClient(connect_timeout=2.0)
    yield backend_client
    backend_client.close()


async def test_reply_with_a_length_is_read_whole(serve, client):
    """Status, lower-case headers and body come back; the request has its Host and length."""
    seen: list[Seen] = []

    async def handler(reader, writer):
        seen.append(await read_head(reader))
        seen[0].body = await read_body(reader, seen[0].headers)
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-Model: tiny\r\n\r\nhello")
        await hold_open(reader)

    server = await serve(handler)
    body = b'{"model": "tiny"}'
    headers = [("Content-Type", "application/json"), ("Content-Length", "999")]
    response = await client.request("POST", f"{server.url}/v1/chat?x=%20y", headers, body)

    assert response.status == 201
    assert ("x-model", "tiny") in response.headers
    assert response.header("content-length") == "5"
    assert response.content_length == 5
    assert await response.read_all() == b"hello"
    response.release()
    [request] = seen
    assert request.line == "POST /v1/chat?x=%20y HTTP/1.1"
    assert request.headers["host"] == f"127.0.0.1:{server.port}"
    assert request.headers["content-length"] == str(len(body))
    assert "transfer-encoding" not in request.headers
    assert request.body == body


async def test_chunked_reply_is_read_as_it_is_written(serve, client):
    """read_chunk returns the first piece while the server has not written the rest yet."""
    go_on = asyncio.Event()

    async def handler(reader, writer):
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await go_on.wait()
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
        await hold_open(reader)

    server = await serve(handler)
    response = await client.request("GET", f"{server.url}/stream")

    assert response.content_length is None
    assert await asyncio.wait_for(response.read_chunk(), WAIT) == b"first"
    go_on.set()
    assert await asyncio.wait_for(response.read_all(), WAIT) == b"second"
    assert await response.read_chunk() == b""


async def test_reply_until_the_connection_ends_is_whole_and_not_reused(serve, client):
    """A body without length or chunks ends with the connection, which is then not kept."""

    async def handler(reader, writer):
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b" the end")
        await writer.drain()
        writer.close()

    server = await serve(handler)
    for _ in range(2):
        response = await client.request("GET", f"{server.url}/eof")
        assert response.content_length is None
        assert await asyncio.wait_for(response.read_all(), WAIT) == b"until the end"
        response.release()

    assert server.connections == 2


async def test_reply_cut_short_of_its_length_is_a_disconnection(serve, client):
    """A connection that ends before the announced length raises ServerDisconnected."""

    async def handler(reader, writer):
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        writer.close()

    server = await serve(handler)
    response = await client.request("GET", f"{server.url}/cut")

    assert await response.read_chunk() == b"partial"
    with pytest.raises(ServerDisconnected, match="closed the connection"):
        await asyncio.wait_for(response.read_chunk(), WAIT)


async def test_sequential_requests_share_one_connection(answering_server, client):
    """Twenty requests one after the other use one keep-alive connection."""
    for index in range(20):
        response = await client.request("POST", f"{answering_server.url}/x", [], b"%d" % index)
        assert await response.read_all() == b"ok"
        response.release()

    assert answering_server.connections == 1
    assert [seen.body for seen in answering_server.seen] == [b"%d" % i for i in range(20)]


async def test_concurrent_requests_are_never_capped(serve, client):
    """Twenty requests in flight at once get twenty connections: none waits for another."""
    arrived = 0
    all_in = asyncio.Event()

    async def handler(reader, writer):
        nonlocal arrived
        await read_head(reader)
        arrived += 1
        if arrived == 20:
            all_in.set()
        # Nobody is answered before all twenty are in: a cap would deadlock here.
        await all_in.wait()
        writer.write(OK)
        await hold_open(reader)

    server = await serve(handler)

    async def one() -> bytes:
        response = await client.request("GET", f"{server.url}/x")
        try:
            return await response.read_all()
        finally:
            response.release()

    replies = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(20))), WAIT)

    assert replies == [b"ok"] * 20
    assert server.connections == 20


def dropping(server: list[RawServer], plan: list[str]) -> Handler:
    """Connection n follows plan[n - 1]: "once" answers one request and drops the connection
    on the next (as a server that closed it while idle), "never" drops it on the first."""

    async def handler(reader, writer):
        if plan[server[0].connections - 1] == "once":
            await server[0].read_request(reader)
            writer.write(OK)
            await writer.drain()
        await server[0].read_request(reader)

    return handler


async def test_stale_pooled_connection_is_retried_on_a_fresh_one(serve, client):
    """A pooled connection that dies before any reply byte is replaced, once, unnoticed."""
    holder: list[RawServer] = []
    holder.append(await serve(dropping(holder, ["once", "once"])))
    server = holder[0]
    first = await client.request("POST", f"{server.url}/x", [], b"one")
    assert await first.read_all() == b"ok"
    first.release()

    second = await client.request("POST", f"{server.url}/x", [], b"two")

    assert second.status == 200
    assert await second.read_all() == b"ok"
    assert server.connections == 2
    assert [seen.body for seen in server.seen] == [b"one", b"two", b"two"]


async def test_stale_connection_is_not_retried_twice_nor_for_a_streamed_body(serve, client):
    """The retry happens once, and never for a body that was consumed as it was sent."""
    holder: list[RawServer] = []
    holder.append(await serve(dropping(holder, ["once", "never", "once"])))
    server = holder[0]
    url = f"{server.url}/x"

    async def body() -> AsyncIterator[bytes]:
        yield b"streamed"

    for retried in (b"bytes", body()):
        first = await client.request("POST", url, [], b"one")
        await first.read_all()
        first.release()
        with pytest.raises(ServerDisconnected):
            await asyncio.wait_for(client.request("POST", url, [], retried), WAIT)

    # Bytes: the stale connection and one fresh one. Streamed: only the stale one.
    assert server.connections == 3
    assert [seen.body for seen in server.seen] == [b"one", b"bytes", b"bytes", b"one", b"streamed"]


async def test_closing_mid_stream_drops_the_connection(serve, client):
    """close() while the server is still sending: the server sees its client go away."""
    gone = asyncio.Event()

    async def handler(reader, writer):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            while True:
                writer.write(b"5\r\ntoken\r\n")
                await writer.drain()
                if reader.at_eof():
                    break
                await asyncio.sleep(0.01)
        except ConnectionError:
            pass
        gone.set()

    server = await serve(handler)
    response = await client.request("POST", f"{server.url}/forever", [], b"{}")
    assert (await response.read_chunk()).startswith(b"token")

    response.close()

    await asyncio.wait_for(gone.wait(), WAIT)


async def test_streamed_upload_is_chunked_while_the_reply_already_streams(serve, client):
    """The reply starts before the upload ends; the server gets the whole body, chunked."""
    pieces = [random.Random(index).randbytes(64 * 1024) for index in range(16)]
    reply_started = asyncio.Event()
    seen: list[Seen] = []

    async def body() -> AsyncIterator[bytes]:
        yield pieces[0]
        await reply_started.wait()
        for piece in pieces[1:]:
            yield piece

    async def handler(reader, writer):
        request = await read_head(reader)
        seen.append(request)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nstarted\r\n")
        await writer.drain()
        request.body = await read_body(reader, request.headers)
        digest = hashlib.sha256(request.body).hexdigest().encode()
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(digest), digest))
        await hold_open(reader)

    server = await serve(handler)
    response = await client.request("PUT", f"{server.url}/upload", [], body())
    assert await asyncio.wait_for(response.read_chunk(), WAIT) == b"started"
    reply_started.set()
    digest = await asyncio.wait_for(response.read_all(), WAIT)

    assert digest == hashlib.sha256(b"".join(pieces)).hexdigest().encode()
    assert seen[0].headers["transfer-encoding"] == "chunked"
    assert "content-length" not in seen[0].headers
    assert seen[0].body == b"".join(pieces)


async def test_streamed_body_with_a_given_length_is_sent_unchunked(answering_server, client):
    """A Content-Length from the caller frames a streamed body as is, without chunks."""

    async def body() -> AsyncIterator[bytes]:
        yield b"01234"
        yield b"56789"

    headers = [("Content-Length", "10"), ("Transfer-Encoding", "chunked")]
    response = await client.request("POST", f"{answering_server.url}/x", headers, body())
    assert await response.read_all() == b"ok"
    response.release()

    [seen] = answering_server.seen
    assert seen.headers["content-length"] == "10"
    assert "transfer-encoding" not in seen.headers
    assert seen.body == b"0123456789"
    # Framed exactly, the connection is kept.
    response = await client.request("GET", f"{answering_server.url}/x")
    await response.read_all()
    assert answering_server.connections == 1


async def test_a_reader_that_does_not_read_stops_the_server(serve, client):
    """Unread body stops reading from the socket: the agent buffers under 1 MiB of 20 MiB."""
    total = 20 * 1024 * 1024
    sent = 0

    async def handler(reader, writer):
        nonlocal sent
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
        piece = b"x" * 65536
        while sent < total:
            writer.write(piece)
            await writer.drain()
            sent += len(piece)
        await hold_open(reader)

    server = await serve(handler)
    response = await client.request("GET", f"{server.url}/big")
    last = -1
    async with asyncio.timeout(WAIT):
        while sent != last:  # until the server is stuck on a full socket
            last = sent
            await asyncio.sleep(0.3)

    held = len(await response.read_chunk())

    assert sent < total
    assert 0 < held < 1024 * 1024
    rest = await asyncio.wait_for(response.read_all(), WAIT)
    assert held + len(rest) == total


async def test_refused_connection_says_so_without_the_address(client):
    """A port nobody listens on gives CannotConnect("connection refused"), no host or port."""
    port = free_port()
    with pytest.raises(CannotConnect) as caught:
        await client.request("GET", f"http://127.0.0.1:{port}/v1/models")

    assert caught.value.reason == "connection refused"
    assert "127.0.0.1" not in str(caught.value)
    assert str(port) not in str(caught.value)


async def test_connect_timeout_is_a_timeout_error():
    """A server that never completes the handshake times out after the connect timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        # Fill the accept queue, which is never served: further handshakes go unanswered.
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        try:
            client = BackendClient(connect_timeout=0.2)
            try:
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(client.request("GET", f"http://127.0.0.1:{port}/"), WAIT)
            finally:
                client.close()
        finally:
            for filler in fillers:
                filler.close()


async def test_malformed_reply_is_an_invalid_response(serve, client):
    """Bytes that are not HTTP/1.x raise InvalidResponse."""

    async def handler(reader, writer):
        await read_head(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await hold_open(reader)

    server = await serve(handler)
    with pytest.raises(InvalidResponse, match="invalid HTTP response"):
        await asyncio.wait_for(client.request("GET", f"{server.url}/x"), WAIT)


async def test_interim_replies_are_skipped(serve, client):
    """100 Continue and 103 Early Hints are passed over for the final response."""

    async def handler(reader, writer):
        await read_head(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
        await hold_open(reader)

    server = await serve(handler)
    response = await client.request("POST", f"{server.url}/x", [], b"{}")

    assert response.status == 200
    assert response.header("link") is None
    assert await response.read_all() == b"final"


async def test_userinfo_becomes_basic_auth_and_never_shows_in_errors(
    answering_server, serve, client
):
    """user:password@ in the URL is sent as Basic auth, unless the caller authorizes itself."""
    base = f"http://alice:s%40cret@127.0.0.1:{answering_server.port}"
    for headers in ([], [("Authorization", "Bearer own-key")]):
        response = await client.request("GET", f"{base}/v1/models", headers)
        await response.read_all()
        response.release()

    expected = "Basic " + base64.b64encode(b"alice:s@cret").decode()
    assert [seen.headers["authorization"] for seen in answering_server.seen] == [
        expected,
        "Bearer own-key",
    ]

    async def garbage(reader, writer):
        await read_head(reader)
        writer.write(b"garbage\r\n\r\n")
        await hold_open(reader)

    broken = await serve(garbage)
    errors: list[BaseException] = []
    for port in (free_port(), broken.port):
        with pytest.raises((CannotConnect, InvalidResponse)) as caught:
            await client.request("GET", f"http://alice:s%40cret@127.0.0.1:{port}/v1")
        errors.append(caught.value)
    assert [type(error) for error in errors] == [CannotConnect, InvalidResponse]
    for error in errors:
        for text in (str(error), repr(error)):
            assert "alice" not in text
            assert "cret" not in text


async def test_head_and_no_content_replies_have_no_body(serve, client):
    """A reply to HEAD (whatever length it names) and a 204 end at their head."""

    server = await serve(
        head_or(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n"
        )
    )
    for method in ("HEAD", "DELETE", "HEAD", "DELETE"):
        response = await client.request(method, f"{server.url}/x")
        assert response.status in (200, 204)
        assert response.content_length == 0
        assert await asyncio.wait_for(response.read_all(), WAIT) == b""
        response.release()

    # A HEAD reply ends at its head, so its connection serves the next request too.
    assert server.connections == 1


async def test_a_reply_after_a_head_reply_on_the_same_connection_is_read_whole(serve, client):
    """After HEAD, the next reply's body is read as its own, not as the HEAD reply's."""

    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    server = await serve(head_or(head, head + b"hello"))
    for method in ("HEAD", "GET", "HEAD", "GET"):
        response = await client.request(method, f"{server.url}/x")
        body = await asyncio.wait_for(response.read_all(), WAIT)
        assert body == (b"" if method == "HEAD" else b"hello")
        response.release()

    assert server.connections == 1


async def test_idle_connections_close_after_the_keepalive_timeout(serve):
    """A pooled connection unused for the keep-alive timeout is closed by the client."""
    closed = asyncio.Event()

    async def handler(reader, writer):
        await read_head(reader)
        writer.write(OK)
        await hold_open(reader)
        closed.set()

    server = await serve(handler)
    client = BackendClient(connect_timeout=2.0, keepalive=0.1)
    try:
        response = await client.request("GET", f"{server.url}/x")
        await response.read_all()
        response.release()
        await asyncio.wait_for(closed.wait(), WAIT)
        response = await client.request("GET", f"{server.url}/x")
        assert await response.read_all() == b"ok"
    finally:
        client.close()
    assert server.connections == 2


async def test_a_line_break_in_a_header_is_refused_before_connecting(answering_server, client):
    """A header that would smuggle another line raises ValueError; nothing reaches the server."""
    headers = [("X-Injected", "a\r\nHost: elsewhere")]
    with pytest.raises(ValueError, match="line break"):
        await client.request("GET", f"{answering_server.url}/x", headers)

    assert answering_server.connections == 0


async def test_client_close_drops_connections_in_use(serve, client):
    """close() ends connections still waiting for a reply; the server sees them go."""
    gone = asyncio.Event()

    async def handler(reader, writer):
        await read_head(reader)
        await hold_open(reader)
        gone.set()

    server = await serve(handler)
    pending = asyncio.create_task(client.request("GET", f"{server.url}/hang"))
    await wait_until(lambda: server.connections == 1)

    client.close()

    await asyncio.wait_for(gone.wait(), WAIT)
    with pytest.raises(ServerDisconnected):
        await asyncio.wait_for(pending, WAIT)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, and its key."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_https_backends_are_verified(serve, client, certificate, monkeypatch):
    """https:// goes over TLS checked against the trusted CAs; an unknown issuer is refused."""
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    holder: list[RawServer] = []
    holder.append(await serve(answering(OK, holder), server_context))
    server = holder[0]

    with pytest.raises(CannotConnect, match="certificate verify failed"):
        await client.request("GET", f"{server.url}/v1/models")

    trusting = ssl.create_default_context(cafile=str(cert))
    monkeypatch.setattr(ssl, "create_default_context", lambda: trusting)
    other = BackendClient(connect_timeout=2.0)
    try:
        response = await other.request("GET", f"{server.url}/v1/models")
        assert await response.read_all() == b"ok"
    finally:
        other.close()
    assert server.seen[0].headers["host"] == f"127.0.0.1:{server.port}"


async def test_a_body_sink_takes_pieces_only_while_a_reader_waits_with_nothing_kept(serve, client):
    """Pieces go to the sink while read_chunk waits; one the sink refuses, and every piece after
    it until a reader has taken them and waits again, is kept for read_chunk, in order."""
    steps = [asyncio.Event() for _ in range(4)]

    async def handler(reader, writer):
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
        for index, piece in enumerate((b"1\r\nb\r\n", b"1\r\nc\r\n", b"1\r\nd\r\n0\r\n\r\n")):
            await steps[index].wait()
            writer.write(piece)
        await hold_open(reader)

    server = await serve(handler)
    response = await client.request("GET", f"{server.url}/stream")
    taken: list[bytes] = []
    accept = [True]

    def sink(data: bytes) -> bool:
        if accept[0]:
            taken.append(data)
        return accept[0]

    response.sink_body(sink)
    # "a" arrived before anyone waited: kept.
    assert await asyncio.wait_for(response.read_chunk(), WAIT) == b"a"
    reader = asyncio.create_task(response.read_chunk())
    await asyncio.sleep(0)
    steps[0].set()
    await wait_until(lambda: taken == [b"b"])
    accept[0] = False
    steps[1].set()
    assert await asyncio.wait_for(reader, WAIT) == b"c"  # refused: kept and read
    accept[0] = True
    steps[2].set()
    await asyncio.sleep(0.1)
    assert taken == [b"b"]  # nobody waited for "d": kept, never overtaking
    assert await asyncio.wait_for(response.read_chunk(), WAIT) == b"d"
    assert await asyncio.wait_for(response.read_chunk(), WAIT) == b""


async def test_send_now_writes_on_an_idle_connection_in_the_call(answering_server, client):
    """With a pooled connection idle, the request is on its way before anything is awaited;
    without one, nothing is sent and the caller is told so."""
    url = f"{answering_server.url}/x"
    assert client.send_now("POST", url, [], b"none idle") is None
    assert answering_server.connections == 0
    first = await client.request("POST", url, [], b"one")
    await first.read_all()
    first.release()

    pending = client.send_now("POST", url, [], b"two")

    assert pending is not None
    await wait_until(lambda: len(answering_server.seen) == 2)  # the response is not awaited
    response = await pending.response()
    assert await response.read_all() == b"ok"
    response.release()
    assert answering_server.connections == 1
    assert [seen.body for seen in answering_server.seen] == [b"one", b"two"]


async def test_send_now_on_a_stale_connection_is_retried_on_a_fresh_one(serve, client):
    """The pooled connection died while idle: awaiting the response sends it again, once."""
    holder: list[RawServer] = []
    holder.append(await serve(dropping(holder, ["once", "once"])))
    server = holder[0]
    first = await client.request("POST", f"{server.url}/x", [], b"one")
    await first.read_all()
    first.release()

    pending = client.send_now("POST", f"{server.url}/x", [], b"two")
    assert pending is not None
    response = await asyncio.wait_for(pending.response(), WAIT)

    assert await response.read_all() == b"ok"
    assert server.connections == 2
    assert [seen.body for seen in server.seen] == [b"one", b"two", b"two"]


async def test_an_abandoned_early_request_hangs_up(serve, client):
    """A request sent early that nobody waits for closes its connection: the server sees its
    client go away, and the connection is not pooled again."""
    hung_up = asyncio.Event()
    holder: list[RawServer] = []

    async def handler(reader, writer):
        await holder[0].read_request(reader)
        writer.write(OK)
        await holder[0].read_request(reader)  # the early request, never answered
        await hold_open(reader)
        hung_up.set()

    holder.append(await serve(handler))
    url = f"{holder[0].url}/x"
    first = await client.request("GET", url)
    await first.read_all()
    first.release()
    pending = client.send_now("GET", url)
    assert pending is not None
    await wait_until(lambda: len(holder[0].seen) == 2)

    pending.abandon()

    await asyncio.wait_for(hung_up.wait(), WAIT)
    assert client.send_now("GET", url) is None


class _Transport(asyncio.Transport):
    """Takes what a connection writes; the test feeds the replies by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.closing = True


def _sent_connection(
    *, head_request: bool = False
) -> tuple[Connection, "asyncio.Future[BackendResponse]"]:
    connection = Connection([], lambda _connection: None, lambda _connection: None)
    connection.connection_made(_Transport())
    method = b"HEAD" if head_request else b"GET"
    request = method + b" /x HTTP/1.1\r\n\r\n"
    head = connection.send(request, None, None, head_request=head_request, keep_alive=True)
    return connection, head


async def test_a_complete_response_is_announced_in_the_call_that_reads_its_end() -> None:
    """The completion callback runs inside the read that ends the response, with the body
    whole, not a loop turn later; a response still arriving does not call it."""
    connection, head = _sent_connection()
    seen: list[bytes] = []
    connection.when_complete(lambda: seen.append(head.result().body()))

    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe")
    assert seen == []
    connection.data_received(b"llo")

    assert seen == [b"hello"]
    assert head.result().complete


async def test_a_reply_to_a_head_request_is_complete_with_its_head() -> None:
    """A HEAD reply has no body whatever length it names: its head completes it."""
    connection, head = _sent_connection(head_request=True)
    called: list[bool] = []
    connection.when_complete(lambda: called.append(head.result().complete))

    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")

    assert called == [True]


async def test_a_completion_callback_is_for_the_request_it_was_set_for() -> None:
    """A lost connection forgets the callback, and so does the next request on the connection."""
    connection, head = _sent_connection()
    called: list[str] = []
    connection.when_complete(lambda: called.append("first"))
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe")
    connection.connection_lost(None)
    assert called == []

    connection, head = _sent_connection()
    connection.when_complete(lambda: called.append("first"))
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    head.result().release()
    connection.send(b"GET /y HTTP/1.1\r\n\r\n", None, None, head_request=False, keep_alive=True)
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert called == ["first"]


async def test_the_pieces_of_one_read_reach_the_sink_as_one() -> None:
    """A reply chunked in small pieces (a TTS server's audio) that arrive in one read goes to
    the sink in one call, ending included; pieces of separate reads stay separate."""
    connection, head = _sent_connection()
    taken: list[bytes] = []
    connection.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    response = head.result()
    response.sink_body(lambda data: taken.append(data) is None, before_reading=True)

    connection.data_received(b"2\r\nab\r\n2\r\ncd\r\n2\r\nef\r\n")
    connection.data_received(b"1\r\ng\r\n3\r\nhij\r\n0\r\n\r\n")

    assert taken == [b"abcdef", b"ghij"]
    assert response.complete


async def test_pieces_of_one_read_are_joined_no_further_than_one_frames_payload() -> None:
    """Joined pieces never exceed a tunnel frame's payload, which would only cut them up again:
    five pieces of 20 KB arrive as 60 KB, then 40 KB, in order."""
    connection, head = _sent_connection()
    taken: list[bytes] = []
    connection.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    response = head.result()
    response.sink_body(lambda data: taken.append(data) is None, before_reading=True)
    pieces = [bytes([index]) * 20_000 for index in range(5)]

    connection.data_received(b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n")

    assert [len(data) for data in taken] == [60_000, 40_000]
    assert b"".join(taken) == b"".join(pieces)
