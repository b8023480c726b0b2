"""Store fixtures: every store test runs once on SQLite and once on PostgreSQL."""

import itertools
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from inference_club.store import Store, default_database_url
from inference_club.store.schema import metadata

POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_USER = "root"
POSTGRES_MAINTENANCE_DATABASE = "test"

DatabaseFactory = Callable[[], Awaitable[str]]


class PostgresDatabases:
    """Throwaway databases on the local server, named after this session, dropped at its end."""

    def __init__(self) -> None:
        self.session_name = f"ic_test_{secrets.token_hex(4)}"
        self._counter = itertools.count()
        self._created: list[str] = []

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database``."""
        return f"postgresql+asyncpg://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{database}"

    async def create(self) -> str:
        """A new empty database; returns its URL."""
        name = f"{self.session_name}_{next(self._counter)}"
        connection = await self._maintenance()
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        self._created.append(name)
        return self.url(name)

    async def drop_all(self) -> None:
        """Drop every database this session created."""
        connection = await self._maintenance()
        try:
            for name in self._created:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    async def _maintenance(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            host=POSTGRES_HOST,
            port=POSTGRES_PORT,
            user=POSTGRES_USER,
            database=POSTGRES_MAINTENANCE_DATABASE,
        )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def postgres_databases() -> AsyncIterator[PostgresDatabases]:
    """The session's PostgreSQL database factory; everything it made is dropped afterwards."""
    databases = PostgresDatabases()
    yield databases
    await databases.drop_all()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def postgres_shared_url(postgres_databases: PostgresDatabases) -> str:
    """One migrated PostgreSQL database for the session; tests empty it before use."""
    url = await postgres_databases.create()
    store = await Store.open(url)
    await store.close()
    return url


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    """The database implementation under test."""
    return str(request.param)


@pytest.fixture
def fresh_database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> DatabaseFactory:
    """Makes URLs of brand-new, unmigrated databases of the backend under test."""
    counter = itertools.count()
    # Resolved here, outside the test's event loop, which the session fixture cannot join.
    databases: PostgresDatabases | None = (
        request.getfixturevalue("postgres_databases") if backend == "postgres" else None
    )

    async def create() -> str:
        if databases is None:
            directory = tmp_path / f"db{next(counter)}"
            directory.mkdir()
            return default_database_url(directory)
        return await databases.create()

    return create


@pytest.fixture
def _migrated_database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with the current schema: a new SQLite file, or the session's PostgreSQL one."""
    if backend == "sqlite":
        return default_database_url(tmp_path)
    return str(request.getfixturevalue("postgres_shared_url"))


@pytest.fixture
async def database_url(backend: str, _migrated_database_url: str) -> str:
    """The URL of a database with no rows in any table."""
    if backend == "postgres":
        await _empty_postgres(_migrated_database_url)
    return _migrated_database_url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """An open store on an empty database."""
    opened = await Store.open(database_url)
    yield opened
    await opened.close()


async def _empty_postgres(url: str) -> None:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        tables = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
        await connection.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()
