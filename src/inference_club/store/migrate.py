"""Schema migrations, applied on open; safe when several processes open one database at once."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from inference_club.store.engine import writer

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# An arbitrary constant naming our advisory lock among any others on the PostgreSQL server.
_POSTGRES_LOCK_KEY = 0x1C_C1_0B_5C_4E_3A


def alembic_config(connection: Connection) -> Config:
    """An Alembic config for our migrations that runs them on ``connection``."""
    config = Config()
    # Config values are %-interpolated, so a literal % in the path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine) -> None:
    """Bring the database to the newest schema, in one transaction under a lock."""
    async with writer(engine).begin() as connection:
        await connection.run_sync(_upgrade)


def _upgrade(connection: Connection) -> None:
    # Serialise concurrent openers: the second one waits, then finds the schema current.
    # On SQLite the write transaction's BEGIN IMMEDIATE is that lock; both databases
    # run DDL inside the transaction, so a failed migration leaves nothing behind.
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRES_LOCK_KEY})
    command.upgrade(alembic_config(connection), "head")
