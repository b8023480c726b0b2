"""Alembic environment: runs the migrations on the connection the store passes in."""

from alembic import context
from sqlalchemy import Connection

from inference_club.store.schema import metadata


def run_migrations(connection: Connection) -> None:
    """Apply pending migrations inside the caller's transaction."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite can only change most column definitions by copying the table.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise RuntimeError("run migrations through inference_club.store.migrate, with a connection")
run_migrations(_connection)
