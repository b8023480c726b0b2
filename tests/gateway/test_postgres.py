"""The whole gateway on PostgreSQL: admin commands, the tunnel, a chat and its usage record."""

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import openai
import pytest

from inference_club.store import Store
from tests.support.fake_backend import FakeBackend
from tests.support.processes import Gateway, Process, start_agent, start_gateway, wait_for_models


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(host="127.0.0.1", port=5432, user="root", database="test")
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database on 127.0.0.1, dropped afterwards."""
    name = f"ic_gateway_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    yield f"postgresql+asyncpg://root@127.0.0.1:5432/{name}"
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_gateway(tmp_path: Path, postgres_url: str) -> Iterator[Gateway]:
    gateway = start_gateway(tmp_path, "--database-url", postgres_url)
    yield gateway
    gateway.process.stop()


def test_gateway_runs_on_postgresql(
    pg_gateway: Gateway,
    postgres_url: str,
    tmp_path: Path,
    backend_factory: Callable[..., FakeBackend],
) -> None:
    """Keys made by the CLI work at once, a chat goes through, and its usage lands in PostgreSQL."""
    gateway = pg_gateway
    gateway.cli("users", "add", "alice", "--database-url", postgres_url)
    key = gateway.cli("keys", "create", "alice", "--database-url", postgres_url).stdout.strip()
    token = gateway.cli(
        "providers", "add", "alice", "home", "--database-url", postgres_url
    ).stdout.strip()
    agent: Process = start_agent(tmp_path, gateway.url, token, backend_factory("fake-llm").url)
    try:
        wait_for_models(gateway.v1, key, {"fake-llm"})
        reply = openai.OpenAI(
            base_url=gateway.v1, api_key=key, max_retries=0
        ).chat.completions.create(model="fake-llm", messages=[{"role": "user", "content": "hello"}])
        assert reply.choices[0].message.content == "echo from fake: hello"
        records = asyncio.run(_usage(postgres_url))
        assert [
            (r.endpoint, r.status_code, r.completion_tokens)
            for r in records
            if r.endpoint == "chat.completions"
        ] == [("chat.completions", 200, 3)]
        gateway.cli("keys", "revoke", key[:12], "--database-url", postgres_url)
        refused = httpx.get(
            f"{gateway.v1}/models", headers={"Authorization": f"Bearer {key}"}, timeout=5
        )
        assert refused.status_code == 401
    finally:
        agent.stop()


async def _usage(url: str) -> list:  # type: ignore[type-arg]
    store = await Store.open(url)
    try:
        deadline = time.monotonic() + 5
        while True:
            records = await store.list_usage(limit=100)
            if (
                any(r.endpoint == "chat.completions" for r in records)
                or time.monotonic() > deadline
            ):
                return records
            await asyncio.sleep(0.1)
    finally:
        await store.close()
