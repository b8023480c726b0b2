"""Lookups on the request path answered by SQLite in-process, without a thread hop.

aiosqlite runs every query on a worker thread, which costs a few hundred microseconds per
call. An indexed read of a local WAL database takes tens of microseconds, so for the one query
every /v1 request makes (the API-key check) a plain ``sqlite3`` connection on the event loop
is faster than the round trip to the thread. It sees every committed write at once, from any
process, so a revoked key still stops working on the next request.

``generation()`` says whether the database changed, so answers can be kept until it moves. It
reads the header of the WAL index (the ``-shm`` file every connection to the database shares):
each commit, from any connection in any process, rewrites it with a new change counter
(https://www.sqlite.org/walformat.html, "The WAL-Index Header"). This is what ``PRAGMA
data_version`` compares too, but one ``pread`` of it costs a few microseconds where the
pragma's read transaction costs tens when the request path's code is not in the caches.
Without the file (another journal mode), the pragma answers.
"""

import os
import sqlite3
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import URL

# A read waits at most this long for a writer's checkpoint before the async path takes over.
_BUSY_TIMEOUT_MS = 50
# The WAL index starts with two copies of its 48-byte header; a commit writes the second copy,
# then the first, so a reader that finds them equal did not catch one halfway.
_WAL_HEADER_SIZE = 48


class _Torn:
    """The generation while a commit is halfway through the header: unlike any other."""

    __slots__ = ()


class FastReader:
    """A read-only stdlib connection to the same SQLite file, for single-row lookups."""

    def __init__(self, url: URL) -> None:
        self._path = url.database or ""
        self._connection: sqlite3.Connection | None = None
        # Asked before every kept answer is used: a plain cursor kept for it, with tuple rows.
        self._version_cursor: sqlite3.Cursor | None = None
        # The WAL index, opened once this connection has read (it keeps the file in use, so
        # nobody truncates it meanwhile); None while not opened, -1 when there is none.
        self._wal_index: int | None = None
        self._compiled: dict[int, tuple[str, Any]] = {}

    @staticmethod
    def usable(url: URL) -> bool:
        """Whether ``url`` names a SQLite file this process can open directly."""
        database = url.database or ""
        return url.get_backend_name() == "sqlite" and database not in ("", ":memory:")

    def one(self, statement: Select[Any], params: Mapping[str, Any]) -> SimpleNamespace | None:
        """The first row of ``statement``; raises sqlite3.Error when the file is busy."""
        sql, compiled = self._compile(statement)
        values = compiled.construct_params(dict(params))
        ordered = [values[name] for name in compiled.positiontup]
        row: SimpleNamespace | None = self._open().execute(sql, ordered).fetchone()
        return row

    def generation(self) -> object:
        """What moves on whenever a write was committed since (raises sqlite3.Error when the
        file cannot be read); take it before reading what is to be kept under it."""
        wal_index = self._wal_index
        if wal_index is not None and wal_index >= 0:
            try:
                header = os.pread(wal_index, 2 * _WAL_HEADER_SIZE, 0)
            except OSError as exc:
                raise sqlite3.OperationalError(str(exc)) from None
            return header_generation(header)
        cursor = self._version_cursor
        if cursor is None:
            cursor = self._version_cursor = self._open().cursor()
            cursor.row_factory = None
        version: int = cursor.execute("PRAGMA data_version").fetchone()[0]
        if wal_index is None:
            # The pragma read the database, so the connection holds its WAL index open now.
            self._wal_index = _open_wal_index(self._path)
        return version

    def connection(self) -> sqlite3.Connection:
        """The reader's connection (opened if need be)."""
        return self._open()

    def _compile(self, statement: Select[Any]) -> tuple[str, Any]:
        cached = self._compiled.get(id(statement))
        if cached is None:
            from sqlalchemy.dialects import sqlite  # noqa: PLC0415 - only for this reader

            compiled = statement.compile(dialect=sqlite.dialect())
            cached = (compiled.string, compiled)
            self._compiled[id(statement)] = cached
        return cached

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(
                f"file:{self._path}?mode=ro", uri=True, check_same_thread=False
            )
            connection.row_factory = _namespace_row
            connection.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            self._connection = connection
        return self._connection

    def close(self) -> None:
        """Close the connection."""
        self._version_cursor = None
        wal_index, self._wal_index = self._wal_index, None
        if wal_index is not None and wal_index >= 0:
            os.close(wal_index)
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def header_generation(header: bytes) -> object:
    """The generation the start of a WAL index says: its header, when both copies agree;
    otherwise a commit was halfway through writing it, and the generation is new."""
    first = header[:_WAL_HEADER_SIZE]
    if len(header) == 2 * _WAL_HEADER_SIZE and first == header[_WAL_HEADER_SIZE:]:
        return first
    return _Torn()


def _open_wal_index(database: str) -> int:
    """A read-only descriptor of the database's WAL index, or -1 when it has none (or the
    system cannot read at an offset without moving one, as on Windows)."""
    if not hasattr(os, "pread"):
        return -1
    try:
        descriptor = os.open(f"{database}-shm", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return -1
    try:
        readable = len(os.pread(descriptor, 2 * _WAL_HEADER_SIZE, 0)) == 2 * _WAL_HEADER_SIZE
    except OSError:
        readable = False
    if not readable:
        os.close(descriptor)
        return -1
    return descriptor


def _namespace_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> SimpleNamespace:
    # Attribute access, like SQLAlchemy's rows, so callers read both kinds the same way.
    return SimpleNamespace(
        **{column[0]: value for column, value in zip(cursor.description, values, strict=True)}
    )
