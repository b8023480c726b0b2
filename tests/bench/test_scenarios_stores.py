"""The stores scenario finds the servers it meters, and makes and drops its database."""

import asyncio
from pathlib import Path

import asyncpg
from bench.context import DEFAULT_POSTGRES_URL
from bench.scenarios_stores import (
    create_scratch_database,
    drop_scratch_database,
    postgres_server_pid,
    redis_server_pid,
)

from tests.support.processes import free_port


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text()


def test_the_redis_server_process_is_found_when_it_answers() -> None:
    """The local Redis answers: its process id is this machine's redis-server."""
    pid = asyncio.run(redis_server_pid("redis://127.0.0.1:6379/0"))
    assert pid is not None
    assert "redis" in _comm(pid)


def test_no_redis_process_when_nothing_answers() -> None:
    """Nothing listens at the URL: no process to meter, and no error."""
    assert asyncio.run(redis_server_pid(f"redis://127.0.0.1:{free_port()}/0")) is None


def test_the_postgres_server_is_its_postmaster() -> None:
    """The process metered for PostgreSQL is the parent of the connection's backend."""
    pid = asyncio.run(postgres_server_pid(DEFAULT_POSTGRES_URL))
    assert pid is not None
    assert "postgres" in _comm(pid)
    assert int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) != pid


async def _databases() -> set[str]:
    connection = await asyncpg.connect("postgresql://127.0.0.1:5432/postgres")
    try:
        return {row[0] for row in await connection.fetch("SELECT datname FROM pg_database")}
    finally:
        await connection.close()


def test_a_scratch_database_is_made_and_dropped() -> None:
    """A fresh database appears beside the named one, and is gone once dropped."""
    notes: list[str] = []
    name = asyncio.run(create_scratch_database(DEFAULT_POSTGRES_URL, notes))
    assert name is not None
    assert notes == []
    try:
        assert name in asyncio.run(_databases())
    finally:
        asyncio.run(drop_scratch_database(DEFAULT_POSTGRES_URL, name))
    assert name not in asyncio.run(_databases())


def test_no_scratch_database_without_postgres_and_a_note_says_so() -> None:
    """Nothing listens: no database, and the report's notes say why none was measured."""
    notes: list[str] = []
    url = f"postgresql://127.0.0.1:{free_port()}/postgres"
    assert asyncio.run(create_scratch_database(url, notes)) is None
    assert len(notes) == 1
    assert "no PostgreSQL answered" in notes[0]
