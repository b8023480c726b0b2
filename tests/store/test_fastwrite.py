"""The SQLite batch writer: an INSERT's rows joined into few statements, stored as given."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, create_engine, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url

from inference_club.store.fastwrite import MAX_ROWS_PER_STATEMENT, FastWriter
from inference_club.store.schema import UtcDateTime

metadata = MetaData()
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String, nullable=False),
    Column("at", UtcDateTime(), nullable=True),
)
totals = Table(
    "totals",
    metadata,
    Column("name", String, primary_key=True),
    Column("count", Integer, nullable=False),
)
_ADD = sqlite_insert(totals)
_ADD = _ADD.on_conflict_do_update(
    index_elements=[totals.c.name], set_={"count": totals.c.count + _ADD.excluded.count}
)
_RENAME = update(events).where(events.c.id == bindparam("key")).values(name=bindparam("new"))
T0 = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "fast.db"
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    engine.dispose()
    return path


def _traced(writer: FastWriter) -> list[str]:
    statements: list[str] = []
    writer._open().set_trace_callback(statements.append)
    return statements


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    import sqlite3  # noqa: PLC0415 - only to read back

    with sqlite3.connect(path) as connection:
        return connection.execute(sql).fetchall()


async def test_insert_rows_go_in_few_statements_and_all_arrive(database: Path) -> None:
    """More rows than one statement holds: two INSERTs, every row stored in order, converted."""
    writer = FastWriter(make_url(f"sqlite:///{database}"))
    statements = _traced(writer)
    count = MAX_ROWS_PER_STATEMENT + 7
    rows = [{"name": f"e{i}", "at": T0 + timedelta(seconds=i)} for i in range(count)]
    rows[3]["at"] = None
    try:
        await writer.write([(events.insert(), rows)])
    finally:
        writer.close()

    inserts = [sql for sql in statements if sql.startswith("INSERT")]
    assert len(inserts) == 2
    stored = _rows(database, "SELECT name, at FROM events ORDER BY id")
    assert [name for name, _ in stored] == [f"e{i}" for i in range(count)]
    assert stored[3][1] is None
    assert stored[5][1] == UtcDateTime.sqlite_text(T0 + timedelta(seconds=5))


async def test_upsert_rows_in_one_statement_add_up(database: Path) -> None:
    """An upsert's rows naming the same key in one statement each add to it."""
    writer = FastWriter(make_url(f"sqlite:///{database}"))
    statements = _traced(writer)
    rows = [{"name": "a", "count": 1}, {"name": "b", "count": 10}, {"name": "a", "count": 2}]
    try:
        await writer.write([(_ADD, rows)])
        await writer.write([(_ADD, [{"name": "b", "count": 5}])])
    finally:
        writer.close()

    assert len([sql for sql in statements if sql.startswith("INSERT")]) == 2
    assert _rows(database, "SELECT name, count FROM totals ORDER BY name") == [("a", 3), ("b", 15)]


async def test_other_statements_run_once_per_row(database: Path) -> None:
    """An UPDATE keeps one statement per row; all of a write commits together."""
    writer = FastWriter(make_url(f"sqlite:///{database}"))
    try:
        await writer.write(
            [(events.insert(), [{"name": "x", "at": None}, {"name": "y", "at": None}])]
        )
        await writer.write(
            [(_RENAME, [{"key": 1, "new": "x2"}, {"key": 2, "new": "y2"}, {"key": 9, "new": "z"}])]
        )
    finally:
        writer.close()

    assert _rows(database, "SELECT id, name FROM events ORDER BY id") == [(1, "x2"), (2, "y2")]


async def test_values_are_bound_by_name_whatever_the_rows_order_and_width(database: Path) -> None:
    """Rows whose keys come in another order than the table's columns, and rows of a single
    column, store each value in its own column."""
    writer = FastWriter(make_url(f"sqlite:///{database}"))
    try:
        await writer.write([(events.insert(), [{"at": T0, "name": "both"}])])
        await writer.write([(events.insert(), [{"name": "alone"}, {"name": "again"}])])
    finally:
        writer.close()

    assert _rows(database, "SELECT name, at FROM events ORDER BY id") == [
        ("both", UtcDateTime.sqlite_text(T0)),
        ("alone", None),
        ("again", None),
    ]
