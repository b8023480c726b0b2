"""API keys: created once in plaintext, stored as hashes, checked on every request."""

import contextlib
import sqlite3
from dataclasses import replace
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from inference_club.store._base import (
    SHARING_REVISION,
    AnyRow,
    StoreBase,
    user_id_by_name,
    utcnow,
)
from inference_club.store.credentials import (
    API_KEY_LENGTH,
    API_KEY_PREFIX,
    DISPLAY_PREFIX_LENGTH,
    check_name,
    display_prefix,
    hash_secret,
    new_api_key,
    same_hash,
)
from inference_club.store.errors import AmbiguousPrefix, InvalidValue, NotFound, WouldWait
from inference_club.store.fastread import FastReader
from inference_club.store.kept import MAX_KEPT, MISSING
from inference_club.store.records import ApiKey, KeyIdentity
from inference_club.store.schema import api_keys, revisions, users

# Short prefixes would make revoking the wrong key too easy.
MIN_REVOKE_PREFIX = 6

_KEY_SELECT = select(
    api_keys.c.id,
    api_keys.c.user_id,
    users.c.name.label("user_name"),
    api_keys.c.name,
    api_keys.c.prefix,
    api_keys.c.created_at,
    api_keys.c.last_used_at,
    api_keys.c.revoked_at,
).join_from(api_keys, users, api_keys.c.user_id == users.c.id)

# The hot path: one indexed lookup, built once so only its parameter changes.
_AUTHENTICATE = (
    select(
        api_keys.c.id,
        api_keys.c.prefix,
        api_keys.c.key_hash,
        api_keys.c.user_id,
        users.c.name,
        users.c.is_admin,
        users.c.requests_per_minute,
        users.c.daily_tokens,
        users.c.daily_audio_seconds,
        users.c.daily_images,
        # Riding along with the key check, so seeing a sharing change costs no extra query.
        select(revisions.c.value)
        .where(revisions.c.name == SHARING_REVISION)
        .scalar_subquery()
        .label("sharing_revision"),
    )
    .join_from(api_keys, users, api_keys.c.user_id == users.c.id)
    .where(api_keys.c.key_hash == bindparam("key_hash"), api_keys.c.revoked_at.is_(None))
)


def key_from_row(row: AnyRow) -> ApiKey:
    """An API key record from a row of the key listing's columns."""
    return ApiKey(
        id=row.id,
        user_id=row.user_id,
        user_name=row.user_name,
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


class KeysMixin(StoreBase):
    """Creating, listing, revoking and checking API keys."""

    async def create_api_key(self, user_name: str, name: str = "default") -> tuple[ApiKey, str]:
        """A new key for ``user_name``: its record and the plaintext, which is never stored."""
        check_name(name, "key")
        secret = new_api_key()
        async with self._write() as connection:
            owner_id = await user_id_by_name(connection, user_name)
            key_id = await connection.scalar(
                insert(api_keys)
                .values(
                    user_id=owner_id,
                    name=name,
                    prefix=display_prefix(secret),
                    key_hash=hash_secret(secret),
                    created_at=utcnow(),
                )
                .returning(api_keys.c.id)
            )
            row = (await connection.execute(_KEY_SELECT.where(api_keys.c.id == key_id))).one()
        return key_from_row(row), secret

    async def list_api_keys(self, user_name: str) -> list[ApiKey]:
        """Every key of ``user_name``, revoked ones included, oldest first."""
        async with self._read() as connection:
            owner_id = await user_id_by_name(connection, user_name)
            rows = await connection.execute(
                _KEY_SELECT.where(api_keys.c.user_id == owner_id).order_by(api_keys.c.id)
            )
            return [key_from_row(row) for row in rows]

    async def revoke_api_key(self, prefix: str) -> ApiKey:
        """Revoke the one key whose display prefix starts with ``prefix`` (or the whole key).

        Revoking a revoked key changes nothing and returns it.
        """
        if len(prefix) > DISPLAY_PREFIX_LENGTH:
            # A whole key, e.g. one that leaked: match it exactly, never echo it.
            condition = api_keys.c.key_hash == hash_secret(prefix)
            not_found = "no API key matches the key given"
        elif len(prefix) >= MIN_REVOKE_PREFIX:
            condition = api_keys.c.prefix.startswith(prefix, autoescape=True)
            not_found = f"no API key starts with {prefix!r}"
        else:
            raise InvalidValue(
                f"give at least {MIN_REVOKE_PREFIX} characters of the key prefix, "
                f"as 'keys list' shows it (e.g. {API_KEY_PREFIX}AbC...)"
            )
        async with self._write() as connection:
            rows = (await connection.execute(_KEY_SELECT.where(condition).limit(2))).all()
            if not rows:
                raise NotFound(not_found)
            if len(rows) > 1:
                raise AmbiguousPrefix(
                    f"several API keys start with {prefix!r}; give more characters"
                )
            key = key_from_row(rows[0])
            if key.revoked_at is not None:
                return key
            revoked_at = utcnow()
            await connection.execute(
                update(api_keys).where(api_keys.c.id == key.id).values(revoked_at=revoked_at)
            )
        return replace(key, revoked_at=revoked_at)

    async def authenticate_api_key(self, secret: str) -> KeyIdentity | None:
        """Who ``secret`` belongs to, or ``None`` for an unknown or revoked key.

        The answer is kept until the database changes: on SQLite until its generation moves
        (any commit by another connection, in this process or another), on PostgreSQL until
        a change notice comes. So a revoked key stops working on the next request.
        """
        if not secret.startswith(API_KEY_PREFIX):
            return None
        key_hash = self._hash_of(secret)
        with contextlib.suppress(WouldWait):
            return self._identity_now(key_hash)
        answers = self._key_answers
        read_at = answers.generation() if answers is not None else None
        async with self._read_one() as connection:
            row = (await connection.execute(_AUTHENTICATE, {"key_hash": key_hash})).one_or_none()
        identity = _identity_of(row, key_hash)
        if answers is not None:
            answers.put(key_hash, identity, read_at)
        return identity

    def authenticate_api_key_now(self, secret: str) -> KeyIdentity | None:
        """``authenticate_api_key`` without waiting; WouldWait when that needs the database
        (PostgreSQL without a kept answer, or a SQLite file busy right now)."""
        if not secret.startswith(API_KEY_PREFIX):
            return None
        return self._identity_now(self._hash_of(secret))

    def _hash_of(self, secret: str) -> str:
        """``hash_secret(secret)``, remembered for secrets shaped like the keys handed out:
        every request hashes its key, and SHA-256's code is rarely in the caches when a
        request comes. The shape bounds what is kept (anyone may send any bearer token)."""
        if len(secret) != API_KEY_LENGTH:
            return hash_secret(secret)
        hashes = self._key_hashes
        key_hash = hashes.get(secret)
        if key_hash is None:
            if len(hashes) >= MAX_KEPT:
                hashes.clear()  # unknown keys must not grow it
            key_hash = hashes[secret] = hash_secret(secret)
        return key_hash

    def _identity_now(self, key_hash: str) -> KeyIdentity | None:
        fast = self._fast_reader
        if fast is not None:
            try:
                return self._authenticate_fast(fast, key_hash)
            except sqlite3.Error:
                raise WouldWait from None  # busy or not readable: the async path waits
        answers = self._key_answers
        if answers is not None:
            kept = answers.get(key_hash)
            if kept is not MISSING:
                return kept  # type: ignore[return-value]
        raise WouldWait

    def _authenticate_fast(self, fast: FastReader, key_hash: str) -> KeyIdentity | None:
        """The identity through SQLite on the loop; raises sqlite3.Error when it cannot read."""
        generation = fast.generation()
        kept = self._fast_identities.get(key_hash, generation)
        if kept is not MISSING:
            return kept  # type: ignore[return-value]
        identity = _identity_of(fast.one(_AUTHENTICATE, {"key_hash": key_hash}), key_hash)
        self._fast_identities.put(key_hash, identity, generation)
        return identity


def _identity_of(row: Any, key_hash: str) -> KeyIdentity | None:
    """The identity of an authentication row, or None when there is none for ``key_hash``."""
    if row is None or not same_hash(row.key_hash, key_hash):
        return None
    return KeyIdentity(
        key_id=row.id,
        key_prefix=row.prefix,
        user_id=row.user_id,
        user_name=row.name,
        is_admin=bool(row.is_admin),
        requests_per_minute=row.requests_per_minute,
        sharing_revision=int(row.sharing_revision or 0),
        daily_tokens=row.daily_tokens,
        daily_audio_seconds=row.daily_audio_seconds,
        daily_images=row.daily_images,
    )
