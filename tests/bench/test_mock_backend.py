"""The mock OpenAI backend: its JSON replies, SSE framing, usage chunk and uploads."""

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from bench.httpwire import ConnectionPool, Endpoint, Exchange, build_request, perform
from bench.mock_backend import MockSettings, StreamProfile, start_mock
from bench.services import fetch
from bench.sse import gaps

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def mock() -> AsyncIterator[Endpoint]:
    server = await start_mock(
        "127.0.0.1", 0, MockSettings(StreamProfile(5, 0.01), StreamProfile(3, 0.05))
    )
    port = server.sockets[0].getsockname()[1]
    yield Endpoint("mock", "127.0.0.1", port)
    server.close()
    await server.wait_closed()


def chat_body(**fields: object) -> bytes:
    return orjson.dumps({"model": "bench-model", "messages": [], **fields})


def sse_events(body: bytes) -> list[bytes]:
    assert body.endswith(b"\n\n")
    return body[:-2].split(b"\n\n")


async def test_models_list_is_openai_shaped(mock):
    """GET /v1/models is an OpenAI list naming the chat, slow, speech-to-text, text-to-speech
    and image models."""
    status, body = await fetch(mock, "/v1/models")
    document = orjson.loads(body)
    assert status == 200
    assert document["object"] == "list"
    names = [m["id"] for m in document["data"]]
    assert names == ["bench-model", "bench-slow", "bench-whisper", "bench-tts", "bench-image"]


async def test_non_streamed_reply_is_a_completion_with_usage(mock):
    """A chat request without stream gets one JSON completion echoing the model, with usage."""
    status, body = await fetch(mock, "/v1/chat/completions", "POST", chat_body(model="x-1"))
    document = orjson.loads(body)
    assert status == 200
    assert document["object"] == "chat.completion"
    assert document["model"] == "x-1"
    assert document["choices"][0]["message"]["content"]
    usage = document["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_streamed_reply_is_sse_ending_in_done_without_usage(mock):
    """stream=true gives `data: <json>` events, the profile's chunk count, then [DONE]."""
    status, body = await fetch(mock, "/v1/chat/completions", "POST", chat_body(stream=True))
    events = sse_events(body)
    assert status == 200
    assert events[-1] == b"data: [DONE]"
    chunks = [orjson.loads(event.removeprefix(b"data: ")) for event in events[:-1]]
    assert len(chunks) == 5
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_usage_chunk_only_when_asked(mock):
    """stream_options.include_usage adds one last chunk with empty choices and the usage."""
    body = chat_body(stream=True, stream_options={"include_usage": True})
    _, reply = await fetch(mock, "/v1/chat/completions", "POST", body)
    chunks = [orjson.loads(e.removeprefix(b"data: ")) for e in sse_events(reply)[:-1]]
    assert len(chunks) == 6
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    assert all("usage" not in chunk for chunk in chunks[:-1])


async def test_stream_head_and_chunked_framing(mock):
    """The streamed reply is chunked text/event-stream and the connection stays open after it."""
    reader, writer = await asyncio.open_connection(mock.host, mock.port)
    request = build_request(mock, "POST", "/v1/chat/completions", chat_body(stream=True))
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-type: text/event-stream" in head
    assert b"transfer-encoding: chunked" in head
    await reader.readuntil(b"0\r\n\r\n")
    writer.write(build_request(mock, "GET", "/v1/models"))
    second = await reader.readuntil(b"\r\n\r\n")
    assert second.startswith(b"HTTP/1.1 200 OK")
    writer.close()


async def test_headers_override_chunk_count_and_pace(mock):
    """X-Mock-Chunks and X-Mock-Interval-Ms set one reply's chunks and the gap between them."""
    headers = [("x-mock-chunks", "4"), ("x-mock-interval-ms", "40")]
    raw = build_request(
        mock, "POST", "/v1/chat/completions", chat_body(stream=True), headers=headers
    )
    exchange = Exchange(time.perf_counter(), stream=True)
    pool = ConnectionPool(mock)
    await perform(pool, raw, exchange, timeout=5)
    pool.close()
    assert exchange.error is None
    assert exchange.clock is not None
    assert len(exchange.clock.times) == 4
    # The last of 4 chunks 40 ms apart cannot arrive before 120 ms; a busy machine adds jitter.
    assert exchange.clock.times[-1] - exchange.sent >= 0.115
    assert 0.03 <= statistics.median(gaps(exchange.clock.times)) <= 0.1


async def test_slow_model_uses_the_slow_profile(mock):
    """bench-slow streams with the slow profile's chunk count."""
    body = chat_body(model="bench-slow", stream=True)
    _, reply = await fetch(mock, "/v1/chat/completions", "POST", body)
    assert len(sse_events(reply)) == 3 + 1


async def test_transcription_reads_and_discards_a_large_upload(mock):
    """A 3 MB multipart upload is read whole and answered with a transcription."""
    body = b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\n' + b"\0" * 3_000_000
    request = build_request(
        mock,
        "POST",
        "/v1/audio/transcriptions",
        body + b"\r\n--b--\r\n",
        content_type="multipart/form-data; boundary=b",
    )
    reader, writer = await asyncio.open_connection(mock.host, mock.port)
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    document = orjson.loads(await reader.readexactly(length))
    writer.close()
    assert head.startswith(b"HTTP/1.1 200")
    assert document["text"]


async def test_bad_json_is_a_400_and_unknown_path_a_404(mock):
    """Malformed chat bodies get 400 and unknown paths 404, each with a JSON body."""
    status, body = await fetch(mock, "/v1/chat/completions", "POST", b"{nope")
    assert status == 400
    assert orjson.loads(body)["error"]
    status, body = await fetch(mock, "/v1/nothing")
    assert status == 404
    assert orjson.loads(body)["error"]


def test_runs_as_its_own_process_and_announces_its_port():
    """`python -m bench.mock_backend --port 0` prints the port it listens on and serves it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.mock_backend", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        status, body = asyncio.run(fetch(Endpoint("m", "127.0.0.1", port), "/v1/models"))
        assert status == 200
        assert b"bench-model" in body
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
