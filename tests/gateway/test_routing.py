"""Who reaches what, balancing and failover between providers of one model, metering."""

import asyncio
from collections.abc import Callable

import httpx
import openai

from tests.support.fake_backend import FakeBackend
from tests.support.processes import Gateway, Process, wait_for_models
from tests.support.usage import chat_records


def chat(gateway: Gateway, key: str, model: str, content: str = "hi") -> httpx.Response:
    return httpx.post(
        f"{gateway.v1}/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": content}]},
        timeout=10,
    )


def test_a_user_never_sees_or_reaches_another_users_models(
    gateway: Gateway,
    backend_factory: Callable[..., FakeBackend],
    agent_factory: Callable[..., Process],
) -> None:
    """Bob's models are invisible to Alice and a request for one is answered as for no model."""
    alice = gateway.add_user("alice")
    bob = gateway.add_user("bob")
    agent_factory(gateway.add_provider("alice", "alice-home"), backend_factory("alice-llm").url)
    agent_factory(gateway.add_provider("bob", "bob-home"), backend_factory("bob-llm").url)
    wait_for_models(gateway.v1, alice, {"alice-llm"})
    wait_for_models(gateway.v1, bob, {"bob-llm"})
    refused = chat(gateway, alice, "bob-llm")
    missing = chat(gateway, alice, "no-such-model")
    assert refused.status_code == missing.status_code == 404
    assert refused.json()["error"]["type"] == "no_provider"
    assert (
        refused.json()["error"]["message"]
        == "No online provider serving model 'bob-llm' for this user."
    )
    assert chat(gateway, bob, "bob-llm").status_code == 200


def test_two_providers_of_one_model_balance_and_fail_over(
    gateway: Gateway,
    backend_factory: Callable[..., FakeBackend],
    agent_factory: Callable[..., Process],
) -> None:
    """With one provider's backend down, every request still succeeds on the other."""
    key = gateway.add_user("alice")
    first = backend_factory("shared-llm", name="first")
    second = backend_factory("shared-llm", name="second")
    agent_factory(gateway.add_provider("alice", "home-a"), first.url)
    agent_factory(gateway.add_provider("alice", "home-b"), second.url)
    models = wait_for_models(gateway.v1, key, {"shared-llm"}, providers=2)
    assert models[0]["providers"] == ["home-a", "home-b"]
    # Both serve while both are up.
    for _ in range(6):
        assert chat(gateway, key, "shared-llm").status_code == 200
    assert first.requests
    assert second.requests
    # The first backend goes away while its agent stays connected: failover before the first byte.
    first.stop()
    replies = [chat(gateway, key, "shared-llm") for _ in range(6)]
    assert [r.status_code for r in replies] == [200] * 6
    assert all("echo from second" in r.text for r in replies)


def test_pinning_a_provider_with_model_at_provider(
    gateway: Gateway,
    backend_factory: Callable[..., FakeBackend],
    agent_factory: Callable[..., Process],
) -> None:
    """``model@provider`` always reaches that provider, and the backend sees the plain id."""
    key = gateway.add_user("alice")
    first = backend_factory("shared-llm", name="first")
    second = backend_factory("shared-llm", name="second")
    agent_factory(gateway.add_provider("alice", "home-a"), first.url)
    agent_factory(gateway.add_provider("alice", "home-b"), second.url)
    wait_for_models(gateway.v1, key, {"shared-llm"}, providers=2)
    for _ in range(3):
        reply = chat(gateway, key, "shared-llm@home-b")
        assert "echo from second" in reply.text
    assert second.requests[-1]["model"] == "shared-llm"
    assert chat(gateway, key, "shared-llm@nobody").status_code == 404


def test_every_request_leaves_a_usage_record(
    gateway: Gateway,
    backend_factory: Callable[..., FakeBackend],
    agent_factory: Callable[..., Process],
) -> None:
    """Successes, failures and streams are metered, with tokens from the backend's usage."""
    key = gateway.add_user("alice")
    agent_factory(gateway.add_provider("alice", "alice-home"), backend_factory("fake-llm").url)
    wait_for_models(gateway.v1, key, {"fake-llm"})
    sdk = openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0)
    sdk.chat.completions.create(model="fake-llm", messages=[{"role": "user", "content": "a"}])
    list(
        sdk.chat.completions.create(
            model="fake-llm", messages=[{"role": "user", "content": "b"}], stream=True
        )
    )
    assert chat(gateway, key, "fake-llm", "fail").status_code == 502
    assert chat(gateway, key, "missing").status_code == 404
    records = asyncio.run(chat_records(gateway.data, 4, timeout=5))
    by_status = sorted(
        (r.endpoint, r.status_code, r.completion_tokens, r.error_type) for r in records
    )
    assert ("chat.completions", 200, 3, None) in by_status
    assert ("chat.completions", 200, 5, None) in by_status
    assert ("chat.completions", 502, None, "upstream_error") in by_status
    assert ("chat.completions", 404, None, "no_provider") in by_status
    streamed = next(r for r in records if r.completion_tokens == 5)
    assert streamed.prompt_tokens == 7
    assert streamed.ttfb_ms is not None
    assert streamed.provider_id is not None
    assert streamed.model == "fake-llm"
