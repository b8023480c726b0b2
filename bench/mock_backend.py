"""A fast fake OpenAI-compatible model server on raw asyncio protocols, run as its own process.

Models: ``bench-model`` streams with the default profile, ``bench-slow`` with the slow profile
(for long-held streams), ``bench-whisper`` is a speech-to-text model, ``bench-tts`` answers
``/v1/audio/speech`` with WAV audio and ``bench-image`` answers ``/v1/images/generations`` with
a PNG image, each of a set size (``bench.media``). The request headers ``X-Mock-Chunks`` and
``X-Mock-Interval-Ms`` override the profile of one streamed reply.
"""

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import httptools
import orjson

from bench.media import IMAGE_MODEL, TTS_MODEL, image_reply, speech_reply

CHAT_MODEL = "bench-model"
SLOW_MODEL = "bench-slow"
STT_MODEL = "bench-whisper"
# Bodies past this are counted and dropped: only uploads are that large and nothing reads them.
_MAX_KEPT_BODY = 1024 * 1024
_REPLY_TEXT = "The quick brown fox jumps over the lazy dog."
PROMPT_TOKENS = 12


@dataclass(frozen=True, slots=True)
class StreamProfile:
    """How a streamed reply is paced: ``chunks`` content chunks, ``interval`` seconds apart."""

    chunks: int
    interval: float


@dataclass(frozen=True, slots=True)
class MockSettings:
    """The paces of the two chat models."""

    default: StreamProfile = StreamProfile(64, 0.020)
    slow: StreamProfile = StreamProfile(30, 1.0)
    speech_bytes: int = 1_000_000
    image_bytes: int = 1_000_000


def models_document() -> dict[str, Any]:
    """The body of ``GET /v1/models``."""
    cards = [(CHAT_MODEL, "llm"), (SLOW_MODEL, "llm"), (STT_MODEL, "stt")]
    cards += [(TTS_MODEL, "tts"), (IMAGE_MODEL, "image")]
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "mock", "service_type": kind}
            for name, kind in cards
        ],
    }


def completion_document(model: str) -> dict[str, Any]:
    """The body of a non-streamed chat completion."""
    return {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": _REPLY_TEXT},
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(9),
    }


def _usage(completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion_tokens,
        "total_tokens": PROMPT_TOKENS + completion_tokens,
    }


def _chunk_document(model: str, delta: dict[str, str], finish: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _http_chunk(payload: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(payload), payload)


def _sse_event(document: dict[str, Any]) -> bytes:
    return _http_chunk(b"data: " + orjson.dumps(document) + b"\n\n")


def _response(status: str, body: bytes, keep_alive: bool) -> bytes:
    connection = b"" if keep_alive else b"connection: close\r\n"
    return b"HTTP/1.1 %b\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%b\r\n%b" % (
        status.encode(),
        len(body),
        connection,
        body,
    )


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n"
)
_DONE = _http_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"


class _Frames:
    """Encoded SSE frames of one model, made once: encoding per chunk would dominate the CPU."""

    def __init__(self, model: str) -> None:
        self.first = _sse_event(_chunk_document(model, {"role": "assistant", "content": ""}, None))
        self.middle = _sse_event(_chunk_document(model, {"content": "tok "}, None))
        self.last = _sse_event(_chunk_document(model, {"content": "end"}, "stop"))
        self.model = model

    def usage(self, chunks: int) -> bytes:
        document = _chunk_document(self.model, {}, None)
        document["choices"] = []
        document["usage"] = _usage(chunks)
        return _sse_event(document)


class _Stream:
    """One streamed reply, paced by loop timers (cheaper than one task per stream)."""

    def __init__(
        self,
        transport: asyncio.Transport,
        frames: _Frames,
        profile: StreamProfile,
        include_usage: bool,
        on_done: Callable[[], None],
    ) -> None:
        self._transport = transport
        self._frames = frames
        self._profile = profile
        self._include_usage = include_usage
        self._on_done = on_done
        self._sent = 0
        self._handle: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._start = self._loop.time()

    def start(self, keep_alive: bool) -> None:
        head = _STREAM_HEAD + (b"\r\n" if keep_alive else b"connection: close\r\n\r\n")
        self._transport.write(head + self._frames.first)
        self._send_next()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def _send_next(self) -> None:
        if self._transport.is_closing():
            return
        self._sent += 1
        if self._sent < self._profile.chunks:
            if self._sent > 1:
                self._transport.write(self._frames.middle)
            # Paced from the start, not from the last tick, so timer lateness does not accumulate.
            deadline = self._start + self._sent * self._profile.interval
            self._handle = self._loop.call_at(deadline, self._send_next)
            return
        tail = self._frames.last
        if self._include_usage:
            tail += self._frames.usage(self._profile.chunks)
        self._transport.write(tail + _DONE)
        self._handle = None
        self._on_done()


class _Media:
    """The speech and image replies, made once: they are large and always the same."""

    def __init__(self, settings: MockSettings) -> None:
        self.speech = speech_reply(settings.speech_bytes)
        self.image = image_reply(settings.image_bytes)


class MockProtocol(asyncio.Protocol):
    """One client connection: HTTP/1.1 with keep-alive, parsed by httptools."""

    def __init__(self, settings: MockSettings, frames: dict[str, _Frames], media: _Media) -> None:
        self._settings = settings
        self._frames = frames
        self._media = media
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._stream: _Stream | None = None
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not inherit from asyncio.Transport but have its methods.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._stream is not None:
            self._stream.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._write(_response("400 Bad Request", b'{"error":"bad request"}', False), close=True)

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = bytearray()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        if self._headers.get(b"expect", b"").lower() == b"100-continue":
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n", close=False)

    def on_body(self, body: bytes) -> None:
        if len(self._body) + len(body) <= _MAX_KEPT_BODY:
            self._body += body

    def on_message_complete(self) -> None:
        keep_alive = self._parser.should_keep_alive()
        method = self._parser.get_method()
        path = self._url.split(b"?", 1)[0]
        close = not keep_alive
        if method == b"GET" and path == b"/v1/models":
            self._write(_response("200 OK", orjson.dumps(models_document()), keep_alive), close)
        elif method == b"POST" and path == b"/v1/chat/completions":
            self._chat(keep_alive)
        elif method == b"POST" and path == b"/v1/audio/transcriptions":
            reply = orjson.dumps({"text": _REPLY_TEXT, "usage": {"type": "duration", "seconds": 1}})
            self._write(_response("200 OK", reply, keep_alive), close)
        elif method == b"POST" and path == b"/v1/audio/speech":
            self._write(self._media.speech, close)
        elif method == b"POST" and path == b"/v1/images/generations":
            self._write(self._media.image, close)
        else:
            self._write(_response("404 Not Found", b'{"error":"not found"}', keep_alive), close)

    def _chat(self, keep_alive: bool) -> None:
        try:
            request = orjson.loads(self._body)
            assert isinstance(request, dict)
        except (orjson.JSONDecodeError, AssertionError):
            error = b'{"error":"body is not a JSON object"}'
            self._write(_response("400 Bad Request", error, False), close=True)
            return
        model = str(request.get("model") or CHAT_MODEL)
        if request.get("stream") is not True:
            reply = orjson.dumps(completion_document(model))
            self._write(_response("200 OK", reply, keep_alive), close=not keep_alive)
            return
        options = request.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        assert self._transport is not None
        self._stream = _Stream(
            self._transport,
            self._frames_of(model),
            self._profile(model),
            include_usage,
            on_done=lambda: self._stream_done(keep_alive),
        )
        self._stream.start(keep_alive)

    def _profile(self, model: str) -> StreamProfile:
        profile = self._settings.slow if model == SLOW_MODEL else self._settings.default
        chunks = self._headers.get(b"x-mock-chunks")
        interval_ms = self._headers.get(b"x-mock-interval-ms")
        return StreamProfile(
            chunks=max(1, int(chunks)) if chunks else profile.chunks,
            interval=float(interval_ms) / 1000 if interval_ms else profile.interval,
        )

    def _frames_of(self, model: str) -> _Frames:
        frames = self._frames.get(model)
        if frames is None:
            frames = _Frames(model)
            if len(self._frames) < 64:  # bounded: clients may send any model name
                self._frames[model] = frames
        return frames

    def _stream_done(self, keep_alive: bool) -> None:
        self._stream = None
        if not keep_alive and self._transport is not None:
            self._transport.close()

    def _write(self, data: bytes, close: bool) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.write(data)
        if close:
            self._transport.close()


async def start_mock(host: str, port: int, settings: MockSettings) -> asyncio.Server:
    """Listen on ``host:port`` (0 picks a free port) and serve until the server is closed."""
    loop = asyncio.get_running_loop()
    frames: dict[str, _Frames] = {}
    media = _Media(settings)
    return await loop.create_server(
        lambda: MockProtocol(settings, frames, media), host, port, backlog=4096, reuse_address=True
    )


async def _serve(host: str, port: int, settings: MockSettings) -> None:
    server = await start_mock(host, port, settings)
    bound = server.sockets[0].getsockname()
    # The runner reads this line to learn the port.
    print(f"listening on {bound[0]}:{bound[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    """Run the mock until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m bench.mock_backend", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunks", type=int, default=64, help="chunks of a streamed reply")
    parser.add_argument("--interval-ms", type=float, default=20.0, help="gap between chunks")
    parser.add_argument("--slow-chunks", type=int, default=30, help="chunks of bench-slow")
    parser.add_argument("--slow-interval-ms", type=float, default=1000.0)
    parser.add_argument("--speech-bytes", type=int, default=1_000_000, help="WAV of bench-tts")
    parser.add_argument("--image-bytes", type=int, default=1_000_000, help="PNG of bench-image")
    args = parser.parse_args(argv)
    settings = MockSettings(
        default=StreamProfile(args.chunks, args.interval_ms / 1000),
        slow=StreamProfile(args.slow_chunks, args.slow_interval_ms / 1000),
        speech_bytes=args.speech_bytes,
        image_bytes=args.image_bytes,
    )
    with contextlib.suppress(KeyboardInterrupt):
        _run(_serve(args.host, args.port, settings))
    return 0


def _run(coroutine: Any) -> None:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up

        uvloop.run(coroutine)
    except ImportError:
        asyncio.run(coroutine)


if __name__ == "__main__":
    sys.exit(main())
