"""Settings → Token: a key made in the browser works with the OpenAI SDK until revoked."""

import time
from collections.abc import Callable

import openai
import pytest
from playwright.sync_api import Page

from tests.support.processes import wait_for_models
from tests.web.conftest import Club, sign_in


@pytest.fixture(scope="module")
def member(club: Club) -> str:
    """A member with one provider serving ``fake-llm``."""
    club.add_member("alice")
    club.connect_provider("alice", "alice-home", "fake-llm")
    return "alice"


def test_key_is_shown_once_works_and_stops_working_when_revoked(
    club: Club, member: str, new_page: Callable[[], Page]
) -> None:
    """The new key is shown once, lists with its name and last use, and dies when revoked."""
    page = new_page()
    sign_in(page, member)
    page.goto("/settings/token")
    page.fill("input[name=name]", "laptop")
    page.click("button:has-text('Create key')")
    secret = page.inner_text("#new-key")
    assert secret.startswith("ic_")
    assert page.locator("button.copy[data-copy='#new-key']").is_visible()

    client = openai.OpenAI(base_url=club.gateway.v1, api_key=secret, max_retries=0)
    wait_for_models(club.gateway.v1, secret, {"fake-llm"})
    assert [model.id for model in client.models.list()] == ["fake-llm"]
    reply = client.chat.completions.create(
        model="fake-llm", messages=[{"role": "user", "content": "hello"}]
    )
    assert reply.choices[0].message.content == "echo from alice-home: hello"

    page.goto("/settings/token")
    assert secret not in page.content()
    row = page.locator("#keys tbody tr", has_text="laptop")
    prefix = row.get_attribute("data-key-prefix")
    assert prefix is not None
    assert secret.startswith(prefix)
    _wait_for_last_use(page, row_text="laptop")

    page.once("dialog", lambda dialog: dialog.accept())
    row = page.locator("#keys tbody tr", has_text="laptop")
    row.locator("button:has-text('Revoke')").click()
    page.wait_for_selector(".notice")
    assert f"Revoked the key {prefix}" in page.inner_text(".notice")
    assert page.locator("#keys tbody tr", has_text="laptop").count() == 0
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_another_members_key_cannot_be_revoked(
    club: Club, member: str, new_page: Callable[[], Page]
) -> None:
    """Revoking a key id that belongs to someone else is a 404 and the key keeps working."""
    club.add_member("mallory")
    key = club.gateway.cli("keys", "create", member, "--name", "kept").stdout.strip()
    page = new_page()
    sign_in(page, "mallory")
    token = page.get_attribute("input[name=csrf_token]", "value")
    assert token

    statuses = [
        page.request.post(f"/settings/token/{key_id}/revoke", form={"csrf_token": token}).status
        for key_id in range(1, 6)
    ]

    assert set(statuses) == {404}
    client = openai.OpenAI(base_url=club.gateway.v1, api_key=key, max_retries=0)
    assert client.models.list() is not None


def _wait_for_last_use(page: Page, row_text: str, timeout: float = 10.0) -> None:
    # Usage records (and so "last used") are written in batches a moment after the request.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.goto("/settings/token")
        cell = page.locator("#keys tbody tr", has_text=row_text).locator("td").nth(3)
        if cell.inner_text() != "never":
            assert cell.inner_text() == "just now"
            return
        time.sleep(0.2)
    msg = "the key's last use never showed"
    raise AssertionError(msg)
