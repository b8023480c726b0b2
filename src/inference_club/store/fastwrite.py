"""Batch writes on a local SQLite file through stdlib sqlite3, without the ORM's per-row cost.

SQLAlchemy spends tens of microseconds per row of an executemany (parameter processing,
then a hop to aiosqlite's thread). Usage records arrive in batches of hundreds a second, so
for them a plain ``sqlite3`` connection runs the statements SQLAlchemy compiled once, with the
same value conversions, in one short transaction. The values are converted on the event loop;
the transaction runs on the writer's own thread, because SQLite's work on a batch (and a WAL
checkpoint when one falls due) takes milliseconds that would otherwise stall every request.
"""

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.sql.expression import ClauseElement

from inference_club.store.schema import UtcDateTime

# A write waits at most this long for another process's lock before the async path takes over.
_BUSY_TIMEOUT_MS = 20
_PRAGMAS = ("PRAGMA foreign_keys=ON", "PRAGMA synchronous=NORMAL")

Convert = Callable[[Any], Any]
Rows = Sequence[Mapping[str, Any]]


class FastWriter:
    """A stdlib connection to the same SQLite file for batched executemany transactions."""

    def __init__(self, url: URL) -> None:
        self._path = url.database or ""
        self._connection: sqlite3.Connection | None = None
        self._prepared: dict[int, tuple[str, tuple[tuple[str, Convert | None], ...]]] = {}
        self._dialect: Dialect = sqlite.dialect()
        # One thread: the connection is only ever used by it, one transaction at a time.
        self._thread: ThreadPoolExecutor | None = None

    async def write(self, batches: Sequence[tuple[ClauseElement, Rows]]) -> None:
        """Run each statement for each of its rows, all in one transaction.

        Raises sqlite3.Error (busy, constraint) with everything rolled back.
        """
        statements = []
        for statement, rows in batches:
            if rows:
                sql, binds = self._prepare(statement, rows[0])
                statements.append((sql, [_values(row, binds) for row in rows]))
        if not statements:
            return
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-batch-writer")
        done = asyncio.get_running_loop().run_in_executor(self._thread, self._run, statements)
        # A caller cancelled mid-write still gets its rows stored: the thread finishes the batch.
        await asyncio.shield(done)

    def _run(self, statements: list[tuple[str, list[list[Any]]]]) -> None:
        connection = self._open()
        with connection:  # commits, or rolls back on any error
            for sql, values in statements:
                connection.executemany(sql, values)

    def _prepare(
        self, statement: ClauseElement, sample: Mapping[str, Any]
    ) -> tuple[str, tuple[tuple[str, Convert | None], ...]]:
        prepared = self._prepared.get(id(statement))
        if prepared is None:
            compiled: Any = statement.compile(dialect=self._dialect, column_keys=list(sample))
            binds = tuple(
                (name, _converter(compiled.binds[name].type, self._dialect))
                for name in compiled.positiontup or ()
            )
            prepared = (compiled.string, binds)
            self._prepared[id(statement)] = prepared
        return prepared

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self._path, check_same_thread=False)
            connection.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            for pragma in _PRAGMAS:
                connection.execute(pragma)
            self._connection = connection
        return self._connection

    def close(self) -> None:
        """Close the connection once the write in progress, if any, has finished."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _values(row: Mapping[str, Any], binds: tuple[tuple[str, Convert | None], ...]) -> list[Any]:
    values = []
    for name, convert in binds:
        value = row[name]
        values.append(value if convert is None or value is None else convert(value))
    return values


def _converter(bind_type: Any, dialect: Dialect) -> Convert | None:
    """How SQLAlchemy would turn a value of ``bind_type`` into what SQLite stores."""
    if isinstance(bind_type, UtcDateTime):
        return UtcDateTime.sqlite_text
    processor: Convert | None = bind_type.dialect_impl(dialect).bind_processor(dialect)
    return processor
