"""Providers: machines running an agent, each with its own token to open a tunnel."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from inference_club.store._base import (
    AnyRow,
    StoreBase,
    require_aware,
    user_id_by_name,
    utcnow,
)
from inference_club.store.credentials import (
    PROVIDER_TOKEN_PREFIX,
    check_name,
    display_prefix,
    hash_secret,
    new_provider_token,
    same_hash,
)
from inference_club.store.errors import AlreadyExists
from inference_club.store.records import Provider
from inference_club.store.schema import providers, users

_PROVIDER_SELECT = select(
    providers.c.id,
    providers.c.name,
    providers.c.owner_id,
    users.c.name.label("owner_name"),
    providers.c.token_prefix,
    providers.c.token_hash,
    providers.c.created_at,
    providers.c.last_seen_at,
).join_from(providers, users, providers.c.owner_id == users.c.id)

_AUTHENTICATE = _PROVIDER_SELECT.where(providers.c.token_hash == bindparam("token_hash"))


def _provider_from_row(row: AnyRow) -> Provider:
    return Provider(
        id=row.id,
        name=row.name,
        owner_id=row.owner_id,
        owner_name=row.owner_name,
        token_prefix=row.token_prefix,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
    )


class ProvidersMixin(StoreBase):
    """Registering providers and checking their tokens."""

    async def add_provider(self, owner_name: str, name: str) -> tuple[Provider, str]:
        """Register provider ``name`` for ``owner_name``: its record and its one-time token."""
        check_name(name, "provider")
        token = new_provider_token()
        try:
            async with self._write() as connection:
                owner_id = await user_id_by_name(connection, owner_name)
                provider_id = await connection.scalar(
                    insert(providers)
                    .values(
                        owner_id=owner_id,
                        name=name,
                        token_hash=hash_secret(token),
                        token_prefix=display_prefix(token),
                        created_at=utcnow(),
                    )
                    .returning(providers.c.id)
                )
                row = (
                    await connection.execute(_PROVIDER_SELECT.where(providers.c.id == provider_id))
                ).one()
        except IntegrityError:
            raise AlreadyExists(f"a provider named {name!r} already exists") from None
        return _provider_from_row(row), token

    async def list_providers(self, owner_name: str | None = None) -> list[Provider]:
        """Every provider, or those of ``owner_name``, by name."""
        statement = _PROVIDER_SELECT.order_by(providers.c.name)
        async with self._read() as connection:
            if owner_name is not None:
                owner_id = await user_id_by_name(connection, owner_name)
                statement = statement.where(providers.c.owner_id == owner_id)
            rows = await connection.execute(statement)
            return [_provider_from_row(row) for row in rows]

    async def authenticate_provider(self, token: str) -> Provider | None:
        """The provider ``token`` belongs to, or ``None``."""
        if not token.startswith(PROVIDER_TOKEN_PREFIX):
            return None
        token_hash = hash_secret(token)
        async with self._read_one() as connection:
            row = (
                await connection.execute(_AUTHENTICATE, {"token_hash": token_hash})
            ).one_or_none()
        if row is None or not same_hash(row.token_hash, token_hash):
            return None
        return _provider_from_row(row)

    async def mark_providers_seen(self, provider_ids: Sequence[int], at: datetime) -> None:
        """Record that these providers were connected at ``at``."""
        require_aware(at, "the time a provider was seen")
        if not provider_ids:
            return
        async with self._write(announce=False) as connection:
            await connection.execute(
                update(providers)
                .where(providers.c.id.in_(list(provider_ids)))
                .values(last_seen_at=at)
            )
