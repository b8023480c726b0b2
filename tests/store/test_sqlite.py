"""SQLite specifics: the file's place, WAL, and writers from several processes queueing."""

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from inference_club.store import Store, default_database_url


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


async def test_writer_waits_for_another_process_lock(tmp_path: Path) -> None:
    """A write while another connection holds the write lock waits for it, then succeeds."""
    url = default_database_url(tmp_path)
    store = await Store.open(url)
    locked = asyncio.Event()
    loop = asyncio.get_running_loop()

    def hold_lock() -> None:
        raw = sqlite3.connect(_database_file(url), isolation_level=None)
        try:
            raw.execute("BEGIN IMMEDIATE")
            loop.call_soon_threadsafe(locked.set)
            time.sleep(0.5)
            raw.execute("COMMIT")
        finally:
            raw.close()

    try:
        holder = asyncio.create_task(asyncio.to_thread(hold_lock))
        await locked.wait()
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
