"""The stores scenario finds the servers it meters, and makes and drops its database."""

import asyncio
import secrets
from pathlib import Path

import asyncpg
from bench.context import DEFAULT_POSTGRES_URL
from bench.scenarios_stores import (
    create_scratch_database,
    drop_scratch_database,
    local_redis_pid,
    postgres_server_pid,
    redis_info,
)

from tests.support.processes import free_port


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text()


def test_the_redis_server_process_is_found_when_it_answers() -> None:
    """The local Redis answers: its process id is this machine's redis-server."""
    info = asyncio.run(redis_info("redis://127.0.0.1:6379/0"))
    assert info is not None
    pid = local_redis_pid(info)
    assert pid is not None
    assert "redis" in _comm(pid)


def test_a_redis_elsewhere_answers_but_is_not_metered() -> None:
    """A process id this machine does not show as Redis (one in a container): no pid."""
    assert local_redis_pid({"process_id": "1"}) is None
    assert local_redis_pid({}) is None


def test_no_redis_when_nothing_answers() -> None:
    """Nothing listens at the URL: no answer, and no error."""
    assert asyncio.run(redis_info(f"redis://127.0.0.1:{free_port()}/0")) is None


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
    name = f"inference_club_bench_test_{secrets.token_hex(4)}"
    try:
        assert asyncio.run(create_scratch_database(DEFAULT_POSTGRES_URL, name, notes))
        assert notes == []
        assert name in asyncio.run(_databases())
    finally:
        asyncio.run(drop_scratch_database(DEFAULT_POSTGRES_URL, name))
    assert name not in asyncio.run(_databases())
    asyncio.run(drop_scratch_database(DEFAULT_POSTGRES_URL, name))  # gone already: no error


def test_no_scratch_database_without_postgres_and_a_note_says_so() -> None:
    """Nothing listens: no database, and the report's notes say why none was measured."""
    notes: list[str] = []
    url = f"postgresql://127.0.0.1:{free_port()}/postgres"
    assert not asyncio.run(create_scratch_database(url, "inference_club_bench_none", notes))
    assert len(notes) == 1
    assert "no PostgreSQL answered" in notes[0]
