"""Lookups on the request path answered by SQLite in-process, without a thread hop.

aiosqlite runs every query on a worker thread, which costs a few hundred microseconds per
call. An indexed read of a local WAL database takes tens of microseconds, so for the one query
every /v1 request makes (the API-key check) a plain ``sqlite3`` connection on the event loop
is faster than the round trip to the thread. It sees every committed write at once, from any
process, so a revoked key still stops working on the next request.

``generation()`` says whether the database changed: SQLite's ``PRAGMA data_version`` moves
whenever any other connection, in this process or another, commits a write, and asking it
costs a fraction of the query it saves, so answers can be kept until it moves.
"""

import sqlite3
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import URL

# A read waits at most this long for a writer's checkpoint before the async path takes over.
_BUSY_TIMEOUT_MS = 50


class FastReader:
    """A read-only stdlib connection to the same SQLite file, for single-row lookups."""

    def __init__(self, url: URL) -> None:
        self._path = url.database or ""
        self._connection: sqlite3.Connection | None = None
        # Asked before every kept answer is used: a plain cursor kept for it, with tuple rows.
        self._version_cursor: sqlite3.Cursor | None = None
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

    def generation(self) -> int:
        """What moves on whenever a write was committed since (raises sqlite3.Error when the
        file cannot be read); take it before reading what is to be kept under it."""
        cursor = self._version_cursor
        if cursor is None:
            cursor = self._version_cursor = self._open().cursor()
            cursor.row_factory = None
        version: int = cursor.execute("PRAGMA data_version").fetchone()[0]
        return version

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
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _namespace_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> SimpleNamespace:
    # Attribute access, like SQLAlchemy's rows, so callers read both kinds the same way.
    return SimpleNamespace(
        **{column[0]: value for column, value in zip(cursor.description, values, strict=True)}
    )
