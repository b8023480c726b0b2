"""Per-key rate limits: exact under concurrency, reported on every response, in memory or Redis."""

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.fake_backend import FakeBackend
from tests.support.processes import (
    Gateway,
    free_port,
    start_agent,
    start_gateway,
    wait_for_models,
)
from tests.support.redis_relay import RedisRelay, RelayThread
from tests.support.usage import chat_records

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", "redis"])
def limited_gateway(request: pytest.FixtureRequest, tmp_path: Path):  # noqa: ANN201
    """A gateway allowing 5 requests per minute per key, counting in memory or in Redis."""
    extra = ["--requests-per-minute", "5"]
    if request.param == "redis":
        extra += ["--redis-url", REDIS_URL]
    gateway = start_gateway(tmp_path, *extra)
    yield gateway
    gateway.process.stop()


async def _burst(gateway: Gateway, key: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=10) as client:
        return await asyncio.gather(
            *(
                client.get(f"{gateway.v1}/models", headers={"Authorization": f"Bearer {key}"})
                for _ in range(count)
            )
        )


def test_n_allowed_then_refused_under_concurrency(limited_gateway: Gateway) -> None:
    """Of 9 concurrent requests with a limit of 5, exactly 5 pass; headers count down exactly."""
    key = limited_gateway.add_user("alice")
    responses = asyncio.run(_burst(limited_gateway, key, 9))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 5 + [429] * 4
    allowed = [r for r in responses if r.status_code == 200]
    assert sorted(int(r.headers["x-ratelimit-remaining"]) for r in allowed) == [0, 1, 2, 3, 4]
    for response in responses:
        assert response.headers["x-ratelimit-limit"] == "5"
        assert 1 <= int(response.headers["x-ratelimit-reset"]) <= 60
    for refused in (r for r in responses if r.status_code == 429):
        assert refused.headers["x-ratelimit-remaining"] == "0"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        error = refused.json()["error"]
        assert error["type"] == "rate_limit_exceeded"
        assert "5 requests per minute" in error["message"]


def test_limits_are_per_key_and_errors_carry_the_headers(limited_gateway: Gateway) -> None:
    """Another key has its own budget; a 404 still reports the rate-limit state."""
    first = limited_gateway.add_user("alice")
    second = limited_gateway.add_user("bob")
    asyncio.run(_burst(limited_gateway, first, 5))
    response = httpx.post(
        f"{limited_gateway.v1}/chat/completions",
        headers={"Authorization": f"Bearer {second}"},
        json={"model": "nothing", "messages": [{"role": "user", "content": "x"}]},
        timeout=10,
    )
    assert response.status_code == 404
    assert response.headers["x-ratelimit-limit"] == "5"
    assert response.headers["x-ratelimit-remaining"] == "4"


def test_admin_can_change_a_users_limit_while_running(limited_gateway: Gateway) -> None:
    """users set-limit takes effect on the next request."""
    key = limited_gateway.add_user("alice")
    limited_gateway.cli("users", "set-limit", "alice", "--rpm", "100")
    response = httpx.get(
        f"{limited_gateway.v1}/models", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert response.headers["x-ratelimit-limit"] == "100"


@pytest.fixture
def serving_gateway(
    limited_gateway: Gateway,
    tmp_path: Path,
    backend_factory: Callable[..., FakeBackend],
) -> Iterator[Gateway]:
    """The limited gateway with alice's provider of ``fake-llm`` online (waited for with a
    key of hers that the tests do not use, while her limit was higher)."""
    waiting_key = limited_gateway.add_user("alice")
    token = limited_gateway.add_provider("alice", "alice-home")
    limited_gateway.cli("users", "set-limit", "alice", "--rpm", "1000")
    agent = start_agent(tmp_path, limited_gateway.url, token, backend_factory("fake-llm").url)
    wait_for_models(limited_gateway.v1, waiting_key, {"fake-llm"})
    limited_gateway.cli("users", "set-limit", "alice", "--rpm", "5")
    yield limited_gateway
    agent.stop()


async def _chats(gateway: Gateway, key: str, count: int, *, stream: bool) -> list[httpx.Response]:
    body = {"model": "fake-llm", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    async with httpx.AsyncClient(timeout=10) as client:
        return await asyncio.gather(
            *(
                client.post(
                    f"{gateway.v1}/chat/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json=body,
                )
                for _ in range(count)
            )
        )


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_chats_are_counted_exactly_under_concurrency_and_each_is_metered(
    serving_gateway: Gateway, stream: bool
) -> None:
    """9 concurrent chats with a limit of 5: 5 answered, counting down 4 to 0, and 4 refused
    in the envelope; none counted twice, and each leaves its usage record."""
    gateway = serving_gateway
    key = gateway.cli("keys", "create", "alice").stdout.strip()
    responses = asyncio.run(_chats(gateway, key, 9, stream=stream))
    answered = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert (len(answered), len(refused)) == (5, 4)
    assert sorted(int(r.headers["x-ratelimit-remaining"]) for r in answered) == [0, 1, 2, 3, 4]
    for response in answered:
        if stream:
            assert response.text.rstrip().endswith("data: [DONE]")
            assert "tok4" in response.text
        else:
            assert response.json()["choices"][0]["message"]["content"] == "echo from fake: hi"
    for response in refused:
        assert response.json()["error"]["type"] == "rate_limit_exceeded"
        assert 1 <= int(response.headers["retry-after"]) <= 60
    records = asyncio.run(chat_records(gateway.data, 9))
    assert sorted(r.status_code for r in records) == [200] * 5 + [429] * 4


def test_chats_are_served_and_limited_while_redis_is_unreachable(
    tmp_path: Path, backend_factory: Callable[..., FakeBackend]
) -> None:
    """Redis down from the start: chats are answered and counted in the gateway's memory (the
    third of a limit of 2 is refused); the log warns once and never shows the password."""
    nobody = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    gateway = start_gateway(tmp_path, "--requests-per-minute", "2", "--redis-url", nobody)
    try:
        waiting_key = gateway.add_user("alice")
        token = gateway.add_provider("alice", "alice-home")
        gateway.cli("users", "set-limit", "alice", "--rpm", "1000")
        agent = start_agent(tmp_path, gateway.url, token, backend_factory("fake-llm").url)
        try:
            wait_for_models(gateway.v1, waiting_key, {"fake-llm"})
            gateway.cli("users", "set-limit", "alice", "--rpm", "2")
            key = gateway.cli("keys", "create", "alice").stdout.strip()
            statuses = [
                r.status_code
                for _ in range(3)
                for r in asyncio.run(_chats(gateway, key, 1, stream=False))
            ]
            assert statuses == [200, 200, 429]
        finally:
            agent.stop()
    finally:
        gateway.process.stop()
    log = gateway.process.log()
    assert log.count("Redis is unavailable: rate limits are counted in this node's memory") == 1
    assert "hunter2" not in log


def test_a_client_leaving_while_redis_counts_its_chat_is_metered_and_nothing_is_sent(
    tmp_path: Path, backend_factory: Callable[..., FakeBackend]
) -> None:
    """Redis answers slowly; the client sends a chat and leaves before the count is back: the
    chat is never sent to a provider, and its usage record says the client left."""
    with RelayThread(RedisRelay(free_port())) as relay:
        relay.delay = 0.5
        redis_url = f"redis://127.0.0.1:{relay.port}/0"
        gateway = start_gateway(tmp_path, "--redis-url", redis_url)
        try:
            key = gateway.add_user("alice")
            token = gateway.add_provider("alice", "alice-home")
            agent = start_agent(tmp_path, gateway.url, token, backend_factory("fake-llm").url)
            try:
                wait_for_models(gateway.v1, key, {"fake-llm"})
                port = int(gateway.url.rsplit(":", 1)[1])
                with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
                    client.sendall(_raw_chat(key))
                    time.sleep(0.1)
                [record] = asyncio.run(chat_records(gateway.data, 1))
            finally:
                agent.stop()
        finally:
            gateway.process.stop()
    assert (record.status_code, record.error_type) == (499, "client_disconnected")
    assert record.provider_id is None


def _raw_chat(key: str) -> bytes:
    body = b'{"model": "fake-llm", "messages": [{"role": "user", "content": "hi"}]}'
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}"
        f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body
