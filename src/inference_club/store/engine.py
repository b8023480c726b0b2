"""The async engine: URL defaults, SQLite connection settings and write transactions."""

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DATABASE_FILE = "inference-club.db"
# Execution option that marks a connection as one that will write.
WRITE_OPTION = "inference_club_write"
SINGLE_READ_OPTION = "inference_club_single_read"
_SQLITE_PRAGMAS = (
    # busy_timeout first: switching to WAL needs a lock another process may hold.
    "PRAGMA busy_timeout=5000",
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
)


def default_database_url(data_dir: Path) -> str:
    """The SQLite database inside ``data_dir``, as an absolute aiosqlite URL."""
    return f"sqlite+aiosqlite:///{(data_dir / DATABASE_FILE).resolve()}"


def create_engine(database_url: str) -> AsyncEngine:
    """An engine for ``database_url``; SQLite gets its pragmas and explicit transactions."""
    url = make_url(database_url)
    engine = create_async_engine(url)
    if url.get_backend_name() == "sqlite":
        _make_parent_dir(url)
        event.listen(engine.sync_engine, "connect", _configure_sqlite_connection)
        event.listen(engine.sync_engine, "begin", _begin_sqlite_transaction)
    return engine


def writer(engine: AsyncEngine) -> AsyncEngine:
    """A view of ``engine`` whose transactions take the write lock up front (SQLite).

    A deferred SQLite transaction that reads and then writes fails at once with
    SQLITE_BUSY when another connection wrote in between, without waiting for
    busy_timeout; taking the lock at BEGIN makes writers queue instead.
    """
    return engine.execution_options(**{WRITE_OPTION: True})


def single_reader(engine: AsyncEngine) -> AsyncEngine:
    """A view of ``engine`` for lone SELECTs, which need no transaction of their own."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{SINGLE_READ_OPTION: True})
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def _make_parent_dir(url: URL) -> None:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling would COMMIT before DDL; we BEGIN ourselves.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _begin_sqlite_transaction(connection: Connection) -> None:
    options = connection.get_execution_options()
    if options.get(SINGLE_READ_OPTION):
        # One SELECT is atomic on its own; skipping BEGIN saves a trip to the driver thread.
        return
    if options.get(WRITE_OPTION):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")
