"""History: paged requests and the media gallery, each seen and deleted by its owner only."""

import io
import wave
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Page, expect

from inference_club.demo.png import encode_png
from inference_club.store import UsageRecord, new_asset_id
from tests.web.conftest import Club, run_async, sign_in

REQUESTS = 55


@dataclass(frozen=True)
class Media:
    """uma's stored image and recording."""

    image: str
    audio: str


@pytest.fixture(scope="module")
def members(club: Club) -> Club:
    """uma (with 55 past requests), vic, and the admin root."""
    club.add_member("uma")
    club.add_member("vic")
    club.add_member("root", admin=True)

    async def fill() -> None:
        async with await club.store() as store:
            uma = await store.get_user("uma")
            start = datetime.now(UTC) - timedelta(hours=1)
            await store.record_usage(
                [
                    UsageRecord(
                        user_id=uma.id,
                        model=f"model-{index:02d}",
                        endpoint="chat.completions",
                        status_code=200 if index % 10 else 502,
                        started_at=start + timedelta(seconds=index),
                        ended_at=start + timedelta(seconds=index, milliseconds=250),
                        prompt_tokens=5,
                        completion_tokens=index,
                    )
                    for index in range(REQUESTS)
                ]
            )

    run_async(fill)
    return club


@pytest.fixture(scope="module")
def media(members: Club) -> Media:
    """A PNG and a WAV of uma's, written where the gateway keeps assets."""
    directory = members.gateway.data / "assets"
    directory.mkdir(parents=True, exist_ok=True)
    image = encode_png(4, 4, [bytes([200, 30, 90] * 4)] * 4)
    sound = io.BytesIO()
    with wave.open(sound, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(b"\x00\x01" * 800)
    ids = {"image/png": new_asset_id(), "audio/wav": new_asset_id()}
    for content_type, data in (("image/png", image), ("audio/wav", sound.getvalue())):
        (directory / ids[content_type]).write_bytes(data)

    async def record() -> None:
        async with await members.store() as store:
            uma = await store.get_user("uma")
            for content_type, data in (("image/png", image), ("audio/wav", sound.getvalue())):
                await store.add_asset(
                    asset_id=ids[content_type],
                    user_id=uma.id,
                    kind=content_type.partition("/")[0],
                    content_type=content_type,
                    size_bytes=len(data),
                    path=f"assets/{ids[content_type]}",
                )

    run_async(record)
    return Media(image=ids["image/png"], audio=ids["audio/wav"])


def test_history_pages_through_the_members_requests(
    members: Club, new_page: Callable[[], Page]
) -> None:
    """Newest first, 50 to a page, with model, status, latency and tokens."""
    page = new_page()
    sign_in(page, "uma")
    page.goto("/history")
    rows = page.locator("table.history tbody tr")

    assert rows.count() == 50
    assert rows.first.get_attribute("data-model") == f"model-{REQUESTS - 1:02d}"
    assert "5 + 54 tokens" in rows.first.inner_text()
    assert "250 ms" in rows.first.inner_text()
    assert page.locator("tr[data-status='502']").count() == 5
    page.click("text=Older →")
    expect(page.locator("table.history tbody tr")).to_have_count(REQUESTS - 50)
    assert page.locator("text=Older →").count() == 0


def test_another_members_history_is_refused(members: Club, new_page: Callable[[], Page]) -> None:
    """A member cannot open another's history; an admin can; one's own shows only one's own."""
    vic = new_page()
    sign_in(vic, "vic")
    refused = vic.goto("/history?member=uma")
    assert refused is not None
    assert refused.status == 403
    vic.goto("/history")
    assert vic.locator("table.history tbody tr").count() == 0

    admin = new_page()
    sign_in(admin, "root")
    allowed = admin.goto("/history?member=uma")
    assert allowed is not None
    assert allowed.status == 200
    assert admin.locator("table.history tbody tr").count() == 50


def test_media_are_shown_and_deleted_only_by_their_owner(
    members: Club, media: Media, new_page: Callable[[], Page]
) -> None:
    """uma sees and deletes her image; vic's attempt on it is a 404 that changes nothing."""
    image_url = f"{members.url}/api/inference/assets/{media.image}/"
    vic = new_page()
    sign_in(vic, "vic")
    vic.goto("/history/media")
    assert vic.locator("[data-asset]").count() == 0
    token = vic.get_attribute("input[name=csrf_token]", "value")
    assert token
    refused = vic.request.post(f"/history/media/{media.image}/delete", form={"csrf_token": token})
    assert refused.status == 404
    assert httpx.get(image_url).status_code == 200

    uma = new_page()
    sign_in(uma, "uma")
    uma.goto("/history/media")
    image = uma.locator(f".gallery [data-asset='{media.image}'] img")
    expect(image).to_be_visible()
    uma.wait_for_function(
        "id => { const img = document.querySelector(`[data-asset='${id}'] img`);"
        " return img && img.complete && img.naturalWidth === 4; }",
        arg=media.image,
    )
    assert uma.locator(f".recordings [data-asset='{media.audio}'] audio").count() == 1

    uma.once("dialog", lambda dialog: dialog.accept())
    uma.locator(f"[data-asset='{media.image}'] button:has-text('Delete')").click()
    expect(uma.locator(".notice")).to_have_text("Deleted the image.")
    assert uma.locator(f"[data-asset='{media.image}']").count() == 0
    assert uma.locator(f"[data-asset='{media.audio}']").count() == 1
    assert httpx.get(image_url).status_code == 404
    assert not (members.gateway.data / "assets" / media.image).exists()
