"""The bare relay: what it relays must be exactly what the mock answers, streamed as it comes."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
import pytest
from bench.bare_relay import Back, Front, run_back, run_front
from bench.httpwire import ConnectionPool, Endpoint, Exchange, build_request, perform
from bench.mock_backend import MockSettings, StreamProfile, start_mock
from bench.services import fetch, free_port

from tests.agent.fakes import wait_until

_INTERVAL = 0.02


@dataclass
class Relay:
    mock: Endpoint
    endpoint: Endpoint
    front: Front
    back: Back


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    server = await start_mock(
        "127.0.0.1", 0, MockSettings(StreamProfile(8, _INTERVAL), StreamProfile(3, 0.05))
    )
    mock = Endpoint("mock", "127.0.0.1", server.sockets[0].getsockname()[1])
    port, tunnel_port = free_port(), free_port()
    front, back = Front(), Back(mock.host, mock.port)
    tasks = [
        asyncio.create_task(run_front(front, port, tunnel_port)),
        asyncio.create_task(run_back(back, tunnel_port)),
    ]
    endpoint = Endpoint("relay", "127.0.0.1", port)

    async def answers() -> None:
        while True:
            with contextlib.suppress(OSError):
                await fetch(endpoint, "/v1/models")
                return
            await asyncio.sleep(0.02)

    await asyncio.wait_for(answers(), 10)
    yield Relay(mock, endpoint, front, back)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    server.close()
    await server.wait_closed()


def chat(endpoint: Endpoint, **fields: object) -> bytes:
    body = orjson.dumps({"model": "bench-model", "messages": [], **fields})
    return build_request(endpoint, "POST", "/v1/chat/completions", body)


async def read_json_reply(reader: asyncio.StreamReader) -> dict:
    """One 200 response with a Content-Length from ``reader``: its JSON body."""
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    return orjson.loads(await reader.readexactly(length))


async def test_a_reply_is_the_mocks_reply_byte_for_byte(relay):
    """A non-streamed chat and the model list come back exactly as the mock sends them."""
    for path, method, body in (
        ("/v1/chat/completions", "POST", orjson.dumps({"model": "m-1", "messages": []})),
        ("/v1/models", "GET", b""),
    ):
        direct = await fetch(relay.mock, path, method, body)
        relayed = await fetch(relay.endpoint, path, method, body)
        assert relayed == direct
        assert relayed[0] == 200


async def test_a_request_split_across_reads_is_relayed_whole(relay):
    """A request that arrives in pieces (inside the target, a header and the body) still makes
    one request to the mock."""
    reader, writer = await asyncio.open_connection(relay.endpoint.host, relay.endpoint.port)
    request = chat(relay.endpoint, model="split-model")
    cuts = [len(b"POST /v1/chat"), request.index(b"user-agent") + 4, len(request) - 5]
    for begin, end in zip([0, *cuts], [*cuts, len(request)], strict=True):
        writer.write(request[begin:end])
        await writer.drain()
        await asyncio.sleep(0.05)  # each piece is read on its own
    assert (await read_json_reply(reader))["model"] == "split-model"
    writer.close()


async def test_one_connection_carries_requests_one_after_another(relay):
    """Keep-alive: three requests on one client connection, each answered in turn, and the
    back keeps one connection to the mock for them."""
    pool = ConnectionPool(relay.endpoint)
    for model in ("a", "b", "c"):
        exchange = Exchange(0.0, stream=False)
        await perform(pool, chat(relay.endpoint, model=model), exchange, timeout=5)
        assert exchange.status == 200, exchange.error
        assert orjson.loads(exchange.body)["model"] == model
    assert pool.peak_open == 1
    assert len(relay.back._idle) == 1
    pool.close()


async def test_pipelined_requests_are_answered_in_order(relay):
    """A quick request pipelined behind a slow stream is answered after the stream, whole."""
    reader, writer = await asyncio.open_connection(relay.endpoint.host, relay.endpoint.port)
    stream = build_request(
        relay.endpoint,
        "POST",
        "/v1/chat/completions",
        orjson.dumps({"model": "first", "messages": [], "stream": True}),
        headers=[("x-mock-chunks", "5"), ("x-mock-interval-ms", "30")],
    )
    writer.write(stream + chat(relay.endpoint, model="second"))
    first = await reader.readuntil(b"\r\n0\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200")
    assert b'"model":"second"' not in first
    assert first.count(b"data: ") == 6
    assert (await read_json_reply(reader))["model"] == "second"
    writer.close()


async def test_a_stream_arrives_chunk_by_chunk(relay):
    """Every SSE chunk comes through, as the mock paces it, ending in [DONE]."""
    pool = ConnectionPool(relay.endpoint)
    exchange = Exchange(0.0, stream=True)
    await perform(pool, chat(relay.endpoint, stream=True), exchange, timeout=5)
    assert exchange.status == 200, exchange.error
    assert exchange.clock is not None
    times = exchange.clock.times
    assert len(times) == 8
    # Relayed as they came, not at the end: the first and last are the profile's span apart.
    assert times[-1] - times[0] >= 6 * _INTERVAL
    pool.close()
    body = orjson.dumps({"model": "bench-model", "messages": [], "stream": True})
    status, reply = await fetch(relay.endpoint, "/v1/chat/completions", "POST", body)
    assert status == 200
    assert reply.count(b"data: ") == 9
    assert reply.endswith(b"data: [DONE]\n\n")


async def test_a_client_that_leaves_cancels_its_request(relay):
    """Closing the client connection mid-stream drops the mock connection serving it, and the
    relay serves the next client."""
    reader, writer = await asyncio.open_connection(relay.endpoint.host, relay.endpoint.port)
    writer.write(
        build_request(
            relay.endpoint,
            "POST",
            "/v1/chat/completions",
            orjson.dumps({"model": "bench-model", "messages": [], "stream": True}),
            headers=[("x-mock-chunks", "500")],
        )
    )
    await reader.readuntil(b"data: ")
    assert len(relay.back.busy) == 1
    writer.close()
    await wait_until(lambda: not relay.back.busy and not relay.front.clients)
    status, body = await fetch(relay.endpoint, "/v1/models")
    assert status == 200
    assert b"bench-model" in body
