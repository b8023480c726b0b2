"""The playground: streamed chat through /v1 with a session key, metered and rate limited."""

import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from inference_club.demo.launcher import DemoServer, running_demo_server
from tests.support.processes import start_agent
from tests.web.conftest import Club, run_async, sign_in


@pytest.fixture(scope="module")
def image_server() -> Iterator[DemoServer]:
    """The procedural demo image server."""
    with running_demo_server("image_server") as server:
        yield server


@pytest.fixture(scope="module")
def members(club: Club) -> Club:
    """sam and tia, each with a provider serving ``fake-llm``; tia may make 2 requests a minute."""
    for name in ("sam", "tia"):
        club.add_member(name)
        club.connect_provider(name, f"{name}-home", "fake-llm")

    async def limit() -> None:
        async with await club.store() as store:
            await store.set_user_limits("tia", requests_per_minute=2)

    run_async(limit)
    return club


def _open_playground(
    page: Page, *, select: str = "#chat-model", model: str = "fake-llm", timeout: float = 15.0
) -> None:
    # The agent may still be connecting: reload until the model is offered.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.goto("/playground")
        if page.locator(f"{select} option[value='{model}']").count():
            return
        time.sleep(0.2)
    msg = f"{model} never appeared in the playground"
    raise AssertionError(msg)


def test_chat_streams_the_reply_and_the_request_shows_in_history(
    members: Club, new_page: Callable[[], Page]
) -> None:
    """Tokens appear while the reply streams; then the request is in the member's history."""
    page = new_page()
    sign_in(page, "sam")
    _open_playground(page)
    key = page.get_attribute("#playground", "data-key")

    page.fill("#chat-input", "slow")
    page.press("#chat-input", "Enter")
    reply = page.locator(".bubble.assistant")
    # Mid-stream: the first tokens are shown before the last one has been sent.
    page.wait_for_function(
        "() => { const b = document.querySelector('.bubble.assistant');"
        " return b && b.textContent.includes('tok1') && !b.textContent.includes('tok19'); }",
        timeout=5000,
    )
    expect(reply).to_have_class("bubble assistant streaming")
    expect(page.locator(".bubble.assistant:not(.streaming)")).to_contain_text("tok19")
    assert reply.text_content() == "".join(f"tok{index} " for index in range(20))
    expect(page.locator("#chat-meta")).to_contain_text("7 + 20 tokens")

    row = _history_row(page, "fake-llm")
    assert row.get_attribute("data-status") == "200"
    assert "chat.completions" in row.inner_text()
    assert "sam-home" in row.inner_text()
    assert "7 + 20 tokens" in row.inner_text()

    _open_playground(page)
    assert page.get_attribute("#playground", "data-key") == key
    page.goto("/settings/token")
    assert page.locator("#keys tbody tr", has_text="playground").count() == 1


def test_playground_counts_against_the_members_rate_limit(
    members: Club, new_page: Callable[[], Page]
) -> None:
    """With 2 requests a minute allowed, the third chat from the playground is refused."""
    page = new_page()
    sign_in(page, "tia")
    _open_playground(page)

    for message in ("one", "two"):
        page.fill("#chat-input", message)
        page.press("#chat-input", "Enter")
        expect(page.locator("#chat-meta")).to_contain_text("tokens")
        expect(page.locator("#chat-send")).to_be_enabled()
    page.fill("#chat-input", "three")
    page.press("#chat-input", "Enter")

    expect(page.locator("#chat-meta")).to_contain_text("Error:")
    expect(page.locator("#chat-meta")).to_contain_text("Try again in")


def test_signing_out_revokes_the_playground_key(
    members: Club, new_page: Callable[[], Page]
) -> None:
    """The session's playground key stops working when the member signs out."""
    page = new_page()
    sign_in(page, "sam")
    page.goto("/playground")
    key = page.get_attribute("#playground", "data-key")
    assert key
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{members.gateway.v1}/models", headers=headers).status_code == 200

    page.click("text=Sign out")
    page.wait_for_url("**/login")

    assert httpx.get(f"{members.gateway.v1}/models", headers=headers).status_code == 401


def _history_row(page: Page, model: str, timeout: float = 10.0) -> Locator:
    # Usage records are written in batches just after a request ends.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.goto("/history")
        row = page.locator(f"table.history tbody tr[data-model='{model}']")
        if row.count():
            return row.first
        time.sleep(0.2)
    msg = f"no request for {model} in the history"
    raise AssertionError(msg)


def test_generated_image_is_shown_and_kept_in_the_gallery(
    members: Club, image_server: DemoServer, new_page: Callable[[], Page]
) -> None:
    """An image made in the playground appears there, then in the member's gallery."""
    token = members.gateway.add_provider("sam", "sam-art")
    config = members.tmp / "image-agent.toml"
    config.write_text(
        f'[[backends]]\nurl = "{image_server.base_url}"\nservice_type = "image"\n',
        encoding="utf-8",
    )
    members.processes.append(
        start_agent(members.tmp, members.url, token, extra=("--config", str(config)))
    )
    page = new_page()
    sign_in(page, "sam")
    _open_playground(page, select="#image-model", model="demo-procedural-image")
    page.click("text=Images")
    page.select_option("#image-size", "256x256")
    page.fill("#image-prompt", "a small red house")
    page.click("#image-form button[type=submit]")

    expect(page.locator("#image-meta")).to_contain_text("1 image")
    page.wait_for_function(
        "() => { const img = document.querySelector('#image-result img');"
        " return img && img.complete && img.naturalWidth === 256; }"
    )
    source = page.get_attribute("#image-result img", "src")
    assert source is not None
    assert source.startswith("/api/inference/assets/")

    page.goto("/history/media")
    expect(page.locator(f".gallery img[src='{source}']")).to_be_visible()
