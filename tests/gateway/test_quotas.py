"""Daily quotas refuse past the limit, and `inference-club usage` credits providers."""

from collections.abc import Callable

import httpx

from tests.support.fake_backend import FakeBackend
from tests.support.processes import Gateway, Process, wait_for_models


def chat(gateway: Gateway, key: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.v1}/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "fake-llm", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )


def test_daily_token_quota_and_usage_report(
    gateway: Gateway,
    backend_factory: Callable[..., FakeBackend],
    agent_factory: Callable[..., Process],
) -> None:
    """A member over their daily tokens gets 429 quota_exceeded; usage shows both sides."""
    alice = gateway.add_user("alice")
    bob = gateway.add_user("bob")
    agent_factory(gateway.add_provider("alice", "alice-home"), backend_factory("fake-llm").url)
    wait_for_models(gateway.v1, alice, {"fake-llm"})
    gateway.cli("share", "alice-home", "fake-llm", "--with", "network")
    gateway.cli("users", "set-limit", "bob", "--daily-tokens", "15")
    # Each reply of the fake backend uses 7 + 3 = 10 tokens.
    assert chat(gateway, bob).status_code == 200
    assert chat(gateway, bob).status_code == 200
    refused = chat(gateway, bob)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "quota_exceeded"
    assert "15 tokens" in error["message"]
    assert int(refused.headers["retry-after"]) > 0
    assert "x-ratelimit-remaining" in refused.headers
    # The owner has no quota.
    for _ in range(3):
        assert chat(gateway, alice).status_code == 200
    report = gateway.cli("usage", "--since", "1d").stdout
    lines = [line.split() for line in report.splitlines()]
    assert ["alice", "fake-llm", "3", "0", "30", "0.0", "0"] in lines
    assert ["bob", "fake-llm", "2", "0", "20", "0.0", "0"] in lines
    # The refused request was stopped before its body (and model) was read.
    assert ["bob", "-", "1", "1", "0", "0.0", "0"] in lines
    # alice-home served 5 requests, 2 of them for someone else (the refused one never reached it).
    assert ["alice-home", "fake-llm", "5", "2", "50", "0.0", "0"] in lines
