"""Sharing between members: what each sees on /v1/models and what every endpoint refuses."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from inference_club.protocol import ModelCard
from tests.support.fake_agent import FakeAgent
from tests.support.processes import Gateway, wait_for_models


@pytest.fixture
def club(gateway: Gateway) -> Iterator[dict[str, str]]:
    """Three members, two groups, four providers with every kind of sharing."""
    keys = {name: gateway.add_user(name) for name in ("alice", "bob", "carol")}
    gateway.cli("groups", "add", "lab")
    gateway.cli("groups", "add", "family")
    gateway.cli("groups", "add-member", "lab", "alice")
    gateway.cli("groups", "add-member", "lab", "bob")
    gateway.cli("groups", "add-member", "family", "carol")
    layout = {
        ("alice", "alice-home"): (
            ModelCard("a-private"),
            ModelCard("a-net", visibility=("network",)),
        ),
        ("bob", "bob-home"): (
            ModelCard("b-lab", visibility=("group:lab",)),
            ModelCard("b-family", service_type="tts", visibility=("group:family",)),
        ),
        ("bob", "bob-2"): (ModelCard("common"),),
        ("carol", "carol-home"): (
            ModelCard("c-net", service_type="image", visibility=("network",)),
            ModelCard("common", visibility=("network",)),
        ),
    }
    agents = [
        FakeAgent(gateway.port, gateway.add_provider(owner, name), cards).start()
        for (owner, name), cards in layout.items()
    ]
    yield keys
    for agent in agents:
        agent.stop()


def models_of(gateway: Gateway, key: str) -> dict[str, dict[str, Any]]:
    response = httpx.get(
        f"{gateway.v1}/models", headers={"Authorization": f"Bearer {key}"}, timeout=5
    )
    return {entry["id"]: entry for entry in response.json()["data"]}


def test_each_member_sees_exactly_what_is_shared_with_them(
    gateway: Gateway, club: dict[str, str]
) -> None:
    """Own models plus network-wide ones plus those shared with a group the member is in."""
    wait_for_models(
        gateway.v1, club["bob"], {"a-net", "b-lab", "b-family", "c-net", "common"}, providers=1
    )
    assert set(models_of(gateway, club["alice"])) == {
        "a-private",
        "a-net",
        "b-lab",
        "c-net",
        "common",
    }
    assert set(models_of(gateway, club["carol"])) == {"a-net", "b-family", "c-net", "common"}
    bob = models_of(gateway, club["bob"])
    assert bob["common"]["owned_by"] == "bob-2"
    assert bob["common"]["providers"] == ["bob-2", "carol-home"]
    alice = models_of(gateway, club["alice"])
    assert alice["common"]["owned_by"] == "carol-home"
    assert alice["common"]["providers"] == ["carol-home"]


ENDPOINTS = [
    (
        "POST",
        "/chat/completions",
        {"json": {"model": "{m}", "messages": [{"role": "user", "content": "x"}]}},
    ),
    ("POST", "/completions", {"json": {"model": "{m}", "prompt": "x"}}),
    ("GET", "/models/{m}", {}),
    ("POST", "/audio/speech", {"json": {"model": "{m}", "input": "hello"}}),
    ("GET", "/audio/voices?model={m}", {}),
    ("POST", "/images/generations", {"json": {"model": "{m}", "prompt": "a fox"}}),
]


def _request(
    gateway: Gateway, key: str, method: str, path: str, options: dict[str, Any], model: str
) -> httpx.Response:
    filled = {k: _fill(v, model) for k, v in options.items()}
    return httpx.request(
        method,
        f"{gateway.v1}{path.format(m=model)}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
        **filled,
    )


def _fill(value: Any, model: str) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, model) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, model) for v in value]
    return value.replace("{m}", model) if isinstance(value, str) else value


@pytest.mark.parametrize(
    ("method", "path", "options"), ENDPOINTS, ids=[p for _m, p, _o in ENDPOINTS]
)
def test_unshared_models_answer_like_missing_ones(
    gateway: Gateway, club: dict[str, str], method: str, path: str, options: dict[str, Any]
) -> None:
    """A private or other-group model gets exactly the answer of a model that does not exist."""
    wait_for_models(gateway.v1, club["carol"], {"a-net", "b-family", "c-net", "common"})
    for hidden in ("a-private", "b-lab"):
        refused = _request(gateway, club["carol"], method, path, options, hidden)
        missing = _request(gateway, club["carol"], method, path, options, "zz-missing")
        assert refused.status_code == missing.status_code == 404, refused.text
        assert refused.text.replace(hidden, "M") == missing.text.replace("zz-missing", "M")


def test_sharing_changes_take_effect_on_the_next_request(
    gateway: Gateway, club: dict[str, str]
) -> None:
    """`share` on a running gateway changes what a member sees at once, and --reset undoes it."""
    wait_for_models(gateway.v1, club["carol"], {"a-net", "b-family", "c-net", "common"})
    gateway.cli("share", "alice-home", "a-private", "--with", "group:family")
    assert "a-private" in models_of(gateway, club["carol"])
    gateway.cli("share", "alice-home", "a-net", "--with", "private")
    assert "a-net" not in models_of(gateway, club["carol"])
    gateway.cli("groups", "remove-member", "family", "carol")
    assert "a-private" not in models_of(gateway, club["carol"])
    assert "b-family" not in models_of(gateway, club["carol"])
    gateway.cli("share", "alice-home", "a-net", "--reset")
    assert "a-net" in models_of(gateway, club["carol"])
