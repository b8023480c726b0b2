"""Accounts: argon2 passwords, session stamps, single-use invites and a member's own keys."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from inference_club.store import AlreadyExists, InvalidName, InvalidValue, NotFound, Store
from inference_club.store.schema import invites, users


async def test_password_is_stored_as_an_argon2_hash(store: Store) -> None:
    """The right password opens the account; the database holds an argon2id hash, not it."""
    await store.add_user("alice")
    await store.set_password("alice", "correct horse")

    account = await store.check_user_password("alice", "correct horse")

    assert account is not None
    assert account.user.name == "alice"
    assert account.has_password
    async with store._read() as connection:
        stored = await connection.scalar(users.select().with_only_columns(users.c.password_hash))
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored


async def test_wrong_password_unknown_user_and_no_password_are_refused(store: Store) -> None:
    """A wrong password, a missing user and a user without password all get None."""
    await store.add_user("alice")
    await store.add_user("bob")
    await store.set_password("alice", "correct horse")

    assert await store.check_user_password("alice", "wrong horse") is None
    assert await store.check_user_password("nobody", "correct horse") is None
    assert await store.check_user_password("bob", "") is None
    assert await store.check_user_password("alice", "x" * 5000) is None


async def test_short_password_and_unknown_user_are_refused_by_set_password(store: Store) -> None:
    """Passwords under 8 characters are refused; setting one for a missing user is NotFound."""
    await store.add_user("alice")

    with pytest.raises(InvalidValue, match="at least 8"):
        await store.set_password("alice", "short")
    with pytest.raises(NotFound):
        await store.set_password("nobody", "long enough")
    assert await store.check_user_password("alice", "short") is None


async def test_changing_the_password_changes_the_session_stamp(store: Store) -> None:
    """The stamp sessions carry stays put until the password changes, then differs."""
    user = await store.add_user("alice")
    await store.set_password("alice", "first password")
    before = await store.get_account(user.id)
    again = await store.get_account(user.id)

    await store.set_password("alice", "second password")
    after = await store.get_account(user.id)

    assert before is not None
    assert again is not None
    assert after is not None
    assert before.session_stamp == again.session_stamp
    assert before.session_stamp != after.session_stamp
    assert await store.check_user_password("alice", "first password") is None
    assert await store.check_user_password("alice", "second password") is not None
    assert await store.get_account(user.id + 1000) is None


async def test_invite_creates_a_member_once(store: Store) -> None:
    """An invite lets one person join with a password; a second use is refused."""
    await store.add_user("root", is_admin=True)
    invite, token = await store.create_invite(created_by="root")

    found = await store.find_invite(token)
    joined = await store.accept_invite(token, "carol", "carol's password")

    assert found == invite
    assert found.created_by == "root"
    assert not joined.is_admin
    assert await store.check_user_password("carol", "carol's password") is not None
    assert await store.find_invite(token) is None
    with pytest.raises(NotFound):
        await store.accept_invite(token, "dave", "dave's password")
    [listed] = await store.list_invites()
    assert (listed.id, listed.used_by) == (invite.id, "carol")
    assert listed.used_at is not None
    assert token not in repr(listed)


async def test_admin_invite_made_by_the_operator(store: Store) -> None:
    """An operator's invite has no creator and can make an admin."""
    invite, token = await store.create_invite(is_admin=True)

    user = await store.accept_invite(token, "admin2", "a fine password")

    assert invite.created_by is None
    assert user.is_admin


async def test_taken_name_leaves_the_invite_unused(store: Store) -> None:
    """Joining under a taken name fails and the invite can still be used."""
    await store.add_user("alice")
    _invite, token = await store.create_invite()

    with pytest.raises(AlreadyExists):
        await store.accept_invite(token, "alice", "some password")
    with pytest.raises(InvalidName):
        await store.accept_invite(token, "bad name!", "some password")
    with pytest.raises(InvalidValue):
        await store.accept_invite(token, "erin", "short")

    assert await store.find_invite(token) is not None
    assert (await store.accept_invite(token, "erin", "some password")).name == "erin"


async def test_expired_unknown_and_revoked_invites_are_refused(store: Store) -> None:
    """An invite past its expiry, a made-up token and a revoked invite open nothing."""
    _old, old_token = await store.create_invite()
    async with store._write() as connection:
        await connection.execute(
            update(invites).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    revoked, revoked_token = await store.create_invite()
    await store.revoke_invite(revoked.id)

    assert await store.find_invite(old_token) is None
    assert await store.find_invite("ici_made-up") is None
    assert await store.find_invite(revoked_token) is None
    with pytest.raises(NotFound):
        await store.accept_invite(old_token, "frank", "some password")
    with pytest.raises(NotFound):
        await store.revoke_invite(revoked.id)
    with pytest.raises(InvalidValue):
        await store.create_invite(lifetime=timedelta(0))


async def test_member_revokes_only_their_own_keys(store: Store) -> None:
    """revoke_user_api_key revokes the owner's key and refuses another member's."""
    alice = await store.add_user("alice")
    bob = await store.add_user("bob")
    alice_key, alice_secret = await store.create_api_key("alice", "laptop")
    bob_key, bob_secret = await store.create_api_key("bob", "phone")

    with pytest.raises(NotFound):
        await store.revoke_user_api_key(alice.id, bob_key.id)
    revoked = await store.revoke_user_api_key(alice.id, alice_key.id)
    again = await store.revoke_user_api_key(alice.id, alice_key.id)

    assert revoked.revoked_at is not None
    assert again.revoked_at == revoked.revoked_at
    assert await store.authenticate_api_key(alice_secret) is None
    identity = await store.authenticate_api_key(bob_secret)
    assert identity is not None
    assert identity.user_id == bob.id
