"""The fast reader's generation: it moves with every commit, from any connection, and is read
from the WAL index without a statement once the connection has read."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from inference_club.store.fastread import FastReader, header_generation


def _database(path: Path, journal_mode: str) -> sqlite3.Connection:
    writer = sqlite3.connect(path)
    writer.execute(f"PRAGMA journal_mode={journal_mode}")
    writer.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    writer.commit()
    return writer


def _reader(path: Path) -> FastReader:
    return FastReader(make_url(f"sqlite+aiosqlite:///{path}"))


def _commit_elsewhere(path: Path, body: str) -> None:
    """A commit from another process, as `inference-club keys revoke` makes one."""
    script = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1])\n"
        "c.execute('INSERT INTO notes (body) VALUES (?)', (sys.argv[2],))\n"
        "c.commit()\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path), body], check=True, timeout=30)


def test_the_generation_moves_with_each_commit_and_only_then(tmp_path: Path) -> None:
    path = tmp_path / "club.db"
    writer = _database(path, "WAL")
    reader = _reader(path)
    try:
        first = reader.generation()
        steady = reader.generation()
        assert reader.generation() == steady

        writer.execute("INSERT INTO notes (body) VALUES ('same process')")
        writer.commit()
        after_local = reader.generation()
        assert after_local != steady
        assert reader.generation() == after_local

        _commit_elsewhere(path, "another process")
        after_remote = reader.generation()
        assert after_remote not in (first, steady, after_local)
        assert reader.generation() == after_remote

        writer.execute("INSERT INTO notes (body) VALUES ('rolled back')")
        writer.rollback()
        assert reader.generation() == after_remote
    finally:
        reader.close()
        writer.close()


def test_the_generation_is_read_without_a_statement_once_the_connection_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "club.db"
    writer = _database(path, "WAL")
    reader = _reader(path)
    statements: list[str] = []
    try:
        reader.generation()  # the first asks SQLite, which opens the WAL index
        reader.connection().set_trace_callback(statements.append)
        before = reader.generation()
        writer.execute("INSERT INTO notes (body) VALUES ('one')")
        writer.commit()
        assert reader.generation() != before
        assert statements == []
    finally:
        reader.close()
        writer.close()


def test_without_a_wal_index_the_generation_still_moves(tmp_path: Path) -> None:
    path = tmp_path / "club.db"
    writer = _database(path, "DELETE")
    reader = _reader(path)
    try:
        reader.generation()
        steady = reader.generation()
        assert not (tmp_path / "club.db-shm").exists()
        _commit_elsewhere(path, "another process")
        assert reader.generation() != steady
    finally:
        reader.close()
        writer.close()


def test_where_offsets_cannot_be_read_the_pragma_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on Windows, which has no ``os.pread``."""
    monkeypatch.delattr(os, "pread")
    path = tmp_path / "club.db"
    writer = _database(path, "WAL")
    reader = _reader(path)
    try:
        reader.generation()
        steady = reader.generation()
        _commit_elsewhere(path, "another process")
        assert reader.generation() != steady
    finally:
        reader.close()
        writer.close()


@pytest.mark.parametrize(
    "header",
    [
        b"a" * 48 + b"b" * 48,  # the second copy written, the first not yet
        b"a" * 48 + b"a" * 47 + b"b",
        b"a" * 48,  # a short read
        b"",
    ],
)
def test_a_header_caught_halfway_is_a_new_generation_each_time(header: bytes) -> None:
    seen = header_generation(header)
    assert seen != header_generation(header)
    assert seen != header_generation(b"a" * 96)


def test_a_whole_header_is_its_own_generation() -> None:
    assert header_generation(b"a" * 96) == header_generation(b"a" * 96)
    assert header_generation(b"a" * 96) != header_generation(b"c" * 96)
