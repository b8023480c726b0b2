"""Fixtures for gateway tests: a real gateway process, agents and fake backends."""

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.support.fake_backend import FakeBackend
from tests.support.processes import (
    Gateway,
    Process,
    free_port,
    start_agent,
    start_gateway,
    wait_for_models,
)
from tests.support.redis_relay import RedisRelay


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    """A gateway with quick heartbeats and a short upstream timeout."""
    running = start_gateway(tmp_path, "--heartbeat-interval", "0.5", "--upstream-timeout", "3")
    yield running
    running.process.stop()


@pytest.fixture
def backend_factory() -> Iterator[Callable[..., FakeBackend]]:
    """Start fake OpenAI-compatible backends serving the given model ids."""
    started: list[FakeBackend] = []

    def make(*models: str, name: str = "fake") -> FakeBackend:
        backend = FakeBackend(list(models), name=name).start()
        started.append(backend)
        return backend

    yield make
    for backend in started:
        backend.stop()


@pytest.fixture
def agent_factory(tmp_path: Path, gateway: Gateway) -> Iterator[Callable[..., Process]]:
    """Start agents connected to the test gateway."""
    started: list[Process] = []

    def make(token: str, *backends: str) -> Process:
        agent = start_agent(tmp_path, gateway.url, token, *backends)
        started.append(agent)
        return agent

    yield make
    for agent in started:
        agent.stop()


@pytest.fixture
def key(
    gateway: Gateway,
    backend_factory: Callable[..., FakeBackend],
    agent_factory: Callable[..., Process],
) -> str:
    """Alice's key, with her provider serving ``fake-llm`` online."""
    key = gateway.add_user("alice")
    token = gateway.add_provider("alice", "alice-home")
    backend = backend_factory("fake-llm")
    agent_factory(token, backend.url)
    wait_for_models(gateway.v1, key, {"fake-llm"})
    return key


@pytest.fixture
async def redis_relay() -> AsyncIterator[RedisRelay]:
    """A relay to the real Redis on a free port, not yet started."""
    relay = RedisRelay(free_port())
    yield relay
    await relay.stop()
