"""Owner first: guests are capped per provider and wait in a fair queue the owner jumps."""

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.fake_backend import FakeBackend
from tests.support.processes import CLI, Gateway, Process, spawn, start_gateway, wait_for_models


def _start(
    tmp_path: Path, backend: FakeBackend, max_concurrency: int, guests: int, *extra: str
) -> tuple[Gateway, Process, dict[str, str]]:
    gateway = start_gateway(tmp_path, *extra)
    keys = {name: gateway.add_user(name) for name in ("alice", "bob", "carol")}
    token = gateway.add_provider("alice", "alice-home")
    config = tmp_path / "agent.toml"
    config.write_text(
        f"guest_concurrency = {guests}\n"
        f'[models."slow-llm"]\nmax_concurrency = {max_concurrency}\nshare = ["network"]\n'
    )
    agent = spawn(
        [
            *CLI,
            "agent",
            "--server",
            gateway.url,
            "--token",
            token,
            "--backend",
            backend.url,
            "--config",
            str(config),
        ],
        tmp_path / "agent.log",
    )
    for key in keys.values():
        wait_for_models(gateway.v1, key, {"slow-llm"})
    return gateway, agent, keys


@pytest.fixture
def backend(backend_factory: Callable[..., FakeBackend]) -> FakeBackend:
    return backend_factory("slow-llm")


@pytest.fixture
def backend_factory() -> Iterator[Callable[..., FakeBackend]]:
    started: list[FakeBackend] = []

    def make(*models: str) -> FakeBackend:
        started.append(FakeBackend(list(models)).start())
        return started[-1]

    yield make
    for item in started:
        item.stop()


async def _chat(
    client: httpx.AsyncClient, gateway: Gateway, key: str, content: str, delay: float = 0.0
) -> tuple[httpx.Response, float]:
    await asyncio.sleep(delay)
    response = await client.post(
        f"{gateway.v1}/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "slow-llm", "messages": [{"role": "user", "content": content}]},
    )
    return response, time.monotonic()


def test_guest_cap_queues_guests_while_the_owner_goes_straight_in(
    tmp_path: Path, backend: FakeBackend
) -> None:
    """With 2 slots and 1 for guests, a guest's second request waits and the owner's does not."""
    gateway, agent, keys = _start(tmp_path, backend, max_concurrency=2, guests=1)
    try:

        async def scenario() -> list[tuple[httpx.Response, float]]:
            async with httpx.AsyncClient(timeout=30) as client:
                return await asyncio.gather(
                    _chat(client, gateway, keys["bob"], "sleep:1.0"),
                    _chat(client, gateway, keys["bob"], "sleep:1.0", 0.2),
                    _chat(client, gateway, keys["alice"], "sleep:1.0", 0.4),
                )

        started = time.monotonic()
        (bob_first, t1), (bob_second, t2), (alice, t3) = asyncio.run(scenario())
        assert [r.status_code for r in (bob_first, bob_second, alice)] == [200, 200, 200]
        assert bob_first.headers["x-queue-position"] == "0"
        assert bob_second.headers["x-queue-position"] == "1"
        assert alice.headers["x-queue-position"] == "0"
        # Alice ran beside Bob's first request; Bob's second had to wait for his first.
        assert t3 - started < 1.9
        assert t2 - started > 1.9
    finally:
        agent.stop()
        gateway.process.stop()


def test_the_owner_is_served_before_guests_that_queued_earlier(
    tmp_path: Path, backend: FakeBackend
) -> None:
    """When the only slot frees, the owner's queued request goes before an earlier guest's."""
    gateway, agent, keys = _start(tmp_path, backend, max_concurrency=1, guests=1)
    try:

        async def scenario() -> list[tuple[httpx.Response, float]]:
            async with httpx.AsyncClient(timeout=30) as client:
                return await asyncio.gather(
                    _chat(client, gateway, keys["bob"], "sleep:1.0"),
                    _chat(client, gateway, keys["carol"], "sleep:0.5", 0.2),
                    _chat(client, gateway, keys["alice"], "sleep:0.5", 0.4),
                )

        (bob, _t1), (carol, t_carol), (alice, t_alice) = asyncio.run(scenario())
        assert [r.status_code for r in (bob, carol, alice)] == [200, 200, 200]
        assert carol.headers["x-queue-position"] == "1"
        assert alice.headers["x-queue-position"] == "2"
        assert t_alice < t_carol
    finally:
        agent.stop()
        gateway.process.stop()


def test_a_wait_past_the_queue_timeout_is_503_overloaded(
    tmp_path: Path, backend: FakeBackend
) -> None:
    """A guest that cannot get a slot within the queue timeout gets 503 with Retry-After."""
    gateway, agent, keys = _start(tmp_path, backend, 1, 1, "--queue-timeout", "1")
    try:

        async def scenario() -> list[tuple[httpx.Response, float]]:
            async with httpx.AsyncClient(timeout=30) as client:
                return await asyncio.gather(
                    _chat(client, gateway, keys["bob"], "sleep:2.5"),
                    _chat(client, gateway, keys["carol"], "hi", 0.2),
                )

        (bob, _), (carol, _) = asyncio.run(scenario())
        assert bob.status_code == 200
        assert carol.status_code == 503
        assert carol.headers["retry-after"] == "5"
        error = carol.json()["error"]
        assert error["type"] == "overloaded"
        assert "busy" in error["message"]
    finally:
        agent.stop()
        gateway.process.stop()
