"""Fixtures for the agent tests: factories of fake gateways, fake backends and agents."""

import asyncio
import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest

from inference_club.agent import AgentSettings, BackendSettings, ModelSettings
from inference_club.agent.core import Agent

from .fakes import TOKEN, FakeBackend, FakeGateway, TunnelPeer

GatewayFactory = Callable[..., Awaitable[FakeGateway]]
# Modules whose tests run on each event loop: their transports behave differently.
_ON_EVERY_LOOP = {"test_backend_client.py", "test_tunnel_reader.py", "test_tunnel_writer.py"}
BackendFactory = Callable[..., Awaitable[FakeBackend]]
AgentFactory = Callable[..., Awaitable[Agent]]


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """The agent runs on uvloop, and on asyncio's loop where there is none."""
    factories: dict[str, Any] = {"asyncio": asyncio.new_event_loop}
    if item.path.name in _ON_EVERY_LOOP and importlib.util.find_spec("uvloop") is not None:
        import uvloop  # noqa: PLC0415 - not installed on Windows

        factories["uvloop"] = uvloop.new_event_loop
    return factories


@pytest.fixture
async def gateway_factory() -> AsyncIterator[GatewayFactory]:
    """Start fake gateways on ephemeral ports; all are closed after the test."""
    gateways: list[FakeGateway] = []

    async def make(**options: Any) -> FakeGateway:
        gateway = await FakeGateway(**options).start()
        gateways.append(gateway)
        return gateway

    yield make
    for gateway in gateways:
        await gateway.close()


@pytest.fixture
async def backend_factory() -> AsyncIterator[BackendFactory]:
    """Start fake OpenAI-compatible servers; all are closed after the test."""
    backends: list[FakeBackend] = []

    async def make(*models: str, **options: Any) -> FakeBackend:
        backend = await FakeBackend(*models, **options).start()
        backends.append(backend)
        return backend

    yield make
    for backend in backends:
        await backend.close()


def agent_settings(
    server_url: str,
    backends: list[FakeBackend | BackendSettings | str],
    models: Mapping[str, ModelSettings] | None = None,
    **overrides: Any,
) -> AgentSettings:
    """Settings with every delay shrunk so reconnect and discovery tests stay fast."""
    options: dict[str, Any] = {
        "rediscover_interval": 60.0,
        "discovery_timeout": 1.0,
        "connect_timeout": 2.0,
        "close_timeout": 0.2,
        "backoff_base": 0.01,
        "backoff_cap": 0.05,
    }
    options.update(overrides)
    return AgentSettings(
        server_url=server_url,
        token=options.pop("token", TOKEN),
        backends=tuple(
            item if isinstance(item, BackendSettings) else BackendSettings(_url(item))
            for item in backends
        ),
        models=models or {},
        **options,
    )


def _url(item: FakeBackend | str) -> str:
    return item if isinstance(item, str) else item.url


@pytest.fixture
async def agent_factory(
    gateway_factory: GatewayFactory, backend_factory: BackendFactory
) -> AsyncIterator[AgentFactory]:
    """Start agents; they stop before the fake servers close (this fixture depends on theirs)."""
    agents: list[Agent] = []

    async def make(gateway: FakeGateway | str, backends: list[Any], **options: Any) -> Agent:
        url = gateway if isinstance(gateway, str) else gateway.url
        agent = Agent(agent_settings(url, backends, **options))
        await agent.start()
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        await agent.stop()


@pytest.fixture
async def tunnel(
    gateway_factory: GatewayFactory,
    backend_factory: BackendFactory,
    agent_factory: AgentFactory,
) -> tuple[TunnelPeer, FakeBackend, Agent]:
    """An agent connected to a fake gateway, serving model ``tiny-llm`` from one fake backend."""
    gateway = await gateway_factory()
    backend = await backend_factory("tiny-llm")
    agent = await agent_factory(gateway, [backend])
    return await gateway.next_peer(), backend, agent
