"""Providers and models: add a provider, run the shown command, watch it go live; share a model."""

import shlex
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.support.fake_backend import FakeBackend
from tests.support.processes import CLI, spawn
from tests.web.conftest import Club, sign_in


@pytest.fixture(scope="module")
def members(club: Club) -> Club:
    """Two members, pat and quinn."""
    club.add_member("pat")
    club.add_member("quinn")
    return club


def test_added_provider_turns_online_and_offline_without_reload(
    members: Club, new_page: Callable[[], Page]
) -> None:
    """The shown agent command connects the provider; the page updates live both ways."""
    backend = FakeBackend(["fake-a", "fake-b"], name="box").start()
    members.backends.append(backend)
    page = new_page()
    sign_in(page, "pat")
    page.goto("/providers")
    page.fill("input[name=name]", "pat-box")
    page.click("button:has-text('Add a provider')")
    command = shlex.split(page.inner_text("#agent-command"))
    token = page.inner_text("#provider-token")

    assert command[:3] == ["inference-club", "agent", "--server"]
    assert command[3] == members.url
    assert command[4:] == ["--token", token, "--backend", "http://127.0.0.1:8080/v1"]

    page.goto("/providers")
    provider = page.locator("[data-provider='pat-box']")
    expect(provider).to_have_attribute("data-online", "no")
    page.evaluate("window.notReloaded = true")
    agent = spawn([*CLI, *command[1:-1], backend.url], members.tmp / "agent-from-the-page.log")
    members.processes.append(agent)

    expect(page.locator("[data-provider='pat-box']")).to_have_attribute("data-online", "yes")
    status = page.locator("[data-provider='pat-box']")
    expect(status.locator("table.models")).to_contain_text("fake-a")
    expect(status.locator("table.models")).to_contain_text("fake-b")
    assert status.locator("table.models .type").first.text_content() == "llm"
    assert "text → text" in status.inner_text()
    assert page.evaluate("window.notReloaded") is True

    agent.stop()
    expect(page.locator("[data-provider='pat-box']")).to_have_attribute("data-online", "no")
    assert page.evaluate("window.notReloaded") is True


def test_models_are_filtered_by_type_and_shared_by_their_owner(
    members: Club, new_page: Callable[[], Page]
) -> None:
    """Own models list by type; sharing with the network makes them usable by others."""
    members.connect_provider("pat", "pat-gpu", "shared-llm")
    owner, other = new_page(), new_page()
    sign_in(owner, "pat")
    sign_in(other, "quinn")

    owner.goto("/models")
    expect(owner.locator("[data-model='shared-llm']")).to_be_visible()
    owner.goto("/models?type=tts")
    assert owner.locator("[data-model]").count() == 0
    owner.goto("/models?type=llm")
    card = owner.locator("[data-model='shared-llm']")
    assert "pat-gpu (yours)" in card.inner_text()
    other.goto("/models")
    assert other.locator("[data-model='shared-llm']").count() == 0

    card.locator("input[name=share][value=network]").check()
    card.locator("button:has-text('Save')").click()
    expect(owner.locator(".notice")).to_contain_text("shared-llm on pat-gpu: now network")

    other.goto("/models")
    shared = other.locator("[data-model='shared-llm']")
    expect(shared).to_contain_text("pat-gpu")
    assert shared.locator("form.share").count() == 0
    token = other.get_attribute("input[name=csrf_token]", "value")
    assert token
    refused = other.request.post(
        "/models/share",
        form={
            "csrf_token": token,
            "provider": "pat-gpu",
            "model": "shared-llm",
            "share": "private",
        },
    )
    assert refused.status == 404
    other.goto("/models")
    expect(other.locator("[data-model='shared-llm']")).to_be_visible()
