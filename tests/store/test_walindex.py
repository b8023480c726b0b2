"""The WAL index header as the key checks' generation: it moves with every commit, from any
process, and only then; without a WAL index the reader asks SQLite instead."""

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from inference_club.store import Store, default_database_url
from inference_club.store.fastread import FastReader
from inference_club.store.walindex import WalIndex


def _wal_database(path: Path) -> sqlite3.Connection:
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.commit()
    return writer


def _reader(path: Path) -> FastReader:
    return FastReader(make_url(f"sqlite:///{path}"))


def test_generation_moves_with_each_commit_and_only_then(tmp_path: Path) -> None:
    """Reads leave it alone; a commit, a checkpoint that restarts the log and the next commit
    each move it on."""
    path = tmp_path / "db.sqlite"
    writer = _wal_database(path)
    reader = _reader(path)
    try:
        first = reader.generation()
        assert reader._wal_index is not None  # the memory read, not the pragma
        writer.execute("SELECT count(*) FROM t").fetchone()
        assert reader.generation() == first

        writer.execute("INSERT INTO t VALUES (1)")
        writer.commit()
        after_insert = reader.generation()
        assert after_insert != first

        writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        writer.execute("INSERT INTO t VALUES (2)")
        writer.commit()
        assert reader.generation() not in (first, after_insert)
    finally:
        reader.close()
        writer.close()


def test_generation_sees_a_commit_from_another_process(tmp_path: Path) -> None:
    """The index is shared memory: a commit in another process moves it with no query here."""
    path = tmp_path / "db.sqlite"
    writer = _wal_database(path)
    reader = _reader(path)
    try:
        before = reader.generation()
        script = (
            "import sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1]); c.execute('INSERT INTO t VALUES (3)'); c.commit()\n"
        )
        subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=30)
        assert reader.generation() != before
    finally:
        reader.close()
        writer.close()


def test_a_database_not_in_wal_mode_falls_back_to_data_version(tmp_path: Path) -> None:
    """Without a WAL index the generation is SQLite's data_version, which still moves."""
    path = tmp_path / "db.sqlite"
    writer = sqlite3.connect(path)
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.commit()
    reader = _reader(path)
    try:
        before = reader.generation()
        assert reader._wal_index is None
        assert isinstance(before, int)
        writer.execute("INSERT INTO t VALUES (1)")
        writer.commit()
        assert reader.generation() != before
    finally:
        reader.close()
        writer.close()


def test_an_index_of_unknown_format_is_not_used(tmp_path: Path) -> None:
    """A -shm file whose header this module does not know (or too short) is left alone."""
    database = tmp_path / "db.sqlite"
    Path(f"{database}-shm").write_bytes(b"\x01" * 64)
    assert WalIndex.open(str(database)) is None
    Path(f"{database}-shm").write_bytes(b"\x00" * 8)
    assert WalIndex.open(str(database)) is None
    assert WalIndex.open(str(tmp_path / "missing.sqlite")) is None


async def test_a_key_revoked_by_another_process_is_refused_on_the_next_check(
    tmp_path: Path,
) -> None:
    """The gateway's check without waiting sees a revocation another process committed."""
    url = default_database_url(tmp_path)
    gateway = await Store.open(url)
    try:
        await gateway.add_user("alice")
        key, secret = await gateway.create_api_key("alice")
        assert gateway.authenticate_api_key_now(secret) is not None
        assert gateway.authenticate_api_key_now(secret) is not None  # kept

        database = url.removeprefix("sqlite+aiosqlite:///")
        script = (
            "import sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1])\n"
            "c.execute(\"UPDATE api_keys SET revoked_at = '2026-01-01 00:00:00.000000' "
            'WHERE prefix = ?", (sys.argv[2],))\n'
            "c.commit()\n"
        )
        revoke = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, database, key.prefix
        )
        assert await revoke.wait() == 0

        assert gateway.authenticate_api_key_now(secret) is None
    finally:
        await gateway.close()
