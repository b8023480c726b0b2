"""Groups, memberships and model visibility."""

import pytest

from inference_club.store import AlreadyExists, InvalidName, InvalidValue, NotFound, Store


async def test_groups_list_their_members_by_name(store: Store) -> None:
    """list_groups returns groups by name, each with its members' names sorted."""
    for name in ("carol", "alice", "bob"):
        await store.add_user(name)
    await store.add_group("lab")
    created = await store.add_group("friends")
    await store.add_group_member("friends", "carol")
    await store.add_group_member("friends", "alice")

    groups = await store.list_groups()

    assert [(group.name, group.members) for group in groups] == [
        ("friends", ("alice", "carol")),
        ("lab", ()),
    ]
    assert groups[0].id == created.id
    assert groups[0].created_at == created.created_at


async def test_duplicate_group_and_membership_are_refused(store: Store) -> None:
    """A taken group name or an existing membership raises AlreadyExists."""
    await store.add_user("alice")
    await store.add_group("friends")
    await store.add_group_member("friends", "alice")

    with pytest.raises(AlreadyExists):
        await store.add_group("friends")
    with pytest.raises(AlreadyExists):
        await store.add_group_member("friends", "alice")


async def test_invalid_group_name_is_refused(store: Store) -> None:
    """A group name outside the name rules raises InvalidName."""
    with pytest.raises(InvalidName):
        await store.add_group("my friends")


async def test_membership_of_unknown_group_or_user_is_not_found(store: Store) -> None:
    """Adding or removing with a missing group or user raises NotFound."""
    await store.add_user("alice")
    await store.add_group("friends")

    with pytest.raises(NotFound, match="group"):
        await store.add_group_member("enemies", "alice")
    with pytest.raises(NotFound, match="user"):
        await store.add_group_member("friends", "ghost")
    with pytest.raises(NotFound):
        await store.remove_group_member("friends", "ghost")


async def test_removed_member_leaves_the_group(store: Store) -> None:
    """After remove_group_member the user is no longer listed; removing again is NotFound."""
    alice = await store.add_user("alice")
    await store.add_user("bob")
    await store.add_group("friends")
    await store.add_group_member("friends", "alice")
    await store.add_group_member("friends", "bob")

    await store.remove_group_member("friends", "alice")

    assert (await store.list_groups())[0].members == ("bob",)
    assert await store.user_groups(alice.id) == frozenset()
    with pytest.raises(NotFound):
        await store.remove_group_member("friends", "alice")


async def test_user_groups_names_every_group_of_the_user(store: Store) -> None:
    """user_groups returns the names of exactly the groups the user is in."""
    alice = await store.add_user("alice")
    bob = await store.add_user("bob")
    for group in ("a", "b", "c"):
        await store.add_group(group)
    await store.add_group_member("a", "alice")
    await store.add_group_member("c", "alice")
    await store.add_group_member("b", "bob")

    assert await store.user_groups(alice.id) == frozenset({"a", "c"})
    assert await store.user_groups(bob.id) == frozenset({"b"})
    assert await store.user_groups(bob.id + 999) == frozenset()


async def test_model_shares_replace_and_clear(store: Store) -> None:
    """set_model_share replaces a model's visibility; an empty one removes the override."""
    await store.add_user("brian")
    home, _ = await store.add_provider("brian", "home")
    await store.add_group("lab")
    await store.add_group("friends")

    await store.set_model_share("home", "llama", ["network"])
    await store.set_model_share("home", "qwen", ["group:lab", "group:friends", "group:lab"])
    await store.set_model_share("home", "mistral", ["private"])
    assert await store.model_shares() == {
        (home.id, "llama"): ("network",),
        (home.id, "mistral"): ("private",),
        (home.id, "qwen"): ("group:friends", "group:lab"),
    }

    await store.set_model_share("home", "llama", ["group:lab"])
    await store.set_model_share("home", "mistral", [])
    assert await store.model_shares() == {
        (home.id, "llama"): ("group:lab",),
        (home.id, "qwen"): ("group:friends", "group:lab"),
    }


@pytest.mark.parametrize(
    "visibility",
    [["public"], ["group:"], ["group:bad name"], ["private", "network"], ["network", "group:lab"]],
)
async def test_invalid_visibility_is_refused(store: Store, visibility: list[str]) -> None:
    """Unknown or contradictory visibilities raise InvalidValue and change nothing."""
    await store.add_user("brian")
    await store.add_provider("brian", "home")
    await store.add_group("lab")
    await store.set_model_share("home", "llama", ["private"])

    with pytest.raises(InvalidValue):
        await store.set_model_share("home", "llama", visibility)
    assert list((await store.model_shares()).values()) == [("private",)]


async def test_share_with_unknown_group_or_provider_is_not_found(store: Store) -> None:
    """Sharing with a missing group, or for a missing provider, raises NotFound."""
    await store.add_user("brian")
    await store.add_provider("brian", "home")

    with pytest.raises(NotFound, match="group"):
        await store.set_model_share("home", "llama", ["group:nobody"])
    with pytest.raises(NotFound, match="provider"):
        await store.set_model_share("elsewhere", "llama", ["network"])
    assert await store.model_shares() == {}


async def test_model_ids_may_hold_any_characters(store: Store) -> None:
    """Model ids such as 'org/model:Q4_K_M' are stored as given; empty ones are refused."""
    await store.add_user("brian")
    home, _ = await store.add_provider("brian", "home")

    await store.set_model_share("home", "org/model:Q4_K_M", ["network"])

    assert await store.model_shares() == {(home.id, "org/model:Q4_K_M"): ("network",)}
    with pytest.raises(InvalidValue):
        await store.set_model_share("home", "", ["network"])
