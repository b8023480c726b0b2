"""Test doubles on 127.0.0.1: a gateway tunnel endpoint and OpenAI-compatible model servers."""

import asyncio
import hashlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from inference_club.protocol import (
    DEFAULT_INITIAL_WINDOW,
    MAX_BODY_CHUNK,
    MAX_FRAME_SIZE,
    PROTOCOL_VERSION,
    Body,
    CloseCode,
    End,
    Error,
    Frame,
    Hello,
    Models,
    Pong,
    Request,
    Response,
    SendWindow,
    Welcome,
    Window,
    decode,
    decode_message,
    encode,
    encode_batch,
)

TOKEN = "provider-token-5ecret-0123456789abcdef"
# Long enough for a loaded CI machine, short enough that a hang fails fast.
WAIT = 5.0


async def wait_until(condition: Callable[[], object], timeout: float = WAIT) -> None:
    """Poll ``condition`` until it holds: for state that no event reports."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the state belongs to code without events
            await asyncio.sleep(0.01)


async def start_server(app: web.Application, port: int | None = None) -> TestServer:
    """Serve ``app`` on 127.0.0.1 (an ephemeral port unless given)."""
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server(shutdown_timeout=0.5)
    return server


@dataclass
class Relayed:
    """What the agent sent back on one stream."""

    response: Response | None = None
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    end: End | None = None
    error: Error | None = None

    @property
    def body(self) -> bytes:
        return b"".join(data for _, data in self.chunks)


class TunnelPeer:
    """The gateway's side of one tunnel connection, driven by a test."""

    def __init__(
        self, ws: web.WebSocketResponse, hello: Hello, welcome: Welcome, *, auto_grant: bool
    ) -> None:
        self.ws = ws
        self.hello = hello
        self.welcome = welcome
        self.auto_grant = auto_grant
        self.control: asyncio.Queue[Frame] = asyncio.Queue()
        self.granted: defaultdict[int, list[int]] = defaultdict(list)
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        # The frames of every message the agent sent, to see which ones came batched.
        self.messages: list[tuple[Frame, ...]] = []
        self._streams: defaultdict[int, asyncio.Queue[Frame]] = defaultdict(asyncio.Queue)
        self._send_windows: dict[int, SendWindow] = {}
        self._next_stream = 1

    async def send(self, frame: Frame) -> None:
        await self.ws.send_bytes(encode(frame))

    async def send_batch(self, *frames: Frame) -> None:
        await self.ws.send_bytes(encode_batch(frames))

    async def read_loop(self) -> None:
        async for message in self.ws:
            if message.type is not WSMsgType.BINARY:
                continue
            frames = decode_message(message.data)
            self.messages.append(tuple(frames))
            for frame in frames:
                await self._receive(frame)
        self.close_code = self.ws.close_code
        self.closed.set()

    async def _receive(self, frame: Frame) -> None:
        if isinstance(frame, Window):
            self.granted[frame.stream_id].append(frame.increment)
            if window := self._send_windows.get(frame.stream_id):
                window.grant(frame.increment)
        elif isinstance(frame, Models | Pong | Hello):
            self.control.put_nowait(frame)
        else:
            if isinstance(frame, Body) and self.auto_grant:
                await self.send(Window(frame.stream_id, len(frame.data)))
            self._streams[frame.stream_id].put_nowait(frame)

    async def request(
        self,
        model: str,
        path: str = "/chat/completions",
        body: bytes = b"",
        *,
        method: str = "POST",
        query: str = "",
        headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),),
        timeout: float = 10.0,
        chunk_size: int = MAX_BODY_CHUNK,
        batched: bool = True,
    ) -> int:
        """Open a stream and send the whole body, respecting the agent's window grants.

        A body of one chunk goes in one message with its request and end, as the gateway sends it.
        """
        stream_id = self._next_stream
        self._next_stream += 2
        window = SendWindow(self.welcome.initial_window)
        self._send_windows[stream_id] = window
        head = Request(stream_id, method, path, model, query, headers, timeout)
        if batched and len(body) <= min(chunk_size, window.credit):
            body_frames: list[Frame] = [Body(stream_id, body)] if body else []
            await self.send_batch(head, *body_frames, End(stream_id))
            return stream_id
        await self.send(head)
        for offset in range(0, len(body), chunk_size):
            piece = body[offset : offset + chunk_size]
            await asyncio.wait_for(window.acquire(len(piece)), WAIT)
            await self.send(Body(stream_id, piece))
        await self.send(End(stream_id))
        return stream_id

    async def next_frame(self, stream_id: int, timeout: float = WAIT) -> Frame:
        return await asyncio.wait_for(self._streams[stream_id].get(), timeout)

    async def next_control(self, timeout: float = WAIT) -> Frame:
        return await asyncio.wait_for(self.control.get(), timeout)

    async def collect(self, stream_id: int, timeout: float = WAIT) -> Relayed:
        """Frames of one stream until its End or Error."""
        relayed = Relayed()
        while True:
            frame = await self.next_frame(stream_id, timeout)
            match frame:
                case Response():
                    relayed.response = frame
                case Body():
                    relayed.chunks.append((time.monotonic(), frame.data))
                case End():
                    relayed.end = frame
                    return relayed
                case Error():
                    relayed.error = frame
                    return relayed


class FakeGateway:
    """A tunnel endpoint at ``/api/tunnel`` that checks the token and answers hello with welcome."""

    def __init__(
        self,
        *,
        token: str = TOKEN,
        provider: str = "brian-home",
        heartbeat_interval: float = 30.0,
        initial_window: int = DEFAULT_INITIAL_WINDOW,
        max_body_chunk: int = MAX_BODY_CHUNK,
        auto_grant: bool = True,
        port: int | None = None,
        reject_code: int | None = None,
    ) -> None:
        self.token = token
        self.reject_code = reject_code
        self.welcome = Welcome(
            PROTOCOL_VERSION, provider, max_body_chunk, initial_window, heartbeat_interval
        )
        self.auto_grant = auto_grant
        self.peers: asyncio.Queue[TunnelPeer] = asyncio.Queue()
        self.attempts: list[dict[str, Any]] = []
        self._port = port
        self._open: set[web.WebSocketResponse] = set()
        self._server: TestServer | None = None
        self._closing = False

    @property
    def url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url(""))

    async def start(self) -> "FakeGateway":
        app = web.Application()
        app.router.add_get("/api/tunnel", self._handle)
        self._server = await start_server(app, self._port)
        return self

    async def close(self) -> None:
        self._closing = True
        for ws in list(self._open):
            await ws.close(code=CloseCode.GOING_AWAY)
        if self._server is not None:
            await self._server.close()

    async def next_peer(self, timeout: float = WAIT) -> TunnelPeer:
        return await asyncio.wait_for(self.peers.get(), timeout)

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        self.attempts.append(
            {
                "at": time.monotonic(),
                "path_qs": request.path_qs,
                "authorization": request.headers.get("Authorization"),
            }
        )
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME_SIZE + 5, heartbeat=None)
        await ws.prepare(request)
        if self._closing:
            await ws.close(code=CloseCode.GOING_AWAY)
            return ws
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            await ws.close(code=CloseCode.AUTHENTICATION_FAILED, message=b"authentication failed")
            return ws
        self._open.add(ws)
        try:
            message = await ws.receive(timeout=WAIT)
            hello = decode(message.data)
            assert isinstance(hello, Hello)
            if self.reject_code is not None:
                await ws.close(code=self.reject_code, message=b"rejected")
                return ws
            await ws.send_bytes(encode(self.welcome))
            peer = TunnelPeer(ws, hello, self.welcome, auto_grant=self.auto_grant)
            self.peers.put_nowait(peer)
            await peer.read_loop()
        finally:
            self._open.discard(ws)
        return ws


@dataclass
class Recorded:
    """One request as a fake backend saw it."""

    method: str
    path: str
    query: str
    headers: CIMultiDict[str]
    body: bytes = b""
    reads: int = 0


class FakeBackend:
    """An OpenAI-compatible server; tests change its model list and watch what it receives."""

    def __init__(self, *models: str, sse_delay: float = 0.15, port: int | None = None) -> None:
        self._port = port
        self.models: list[dict[str, Any]] = [{"id": model, "object": "model"} for model in models]
        self.models_status = 200
        self.voices: dict[str, list[Any]] = {}
        self.sse_delay = sse_delay
        self.requests: list[Recorded] = []
        # Headers of each GET /models, kept apart from the relayed requests.
        self.listings: list[CIMultiDict[str]] = []
        self.sse_sent: list[float] = []
        self.disconnected = asyncio.Event()
        # The client port of every request, listings included: one port per TCP connection.
        self.client_ports: list[int] = []
        self._server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("/v1"))

    async def start(self) -> "FakeBackend":
        app = web.Application(middlewares=[self._note_connection])
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/audio/voices", self._voices)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/upload", self._upload)
        app.router.add_get("/v1/big", self._big)
        app.router.add_post("/v1/hang", self._hang)
        app.router.add_post("/v1/drop", self._drop)
        app.router.add_post("/v1/forever", self._forever)
        app.router.add_post("/v1/reject", self._reject)
        app.router.add_post("/v1/truncated", self._truncated)
        self._server = await start_server(app, self._port)
        return self

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    @web.middleware
    async def _note_connection(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        assert request.transport is not None
        self.client_ports.append(request.transport.get_extra_info("peername")[1])
        return await handler(request)

    async def _record(self, request: web.Request) -> Recorded:
        recorded = Recorded(
            request.method,
            request.path,
            request.raw_path.partition("?")[2],
            CIMultiDict(request.headers),
        )
        self.requests.append(recorded)
        async for chunk in request.content.iter_any():
            recorded.body += chunk
            recorded.reads += 1
        return recorded

    async def _models(self, request: web.Request) -> web.Response:
        self.listings.append(CIMultiDict(request.headers))
        if self.models_status != 200:
            return web.json_response({"error": "no"}, status=self.models_status)
        return web.json_response({"object": "list", "data": self.models})

    async def _voices(self, request: web.Request) -> web.Response:
        return web.json_response({"voices": self.voices.get(request.query["model"], [])})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        document = orjson.loads(recorded.body)
        if not document.get("stream"):
            answer = {
                "object": "chat.completion",
                "model": document["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            }
            return web.json_response(answer, headers={"X-Backend": "fake"})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for word in ("Hello", " there", "!"):
            event = {"choices": [{"index": 0, "delta": {"content": word}}]}
            await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
            self.sse_sent.append(time.monotonic())
            await asyncio.sleep(self.sse_delay)
        await response.write(b"data: [DONE]\n\n")
        self.sse_sent.append(time.monotonic())
        await response.write_eof()
        return response

    async def _upload(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        digest = hashlib.sha256(recorded.body).hexdigest()
        return web.json_response({"size": len(recorded.body), "sha256": digest})

    async def _big(self, request: web.Request) -> web.Response:
        self.requests.append(
            Recorded(request.method, request.path, request.query_string, CIMultiDict())
        )
        return web.Response(body=b"x" * int(request.query["size"]))

    async def _hang(self, request: web.Request) -> web.Response:
        await self._record(request)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.disconnected.set()
            raise
        return web.Response()  # pragma: no cover

    async def _drop(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        response.content_length = 10_000
        await response.prepare(request)
        await response.write(b"data: partial\n\n")
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.close()
        return response

    async def _truncated(self, request: web.Request) -> web.StreamResponse:
        """A JSON reply whose connection drops before the length it announced."""
        await self._record(request)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 100
        await response.prepare(request)
        await response.write(b'{"partial": ')
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.close()
        return response

    async def _reject(self, request: web.Request) -> web.Response:
        """Answer before reading the body, as a server refusing an upload does."""
        self.requests.append(Recorded(request.method, request.path, "", CIMultiDict()))
        return web.json_response({"error": {"message": "too large"}}, status=413)

    async def _forever(self, request: web.Request) -> web.StreamResponse:
        """Generate until the client goes away, like a model server streaming tokens."""
        await self._record(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            while True:
                await response.write(b'data: {"token": "x"}\n\n')
                await asyncio.sleep(0.02)
        except (asyncio.CancelledError, ConnectionResetError):
            self.disconnected.set()
            raise
