"""Assets: capability URLs served to anyone holding them, and nothing else ever served."""

import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import openai
import pytest

from inference_club.demo.png import encode_png
from inference_club.gateway.assets import AssetOwner, AssetStore
from inference_club.store import NotFound, Store, UsageRecord, default_database_url, new_asset_id
from inference_club.store.engine import DATABASE_FILE
from tests.support.fake_media import FakeMedia, write_agent_config
from tests.support.processes import Gateway, start_agent, start_gateway, wait_for_models

PICTURE = encode_png(2, 2, [b"\x00\x80\xff" * 2] * 2)


@dataclass
class Setup:
    gateway: Gateway
    user_id: int
    asset_url: str


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A gateway holding one generated image asset."""
    tmp = tmp_path_factory.mktemp("assets")
    gateway = start_gateway(tmp, "--upstream-timeout", "10")
    images = FakeMedia(["fake-image"], image_png=PICTURE, image_mode="b64").start()
    key = gateway.add_user("alice")
    token = gateway.add_provider("alice", "alice-home")
    config = write_agent_config(tmp / "agent.toml", [(images.url, "image")], {})
    agent = start_agent(tmp, gateway.url, token, extra=("--config", str(config)))
    try:
        wait_for_models(gateway.v1, key, {"fake-image"})
        client = openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0)
        result = client.images.generate(model="fake-image", prompt="a dot")
        assert result.data is not None
        assert result.data[0].url is not None
        user_id = int(_query(gateway.data, "SELECT id FROM users WHERE name = 'alice'")[0][0])
        yield Setup(gateway, user_id, result.data[0].url)
    finally:
        agent.stop()
        gateway.process.stop()
        images.stop()


def _query(data: Path, sql: str, parameters: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Run SQL on the gateway's SQLite file, as an operator (or an attacker with a shell) could."""
    with sqlite3.connect(data / DATABASE_FILE) as connection:
        return connection.execute(sql, parameters).fetchall()


def assert_not_found(response: httpx.Response) -> None:
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.json()["error"]["type"] == "not_found"
    assert response.json()["error"]["message"] == "No such asset."


def test_asset_is_served_without_credentials(setup: Setup) -> None:
    """The URL alone fetches the image, typed, nosniff, inline and cacheable for good."""
    response = httpx.get(setup.asset_url, timeout=5)
    assert response.status_code == 200
    assert response.content == PICTURE
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["content-disposition"] == "inline"
    head = httpx.head(setup.asset_url, timeout=5)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(PICTURE))


def test_asset_ids_carry_at_least_128_random_bits(setup: Setup) -> None:
    """The id in the URL is long URL-safe randomness, not a sequence number."""
    asset_id = setup.asset_url.rstrip("/").rsplit("/", 1)[1]
    assert len(asset_id) * 6 >= 128
    assert asset_id.replace("-", "").replace("_", "").isalnum()


def test_guessed_id_is_404(setup: Setup) -> None:
    """A well-formed id nobody was given finds nothing."""
    response = httpx.get(f"{setup.gateway.url}/api/inference/assets/{new_asset_id()}/", timeout=5)
    assert_not_found(response)


def test_tampered_id_is_404(setup: Setup) -> None:
    """Changing one character of a real id finds nothing."""
    asset_id = setup.asset_url.rstrip("/").rsplit("/", 1)[1]
    last = "A" if asset_id[-1] != "A" else "B"
    tampered = setup.asset_url.replace(asset_id, asset_id[:-1] + last)
    assert_not_found(httpx.get(tampered, timeout=5))


@pytest.mark.parametrize("asset_id", ["1", "short-id", "x" * 65, "a.b.c.d.e.f.g.h.i.j.k.l.m"])
def test_malformed_ids_are_404(setup: Setup, asset_id: str) -> None:
    """Ids that could not have been issued are 404 without touching the store."""
    response = httpx.get(f"{setup.gateway.url}/api/inference/assets/{asset_id}/", timeout=5)
    assert_not_found(response)


@pytest.mark.parametrize(
    ("kind", "content_type", "relative_path"),
    [
        ("image", "text/html", "assets/{id}"),
        ("image", "image/svg+xml", "assets/{id}"),
        ("image", "image/png", "outside-{id}"),
    ],
)
def test_only_image_and_audio_files_inside_the_store_are_served(
    setup: Setup, kind: str, content_type: str, relative_path: str
) -> None:
    """A row smuggled past the store's checks (HTML, SVG, or a file elsewhere) is still 404."""
    asset_id = new_asset_id()
    path = relative_path.format(id=asset_id)
    (setup.gateway.data / path).write_bytes(b"<script>alert(1)</script>")
    _query(
        setup.gateway.data,
        "INSERT INTO assets (id, user_id, kind, content_type, size_bytes, path, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (asset_id, setup.user_id, kind, content_type, 25, path, "2026-01-01 00:00:00.000000"),
    )
    response = httpx.get(f"{setup.gateway.url}/api/inference/assets/{asset_id}/", timeout=5)
    assert_not_found(response)
    assert b"<script>" not in response.content


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh SQLite store with user alice."""
    opened = await Store.open(default_database_url(tmp_path))
    await opened.add_user("alice")
    yield opened
    await opened.close()


def _owner(user_id: int, started_at: datetime) -> AssetOwner:
    return AssetOwner(user_id=user_id, api_key_id=None, started_at=started_at)


async def test_deleting_an_asset_removes_its_file(store: Store, tmp_path: Path) -> None:
    """delete() forgets the record and removes the file; the asset is then not found."""
    assets = AssetStore(tmp_path, store, "http://club.example")
    user = await store.get_user("alice")
    asset = await assets.save(PICTURE, _owner(user.id, datetime.now(UTC)), "image/png")
    found = await assets.find(asset.id)
    assert found is not None
    _asset, path = found
    assert path.read_bytes() == PICTURE
    assert assets.url(asset.id) == f"http://club.example/api/inference/assets/{asset.id}/"

    await assets.delete(asset.id)

    assert not path.exists()
    assert await assets.find(asset.id) is None
    with pytest.raises(NotFound):
        await assets.delete(asset.id)


def _image_record(user_id: int, started: datetime) -> UsageRecord:
    """The usage record of an image request that started at ``started`` and just ended."""
    return UsageRecord(
        user_id=user_id,
        model="m",
        endpoint="images.generations",
        status_code=200,
        started_at=started,
        ended_at=datetime.now(UTC),
        image_count=1,
    )


async def test_usage_records_written_through_the_asset_store_link_their_assets(
    store: Store, tmp_path: Path
) -> None:
    """Assets made during a request are linked to its usage record once that is written."""
    assets = AssetStore(tmp_path, store, "http://club.example")
    user = await store.get_user("alice")
    started = datetime.now(UTC)
    asset = await assets.save(PICTURE, _owner(user.id, started), "image/png")
    record = _image_record(user.id, started)

    await assets.record_usage([record])

    [stored] = await store.list_usage(user_id=user.id)
    assert (await store.get_asset(asset.id)).usage_record_id == stored.id


async def test_a_usage_batch_that_fails_keeps_its_assets_for_the_retry(
    store: Store, tmp_path: Path
) -> None:
    """The usage writer writes a failed batch again: its assets must still be linked then."""
    assets = AssetStore(tmp_path, store, "http://club.example")
    user = await store.get_user("alice")
    started = datetime.now(UTC)
    asset = await assets.save(PICTURE, _owner(user.id, started), "image/png")
    record = _image_record(user.id, started)
    stranger = UsageRecord(
        user_id=user.id + 999,
        model="m",
        endpoint="chat.completions",
        status_code=200,
        started_at=started,
        ended_at=started,
    )

    with pytest.raises(NotFound):
        await assets.record_usage([record, stranger])
    assert (await store.get_asset(asset.id)).usage_record_id is None

    await assets.record_usage([record])

    [stored] = await store.list_usage(user_id=user.id)
    assert (await store.get_asset(asset.id)).usage_record_id == stored.id
