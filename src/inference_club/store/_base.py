"""What every part of the store shares: the engine, transactions and name lookups."""

from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inference_club.store.engine import writer
from inference_club.store.errors import NotFound
from inference_club.store.schema import groups, providers, users

# A result row of any shape.
AnyRow = Row[*tuple[Any, ...]]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class StoreBase:
    """Holds the engine; the concept mixins build on its transactions."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    def _read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for reads; its transaction is rolled back on exit."""
        return self._engine.connect()

    def _write(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A write transaction, committed on success and rolled back on error."""
        return self._writer.begin()


async def id_by_name(connection: AsyncConnection, table: Table, name: str, what: str) -> int:
    """The id of the row of ``table`` called ``name``, or :class:`NotFound`."""
    row_id = await connection.scalar(select(table.c.id).where(table.c.name == name))
    if row_id is None:
        raise NotFound(f"no {what} named {name!r}")
    return int(row_id)


async def user_id_by_name(connection: AsyncConnection, name: str) -> int:
    """The id of user ``name``, or :class:`NotFound`."""
    return await id_by_name(connection, users, name, "user")


async def group_id_by_name(connection: AsyncConnection, name: str) -> int:
    """The id of group ``name``, or :class:`NotFound`."""
    return await id_by_name(connection, groups, name, "group")


async def provider_id_by_name(connection: AsyncConnection, name: str) -> int:
    """The id of provider ``name``, or :class:`NotFound`."""
    return await id_by_name(connection, providers, name, "provider")
