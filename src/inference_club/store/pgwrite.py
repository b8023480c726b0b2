"""Batch writes on PostgreSQL straight through asyncpg, without the ORM's per-row cost.

Through SQLAlchemy, an executemany of a usage batch spends most of its time per row in
parameter processing and the adapter's layers, all on the gateway's event loop: on the
bench machine PostgreSQL made the gateway spend about half again as much CPU per request as
SQLite. Here the statements SQLAlchemy compiled once (the same SQL, the same value
conversions) go to the asyncpg connection under SQLAlchemy's pool: one ``executemany`` per
statement, which asyncpg sends as one pipelined round trip, in one transaction.
"""

from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.expression import ClauseElement

from inference_club.store.fastwrite import (
    ConstraintViolated,
    PreparedStatements,
    Rows,
    bind_converter,
)


class PostgresBatchWriter:
    """Runs compiled statements for many rows on a pooled asyncpg connection."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._statements = PreparedStatements(engine.dialect, bind_converter)

    async def write(self, batches: Sequence[tuple[ClauseElement, Rows]]) -> None:
        """Run each statement for each of its rows, all in one transaction.

        Raises ConstraintViolated, or asyncpg's error (a lost connection, say), with everything
        rolled back. A connection lost meanwhile leaves the pool.
        """
        statements = await self._statements.values_of(batches)
        if not statements:
            return
        async with self._engine.connect() as connection:
            pooled = await connection.get_raw_connection()
            driver: Any = pooled.driver_connection
            try:
                async with driver.transaction():
                    for prepared, values in statements:
                        await driver.executemany(prepared.sql, values)
            except asyncpg.IntegrityConstraintViolationError as exc:
                raise ConstraintViolated(str(exc)) from None
            except BaseException:
                if driver.is_closed() or driver.is_in_transaction():
                    # SQLAlchemy never saw the failure, so it would pool the connection again
                    # (dead, or with a transaction a cancelled rollback left open) and hand it
                    # to the next caller.
                    await connection.invalidate()
                raise
