"""Image generations and edits through gateway, tunnel and agent against a fake image server."""

import asyncio
import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import openai
import pytest

from inference_club.demo.png import encode_png
from inference_club.store import Asset, Store, UsageRecord, default_database_url
from tests.support.fake_media import FakeMedia, write_agent_config
from tests.support.processes import Gateway, Process, start_agent, start_gateway, wait_for_models

PICTURE = encode_png(4, 3, [bytes([10, 200, 30]) * 4] * 3)
ASSET_PREFIX = "/api/inference/assets/"


@dataclass
class Setup:
    gateway: Gateway
    key: str
    images: FakeMedia
    agent: Process

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gateway.v1, api_key=self.key, max_retries=0)

    def post(self, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.post(f"{self.gateway.v1}{path}", headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """One gateway allowing 2 images a request, and alice's agent serving image and tts models."""
    tmp = tmp_path_factory.mktemp("images")
    gateway = start_gateway(tmp, "--upstream-timeout", "10", "--max-images-per-request", "2")
    images = FakeMedia(["fake-image"], image_png=PICTURE).start()
    tts = FakeMedia(["fake-tts"]).start()
    key = gateway.add_user("alice")
    token = gateway.add_provider("alice", "alice-home")
    config = write_agent_config(tmp / "agent.toml", [(images.url, "image"), (tts.url, "tts")], {})
    agent = start_agent(tmp, gateway.url, token, extra=("--config", str(config)))
    try:
        wait_for_models(gateway.v1, key, {"fake-image", "fake-tts"})
        yield Setup(gateway, key, images, agent)
    finally:
        agent.stop()
        gateway.process.stop()
        images.stop()
        tts.stop()


@pytest.fixture
def image_mode(setup: Setup) -> Iterator[None]:
    """Restores the fake image server's answer mode after a test changed it."""
    yield
    setup.images.image_mode = "url"


def assert_error(response: httpx.Response, status: int, error_type: str, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == error_type
    assert message in error["message"], error["message"]


def fetch_asset(setup: Setup, url: str) -> httpx.Response:
    """The asset at ``url``, fetched with no credentials at all."""
    assert url.startswith(f"{setup.gateway.url}{ASSET_PREFIX}")
    return httpx.get(url, timeout=5)


def usage_and_assets(data: Path, since: datetime) -> tuple[UsageRecord, list[Asset]]:
    """The newest image usage record since ``since`` and the assets linked to it."""

    async def poll() -> tuple[UsageRecord, list[Asset]]:
        store = await Store.open(default_database_url(data))
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                records = [
                    r
                    for r in await store.list_usage(limit=20)
                    if r.endpoint.startswith("images.") and r.started_at >= since
                ]
                if records:
                    assets = await store.list_assets(user_id=records[0].user_id)
                    linked = [a for a in assets if a.usage_record_id == records[0].id]
                    if linked:
                        return records[0], linked
                await asyncio.sleep(0.05)
        finally:
            await store.close()
        msg = "no image usage record with linked assets"
        raise AssertionError(msg)

    return asyncio.run(poll())


def test_generated_image_is_stored_and_served_by_url(setup: Setup) -> None:
    """A URL the home server answered is inlined by the agent, stored, and served to anyone."""
    result = setup.client().images.generate(model="fake-image", prompt="a fox")
    assert result.data is not None
    assert len(result.data) == 1
    image = result.data[0]
    assert image.b64_json is None
    assert image.revised_prompt == "a revised prompt"
    assert image.url is not None
    served = fetch_asset(setup, image.url)
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert served.content == PICTURE
    seen = setup.images.last("/v1/images/generations")
    assert seen["response_format"] == "b64_json"
    assert seen["model"] == "fake-image"


@pytest.mark.usefixtures("image_mode")
def test_b64_json_is_returned_when_asked(setup: Setup) -> None:
    """With response_format=b64_json the bytes come inline, and the URL is there too."""
    setup.images.image_mode = "b64"
    result = setup.client().images.generate(
        model="fake-image", prompt="a fox", response_format="b64_json"
    )
    assert result.data is not None
    image = result.data[0]
    assert image.b64_json is not None
    assert base64.b64decode(image.b64_json) == PICTURE
    assert image.url is not None
    assert fetch_asset(setup, image.url).content == PICTURE


def test_n_is_clamped_and_metered(setup: Setup) -> None:
    """n=5 is clamped to the gateway's 2; the usage record counts 2 images, each asset linked."""
    since = datetime.now().astimezone()
    result = setup.client().images.generate(model="fake-image", prompt="foxes", n=5)
    assert result.data is not None
    assert len(result.data) == 2
    assert setup.images.last("/v1/images/generations")["n"] == 2
    urls = {image.url for image in result.data}
    assert len(urls) == 2
    record, assets = usage_and_assets(setup.gateway.data, since)
    assert record.endpoint == "images.generations"
    assert record.image_count == 2
    assert {f"{setup.gateway.url}{ASSET_PREFIX}{a.id}/" for a in assets} == urls


@pytest.mark.usefixtures("image_mode")
def test_a_reply_that_is_not_an_image_is_502(setup: Setup) -> None:
    """Bytes that are not an image are never stored: 502."""
    setup.images.image_mode = "garbage"
    response = setup.post("/images/generations", json={"model": "fake-image", "prompt": "x"})
    assert_error(response, 502, "upstream_error", "not an image")


def test_edit_sends_the_image_typed_from_its_bytes(setup: Setup) -> None:
    """An edit reaches the backend as image.png with its mask, and answers a stored image URL."""
    since = datetime.now().astimezone()
    result = setup.client().images.edit(
        model="fake-image",
        image=("upload.bin", PICTURE, "application/octet-stream"),
        mask=("mask.bin", PICTURE, "application/octet-stream"),
        prompt="make it blue",
    )
    assert result.data is not None
    assert result.data[0].url is not None
    assert fetch_asset(setup, result.data[0].url).content == PICTURE
    seen = setup.images.last("/v1/images/edits")
    assert seen["image"] == {"filename": "image.png", "content_type": "image/png", "data": PICTURE}
    assert seen["mask"]["filename"] == "mask.png"
    assert seen["prompt"] == "make it blue"
    assert seen["response_format"] == "b64_json"
    record, _assets = usage_and_assets(setup.gateway.data, since)
    assert record.endpoint == "images.edits"
    assert record.image_count == 1


def test_edit_of_a_text_file_named_png_is_415(setup: Setup) -> None:
    """An 'image' that is text in disguise is refused from its bytes, listing the formats."""
    response = setup.post(
        "/images/edits",
        data={"model": "fake-image", "prompt": "x"},
        files={"image": ("a.png", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/png")},
    )
    assert_error(response, 415, "unsupported_media_type", "png, jpeg, webp")


@pytest.mark.parametrize(
    ("data", "with_image", "param"),
    [
        ({"model": "fake-image"}, True, "prompt"),
        ({"model": "fake-image", "prompt": "x"}, False, "image"),
        ({"prompt": "x"}, True, "model"),
    ],
)
def test_edit_without_a_required_part_is_400(
    setup: Setup, data: dict[str, str], with_image: bool, param: str
) -> None:
    """An edit missing its prompt, image or model: 400 naming it."""
    files = {"image" if with_image else "other": ("a.png", PICTURE, "image/png")}
    response = setup.post("/images/edits", data=data, files=files)
    assert_error(response, 400, "invalid_request_error", f"Missing required parameter: '{param}'")
    assert response.json()["error"]["param"] == param


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"model": "fake-image"}, "prompt", "Missing required parameter: 'prompt'"),
        ({"prompt": "x"}, "model", "Missing required parameter: 'model'"),
        ({"model": "fake-image", "prompt": "x", "n": 0}, "n", "'n' must be a positive integer"),
        (
            {"model": "fake-image", "prompt": "x", "response_format": "png"},
            "response_format",
            "'response_format' must be one of url, b64_json (got 'png')",
        ),
    ],
)
def test_bad_generation_requests_are_400(
    setup: Setup, body: dict[str, object], param: str, message: str
) -> None:
    """A missing prompt or model, a bad n or response_format: 400 naming it."""
    response = setup.post("/images/generations", json=body)
    assert_error(response, 400, "invalid_request_error", message)
    assert response.json()["error"]["param"] == param


def test_image_request_is_never_routed_to_a_tts_model(setup: Setup) -> None:
    """A tts model on the image endpoint: 404 naming the speech endpoint."""
    response = setup.post("/images/generations", json={"model": "fake-tts", "prompt": "x"})
    assert_error(response, 404, "no_provider", "is a tts model")
    assert "use /v1/audio/speech" in response.json()["error"]["message"]
