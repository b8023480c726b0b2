"""Assets: recorded under unguessable ids, only as image or audio, at relative paths."""

import pytest

from inference_club.store import AlreadyExists, InvalidValue, NotFound, Store, new_asset_id


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
