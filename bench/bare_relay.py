"""The least a two-process Python relay does per request: a yardstick for the gateway path.

``front`` takes HTTP/1.1 from clients and sends each whole request over one TCP tunnel;
``back`` dialled that tunnel, writes each request to a keep-alive connection to the model
server and sends the response's bytes back as they arrive, which ``front`` writes to the
client unchanged. Both find message ends with httptools, as the gateway and agent do, and run
on uvloop. Nothing else happens: no authentication, routing, admission, metering, JSON or
logging. The gateway path carries the same two hops, so what it spends beyond this is the
cost of what it does for a request.

Tunnel frames are ``kind, request id, length`` (``!BII``) and the payload. ``front`` sends
REQUEST (a whole request) and CANCEL (its client left); ``back`` sends DATA (response bytes)
and END (the response is complete; ``front``'s connection may take its next request).
"""

import argparse
import asyncio
import struct
import sys
from collections.abc import Callable

import httptools
import uvloop

_HEADER = struct.Struct("!BII")
REQUEST, CANCEL, DATA, END = 1, 2, 3, 4
_DIAL_SECONDS = 15.0

FrameHandler = Callable[[int, int, bytes], None]


class Tunnel(asyncio.Protocol):
    """One end of the framed TCP tunnel."""

    def __init__(self, on_frame: FrameHandler, on_lost: Callable[[], None]) -> None:
        self._on_frame = on_frame
        self._on_lost = on_lost
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        """Hand on every whole frame."""
        buffer = self._buffer
        buffer += data
        offset = 0
        end = len(buffer)
        while end - offset >= _HEADER.size:
            kind, request_id, length = _HEADER.unpack_from(buffer, offset)
            start = offset + _HEADER.size
            if end - start < length:
                break
            self._on_frame(kind, request_id, bytes(buffer[start : start + length]))
            offset = start + length
        del buffer[:offset]

    def connection_lost(self, exc: Exception | None) -> None:
        """Tell the owner."""
        self._on_lost()

    def send(self, kind: int, request_id: int, payload: bytes = b"") -> None:
        """Write one frame."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_HEADER.pack(kind, request_id, len(payload)) + payload)


# -- front: clients in, requests through the tunnel


class Front:
    """The client side: numbers requests and routes tunnel frames back to their clients."""

    def __init__(self) -> None:
        self.tunnel: Tunnel | None = None
        self.clients: dict[int, ClientConnection] = {}
        self._next_id = 0

    def new_id(self) -> int:
        """A fresh request id."""
        self._next_id += 1
        return self._next_id

    def on_frame(self, kind: int, request_id: int, payload: bytes) -> None:
        """Response bytes or the end of a response, for the client that asked."""
        client = self.clients.get(request_id)
        if client is None:
            return
        if kind == DATA:
            client.write(payload)
        elif kind == END:
            del self.clients[request_id]
            client.response_ended()

    def on_tunnel_lost(self) -> None:
        """Without the tunnel nothing can be answered: drop every client."""
        self.tunnel = None
        for client in list(self.clients.values()):
            client.close()
        self.clients.clear()


class ClientConnection(asyncio.Protocol):
    """One client connection: requests go through the tunnel one at a time, in order; a
    pipelined request waits for the response before it."""

    def __init__(self, front: Front) -> None:
        self._front = front
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._parts: list[bytes] = []
        self._request_id = 0
        self._pipelined: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        """Parse; whole requests come out of the parser's callbacks."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()

    def on_message_begin(self) -> None:
        """A request starts."""
        self._url = b""
        self._parts = []

    def on_url(self, url: bytes) -> None:
        """A piece of the target (it may come in several)."""
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header, as it came."""
        self._parts.append(name + b": " + value + b"\r\n")

    def on_headers_complete(self) -> None:
        """The head is whole: the request line goes first."""
        method = self._parser.get_method()
        self._parts.insert(0, method + b" " + self._url + b" HTTP/1.1\r\n")
        self._parts.append(b"\r\n")

    def on_body(self, body: bytes) -> None:
        """Body bytes (the bench's requests carry a Content-Length)."""
        self._parts.append(body)

    def on_message_complete(self) -> None:
        """Send the whole request through the tunnel, or after the response still coming."""
        request = b"".join(self._parts)
        self._parts = []
        if self._request_id:
            self._pipelined.append(request)
        else:
            self._send(request)

    def _send(self, request: bytes) -> None:
        front = self._front
        tunnel = front.tunnel
        if tunnel is None:
            self.close()
            return
        self._request_id = front.new_id()
        front.clients[self._request_id] = self
        tunnel.send(REQUEST, self._request_id, request)

    def write(self, data: bytes) -> None:
        """Response bytes to the client."""
        if self._transport is not None:
            self._transport.write(data)

    def response_ended(self) -> None:
        """Send the next pipelined request, if one came."""
        self._request_id = 0
        if self._pipelined:
            self._send(self._pipelined.pop(0))

    def close(self) -> None:
        """Close the client's connection."""
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        """A client that leaves mid-response cancels it."""
        if self._request_id and self._front.clients.pop(self._request_id, None) is not None:
            tunnel = self._front.tunnel
            if tunnel is not None:
                tunnel.send(CANCEL, self._request_id)


async def run_front(front: Front, port: int, tunnel_port: int) -> None:
    """Listen for the back's tunnel, then for clients; serve until cancelled."""
    loop = asyncio.get_running_loop()
    connected = asyncio.Event()

    def tunnel_protocol() -> Tunnel:
        tunnel = Tunnel(front.on_frame, front.on_tunnel_lost)
        front.tunnel = tunnel
        connected.set()
        return tunnel

    tunnel_server = await loop.create_server(tunnel_protocol, "127.0.0.1", tunnel_port)
    print("waiting for the back on the tunnel", flush=True)
    await connected.wait()
    server = await loop.create_server(
        lambda: ClientConnection(front), "127.0.0.1", port, backlog=4096
    )
    print(f"listening on 127.0.0.1:{port}", flush=True)
    async with tunnel_server, server:
        await asyncio.Future()


# -- back: requests from the tunnel, to the model server


class Back:
    """The model-server side: a keep-alive pool, one connection per request in flight."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._idle: list[ServerConnection] = []
        self.busy: dict[int, ServerConnection] = {}
        self._connecting: set[asyncio.Task[None]] = set()
        self.tunnel: Tunnel | None = None
        self.lost = asyncio.Event()

    def on_frame(self, kind: int, request_id: int, payload: bytes) -> None:
        """A request to forward, or one to drop."""
        if kind == REQUEST:
            while self._idle:
                connection = self._idle.pop()
                if connection.open:
                    connection.start(request_id, payload)
                    self.busy[request_id] = connection
                    return
            task = asyncio.get_running_loop().create_task(
                self._connect_and_send(request_id, payload)
            )
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)
        elif kind == CANCEL:
            cancelled = self.busy.pop(request_id, None)
            if cancelled is not None:
                cancelled.abort()

    async def _connect_and_send(self, request_id: int, payload: bytes) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                lambda: ServerConnection(self), self._host, self._port
            )
        except OSError:
            self.answer(request_id, b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        self.busy[request_id] = connection
        connection.start(request_id, payload)

    def answer(self, request_id: int, data: bytes) -> None:
        """Bytes of a response, then its end."""
        if self.tunnel is not None:
            self.tunnel.send(DATA, request_id, data)
            self.tunnel.send(END, request_id)

    def finished(self, connection: "ServerConnection", request_id: int, reusable: bool) -> None:
        """A response ended: tell the front, keep the connection if it may be reused."""
        self.busy.pop(request_id, None)
        if self.tunnel is not None:
            self.tunnel.send(END, request_id)
        if reusable:
            self._idle.append(connection)
        else:
            connection.abort()


class ServerConnection(asyncio.Protocol):
    """One keep-alive connection to the model server."""

    def __init__(self, back: Back) -> None:
        self._back = back
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._request_id = 0
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self._transport = transport  # type: ignore[assignment]
        self.open = True

    def start(self, request_id: int, request: bytes) -> None:
        """Write one request."""
        self._request_id = request_id
        assert self._transport is not None
        self._transport.write(request)

    def data_received(self, data: bytes) -> None:
        """Response bytes go to the tunnel as they come; the parser finds the end."""
        tunnel = self._back.tunnel
        if tunnel is not None and self._request_id:
            tunnel.send(DATA, self._request_id, data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.abort()

    def on_message_complete(self) -> None:
        """The response is whole."""
        request_id, self._request_id = self._request_id, 0
        self._back.finished(self, request_id, self._parser.should_keep_alive())

    def abort(self) -> None:
        """Drop the connection (a cancelled or broken exchange)."""
        self.open = False
        if self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        """A response cut short still ends, so the client is not left waiting."""
        self.open = False
        if self._request_id:
            self._back.finished(self, self._request_id, reusable=False)
            self._request_id = 0


async def run_back(back: Back, tunnel_port: int) -> None:
    """Dial the front's tunnel (until it listens, for up to ``_DIAL_SECONDS``) and serve its
    requests until it closes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _DIAL_SECONDS
    while True:
        try:
            _, tunnel = await loop.create_connection(
                lambda: Tunnel(back.on_frame, back.lost.set), "127.0.0.1", tunnel_port
            )
        except OSError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)
        else:
            break
    back.tunnel = tunnel
    print("tunnel connected", flush=True)
    await back.lost.wait()


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.bare_relay front|back ...``"""
    parser = argparse.ArgumentParser(prog="python -m bench.bare_relay", description=__doc__)
    roles = parser.add_subparsers(dest="role", required=True)
    front = roles.add_parser("front", help="clients in, requests into the tunnel")
    front.add_argument("--port", type=int, required=True, help="where clients connect")
    front.add_argument("--tunnel-port", type=int, required=True, help="where the back dials")
    back = roles.add_parser("back", help="requests out of the tunnel, to the model server")
    back.add_argument("--tunnel-port", type=int, required=True, help="the front's tunnel")
    back.add_argument("--server-port", type=int, required=True, help="the model server's port")
    back.add_argument("--server-host", default="127.0.0.1")
    args = parser.parse_args(argv)
    if args.role == "front":
        uvloop.run(run_front(Front(), args.port, args.tunnel_port))
    else:
        uvloop.run(run_back(Back(args.server_host, args.server_port), args.tunnel_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
