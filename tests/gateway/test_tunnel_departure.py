"""A tunnel that served requests and left is freed at once, with no help from the collector.

The gateway keeps connected tunnels out of the collector's passes (``TunnelHeap``) and skips
the full collection after departures when every departed tunnel was freed as it closed. This
runs the real gateway in-process and checks that what a departing tunnel names is gone as
soon as its task ends, with the cycle collector switched off.
"""

import asyncio
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection

from inference_club.gateway.app import GatewayApp
from inference_club.protocol import (
    Body,
    End,
    Request,
    Response,
    decode_message,
    encode,
)
from tests.support.in_process import connect_agent, gateway_in_process

MODEL = "departure-model"


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[GatewayApp, int]]:
    async with gateway_in_process(tmp_path) as served:
        yield served


async def _answer_one_request(ws: ClientConnection) -> None:
    """Play the agent for one non-streamed chat completion."""
    frames: list[Any] = []
    while not any(isinstance(frame, End) for frame in frames):
        data = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(data, bytes)
        frames.extend(decode_message(data))
    request = next(frame for frame in frames if isinstance(frame, Request))
    reply = orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }
    )
    stream = request.stream_id
    headers = (("content-type", "application/json"),)
    for frame in (Response(stream, 200, headers), Body(stream, reply), End(stream)):
        await ws.send(encode(frame))


@pytest.mark.usefixtures("without_the_cycle_collector")
async def test_a_departed_tunnel_is_freed_as_soon_as_it_closes(
    gateway: tuple[GatewayApp, int],
) -> None:
    """An agent connects, serves a request, and its network drops: the objects its tunnel
    names on leaving (task, connection, direct hand-over) are gone once the tunnel's task
    ends, so no full collection is needed to reclaim them."""
    app, port = gateway
    services = app.services()
    await services.store.add_user("alice")
    _, api_key = await services.store.create_api_key("alice")
    _, token = await services.store.add_provider("alice", "home")
    named: list[weakref.ref[object]] = []
    heap = services.tunnel_heap
    record_departure = heap.left

    def left(*remains: object | None) -> None:
        named.extend(weakref.ref(thing) for thing in remains if thing is not None)
        record_departure(*remains)

    heap.left = left  # type: ignore[method-assign]

    ws = await connect_agent(port, token, MODEL)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/v1") as client:
        asking = asyncio.create_task(
            client.post(
                "/chat/completions",
                headers={"Authorization": f"Bearer {api_key}"},
                json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
                timeout=5,
            )
        )
        await _answer_one_request(ws)
        answer = await asking
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == "hi"

    ws.transport.abort()  # the agent's network drops: no closing handshake
    for _ in range(100):
        if named:
            break
        await asyncio.sleep(0.01)
    for _ in range(5):  # the tunnel's task finishes and lets go of what it held
        await asyncio.sleep(0)
    await ws.close()

    assert len(named) == 3
    assert [ref() for ref in named] == [None, None, None]
