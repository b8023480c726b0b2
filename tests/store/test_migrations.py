"""Migrations: a new database reaches the schema in schema.py, also with concurrent openers."""

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, insert, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from inference_club.store import Store, StoreError
from inference_club.store.migrate import HEAD_REVISION, MIGRATIONS_DIR, alembic_config
from inference_club.store.schema import metadata, usage_records, users

DatabaseFactory = Callable[[], Awaitable[str]]

_OPEN_ONCE = """
import asyncio, sys
from inference_club.store import Store, StoreError

async def main(url: str) -> None:
    store = await Store.open(url)
    await store.close()

asyncio.run(main(sys.argv[1]))
"""


@contextlib.asynccontextmanager
async def _engine(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


def _head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head


def test_known_head_revision_is_the_newest_migration() -> None:
    """HEAD_REVISION, which lets current databases skip Alembic, names the newest migration."""
    assert _head_revision() == HEAD_REVISION


async def _inspect(url: str) -> tuple[str | None, list[object], set[str]]:
    async with _engine(url) as engine, engine.connect() as connection:

        def read(sync: Connection) -> tuple[str | None, list[object], set[str]]:
            context = MigrationContext.configure(sync)
            diff = compare_metadata(context, metadata)
            return context.get_current_revision(), diff, set(inspect(sync).get_table_names())

        return await connection.run_sync(read)


async def test_open_migrates_a_new_database_to_the_declared_schema(
    fresh_database_url: DatabaseFactory,
) -> None:
    """Opening an empty database creates exactly the tables, columns and indexes of schema.py."""
    url = await fresh_database_url()
    store = await Store.open(url)
    await store.close()

    revision, diff, tables = await _inspect(url)

    assert revision == _head_revision()
    assert diff == []
    assert set(metadata.tables) <= tables


async def test_reopening_a_migrated_database_keeps_its_rows(
    fresh_database_url: DatabaseFactory,
) -> None:
    """A second open finds the schema current and changes no data."""
    url = await fresh_database_url()
    first = await Store.open(url)
    await first.add_user("alice")
    await first.close()

    second = await Store.open(url)
    try:
        assert [user.name for user in await second.list_users()] == ["alice"]
    finally:
        await second.close()


async def test_concurrent_opens_in_one_process_all_succeed(
    fresh_database_url: DatabaseFactory,
) -> None:
    """Several stores opening one new database at the same moment migrate it once, cleanly."""
    url = await fresh_database_url()

    stores = await asyncio.gather(*(Store.open(url) for _ in range(5)))
    try:
        await stores[0].add_user("bob")
        assert [user.name for user in await stores[4].list_users()] == ["bob"]
    finally:
        await asyncio.gather(*(store.close() for store in stores))
    revision, diff, _ = await _inspect(url)
    assert (revision, diff) == (_head_revision(), [])


async def test_concurrent_opens_from_separate_processes_all_succeed(
    fresh_database_url: DatabaseFactory,
) -> None:
    """A gateway and CLI commands starting together on a new database all open it."""
    url = await fresh_database_url()

    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _OPEN_ONCE,
            url,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    outcomes = [await process.communicate() for process in processes]

    assert [process.returncode for process in processes] == [0] * 4, outcomes
    revision, diff, _ = await _inspect(url)
    assert (revision, diff) == (_head_revision(), [])


async def test_failed_migration_leaves_no_partial_schema(
    fresh_database_url: DatabaseFactory,
) -> None:
    """DDL runs in the migration's transaction: if it fails, no table is left behind."""
    url = await fresh_database_url()
    async with _engine(url) as engine:
        async with engine.begin() as connection:
            # A table that the migration will also try to create, halfway through.
            await connection.execute(text("CREATE TABLE providers (id INTEGER PRIMARY KEY)"))
        with pytest.raises(DBAPIError):
            await Store.open(url)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        assert tables == {"providers"}


async def test_database_from_a_newer_version_is_refused(
    fresh_database_url: DatabaseFactory,
) -> None:
    """A schema revision this code does not know stops the open with a clear StoreError."""
    url = await fresh_database_url()
    store = await Store.open(url)
    await store.close()
    async with _engine(url) as engine, engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))

    with pytest.raises(StoreError, match="9999"):
        await Store.open(url)


async def test_daily_usage_is_filled_from_the_records_already_written(
    fresh_database_url: DatabaseFactory,
) -> None:
    """Migrating a database that holds usage records sums them per member and UTC day."""
    url = await fresh_database_url()
    async with _engine(url) as engine, engine.begin() as connection:
        await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0003"))
        user_id = (
            await connection.execute(
                insert(users).values(name="alice", is_admin=False, created_at=datetime.now(UTC))
            )
        ).inserted_primary_key[0]
        noon = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
        await connection.execute(
            insert(usage_records),
            [
                _usage_row(user_id, noon, prompt_tokens=10, completion_tokens=2),
                _usage_row(user_id, noon + timedelta(hours=11, minutes=59), status_code=500),
                _usage_row(user_id, noon + timedelta(hours=12), image_count=3),
            ],
        )

    store = await Store.open(url)
    try:
        first = await store.daily_totals(user_id, noon.date())
        second = await store.daily_totals(user_id, (noon + timedelta(days=1)).date())
    finally:
        await store.close()

    assert (first.requests, first.errors, first.tokens, first.images) == (2, 1, 12, 0)
    assert (second.requests, second.errors, second.tokens, second.images) == (1, 0, 0, 3)


def _usage_row(user_id: int, started_at: datetime, **values: object) -> dict[str, object]:
    return {
        "user_id": user_id,
        "model": "m",
        "endpoint": "chat.completions",
        "status_code": 200,
        "started_at": started_at,
        "ended_at": started_at,
        "prompt_tokens": None,
        "completion_tokens": None,
        "image_count": None,
        **values,
    }
