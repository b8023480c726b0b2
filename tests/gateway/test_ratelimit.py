"""Per-key rate limits: exact under concurrency, reported on every response, in memory or Redis."""

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.support.processes import Gateway, start_gateway

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
