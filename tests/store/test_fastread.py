"""The fast reader's generation: it moves with every commit, from any connection, and only
then."""

import sqlite3
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from inference_club.store.fastread import FastReader


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


def test_in_another_journal_mode_the_generation_moves_too(tmp_path: Path) -> None:
    path = tmp_path / "club.db"
    writer = _database(path, "DELETE")
    reader = _reader(path)
    try:
        reader.generation()
        steady = reader.generation()
        _commit_elsewhere(path, "another process")
        assert reader.generation() != steady
    finally:
        reader.close()
        writer.close()
