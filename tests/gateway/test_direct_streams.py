"""A streamed chat leaves for the agent from the HTTP protocol's callback, before any task runs
for it; a task relays it from the reply's first event on.

The real gateway runs in this event loop and the test plays the agent, so it can see which
request tasks exist at each step.
"""

import asyncio
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
    Frame,
    Request,
    Response,
    decode_message,
    encode_batch,
)
from inference_club.store import UsageRecord
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


def stream_request(api_key: str) -> bytes:
    body = orjson.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    )
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
        f"Authorization: Bearer {api_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def test_a_stream_is_sent_before_any_task_and_relayed_by_one(tmp_path: Path) -> None:
    """When the agent receives the request no request task exists; once the head is relayed
    one does, and the client gets every event but the usage chunk it did not ask for."""
    async with gateway_in_process(tmp_path) as (app, port):
        api_key, ws, listed = await member_with_agent(app.services(), port)
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
            assert len(request_tasks()) == 1

            rest = [Body(stream_id, USAGE_CHUNK), Body(stream_id, b"data: [DONE]\n\n")]
            await ws.send(encode_batch([*rest, End(stream_id)]))
            reply_body = await asyncio.wait_for(reader.readuntil(b"\r\n0\r\n\r\n"), 5)
        finally:
            writer.close()
            await ws.close()

    assert CONTENT_CHUNK in reply_body
    assert b"data: [DONE]" in reply_body
    assert b"usage" not in reply_body


async def test_a_stream_head_and_first_events_reach_the_client_without_waiting_for_the_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The head and the events after it go out from the callbacks that see them arrive: a
    task held back before it relays anything holds none of them, and the usage chunk the
    client did not ask for is still kept from it and metered. The task then relays the rest."""
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
            first = [head, Body(stream_id, CONTENT_CHUNK), Body(stream_id, USAGE_CHUNK)]
            await ws.send(encode_batch(first))

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

            task_may_go_on.set()
            await ws.send(encode_batch([Body(stream_id, b"data: [DONE]\n\n"), End(stream_id)]))
            reply_rest = await asyncio.wait_for(reader.readuntil(b"\r\n0\r\n\r\n"), 5)
            record = await chat_record(services)
        finally:
            writer.close()
            await ws.close()

    assert reply_rest == b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"
    assert (record.status_code, record.prompt_tokens, record.completion_tokens) == (200, 2, 1)
