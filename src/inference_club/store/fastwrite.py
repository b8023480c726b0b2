"""Batch writes on a local SQLite file through stdlib sqlite3, without the ORM's per-row cost.

SQLAlchemy spends tens of microseconds per row of an executemany (parameter processing,
then a hop to aiosqlite's thread). Usage records arrive in batches of hundreds a second, so
for them a plain ``sqlite3`` connection runs the statements SQLAlchemy compiled once, with the
same value conversions, in one short transaction. The values are converted on the event loop,
in short slices so requests go on between; the transaction runs on the writer's own thread,
because SQLite's work on a batch (and a WAL checkpoint when one falls due) takes milliseconds
that would otherwise stall every request.

An INSERT's rows go as multi-row statements (up to ``MAX_ROWS_PER_STATEMENT`` rows each), not
one statement per row: ``sqlite3`` lets go of the GIL and takes it back around every statement
it steps, so a batch of hundreds of rows meant hundreds of hand-overs with the event loop.
"""

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Any

from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.expression import ClauseElement

from inference_club.slices import map_in_slices
from inference_club.store.schema import UtcDateTime

# A write waits at most this long for another process's lock before the async path takes over.
_BUSY_TIMEOUT_MS = 20
_PRAGMAS = ("PRAGMA foreign_keys=ON", "PRAGMA synchronous=NORMAL")


def _null(value: None) -> None:
    return value


# sqlite3 binds None as NULL only after it looked for an adapter and failed, an exception made
# and dropped for every None a row holds; registered, None binds at once. The registry is the
# process's, and the value stored the same: NULL.
sqlite3.register_adapter(type(None), _null)

Convert = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class ObjectRows:
    """Rows as objects whose attributes, named as ``columns``, hold a row's values: a batch
    of records goes to the database without a mapping made for each."""

    columns: tuple[str, ...]
    objects: Sequence[Any]


# A statement's rows: mappings of column to value, or objects that hold them.
Rows = Sequence[Mapping[str, Any]] | ObjectRows
Binds = tuple[tuple[str, Convert | None], ...]
# Where a row's values need converting (their place among the binds), and how.
Conversions = tuple[tuple[int, Convert], ...]
# Rows joined into one INSERT at most: binding them holds the GIL for a fraction of a millisecond.
MAX_ROWS_PER_STATEMENT = 256


class ConstraintViolated(Exception):
    """A batch broke a constraint of the database (a missing user, say); none of it was
    written."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A statement compiled once: its SQL for one row and, for an INSERT, how to repeat its
    row of placeholders."""

    sql: str
    binds: Binds
    # The SQL around the one row of placeholders, and that row; None where rows cannot join.
    around_row: tuple[str, str, str] | None
    # A row's values in the binds' order, taken in one call, and those to convert.
    take: Callable[[Any], tuple[Any, ...]]
    conversions: Conversions

    def values(self, row: Any) -> list[Any]:
        """``row``'s values for the statement, each converted as SQLAlchemy would."""
        values = list(self.take(row))
        for index, convert in self.conversions:
            value = values[index]
            if value is not None:
                values[index] = convert(value)
        return values

    def run(self, connection: sqlite3.Connection, rows: list[list[Any]]) -> None:
        """Run the statement for every row, as few statements as SQLite's limits allow."""
        if self.around_row is None or len(rows) == 1:
            connection.executemany(self.sql, rows)
            return
        head, row, tail = self.around_row
        parameters = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        per_statement = max(min(parameters // len(self.binds), MAX_ROWS_PER_STATEMENT), 1)
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            sql = head + ", ".join([row] * len(chunk)) + tail
            # Flattened in C: Python code on this thread would hold the GIL against the loop.
            connection.execute(sql, list(chain.from_iterable(chunk)))


def _around_row(statement: ClauseElement, sql: str, width: int) -> tuple[str, str, str] | None:
    """Where an INSERT's single row of ``width`` placeholders sits in ``sql``, if it is plain."""
    if not isinstance(statement, Insert) or width == 0:
        return None
    row = "(" + ", ".join(["?"] * width) + ")"
    marker = " VALUES " + row
    if sql.count(marker) != 1:
        return None
    head, tail = sql.split(marker)
    return head + " VALUES ", row, tail


class FastWriter:
    """A stdlib connection to the same SQLite file for batched executemany transactions."""

    def __init__(self, url: URL) -> None:
        self._path = url.database or ""
        self._connection: sqlite3.Connection | None = None
        self._statements = PreparedStatements(sqlite.dialect(), _sqlite_converter)
        # One thread: the connection is only ever used by it, one transaction at a time.
        self._thread: ThreadPoolExecutor | None = None

    async def write(self, batches: Sequence[tuple[ClauseElement, Rows]]) -> None:
        """Run each statement for each of its rows, all in one transaction.

        Raises sqlite3.Error (busy, constraint) with everything rolled back. Cancelled while
        its values are converted, it writes nothing; once the batch is on the thread, it is
        written whatever happens to the caller.
        """
        statements = await self._statements.values_of(batches)
        if not statements:
            return
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-batch-writer")
        done = asyncio.get_running_loop().run_in_executor(self._thread, self._run, statements)
        # A caller cancelled mid-write still gets its rows stored: the thread finishes the batch.
        await asyncio.shield(done)

    def _run(self, statements: list[tuple[Prepared, list[list[Any]]]]) -> None:
        connection = self._open()
        with connection:  # commits, or rolls back on any error
            for prepared, values in statements:
                prepared.run(connection, values)

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


# How a value of a bind's type becomes what the driver takes.
Converter = Callable[[Any, Dialect], Convert | None]


class PreparedStatements:
    """Statements compiled once for one dialect, by statement and the columns its rows give."""

    def __init__(self, dialect: Dialect, converter: Converter) -> None:
        self._dialect = dialect
        self._converter = converter
        # Each entry holds its statement, so the statement's id is never another's while kept.
        self._kept: dict[tuple[int, tuple[str, ...], bool], tuple[ClauseElement, Prepared]] = {}

    async def values_of(
        self, batches: Sequence[tuple[ClauseElement, Rows]]
    ) -> list[tuple[Prepared, list[list[Any]]]]:
        """Each statement that has rows, prepared, with its rows' values converted (in short
        slices, so requests go on between)."""
        statements = []
        for statement, rows in batches:
            if isinstance(rows, ObjectRows):
                if not rows.objects:
                    continue
                prepared = self._prepare(statement, rows.columns, attributes=True)
                items: Sequence[Any] = rows.objects
            elif rows:
                prepared = self._prepare(statement, tuple(rows[0]), attributes=False)
                items = rows
            else:
                continue
            statements.append((prepared, await map_in_slices(prepared.values, items)))
        return statements

    def _prepare(
        self, statement: ClauseElement, columns: tuple[str, ...], *, attributes: bool
    ) -> Prepared:
        key = (id(statement), columns, attributes)
        kept = self._kept.get(key)
        if kept is None:
            prepared = _compile(statement, columns, attributes, self._dialect, self._converter)
            self._kept[key] = (statement, prepared)
            return prepared
        return kept[1]


def _compile(
    statement: ClauseElement,
    columns: tuple[str, ...],
    attributes: bool,
    dialect: Dialect,
    converter: Converter,
) -> Prepared:
    """``statement`` compiled for ``dialect`` for rows that give ``columns`` (as attributes of
    an object, or keys of a mapping), with how to take and convert each row's values."""
    compiled: Any = statement.compile(dialect=dialect, column_keys=list(columns))
    binds = tuple(
        (name, converter(compiled.binds[name].type, dialect)) for name in compiled.positiontup or ()
    )
    return Prepared(
        compiled.string,
        binds,
        _around_row(statement, compiled.string, len(binds)),
        take=_taker(tuple(name for name, _ in binds), attrgetter if attributes else itemgetter),
        conversions=tuple(
            (index, convert) for index, (_, convert) in enumerate(binds) if convert is not None
        ),
    )


def _taker(
    names: tuple[str, ...], getter: Callable[..., Callable[[Any], Any]]
) -> Callable[[Any], tuple[Any, ...]]:
    """What takes a row's values for ``names`` as a tuple (through ``getter``: itemgetter or
    attrgetter), in one call where it can."""
    take = getter(*names)
    if len(names) > 1:
        return take
    # A getter of one name gives the value itself, not a tuple of it.
    return lambda row: (take(row),)


def bind_converter(bind_type: Any, dialect: Dialect) -> Convert | None:
    """How SQLAlchemy would turn a value of ``bind_type`` into what ``dialect``'s driver takes."""
    processor: Convert | None = bind_type.dialect_impl(dialect).bind_processor(dialect)
    return processor


def _sqlite_converter(bind_type: Any, dialect: Dialect) -> Convert | None:
    """``bind_converter``, with timestamps made into SQLite's text in one call."""
    if isinstance(bind_type, UtcDateTime):
        return UtcDateTime.sqlite_text
    return bind_converter(bind_type, dialect)
