"""The open-loop schedule, tail accounting from the scheduled time, and the closed loop."""

import asyncio
import contextlib
import gc
import itertools
import time
from collections.abc import AsyncIterator

import pytest
from bench.httpwire import ConnectionPool, Endpoint, Exchange
from bench.loadgen import chat_request, closed_loop, open_loop, summarize
from bench.mock_backend import MockSettings, StreamProfile, start_mock
from bench.services import free_port


class StallableServer:
    """Answers every request with `{}`, except while paused or when told to hold each reply."""

    def __init__(self) -> None:
        self.running = asyncio.Event()
        self.running.set()
        self.hold = 0.0
        self.drop_second_request = False
        self.connections = 0
        self.arrivals: list[float] = []
        # Whether the cycle collector was on as each request arrived (same process).
        self.collector_on: list[bool] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            for served in itertools.count():
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.lower().split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                if served == 1 and self.drop_second_request:
                    break  # as a server whose keep-alive timeout fired just then
                self.arrivals.append(time.perf_counter())
                self.collector_on.append(gc.isenabled())
                await self.running.wait()
                if self.hold:
                    await asyncio.sleep(self.hold)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
        writer.close()


@pytest.fixture
async def stallable() -> AsyncIterator[tuple[StallableServer, Endpoint]]:
    state = StallableServer()
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield state, Endpoint("test", "127.0.0.1", port)
    server.close()


async def test_request_i_is_scheduled_at_t0_plus_i_over_rate(stallable):
    """Every request's scheduled time is exactly t0 + i / rate and it is sent no earlier."""
    state, endpoint = stallable
    result = await open_loop(endpoint, chat_request(endpoint, "m", stream=False), 100, count=40)
    assert len(result.records) == 40
    for index, record in enumerate(result.records):
        assert record.scheduled == pytest.approx(result.started + index / 100, abs=1e-9)
        assert record.sent >= record.scheduled
        assert record.ok
    assert len(state.arrivals) == 40
    assert all(a >= result.started + i / 100 for i, a in enumerate(sorted(state.arrivals)))
    assert result.planned_duration == pytest.approx(0.4)


async def test_a_stall_shows_in_every_request_scheduled_during_it(stallable):
    """A 200 ms server stall delays every request scheduled in it, counted from its schedule."""
    state, endpoint = stallable
    rate, stall_from, stall_to = 200.0, 0.30, 0.50
    start = time.perf_counter()

    async def stall() -> None:
        await asyncio.sleep(start + stall_from - time.perf_counter())
        state.running.clear()
        await asyncio.sleep(start + stall_to - time.perf_counter())
        state.running.set()

    staller = asyncio.create_task(stall())
    result = await open_loop(
        endpoint, chat_request(endpoint, "m", stream=False), rate, duration=0.8
    )
    await staller
    stalled = [
        r
        for r in result.records
        if start + stall_from + 0.03 <= r.scheduled <= start + stall_to - 0.05
    ]
    assert len(stalled) >= 20
    for record in stalled:
        # Answered only after the stall ended, so latency is at least what was left of it.
        assert record.end - record.scheduled >= (start + stall_to) - record.scheduled - 0.002
    slow = [r for r in result.records if r.end - r.scheduled > 0.05]
    assert len(slow) >= 20
    summary = summarize(result)
    assert summary.latency_ms.p90 > 50
    assert summary.latency_ms.max >= 150
    assert summary.errors == 0


async def test_pool_opens_connections_as_needed(stallable):
    """When replies are slow the pool grows instead of queueing behind busy connections."""
    state, endpoint = stallable
    state.hold = 0.1
    result = await open_loop(endpoint, chat_request(endpoint, "m", stream=False), 100, count=40)
    summary = summarize(result)
    assert summary.ok == 40
    assert summary.peak_connections >= 8
    # Nobody waited for a free connection: latency stays near the 100 ms hold.
    assert summary.latency_ms.p50 < 150


async def test_request_on_a_connection_closed_by_the_server_is_retried_once(stallable):
    """A reused connection dropped before any reply byte is retried on a new connection."""
    state, endpoint = stallable
    state.drop_second_request = True
    raw = chat_request(endpoint, "m", stream=False)
    result = await closed_loop(endpoint, raw, 1, 0.2, stream=False)
    summary = summarize(result)
    assert summary.errors == 0
    assert summary.ok >= 3
    # Each connection answered one request and dropped the next, which was sent again.
    assert state.connections >= summary.ok


def test_a_connection_lost_before_its_request_is_sent_fails_the_request_only():
    """A connection the server drops between connecting and the send (as a server shedding
    connections under overload) is never written to (uvloop, which the bench runs on, would
    refuse the write): the request fails with the reason, the run goes on."""
    uvloop = pytest.importorskip("uvloop")

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()

    async def scenario() -> Exchange:
        server = await asyncio.start_server(drop, "127.0.0.1", 0)
        endpoint = Endpoint("test", "127.0.0.1", server.sockets[0].getsockname()[1])
        pool = ConnectionPool(endpoint)
        try:
            connection = await pool.connect()
            for _ in range(200):
                if connection.closed:
                    break
                await asyncio.sleep(0.01)
            exchange = Exchange(time.perf_counter(), stream=False)
            await connection.start(chat_request(endpoint, "m", stream=False), exchange, 5.0)
        finally:
            pool.close()
            server.close()
            await server.wait_closed()
        return exchange

    exchange = uvloop.run(scenario())

    assert exchange.error is not None
    assert exchange.error.startswith("connection closed before the response ended")


async def test_closed_loop_streams_record_chunks_ttfb_and_gaps():
    """Held streams count every chunk, their first byte and the 20 ms gaps between chunks."""
    server = await start_mock("127.0.0.1", 0, MockSettings(StreamProfile(6, 0.02)))
    endpoint = Endpoint("mock", "127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        raw = chat_request(endpoint, "bench-model", stream=True)
        result = await closed_loop(endpoint, raw, 4, 0.4, ramp=0.05)
    finally:
        server.close()
    summary = summarize(result)
    assert summary.errors == 0
    assert summary.ok >= 8
    assert summary.chunks == 6 * summary.ok
    assert 15 <= summary.gap_ms.p50 <= 40
    assert summary.gap_ms.count == 5 * summary.ok
    assert summary.ttfb_ms.p50 < 20
    assert summary.latency_ms.p50 >= 100
    # 4 streams of 6 chunks per ~0.1 s: about 240 chunks per second in the steady window.
    assert 100 <= summary.chunks_per_s <= 300


async def test_failures_are_counted_with_their_reason():
    """A refused connection is an error with its reason, never a latency sample."""
    endpoint = Endpoint("nobody", "127.0.0.1", free_port())
    result = await open_loop(endpoint, chat_request(endpoint, "m", stream=False), 50, count=5)
    summary = summarize(result)
    assert summary.ok == 0
    assert summary.errors == 5
    assert summary.latency_ms.count == 0
    assert "connect failed" in summary.error_samples[0]


async def test_non_2xx_replies_are_errors():
    """A 404 from the server is an error carrying the status and the start of the body."""
    server = await start_mock("127.0.0.1", 0, MockSettings())
    endpoint = Endpoint("mock", "127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        raw = chat_request(endpoint, "m", stream=False).replace(b"/v1/chat/", b"/v1/nope/", 1)
        summary = summarize(await open_loop(endpoint, raw, 50, count=3))
    finally:
        server.close()
    assert summary.errors == 3
    assert summary.error_samples[0].startswith("HTTP 404")


async def test_the_cycle_collector_waits_while_a_run_is_timed(stallable):
    """A full collection would pause the generator mid-run and show as the server's latency:
    it runs before the clock starts and after the run, never during it, in both loops."""
    state, endpoint = stallable
    collections: list[float] = []

    def count(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(time.perf_counter())

    gc.callbacks.append(count)
    try:
        raw = chat_request(endpoint, "m", stream=False)
        opened = await open_loop(endpoint, raw, 200, count=20)
        closed = await closed_loop(endpoint, raw, 2, 0.1, stream=False)
    finally:
        gc.callbacks.remove(count)

    assert state.collector_on
    assert not any(state.collector_on)
    assert gc.isenabled()
    for result in (opened, closed):
        ended = max(record.end for record in result.records)
        assert not [t for t in collections if result.started <= t <= ended]
    assert collections  # the collection before each run
