"""Usage batches on PostgreSQL, written straight through asyncpg under SQLAlchemy's pool."""

import asyncpg
import pytest

from inference_club.store import Store, UsageRecord
from tests.store.test_usage import _record

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("backend", ["postgres"])]


async def _terminate_other_connections(url: str) -> int:
    """End every other connection to the database, as a restarting server would."""
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        return int(
            await connection.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    finally:
        await connection.close()


async def test_a_connection_the_server_dropped_leaves_the_pool(
    store: Store, database_url: str
) -> None:
    """The server ends the pooled connection: the batch that meets it fails (the usage writer
    keeps it to retry), and the next batch and reads get a working connection."""
    user = await store.add_user("alice")
    first: list[UsageRecord] = [_record(user, 0)]
    await store.record_usage(first)
    assert await _terminate_other_connections(database_url) >= 1
    retried = [_record(user, 1), _record(user, 2)]
    failures = 0
    for _ in range(2):
        try:
            await store.record_usage(retried)
            break
        except Exception:  # noqa: BLE001 - whatever the driver says of the dead connection
            failures += 1
    assert failures <= 1
    assert len(await store.list_usage()) == 3
