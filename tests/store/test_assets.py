"""Assets: recorded under unguessable ids, only as image or audio, at relative paths."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from inference_club.store import (
    AlreadyExists,
    InvalidValue,
    NotFound,
    Store,
    UsageRecord,
    new_asset_id,
)


async def test_asset_round_trips(store: Store) -> None:
    """An added asset reads back equal by its id."""
    user = await store.add_user("alice")
    asset_id = new_asset_id()

    added = await store.add_asset(
        asset_id=asset_id,
        user_id=user.id,
        kind="image",
        content_type="image/png",
        size_bytes=1234,
        path=f"assets/{asset_id}.png",
    )

    assert await store.get_asset(asset_id) == added
    assert added.usage_record_id is None


def test_asset_ids_are_long_random_and_url_safe() -> None:
    """Asset ids carry at least 128 random bits in URL-safe characters and never repeat."""
    ids = {new_asset_id() for _ in range(1000)}

    assert len(ids) == 1000
    for asset_id in ids:
        assert len(asset_id) * 6 >= 128
        assert asset_id.replace("-", "").replace("_", "").isalnum()


@pytest.mark.parametrize(
    ("kind", "content_type", "path"),
    [
        ("video", "video/mp4", "a.mp4"),
        ("image", "text/html", "a.html"),
        ("audio", "image/png", "a.png"),
        ("image", "image/svg+xml", "a.svg"),
        ("image", "image/png; charset=x", "a.png"),
        ("image", "image/png", "/etc/passwd"),
        ("image", "image/png", "../outside.png"),
        ("image", "image/png", "a\\..\\b.png"),
        ("image", "image/png", ""),
    ],
)
async def test_unsafe_assets_are_refused(
    store: Store, kind: str, content_type: str, path: str
) -> None:
    """Other kinds, mismatched or odd content types and escaping paths raise InvalidValue."""
    user = await store.add_user("alice")
    asset_id = new_asset_id()

    with pytest.raises(InvalidValue):
        await store.add_asset(
            asset_id=asset_id,
            user_id=user.id,
            kind=kind,
            content_type=content_type,
            size_bytes=1,
            path=path,
        )
    with pytest.raises(NotFound):
        await store.get_asset(asset_id)


async def test_short_or_odd_asset_ids_are_refused(store: Store) -> None:
    """An id with fewer than 128 bits or characters outside URL-safe base64 is refused."""
    user = await store.add_user("alice")
    for asset_id in ("1", "short-id", new_asset_id()[:-3] + "/..", "x" * 65):
        with pytest.raises(InvalidValue):
            await store.add_asset(
                asset_id=asset_id,
                user_id=user.id,
                kind="audio",
                content_type="audio/wav",
                size_bytes=1,
                path="a.wav",
            )


async def test_duplicate_asset_id_is_refused(store: Store) -> None:
    """Adding an id twice raises AlreadyExists."""
    user = await store.add_user("alice")
    asset_id = new_asset_id()
    fields = {
        "asset_id": asset_id,
        "user_id": user.id,
        "kind": "audio",
        "content_type": "audio/wav",
        "size_bytes": 10,
        "path": "speech.wav",
    }
    await store.add_asset(**fields)  # type: ignore[arg-type]

    with pytest.raises(AlreadyExists):
        await store.add_asset(**fields)  # type: ignore[arg-type]


async def test_unknown_asset_is_not_found(store: Store) -> None:
    """get_asset of an id never added raises NotFound."""
    with pytest.raises(NotFound):
        await store.get_asset(new_asset_id())


async def _asset(store: Store, user_id: int, kind: str = "image") -> str:
    asset_id = new_asset_id()
    content_type = "image/png" if kind == "image" else "audio/wav"
    await store.add_asset(
        asset_id=asset_id,
        user_id=user_id,
        kind=kind,
        content_type=content_type,
        size_bytes=3,
        path=f"assets/{asset_id}",
    )
    return asset_id


async def test_assets_are_listed_per_user_newest_first(store: Store) -> None:
    """list_assets returns only the user's own assets, the newest first, paged."""
    alice = await store.add_user("alice")
    bob = await store.add_user("bob")
    first = await _asset(store, alice.id)
    second = await _asset(store, alice.id, kind="audio")
    await _asset(store, bob.id)

    listed = await store.list_assets(user_id=alice.id)

    assert [asset.id for asset in listed] == [second, first]
    assert [a.id for a in await store.list_assets(user_id=alice.id, limit=1, offset=1)] == [first]
    with pytest.raises(InvalidValue):
        await store.list_assets(user_id=alice.id, limit=0)


async def test_deleting_an_asset_returns_it_and_forgets_it(store: Store) -> None:
    """delete_asset hands back the record (for its file) and a second delete is NotFound."""
    alice = await store.add_user("alice")
    asset_id = await _asset(store, alice.id)

    deleted = await store.delete_asset(asset_id)

    assert deleted.id == asset_id
    assert deleted.path == f"assets/{asset_id}"
    with pytest.raises(NotFound):
        await store.get_asset(asset_id)
    with pytest.raises(NotFound):
        await store.delete_asset(asset_id)


def _speech_record(user_id: int, key_id: int, started: datetime) -> UsageRecord:
    """The usage record of a speech request made with an API key."""
    return UsageRecord(
        user_id=user_id,
        api_key_id=key_id,
        model="piper-joe",
        endpoint="audio.speech",
        status_code=200,
        started_at=started,
        ended_at=started + timedelta(seconds=1),
    )


async def test_assets_link_to_the_usage_record_of_their_request(store: Store) -> None:
    """Assets are linked to the stored record with the same user, key, endpoint and start."""
    alice = await store.add_user("alice")
    key, _secret = await store.create_api_key("alice", "default")
    started = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    record = _speech_record(alice.id, key.id, started)
    # A record of the same user a microsecond later must not be the one linked.
    other = replace(record, started_at=started + timedelta(microseconds=1))
    await store.record_usage([other, record])
    asset_id = await _asset(store, alice.id, kind="audio")
    unlinked = await _asset(store, alice.id)

    await store.link_assets([(asset_id, record)])

    stored = {r.started_at: r.id for r in await store.list_usage(user_id=alice.id)}
    assert (await store.get_asset(asset_id)).usage_record_id == stored[started]
    assert (await store.get_asset(unlinked)).usage_record_id is None


async def test_linking_without_a_stored_record_changes_nothing(store: Store) -> None:
    """With no matching usage record, or another user's assets, nothing is linked."""
    alice = await store.add_user("alice")
    bob = await store.add_user("bob")
    started = datetime(2026, 1, 2, tzinfo=UTC)
    record = UsageRecord(
        user_id=alice.id,
        model="m",
        endpoint="images.generations",
        status_code=200,
        started_at=started,
        ended_at=started,
    )
    asset_id = await _asset(store, alice.id)
    bobs = await _asset(store, bob.id)

    await store.link_assets([(asset_id, record)])
    assert (await store.get_asset(asset_id)).usage_record_id is None
    await store.record_usage([record])
    await store.link_assets([(bobs, record)])
    assert (await store.get_asset(bobs)).usage_record_id is None
    await store.link_assets([])


async def test_assets_of_several_requests_link_to_their_own_records_at_once(store: Store) -> None:
    """One call links each asset to its own request's record: none to a record of the same
    user a moment apart, and an asset not named stays unlinked."""
    alice = await store.add_user("alice")
    key, _secret = await store.create_api_key("alice", "default")
    speech = _speech_record(alice.id, key.id, datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))
    image = replace(
        speech,
        api_key_id=None,
        endpoint="images.generations",
        started_at=speech.started_at + timedelta(microseconds=1),
    )
    await store.record_usage([speech, image])
    audio, picture, other = (
        await _asset(store, alice.id, kind="audio"),
        await _asset(store, alice.id),
        await _asset(store, alice.id),
    )

    await store.link_assets([(audio, speech), (picture, image)])

    stored = {r.started_at: r.id for r in await store.list_usage(user_id=alice.id)}
    assert (await store.get_asset(audio)).usage_record_id == stored[speech.started_at]
    assert (await store.get_asset(picture)).usage_record_id == stored[image.started_at]
    assert (await store.get_asset(other)).usage_record_id is None
