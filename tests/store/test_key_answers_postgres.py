"""PostgreSQL key checks answered from memory until any process commits a change."""

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from inference_club.store import ApiKey, Store
from inference_club.store.changes import CHANNEL

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("backend", ["postgres"])]

NOTICE_WAIT = 5.0


async def _sql(url: str, statement: str, *args: object) -> None:
    """Run one statement on a connection of its own, as another process would."""
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await connection.execute(statement, *args)
    finally:
        await connection.close()


async def _listening(store: Store) -> None:
    """Check keys until the store's change listener is connected."""
    deadline = time.monotonic() + NOTICE_WAIT
    while not store._changes or not store._changes.live:  # noqa: SLF001 - the state under test
        assert time.monotonic() < deadline, "the change listener never connected"
        await store.authenticate_api_key("ic_not_a_real_key")
        await asyncio.sleep(0.02)


async def _revoke_without_notice(url: str, key_id: int) -> None:
    """Revoke behind the store's back: a writer that announces nothing."""
    await _sql(url, "UPDATE api_keys SET revoked_at = now() WHERE id = $1", key_id)


async def _until_rejected(store: Store, secret: str) -> float:
    """Seconds until ``secret`` stops authenticating; fails after NOTICE_WAIT."""
    started = time.monotonic()
    while await store.authenticate_api_key(secret) is not None:
        assert time.monotonic() - started < NOTICE_WAIT, "the key kept working"
        await asyncio.sleep(0.001)
    return time.monotonic() - started


@pytest.fixture
async def listening(database_url: str) -> AsyncIterator[tuple[Store, ApiKey, str]]:
    """A store whose change listener is connected, with alice's key already checked once."""
    store = await Store.open(database_url)
    try:
        await store.add_user("alice")
        key, secret = await store.create_api_key("alice")
        await _listening(store)
        assert await store.authenticate_api_key(secret) is not None  # read and kept
        yield store, key, secret
    finally:
        await store.close()


async def test_a_kept_answer_lasts_until_a_change_is_announced(
    database_url: str, listening: tuple[Store, ApiKey, str]
) -> None:
    """Between notices the check is answered from memory; a notice makes it ask again."""
    store, key, secret = listening
    await _revoke_without_notice(database_url, key.id)
    assert await store.authenticate_api_key(secret) is not None  # still the kept answer

    await _sql(database_url, f"SELECT pg_notify('{CHANNEL}', '')")
    await _until_rejected(store, secret)


async def test_a_key_revoked_by_another_process_stops_working_within_a_moment(
    database_url: str,
) -> None:
    """The CLI's store revoking a key is heard by the gateway's store at once."""
    gateway_store = await Store.open(database_url)
    cli_store = await Store.open(database_url)
    try:
        await cli_store.add_user("alice")
        _, secret = await cli_store.create_api_key("alice")
        await _listening(gateway_store)
        identity = await gateway_store.authenticate_api_key(secret)
        assert identity is not None

        await cli_store.revoke_api_key(identity.key_prefix)
        assert await _until_rejected(gateway_store, secret) < 1.0
    finally:
        await cli_store.close()
        await gateway_store.close()


async def test_without_the_listener_every_check_asks_the_database(
    database_url: str, listening: tuple[Store, ApiKey, str]
) -> None:
    """A lost listening connection means nothing is kept: a silent revoke is seen at once."""
    store, key, secret = listening
    await _sql(
        database_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    deadline = time.monotonic() + NOTICE_WAIT
    while store._changes is not None and store._changes.live:  # noqa: SLF001
        assert time.monotonic() < deadline, "the lost connection went unnoticed"
        await asyncio.sleep(0.01)

    await _revoke_without_notice(database_url, key.id)
    assert await store.authenticate_api_key(secret) is None
