"""API keys: shown once, stored hashed, authenticated, listed and revoked by prefix."""

import hashlib
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from inference_club.store import (
    AmbiguousPrefix,
    InvalidName,
    InvalidValue,
    KeyIdentity,
    NotFound,
    Store,
)
from inference_club.store.kept import MAX_KEPT
from inference_club.store.schema import api_keys


async def test_created_key_has_the_documented_shape(store: Store) -> None:
    """A key is ic_ plus 43 URL-safe characters (32 random bytes); its prefix is 12 chars."""
    await store.add_user("alice")

    record, secret = await store.create_api_key("alice", "laptop")

    assert secret.startswith("ic_")
    assert len(secret) == 3 + 43
    assert secret[3:].replace("-", "").replace("_", "").isalnum()
    assert record.prefix == secret[:12]
    assert (record.name, record.user_name, record.revoked_at, record.last_used_at) == (
        "laptop",
        "alice",
        None,
        None,
    )


async def test_keys_are_distinct(store: Store) -> None:
    """Two keys for one user differ in secret and prefix."""
    await store.add_user("alice")

    first = await store.create_api_key("alice")
    second = await store.create_api_key("alice")

    assert first[1] != second[1]
    assert first[0].prefix != second[0].prefix


async def test_only_the_hash_of_a_key_is_stored(store: Store, database_url: str) -> None:
    """The database holds the SHA-256 of the key and nowhere the key itself."""
    await store.add_user("alice")
    _, secret = await store.create_api_key("alice")

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            row = (await connection.execute(select(api_keys))).one()
    finally:
        await engine.dispose()

    assert row.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in {str(value) for value in row}


async def test_authenticate_returns_the_owner(store: Store) -> None:
    """A valid key authenticates as its owner, with the owner's admin flag and rate limit."""
    user = await store.add_user("alice", is_admin=True)
    await store.set_user_limits("alice", requests_per_minute=42)
    record, secret = await store.create_api_key("alice")

    identity = await store.authenticate_api_key(secret)

    assert identity == KeyIdentity(
        key_id=record.id,
        key_prefix=record.prefix,
        user_id=user.id,
        user_name="alice",
        is_admin=True,
        requests_per_minute=42,
    )


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda key: key[:-1], id="truncated"),
        pytest.param(lambda key: key[:-1] + ("A" if key[-1] != "A" else "B"), id="last-char"),
        pytest.param(lambda key: key.upper(), id="case"),
        pytest.param(lambda key: "icp_" + key[3:], id="provider-prefix"),
        pytest.param(lambda key: "", id="empty"),
    ],
)
async def test_authenticate_refuses_other_secrets(
    store: Store, mangle: Callable[[str], str]
) -> None:
    """Anything but the exact key authenticates as nobody."""
    await store.add_user("alice")
    _, secret = await store.create_api_key("alice")

    assert await store.authenticate_api_key(mangle(secret)) is None


async def test_only_tokens_shaped_like_keys_have_their_hash_remembered(store: Store) -> None:
    """Every request's key is hashed; the hashes of key-shaped tokens are kept for the next
    request, a bounded number of them, and an arbitrary bearer token never takes room."""
    await store.add_user("alice")
    _, secret = await store.create_api_key("alice")
    huge = "ic_" + "x" * 100_000

    assert await store.authenticate_api_key(secret) is not None
    assert await store.authenticate_api_key(huge) is None
    assert await store.authenticate_api_key(secret) is not None

    assert huge not in store._key_hashes
    assert store._key_hashes[secret] == hashlib.sha256(secret.encode()).hexdigest()
    for number in range(MAX_KEPT + 10):
        await store.authenticate_api_key(f"ic_{number:043d}")
    assert len(store._key_hashes) <= MAX_KEPT


async def test_provider_token_is_not_an_api_key(store: Store) -> None:
    """A provider token cannot be used as an API key."""
    await store.add_user("alice")
    _, token = await store.add_provider("alice", "alice-home")

    assert await store.authenticate_api_key(token) is None


async def test_list_keys_shows_every_key_of_the_user_only(store: Store) -> None:
    """list_api_keys returns the user's keys oldest first, revoked ones too, not others'."""
    await store.add_user("alice")
    await store.add_user("bob")
    first, _ = await store.create_api_key("alice", "one")
    second, _ = await store.create_api_key("alice", "two")
    await store.create_api_key("bob")
    await store.revoke_api_key(first.prefix)

    listed = await store.list_api_keys("alice")

    assert [key.id for key in listed] == [first.id, second.id]
    assert listed[0].revoked_at is not None
    assert listed[1].revoked_at is None


async def test_keys_of_unknown_user_are_not_found(store: Store) -> None:
    """Creating or listing keys for a missing user raises NotFound."""
    with pytest.raises(NotFound):
        await store.create_api_key("ghost")
    with pytest.raises(NotFound):
        await store.list_api_keys("ghost")


async def test_invalid_key_name_is_refused(store: Store) -> None:
    """A key name outside the name rules raises InvalidName and creates nothing."""
    await store.add_user("alice")

    with pytest.raises(InvalidName):
        await store.create_api_key("alice", "my key")
    assert await store.list_api_keys("alice") == []


async def test_revoked_key_no_longer_authenticates(store: Store) -> None:
    """After revoke_api_key by its prefix the key authenticates as nobody; others still work."""
    await store.add_user("alice")
    revoked, revoked_secret = await store.create_api_key("alice")
    _, kept_secret = await store.create_api_key("alice")

    result = await store.revoke_api_key(revoked.prefix)

    assert result.id == revoked.id
    assert result.revoked_at is not None
    assert await store.authenticate_api_key(revoked_secret) is None
    assert await store.authenticate_api_key(kept_secret) is not None


async def test_revoke_accepts_the_start_of_a_prefix(store: Store) -> None:
    """A unique leading part of the prefix is enough to revoke."""
    await store.add_user("alice")
    record, secret = await store.create_api_key("alice")

    await store.revoke_api_key(record.prefix[:8])

    assert await store.authenticate_api_key(secret) is None


async def test_revoke_accepts_the_whole_key(store: Store) -> None:
    """A leaked key can be revoked by pasting it whole; the error for a wrong one hides it."""
    await store.add_user("alice")
    _, secret = await store.create_api_key("alice")
    wrong = secret[:-2] + "zz" if not secret.endswith("zz") else secret[:-2] + "yy"

    with pytest.raises(NotFound) as caught:
        await store.revoke_api_key(wrong)
    await store.revoke_api_key(secret)

    assert wrong not in str(caught.value)
    assert await store.authenticate_api_key(secret) is None


async def test_revoking_twice_keeps_the_first_time(store: Store) -> None:
    """Revoking a revoked key changes nothing."""
    await store.add_user("alice")
    record, _ = await store.create_api_key("alice")

    first = await store.revoke_api_key(record.prefix)
    second = await store.revoke_api_key(record.prefix)

    assert second.revoked_at == first.revoked_at


def _issue_keys(monkeypatch: pytest.MonkeyPatch, *secrets_: str) -> None:
    """Make the store hand out these keys, in order, instead of random ones."""
    queue = list(secrets_)
    monkeypatch.setattr("inference_club.store.keys.new_api_key", lambda: queue.pop(0))


async def test_revoke_with_an_ambiguous_prefix_changes_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prefix matching two keys raises AmbiguousPrefix and revokes neither."""
    first, second = "ic_sharedAAA" + "1" * 31, "ic_sharedBBB" + "2" * 31
    _issue_keys(monkeypatch, first, second)
    await store.add_user("alice")
    await store.create_api_key("alice")
    await store.create_api_key("alice")

    with pytest.raises(AmbiguousPrefix, match="ic_shared"):
        await store.revoke_api_key("ic_shared")

    assert await store.authenticate_api_key(first) is not None
    assert await store.authenticate_api_key(second) is not None
    await store.revoke_api_key("ic_sharedB")
    assert await store.authenticate_api_key(first) is not None
    assert await store.authenticate_api_key(second) is None


async def test_revoke_prefix_is_literal_not_a_pattern(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQL wildcards in a prefix match only themselves."""
    underscore, letter = "ic_ab_cdefg" + "1" * 32, "ic_abXcdefg" + "2" * 32
    _issue_keys(monkeypatch, underscore, letter)
    await store.add_user("alice")
    await store.create_api_key("alice")
    await store.create_api_key("alice")

    with pytest.raises(NotFound):
        await store.revoke_api_key("ic_%%%")
    await store.revoke_api_key("ic_ab_c")

    assert await store.authenticate_api_key(underscore) is None
    assert await store.authenticate_api_key(letter) is not None


async def test_revoke_needs_enough_characters(store: Store) -> None:
    """A prefix shorter than six characters is refused before any lookup."""
    with pytest.raises(InvalidValue):
        await store.revoke_api_key("ic_")


async def test_revoke_unknown_prefix_is_not_found(store: Store) -> None:
    """A prefix that matches no key raises NotFound."""
    with pytest.raises(NotFound):
        await store.revoke_api_key("ic_nothere")
