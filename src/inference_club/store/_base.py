"""What every part of the store shares: the engine, transactions and name lookups."""

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, Table, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.expression import ClauseElement

from inference_club.store.changes import NOTIFY_SQL, AnswersUntilChange, ChangeListener
from inference_club.store.engine import single_reader, writer
from inference_club.store.errors import InvalidValue, NotFound
from inference_club.store.fastread import FastReader
from inference_club.store.fastwrite import ConstraintViolated, FastWriter, Rows
from inference_club.store.kept import KeptAnswers
from inference_club.store.schema import groups, providers, revisions, users

if TYPE_CHECKING:
    from inference_club.store.pgwrite import PostgresBatchWriter

SHARING_REVISION = "sharing"

# A result row of any shape.
AnyRow = Row[*tuple[Any, ...]]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def require_aware(moment: datetime, what: str) -> datetime:
    """``moment`` if it carries a timezone, else :class:`InvalidValue`."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidValue(f"{what} is a naive datetime; give a timezone-aware one")
    return moment


class StoreBase:
    """Holds the engine; the concept mixins build on its transactions."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)
        self._single_reader = single_reader(engine)
        # SQLite has one writer at a time; queueing our own writers here is fairer and
        # faster than letting them poll the file lock through busy_timeout.
        self._write_lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._fast_reader = FastReader(engine.url) if FastReader.usable(engine.url) else None
        self._fast_writer = FastWriter(engine.url) if FastReader.usable(engine.url) else None
        self._postgres_writer: PostgresBatchWriter | None = None
        if engine.dialect.name == "postgresql":
            # Imported here: asyncpg is loaded only by a gateway on PostgreSQL.
            from inference_club.store import pgwrite  # noqa: PLC0415

            self._postgres_writer = pgwrite.PostgresBatchWriter(engine)
        # PostgreSQL: every other process's commits are heard about, so key checks can be
        # answered from memory between them (SQLite's fast reader has its own way).
        self._changes = ChangeListener(engine.url) if engine.dialect.name == "postgresql" else None
        self._key_answers = AnswersUntilChange(self._changes) if self._changes else None
        # SQLite: the identities behind API keys, kept until the fast reader's generation moves.
        self._fast_identities = KeptAnswers()
        # The hashes of the API keys checked lately, by key (see ``KeysMixin._hash_of``).
        self._key_hashes: dict[str, str] = {}
        # Usage batches being written: a cancelled caller does not stop them, closing waits.
        self._usage_writes: set[asyncio.Task[None]] = set()

    def _read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for reads; its transaction is rolled back on exit."""
        return self._engine.connect()

    def _read_one(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for one SELECT, run without an explicit transaction."""
        return self._single_reader.connect()

    async def _write_fast(self, batches: Sequence[tuple[ClauseElement, Rows]]) -> bool:
        """Run each statement for each of its rows in one transaction: through stdlib sqlite3
        when the database is a local file, straight through asyncpg on PostgreSQL. False
        when they must take SQLAlchemy's way instead (another process holds SQLite's lock,
        or the database is neither); ConstraintViolated, with nothing written, when the
        database refused them. Announces nothing: for writes no kept answer depends on."""
        if self._postgres_writer is not None:
            await self._postgres_writer.write(batches)
            return True
        fast = self._fast_writer
        if fast is None:
            return False
        assert self._write_lock is not None  # SQLite always has one
        async with self._write_lock:
            try:
                await fast.write(batches)
            except sqlite3.IntegrityError as exc:
                raise ConstraintViolated(str(exc)) from None
            except sqlite3.Error:
                return False  # busy with another process's write: the async path waits properly
        return True

    @asynccontextmanager
    async def _write(self, *, announce: bool = True) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed on success and rolled back on error.

        On PostgreSQL its commit tells every listening process that data changed, unless
        ``announce`` is False (usage and presence: no cached answer depends on them).
        """
        if self._write_lock is None:
            async with self._writer.begin() as connection:
                yield connection
                if announce and self._changes is not None:
                    await connection.execute(text(NOTIFY_SQL))
        else:
            async with self._write_lock, self._writer.begin() as connection:
                yield connection


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


async def bump_sharing_revision(connection: AsyncConnection) -> None:
    """Tell every gateway node that sharing, groups or limits changed (same transaction)."""
    await connection.execute(
        update(revisions)
        .where(revisions.c.name == SHARING_REVISION)
        .values(value=revisions.c.value + 1)
    )
