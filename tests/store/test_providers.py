"""Providers: registered per owner with a one-time token, authenticated, marked as seen."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from inference_club.store import AlreadyExists, InvalidName, InvalidValue, NotFound, Store


async def test_added_provider_has_a_token_of_the_documented_shape(store: Store) -> None:
    """A provider token is icp_ plus 43 URL-safe characters; only its prefix is kept."""
    owner = await store.add_user("brian")

    provider, token = await store.add_provider("brian", "brian-home")

    assert token.startswith("icp_")
    assert len(token) == 4 + 43
    assert provider.token_prefix == token[:12]
    assert (provider.name, provider.owner_id, provider.owner_name) == (
        "brian-home",
        owner.id,
        "brian",
    )
    assert provider.last_seen_at is None


async def test_provider_token_authenticates_its_provider(store: Store) -> None:
    """The token authenticates as its provider; a wrong token or an API key as nobody."""
    await store.add_user("brian")
    provider, token = await store.add_provider("brian", "brian-home")
    _, api_key = await store.create_api_key("brian")

    assert await store.authenticate_provider(token) == provider
    assert await store.authenticate_provider(token[:-1]) is None
    assert await store.authenticate_provider(api_key) is None
    assert await store.authenticate_provider("") is None


async def test_provider_names_are_unique_across_owners(store: Store) -> None:
    """A provider name taken by one member cannot be registered by another."""
    await store.add_user("brian")
    await store.add_user("carol")
    await store.add_provider("brian", "home")

    with pytest.raises(AlreadyExists, match="home"):
        await store.add_provider("carol", "home")
    assert [provider.owner_name for provider in await store.list_providers()] == ["brian"]


async def test_provider_of_unknown_owner_is_not_found(store: Store) -> None:
    """Registering for a missing user raises NotFound."""
    with pytest.raises(NotFound):
        await store.add_provider("ghost", "home")


async def test_invalid_provider_name_is_refused(store: Store) -> None:
    """A provider name outside the name rules raises InvalidName."""
    await store.add_user("brian")

    with pytest.raises(InvalidName):
        await store.add_provider("brian", "brian's box")


async def test_list_providers_all_or_by_owner(store: Store) -> None:
    """list_providers returns every provider by name, or only the given owner's."""
    await store.add_user("brian")
    await store.add_user("carol")
    await store.add_provider("carol", "c-box")
    await store.add_provider("brian", "b-gpu")
    await store.add_provider("brian", "a-laptop")

    everyone = [provider.name for provider in await store.list_providers()]
    brians = [provider.name for provider in await store.list_providers("brian")]

    assert everyone == ["a-laptop", "b-gpu", "c-box"]
    assert brians == ["a-laptop", "b-gpu"]
    with pytest.raises(NotFound):
        await store.list_providers("ghost")


async def test_mark_providers_seen_sets_last_seen(store: Store) -> None:
    """mark_providers_seen stores the given time for those providers only."""
    await store.add_user("brian")
    seen, _ = await store.add_provider("brian", "seen")
    unseen, _ = await store.add_provider("brian", "unseen")
    at = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)

    await store.mark_providers_seen([seen.id], at)
    await store.mark_providers_seen([], at)

    by_name = {provider.name: provider for provider in await store.list_providers()}
    assert by_name["seen"].last_seen_at == at
    assert by_name["unseen"].last_seen_at is None
    assert unseen.id != seen.id


async def test_last_seen_is_converted_to_utc(store: Store) -> None:
    """A time given in another zone reads back as the same instant in UTC."""
    await store.add_user("brian")
    provider, _ = await store.add_provider("brian", "home")
    local = datetime(2030, 1, 1, 17, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))

    await store.mark_providers_seen([provider.id], local)

    (stored,) = await store.list_providers()
    assert stored.last_seen_at == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert stored.last_seen_at is not None
    assert stored.last_seen_at.utcoffset() == timedelta(0)


async def test_naive_times_are_refused(store: Store) -> None:
    """A datetime without a timezone is refused rather than guessed."""
    await store.add_user("brian")
    provider, _ = await store.add_provider("brian", "home")

    with pytest.raises(InvalidValue, match="naive"):
        await store.mark_providers_seen([provider.id], datetime(2030, 1, 1))  # noqa: DTZ001
