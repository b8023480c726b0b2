"""Dashboard accounts: argon2 passwords, single-use invites, and a member's own keys."""

import asyncio
import functools
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from inference_club.store._base import AnyRow, StoreBase, user_id_by_name, utcnow
from inference_club.store.credentials import check_name, hash_secret, same_hash
from inference_club.store.errors import AlreadyExists, InvalidValue, NotFound
from inference_club.store.keys import key_from_row
from inference_club.store.records import ApiKey, User
from inference_club.store.schema import api_keys, invites, users
from inference_club.store.users import user_from_row

MIN_PASSWORD_LENGTH = 8
# Long enough for any passphrase, short enough that hashing it is no denial of service.
MAX_PASSWORD_LENGTH = 1024
INVITE_PREFIX = "ici_"
DEFAULT_INVITE_LIFETIME = timedelta(days=7)
# An invite is named by the start of its token's hash: safe to show, never the token.
INVITE_ID_LENGTH = 16
_INVITE_TOKEN_BYTES = 32

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    # Verified against when there is no user or password, so that a wrong name costs as long
    # as a wrong password; made on first use to keep CLI start-up fast.
    return _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    """A user as a dashboard session sees them."""

    user: User
    has_password: bool
    # Changes whenever the password does, so sessions made before a change stop working.
    session_stamp: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Invite:
    """An invitation to join; ``created_by`` is ``None`` when the operator made it."""

    id: str
    created_by: str | None
    is_admin: bool
    created_at: datetime
    expires_at: datetime | None
    used_at: datetime | None
    used_by: str | None

    def usable(self, now: datetime) -> bool:
        """Whether someone may still join with this invite at ``now``."""
        return self.used_at is None and (self.expires_at is None or now < self.expires_at)


def check_password(password: str) -> str:
    """``password`` if its length is acceptable, else :class:`InvalidValue`."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidValue(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidValue(f"a password may have at most {MAX_PASSWORD_LENGTH} characters")
    return password


async def hash_password(password: str) -> str:
    """The argon2 hash of ``password``, computed off the event loop (it takes ~50 ms)."""
    return await asyncio.to_thread(_hasher.hash, check_password(password))


async def _verify(password_hash: str, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


def _stamp(password_hash: str | None) -> str:
    return hash_secret(password_hash or "")[:16]


def _invite_id(token_hash: str) -> str:
    return token_hash[:INVITE_ID_LENGTH]


_creator = aliased(users)
_joiner = aliased(users)
_INVITE_SELECT = (
    select(
        invites.c.token_hash,
        _creator.c.name.label("creator"),
        invites.c.is_admin,
        invites.c.created_at,
        invites.c.expires_at,
        invites.c.used_at,
        _joiner.c.name.label("joiner"),
    )
    .outerjoin(_creator, invites.c.created_by == _creator.c.id)
    .outerjoin(_joiner, invites.c.used_by == _joiner.c.id)
)


class AccountsMixin(StoreBase):
    """Passwords, sessions' view of users, invites, and keys as their owner manages them."""

    async def set_password(self, user_name: str, password: str) -> None:
        """Give ``user_name`` a new password (which ends their other dashboard sessions)."""
        password_hash = await hash_password(password)
        async with self._write() as connection:
            result = await connection.execute(
                update(users).where(users.c.name == user_name).values(password_hash=password_hash)
            )
            if result.rowcount == 0:
                raise NotFound(f"no user named {user_name!r}")

    async def check_user_password(self, user_name: str, password: str) -> Account | None:
        """The account when ``password`` is right for ``user_name``; ``None`` otherwise."""
        async with self._read_one() as connection:
            row = (
                await connection.execute(select(users).where(users.c.name == user_name))
            ).one_or_none()
        stored = row.password_hash if row is not None else None
        if len(password) > MAX_PASSWORD_LENGTH:
            return None
        if not await _verify(stored or _dummy_hash(), password) or row is None or stored is None:
            return None
        if _hasher.check_needs_rehash(stored):
            # The hasher's parameters went up since; upgrade while the password is at hand.
            await self.set_password(user_name, password)
            return await self.get_account(row.id)
        return Account(user=user_from_row(row), has_password=True, session_stamp=_stamp(stored))

    async def get_account(self, user_id: int) -> Account | None:
        """User ``user_id`` with their session stamp, or ``None`` if they no longer exist."""
        async with self._read_one() as connection:
            row = (
                await connection.execute(select(users).where(users.c.id == user_id))
            ).one_or_none()
        if row is None:
            return None
        return Account(
            user=user_from_row(row),
            has_password=row.password_hash is not None,
            session_stamp=_stamp(row.password_hash),
        )

    async def create_invite(
        self,
        *,
        created_by: str | None = None,
        is_admin: bool = False,
        lifetime: timedelta | None = DEFAULT_INVITE_LIFETIME,
    ) -> tuple[Invite, str]:
        """A single-use invite and its token (shown once, stored as a hash)."""
        if lifetime is not None and lifetime <= timedelta(0):
            raise InvalidValue("an invite's lifetime must be positive")
        token = INVITE_PREFIX + secrets.token_urlsafe(_INVITE_TOKEN_BYTES)
        token_hash = hash_secret(token)
        now = utcnow()
        expires_at = now + lifetime if lifetime is not None else None
        async with self._write() as connection:
            creator_id = (
                await user_id_by_name(connection, created_by) if created_by is not None else None
            )
            await connection.execute(
                insert(invites).values(
                    token_hash=token_hash,
                    created_by=creator_id,
                    is_admin=is_admin,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
        invite = Invite(
            id=_invite_id(token_hash),
            created_by=created_by,
            is_admin=is_admin,
            created_at=now,
            expires_at=expires_at,
            used_at=None,
            used_by=None,
        )
        return invite, token

    async def list_invites(self) -> list[Invite]:
        """Every invite, newest first."""
        async with self._read_one() as connection:
            rows = await connection.execute(_INVITE_SELECT.order_by(invites.c.created_at.desc()))
            return [_invite_from_row(row) for row in rows]

    async def find_invite(self, token: str) -> Invite | None:
        """The invite ``token`` opens if it can still be used, else ``None``."""
        if not token.startswith(INVITE_PREFIX):
            return None
        token_hash = hash_secret(token)
        async with self._read_one() as connection:
            row = (
                await connection.execute(_INVITE_SELECT.where(invites.c.token_hash == token_hash))
            ).one_or_none()
        if row is None or not same_hash(row.token_hash, token_hash):
            return None
        invite = _invite_from_row(row)
        return invite if invite.usable(utcnow()) else None

    async def accept_invite(self, token: str, name: str, password: str) -> User:
        """Create member ``name`` with ``password`` and spend the invite, all or nothing."""
        check_name(name, "user")
        password_hash = await hash_password(password)
        now = utcnow()
        token_hash = hash_secret(token)
        try:
            async with self._write() as connection:
                invite = (
                    await connection.execute(
                        select(invites.c.is_admin, invites.c.expires_at).where(
                            invites.c.token_hash == token_hash, invites.c.used_at.is_(None)
                        )
                    )
                ).one_or_none()
                if invite is None or (invite.expires_at is not None and invite.expires_at <= now):
                    raise NotFound("this invite does not exist, was used or has expired")
                user_row = (
                    await connection.execute(
                        insert(users)
                        .values(
                            name=name,
                            is_admin=invite.is_admin,
                            password_hash=password_hash,
                            created_at=now,
                        )
                        .returning(*users.c)
                    )
                ).one()
                await connection.execute(
                    update(invites)
                    .where(invites.c.token_hash == token_hash)
                    .values(used_at=now, used_by=user_row.id)
                )
        except IntegrityError:
            raise AlreadyExists(f"a user named {name!r} already exists") from None
        return user_from_row(user_row)

    async def revoke_invite(self, invite_id: str) -> None:
        """Delete the invite named ``invite_id`` (used ones too: the user stays)."""
        if len(invite_id) != INVITE_ID_LENGTH:
            raise NotFound("no such invite")
        async with self._write() as connection:
            result = await connection.execute(
                delete(invites).where(invites.c.token_hash.startswith(invite_id, autoescape=True))
            )
            if result.rowcount == 0:
                raise NotFound("no such invite")

    async def revoke_user_api_key(self, user_id: int, key_id: int) -> ApiKey:
        """Revoke key ``key_id`` if it belongs to ``user_id``; :class:`NotFound` otherwise."""
        async with self._write() as connection:
            row = (
                await connection.execute(
                    select(api_keys, users.c.name.label("user_name"))
                    .join_from(api_keys, users, api_keys.c.user_id == users.c.id)
                    .where(api_keys.c.id == key_id, api_keys.c.user_id == user_id)
                )
            ).one_or_none()
            if row is None:
                raise NotFound("no such API key")
            key = key_from_row(row)
            if key.revoked_at is not None:
                return key
            revoked_at = utcnow()
            await connection.execute(
                update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=revoked_at)
            )
        return replace(key, revoked_at=revoked_at)


def _invite_from_row(row: AnyRow) -> Invite:
    return Invite(
        id=_invite_id(row.token_hash),
        created_by=row.creator,
        is_admin=bool(row.is_admin),
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        used_by=row.joiner,
    )
