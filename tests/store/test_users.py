"""Users: names, uniqueness, listing and limits."""

from datetime import UTC, datetime, timedelta

import pytest

from inference_club.store import AlreadyExists, InvalidName, InvalidValue, NotFound, Store


async def test_added_user_reads_back_with_defaults(store: Store) -> None:
    """A new user has no limits of its own and an aware UTC creation time of about now."""
    before = datetime.now(UTC)

    added = await store.add_user("alice")
    fetched = await store.get_user("alice")

    assert fetched == added
    assert (fetched.name, fetched.is_admin, fetched.requests_per_minute) == ("alice", False, None)
    assert (fetched.daily_tokens, fetched.daily_audio_seconds, fetched.daily_images) == (
        None,
        None,
        None,
    )
    assert fetched.created_at.tzinfo is UTC
    assert before - timedelta(seconds=1) <= fetched.created_at <= datetime.now(UTC)


async def test_admin_flag_is_kept(store: Store) -> None:
    """``is_admin=True`` is stored and read back."""
    await store.add_user("root", is_admin=True)

    assert (await store.get_user("root")).is_admin is True


async def test_duplicate_user_name_is_refused(store: Store) -> None:
    """A second user with a taken name raises AlreadyExists and leaves the first intact."""
    first = await store.add_user("alice")

    with pytest.raises(AlreadyExists, match="alice"):
        await store.add_user("alice", is_admin=True)
    assert await store.list_users() == [first]


@pytest.mark.parametrize("name", ["", "a" * 65, "has space", "semi;colon", "ünïcode", "a/b"])
async def test_invalid_user_names_are_refused(store: Store, name: str) -> None:
    """Names outside 1-64 of [A-Za-z0-9_.-] raise InvalidName and store nothing."""
    with pytest.raises(InvalidName):
        await store.add_user(name)
    assert await store.list_users() == []


async def test_longest_allowed_name_is_accepted(store: Store) -> None:
    """A 64-character name with every allowed kind of character is stored as given."""
    name = "A-z_0." + "x" * 58

    assert (await store.add_user(name)).name == name


async def test_unknown_user_is_not_found(store: Store) -> None:
    """get_user of a missing name raises NotFound, also a LookupError."""
    with pytest.raises(NotFound, match="nobody") as caught:
        await store.get_user("nobody")
    assert isinstance(caught.value, LookupError)


async def test_users_are_listed_by_name(store: Store) -> None:
    """list_users returns every user, ordered by name."""
    for name in ("carol", "alice", "bob"):
        await store.add_user(name)

    assert [user.name for user in await store.list_users()] == ["alice", "bob", "carol"]


async def test_set_limits_changes_only_what_is_given(store: Store) -> None:
    """Limits left out keep their value; None clears one back to the gateway default."""
    await store.add_user("alice")

    await store.set_user_limits("alice", requests_per_minute=30, daily_tokens=10_000)
    changed = await store.set_user_limits("alice", daily_images=5, daily_audio_seconds=90.5)
    cleared = await store.set_user_limits("alice", requests_per_minute=None)

    assert (changed.requests_per_minute, changed.daily_tokens) == (30, 10_000)
    assert (changed.daily_images, changed.daily_audio_seconds) == (5, 90.5)
    assert cleared.requests_per_minute is None
    assert cleared.daily_tokens == 10_000
    assert await store.get_user("alice") == cleared


async def test_set_limits_with_nothing_to_change_returns_the_user(store: Store) -> None:
    """Calling set_user_limits with no limits changes nothing and returns the user."""
    added = await store.add_user("alice")

    assert await store.set_user_limits("alice") == added


async def test_set_limits_of_unknown_user_is_not_found(store: Store) -> None:
    """Limits for a missing user raise NotFound."""
    with pytest.raises(NotFound):
        await store.set_user_limits("ghost", requests_per_minute=5)


async def test_negative_limit_is_refused(store: Store) -> None:
    """A negative limit raises InvalidValue and the user keeps the old one."""
    await store.add_user("alice")
    await store.set_user_limits("alice", requests_per_minute=10)

    with pytest.raises(InvalidValue):
        await store.set_user_limits("alice", requests_per_minute=-1)
    assert (await store.get_user("alice")).requests_per_minute == 10
