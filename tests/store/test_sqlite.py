"""SQLite specifics: the file's place, WAL, and writers from several processes queueing."""

import asyncio
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import sqlite as sqlite_dialect

from inference_club.store import Store, UsageRecord, default_database_url
from inference_club.store.schema import UtcDateTime


def _database_file(url: str) -> Path:
    return Path(url.removeprefix("sqlite+aiosqlite:///"))


def test_default_url_is_an_absolute_file_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """default_database_url names <data_dir>/inference-club.db absolutely, even if relative."""
    monkeypatch.chdir(tmp_path)

    url = default_database_url(Path("some") / "data")

    assert url.startswith("sqlite+aiosqlite:///")
    assert _database_file(url) == tmp_path / "some" / "data" / "inference-club.db"


async def test_open_creates_missing_data_directories(tmp_path: Path) -> None:
    """Opening a database in a directory that does not exist yet creates it."""
    url = default_database_url(tmp_path / "a" / "b")

    store = await Store.open(url)
    await store.close()

    assert _database_file(url).is_file()


async def test_connections_use_wal_and_the_documented_pragmas(tmp_path: Path) -> None:
    """Every connection runs with WAL, a 5 s busy timeout, foreign keys and synchronous=NORMAL."""
    store = await Store.open(default_database_url(tmp_path))
    try:
        async with store._read() as connection:
            values = [
                (await connection.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
            ]
    finally:
        await store.close()

    assert values == ["wal", 5000, 1, 1]
    with sqlite3.connect(_database_file(default_database_url(tmp_path))) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def _lock_from_another_connection(url: str, seconds: float) -> asyncio.Task[None]:
    """Hold SQLite's write lock from another connection for ``seconds``; returns once held."""
    locked = asyncio.Event()
    loop = asyncio.get_running_loop()

    def hold_lock() -> None:
        raw = sqlite3.connect(_database_file(url), isolation_level=None)
        try:
            raw.execute("BEGIN IMMEDIATE")
            loop.call_soon_threadsafe(locked.set)
            time.sleep(seconds)
            raw.execute("COMMIT")
        finally:
            raw.close()

    holder = asyncio.create_task(asyncio.to_thread(hold_lock))
    await locked.wait()
    return holder


async def test_writer_waits_for_another_process_lock(tmp_path: Path) -> None:
    """A write while another connection holds the write lock waits for it, then succeeds."""
    url = default_database_url(tmp_path)
    store = await Store.open(url)
    try:
        holder = await _lock_from_another_connection(url, 0.5)
        started = time.monotonic()
        await store.add_user("alice")
        waited = time.monotonic() - started
        await holder
        assert waited >= 0.3
        assert [user.name for user in await store.list_users()] == ["alice"]
    finally:
        await store.close()


async def test_readers_are_not_blocked_by_a_writer(tmp_path: Path) -> None:
    """With WAL, reads answer at once while another connection holds the write lock."""
    url = default_database_url(tmp_path)
    store = await Store.open(url)
    await store.add_user("alice")
    raw = sqlite3.connect(_database_file(url), isolation_level=None)
    try:
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("UPDATE users SET is_admin = 1")
        started = time.monotonic()
        user = await store.get_user("alice")
        elapsed = time.monotonic() - started
        raw.execute("ROLLBACK")
    finally:
        raw.close()
        await store.close()

    assert user.is_admin is False
    assert elapsed < 0.5


async def test_concurrent_read_then_write_transactions_all_succeed(tmp_path: Path) -> None:
    """Many key creations (a read, then a write) from two stores at once never hit 'locked'."""
    url = default_database_url(tmp_path)
    first = await Store.open(url)
    second = await Store.open(url)
    try:
        await first.add_user("alice")
        await asyncio.gather(
            *(
                (first if index % 2 else second).create_api_key("alice", f"k{index}")
                for index in range(40)
            )
        )
        assert len(await first.list_api_keys("alice")) == 40
    finally:
        await first.close()
        await second.close()


async def test_key_checks_see_changes_committed_by_another_process(tmp_path: Path) -> None:
    """A key checked (and so cached) just before is refused once another store revokes it."""
    url = default_database_url(tmp_path)
    gateway = await Store.open(url)
    command_line = await Store.open(url)  # stands for `inference-club keys revoke` elsewhere
    try:
        await gateway.add_user("alice")
        key, secret = await gateway.create_api_key("alice")
        for _ in range(3):
            assert await gateway.authenticate_api_key(secret) is not None

        await command_line.set_user_limits("alice", requests_per_minute=7)
        identity = await gateway.authenticate_api_key(secret)
        assert identity is not None
        assert identity.requests_per_minute == 7

        await command_line.revoke_api_key(key.prefix)
        assert await gateway.authenticate_api_key(secret) is None
    finally:
        await command_line.close()
        await gateway.close()


async def test_a_key_the_same_store_creates_works_at_once(tmp_path: Path) -> None:
    """Writes through the store's own connection also end what its key checks remembered."""
    store = await Store.open(default_database_url(tmp_path))
    try:
        await store.add_user("alice")
        first, first_secret = await store.create_api_key("alice")
        assert await store.authenticate_api_key(first_secret) is not None
        _, second_secret = await store.create_api_key("alice")
        assert await store.authenticate_api_key(second_secret) is not None
        await store.revoke_api_key(first.prefix)
        assert await store.authenticate_api_key(first_secret) is None
    finally:
        await store.close()


async def test_usage_batch_waits_for_another_process_lock(tmp_path: Path) -> None:
    """A usage batch that finds the file locked by another process is written once it is free."""
    url = default_database_url(tmp_path)
    store = await Store.open(url)
    try:
        await store.add_user("alice")
        key, _ = await store.create_api_key("alice")
        now = datetime.now(UTC)
        record = UsageRecord(
            user_id=key.user_id,
            api_key_id=key.id,
            model="m",
            endpoint="chat.completions",
            status_code=200,
            started_at=now,
            ended_at=now,
        )
        holder = await _lock_from_another_connection(url, 0.3)
        await store.record_usage([record, record])
        await holder
        assert len(await store.list_usage(user_id=key.user_id)) == 2
    finally:
        await store.close()


def _usage(key_user: int, key_id: int, count: int) -> list[UsageRecord]:
    now = datetime.now(UTC)
    return [
        UsageRecord(
            user_id=key_user,
            api_key_id=key_id,
            model=f"m{index}",
            endpoint="chat.completions",
            status_code=200,
            started_at=now,
            ended_at=now,
        )
        for index in range(count)
    ]


async def test_event_loop_keeps_running_while_a_usage_batch_is_written(tmp_path: Path) -> None:
    """SQLite's work on a batch runs off the event loop: other tasks keep running meanwhile."""
    store = await Store.open(default_database_url(tmp_path))
    try:
        await store.add_user("alice")
        key, _ = await store.create_api_key("alice")
        batch = _usage(key.user_id, key.id, 30_000)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0)
                ticks += 1

        write = asyncio.create_task(store.record_usage(batch))
        await asyncio.sleep(0)  # the write converts its values, then hands the batch over
        ticks = 0
        ticking = asyncio.create_task(ticker())
        await write
        ticking.cancel()
        assert ticks > 10, "the event loop was held while SQLite wrote the batch"
        totals = await store.usage_totals(key.user_id, datetime.now(UTC) - timedelta(hours=1))
        assert totals.requests == 30_000
    finally:
        await store.close()


async def test_a_cancelled_usage_write_still_stores_its_batch(tmp_path: Path) -> None:
    """Cancelling the caller mid-write loses nothing: the batch is committed all the same."""
    url = default_database_url(tmp_path)
    store = await Store.open(url)
    try:
        await store.add_user("alice")
        key, _ = await store.create_api_key("alice")
        write = asyncio.create_task(store.record_usage(_usage(key.user_id, key.id, 5_000)))
        await asyncio.sleep(0)  # the write hands its batch to the writer thread
        write.cancel()
        with pytest.raises(asyncio.CancelledError):
            await write
    finally:
        await store.close()  # waits for the writer thread
    reopened = await Store.open(url)
    try:
        totals = await reopened.usage_totals(key.user_id, datetime.now(UTC) - timedelta(hours=1))
        assert totals.requests == 5_000
    finally:
        await reopened.close()


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 25, 22, 35, 36, 210253, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),  # no microseconds
        datetime(999, 12, 31, 23, 59, 59, 1, tzinfo=UTC),  # a three-digit year
        datetime(2026, 6, 1, 1, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ],
)
def test_fast_datetime_text_matches_what_sqlalchemy_stores(moment: datetime) -> None:
    """The fast writer stores exactly the text SQLAlchemy's own conversion would."""
    dialect = sqlite_dialect.dialect()
    processor = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert processor is not None
    assert UtcDateTime.sqlite_text(moment) == processor(moment)


def test_fast_datetime_text_is_right_for_seconds_seen_before() -> None:
    """Moments in a second already formatted, in the same second of another day, and seen
    again after many other seconds (past what the formatter keeps) read as SQLAlchemy's."""
    dialect = sqlite_dialect.dialect()
    processor = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert processor is not None
    start = datetime(2026, 11, 25, 22, 35, 36, 210253, tzinfo=UTC)
    moments = [start, start.replace(microsecond=7), start.replace(microsecond=0)]
    moments += [start + timedelta(days=1), start + timedelta(days=31)]
    moments += [start + timedelta(seconds=second, microseconds=second) for second in range(600)]
    moments += [start.replace(microsecond=999_999), start + timedelta(days=1, microseconds=5)]
    for moment in moments:
        assert UtcDateTime.sqlite_text(moment) == processor(moment), moment


async def test_a_key_revoked_by_another_process_is_refused_on_the_next_check(
    tmp_path: Path,
) -> None:
    """The check the gateway makes without waiting sees a revocation that another process
    committed, though it kept the key's answer a moment before."""
    url = default_database_url(tmp_path)
    gateway = await Store.open(url)
    try:
        await gateway.add_user("alice")
        key, secret = await gateway.create_api_key("alice")
        assert gateway.authenticate_api_key_now(secret) is not None
        assert gateway.authenticate_api_key_now(secret) is not None  # kept

        script = (
            "import sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1])\n"
            "c.execute(\"UPDATE api_keys SET revoked_at = '2026-01-01 00:00:00.000000' "
            'WHERE prefix = ?", (sys.argv[2],))\n'
            "c.commit()\n"
        )
        revoke = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, str(_database_file(url)), key.prefix
        )
        assert await revoke.wait() == 0

        assert gateway.authenticate_api_key_now(secret) is None
    finally:
        await gateway.close()
