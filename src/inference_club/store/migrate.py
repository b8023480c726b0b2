"""Schema migrations, applied on open; safe when several processes open one database at once."""

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from inference_club.store.engine import writer
from inference_club.store.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# The newest revision in migrations/versions (a test keeps the two in step). Knowing it
# lets an up-to-date database open without importing Alembic, which costs ~0.2 s per CLI call.
# A schema change is a new file there, NNNN_what.py with down_revision set, and a bump here;
# tests/store/test_migrations.py then checks it produces exactly schema.py on both databases.
HEAD_REVISION = "0004"
# An arbitrary constant naming our advisory lock among any others on the PostgreSQL server.
_POSTGRES_LOCK_KEY = 0x1C_C1_0B_5C_4E_3A


def alembic_config(connection: Connection) -> "Config":
    """An Alembic config for our migrations that runs them on ``connection``."""
    from alembic.config import Config  # noqa: PLC0415 - see HEAD_REVISION

    config = Config()
    # Config values are %-interpolated, so a literal % in the path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine) -> None:
    """Bring the database to the newest schema, in one transaction under a lock."""
    if await current_revision(engine) == HEAD_REVISION:
        return
    async with writer(engine).begin() as connection:
        await connection.run_sync(_upgrade)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The schema revision the database is at, or ``None`` for a database never migrated."""
    try:
        async with engine.connect() as connection:
            revision = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    except DBAPIError:
        return None
    return None if revision is None else str(revision)


def _upgrade(connection: Connection) -> None:
    from alembic import command  # noqa: PLC0415 - see HEAD_REVISION
    from alembic.util import CommandError  # noqa: PLC0415

    # Serialise concurrent openers: the second one waits, then finds the schema current.
    # On SQLite the write transaction's BEGIN IMMEDIATE is that lock; both databases
    # run DDL inside the transaction, so a failed migration leaves nothing behind.
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRES_LOCK_KEY})
    try:
        command.upgrade(alembic_config(connection), "head")
    except CommandError as error:
        # Typically a database migrated by a newer inference-club than this one.
        raise StoreError(f"cannot migrate the database schema: {error}") from error
