"""A streamed chat leaves for the agent from the HTTP protocol's callback, before any task runs
for it, and its reply is relayed and ended from the tunnel's callbacks; a task takes over only
for what they do not handle (here, an error midway).

The real gateway runs in this event loop and the test plays the agent, so it can see which
request tasks exist at each step.
"""

import asyncio
import socket
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection

from inference_club.gateway import direct_chat
from inference_club.gateway.services import Services
from inference_club.protocol import (
    Body,
    End,
    Error,
    Frame,
    Request,
    Response,
    Window,
    decode_message,
    encode_batch,
)
from inference_club.store import UsageRecord
from tests.agent.fakes import wait_until
from tests.support.in_process import connect_agent, gateway_in_process

MODEL = "stream-model"
CONTENT_CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"hello"}}]}\n\n'
USAGE_CHUNK = (
    b'data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}\n\n'
)


def request_tasks() -> list[asyncio.Task[object]]:
    """The tasks running an HTTP request through the app (uvicorn's ``run_asgi``)."""
    return [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "") == "RequestResponseCycle.run_asgi"
    ]


async def frames_until_end(ws: ClientConnection) -> list[Frame]:
    frames: list[Frame] = []
    while not any(isinstance(frame, End) for frame in frames):
        data = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(data, bytes)
        frames.extend(decode_message(data))
    return frames


async def member_with_agent(
    services: Services, port: int
) -> tuple[str, ClientConnection, list[str]]:
    """A member's API key, the agent of a provider of theirs serving ``MODEL`` (the test plays
    it), and the models the member's first request listed. That request waits for the gateway
    to learn the new sharing (in its task); after it, nothing needs waiting for."""
    await services.store.add_user("alice")
    _, api_key = await services.store.create_api_key("alice")
    _, token = await services.store.add_provider("alice", "home")
    ws = await connect_agent(port, token, MODEL)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/v1") as client:
        listed = await client.get("/models", headers={"Authorization": f"Bearer {api_key}"})
    return api_key, ws, [model["id"] for model in listed.json()["data"]]


async def chat_record(services: Services) -> UsageRecord:
    """The one chat completion's usage record, once its request has ended and it is stored."""
    for _ in range(100):
        await services.usage.flush()
        records = await services.store.list_usage()
        chats = [record for record in records if record.endpoint == "chat.completions"]
        if chats:
            [record] = chats
            return record
        await asyncio.sleep(0.02)
    msg = "no usage record for the chat completion"
    raise AssertionError(msg)


def stream_request(api_key: str, extra_header: str = "") -> bytes:
    body = orjson.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    )
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n{extra_header}"
        f"Authorization: Bearer {api_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def next_request_frames(
    writer: asyncio.StreamWriter, ws: ClientConnection, api_key: str
) -> list[Frame]:
    """The frames the agent gets, up to its request's end, once the same connection sends its
    next stream request (anything the gateway still sent for the last one comes first)."""
    writer.write(stream_request(api_key))
    return await frames_until_end(ws)


async def test_a_stream_is_sent_relayed_and_ended_without_a_task(tmp_path: Path) -> None:
    """No request task exists at any step of a stream that goes as expected: the request
    leaves, the head and events reach the client and the end completes the response, all from
    callbacks. The client gets every event but the usage chunk it did not ask for, the usage is
    metered, the agent is sent no cancel for the finished stream, and the connection takes its
    next request."""
    async with gateway_in_process(tmp_path) as (app, port):
        services = app.services()
        api_key, ws, listed = await member_with_agent(services, port)
        assert listed == [MODEL]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(stream_request(api_key))
            frames = await frames_until_end(ws)

            assert request_tasks() == []
            [request] = [frame for frame in frames if isinstance(frame, Request)]
            sent = b"".join(frame.data for frame in frames if isinstance(frame, Body))
            assert orjson.loads(sent)["stream_options"] == {"include_usage": True}

            stream_id = request.stream_id
            head = Response(stream_id, 200, (("content-type", "text/event-stream"),))
            await ws.send(encode_batch([head, Body(stream_id, CONTENT_CHUNK)]))
            reply_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert reply_head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"transfer-encoding: chunked" in reply_head
            assert request_tasks() == []

            rest = [Body(stream_id, USAGE_CHUNK), Body(stream_id, b"data: [DONE]\n\n")]
            await ws.send(encode_batch([*rest, End(stream_id)]))
            reply_body = await asyncio.wait_for(reader.readuntil(b"\r\n0\r\n\r\n"), 5)
            assert request_tasks() == []
            record = await chat_record(services)
            next_frames = await next_request_frames(writer, ws, api_key)
        finally:
            writer.close()
            await ws.close()

    assert CONTENT_CHUNK in reply_body
    assert b"data: [DONE]" in reply_body
    assert b"usage" not in reply_body
    assert (record.status_code, record.prompt_tokens, record.completion_tokens) == (200, 2, 1)
    assert record.ttfb_ms is not None
    assert [type(frame) for frame in next_frames] == [Request, Body, End]
    assert next_frames[0].stream_id != stream_id


async def test_a_stream_that_fails_midway_goes_on_in_a_task_which_ends_it_with_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The head and the events after it go out from the callbacks that see them arrive, with
    the gateway's headers. An error from the agent then goes on in the request's task (held
    back here until it is let go, so the events before it cannot be its doing), which ends
    the stream with an error event; the usage record says what failed, and the agent, which
    ended the stream itself, is sent no cancel for it."""
    task_may_go_on = asyncio.Event()
    real_forward = direct_chat.forward

    async def held_forward(*args: Any, **kwargs: Any) -> Any:
        await task_may_go_on.wait()
        return await real_forward(*args, **kwargs)

    monkeypatch.setattr(direct_chat, "forward", held_forward)
    async with gateway_in_process(tmp_path) as (app, port):
        services = app.services()
        api_key, ws, _ = await member_with_agent(services, port)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(stream_request(api_key))
            [request] = [f for f in await frames_until_end(ws) if isinstance(f, Request)]
            stream_id = request.stream_id
            head = Response(stream_id, 200, (("content-type", "text/event-stream"),))
            await ws.send(encode_batch([head, Body(stream_id, CONTENT_CHUNK)]))

            reply_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            lines = reply_head.decode().split("\r\n")
            assert lines[0] == "HTTP/1.1 200 OK"
            fields = dict(line.split(": ", 1) for line in lines[1:] if line)
            assert fields["content-type"] == "text/event-stream"
            assert fields["transfer-encoding"] == "chunked"
            assert fields["cache-control"] == "no-cache"
            assert fields["x-accel-buffering"] == "no"
            assert fields["x-queue-position"] == "0"
            assert "x-ratelimit-limit" in fields
            assert "content-length" not in fields
            first_chunk = b"%x\r\n%b\r\n" % (len(CONTENT_CHUNK), CONTENT_CHUNK)
            assert await asyncio.wait_for(reader.readexactly(len(first_chunk)), 5) == first_chunk
            assert request_tasks() == []

            await ws.send(encode_batch([Error(stream_id, "backend_disconnected", "it fell over")]))
            await asyncio.sleep(0.05)
            assert len(request_tasks()) == 1
            task_may_go_on.set()
            reply_rest = await asyncio.wait_for(reader.readuntil(b"\r\n0\r\n\r\n"), 5)
            record = await chat_record(services)
            next_frames = await next_request_frames(writer, ws, api_key)
        finally:
            writer.close()
            await ws.close()

    # The agent ended the stream itself: the gateway sends it no cancel for it.
    assert [type(frame) for frame in next_frames] == [Request, Body, End]
    error = orjson.loads(reply_rest.split(b"data: ", 1)[1].split(b"\n\n", 1)[0])
    assert error["error"]["message"] == "The provider failed mid-stream: it fell over"
    assert (record.status_code, record.error_type) == (200, "backend_disconnected")


async def test_a_stream_ended_from_the_callbacks_closes_a_connection_not_kept_alive(
    tmp_path: Path,
) -> None:
    """A client that asked to close the connection gets the stream's end, then the close, as
    uvicorn gives it; the request is metered."""
    async with gateway_in_process(tmp_path) as (app, port):
        services = app.services()
        api_key, ws, _ = await member_with_agent(services, port)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(stream_request(api_key, "Connection: close\r\n"))
            [request] = [f for f in await frames_until_end(ws) if isinstance(f, Request)]
            stream_id = request.stream_id
            head = Response(stream_id, 200, (("content-type", "text/event-stream"),))
            events = [Body(stream_id, CONTENT_CHUNK), Body(stream_id, b"data: [DONE]\n\n")]
            await ws.send(encode_batch([head, *events, End(stream_id)]))
            reply = await asyncio.wait_for(reader.read(), 5)  # to the end of the connection
            assert request_tasks() == []
            record = await chat_record(services)
        finally:
            writer.close()
            await ws.close()

    reply_head, _, reply_body = reply.partition(b"\r\n\r\n")
    assert b"connection: close" in reply_head
    assert reply_body.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
    assert record.status_code == 200


async def test_a_client_that_stops_reading_as_the_stream_ends_gets_its_end_from_the_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks go out from the callbacks until the client's connection pushes back; when that
    happens with the last chunk, the end cannot be written from the callback that brings it,
    so the request's task writes it once the client reads again. Nothing is lost or repeated,
    the request is metered, and the connection takes its next request."""
    sinks: list[Any] = []
    handled: list[bytes] = []
    real_direct_sink = direct_chat.direct_sink

    def spied_direct_sink(direct: Any, *args: Any) -> Any:
        sinks.append(direct)  # the writer whose readiness tells when the client pushes back
        sink = real_direct_sink(direct, *args)

        def counted(data: bytes) -> bool:
            handled.append(data)
            return sink(data)

        return counted

    monkeypatch.setattr(direct_chat, "direct_sink", spied_direct_sink)
    async with gateway_in_process(tmp_path) as (app, port):
        services = app.services()
        api_key, ws, _ = await member_with_agent(services, port)
        client = socket.socket()
        # Small buffers and a small reader limit: the gateway's side backs up soon.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", port))
        client.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=client, limit=4096)
        try:
            writer.write(stream_request(api_key))
            [request] = [f for f in await frames_until_end(ws) if isinstance(f, Request)]
            stream_id = request.stream_id
            head = Response(stream_id, 200, (("content-type", "text/event-stream"),))
            await ws.send(encode_batch([head]))
            reply_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert reply_head.startswith(b"HTTP/1.1 200 OK\r\n")
            [direct] = sinks
            window = request_window(services)

            events: list[bytes] = []
            while direct.writable():
                assert len(events) < 1000, "the client's connection never pushed back"
                events.append(b"data: %d %b\n\n" % (len(events), b"x" * 16000))
                await ws.send(encode_batch([Body(stream_id, events[-1])]))
                await wait_until(lambda: len(handled) == len(events))  # written if it could be
            assert request_tasks() == []  # every chunk so far went out from the callbacks

            await ws.send(encode_batch([End(stream_id)]))
            await wait_until(lambda: len(request_tasks()) == 1)  # the end waits, in the task
            body = await asyncio.wait_for(read_chunked_body(reader), 10)
            record = await chat_record(services)
            next_frames = await next_request_frames(writer, ws, api_key)
        finally:
            writer.close()
            await ws.close()

    assert body == b"".join(events)
    assert (record.status_code, record.error_type) == (200, None)
    # Credit for the chunks, then the next request: no cancel for the stream the agent ended.
    granted = sum(frame.increment for frame in next_frames if isinstance(frame, Window))
    assert granted >= sum(map(len, events)) - window
    others = [type(frame) for frame in next_frames if not isinstance(frame, Window)]
    assert others == [Request, Body, End]


def request_window(services: Services) -> int:
    """The reply window the gateway grants each stream: credit it may still hold back."""
    [connection] = services.registry.connections()
    return connection.initial_window


async def read_chunked_body(reader: asyncio.StreamReader) -> bytes:
    """A chunked body, to its last chunk."""
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        data = await reader.readexactly(size + 2)
        if size == 0:
            return b"".join(parts)
        parts.append(data[:-2])
