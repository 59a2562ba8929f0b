"""Reading the dev SQLite file: read-only, streamed, with set-based orphan checks."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path


@contextmanager
def open_source(path: Path) -> Iterator[sqlite3.Connection]:
    """The dev database opened read-only, so the cutover can never change it."""
    connection = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    try:
        yield connection
    finally:
        connection.close()


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_names(source: sqlite3.Connection) -> list[str]:
    rows = source.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite_%' AND name <> 'alembic_version' ORDER BY name"
    )
    return [name for (name,) in rows]


def column_names(source: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in source.execute(f"PRAGMA table_info({quote(table)})")]


def row_count(source: sqlite3.Connection, table: str) -> int:
    return source.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0]


def stream_rows(
    source: sqlite3.Connection, table: str, columns: Sequence[str]
) -> Iterator[tuple]:
    """Every row of a table, one at a time as SQLite steps through it, so memory stays
    flat whatever the table's size and its rows' (batches of 5,000 transcripts held
    ~75 MB)."""
    cursor = source.execute(
        f"SELECT {', '.join(map(quote, columns))} FROM {quote(table)} ORDER BY rowid"
    )
    yield from cursor


def orphan_values(
    source: sqlite3.Connection, child: str, column: str, parent: str, parent_column: str
) -> set:
    """Values of ``child.column`` with no ``parent`` row: SQLite never enforced the key."""
    rows = source.execute(
        f"SELECT DISTINCT c.{quote(column)} FROM {quote(child)} AS c "
        f"LEFT JOIN {quote(parent)} AS p ON p.{quote(parent_column)} = c.{quote(column)} "
        f"WHERE c.{quote(column)} IS NOT NULL AND p.{quote(parent_column)} IS NULL"
    )
    return {value for (value,) in rows}


def back_up(path: Path, work_dir: Path) -> Path:
    """A consistent copy of the dev database in ``work_dir/backups``, made with SQLite's
    online backup API, so it is safe even while the app still writes to the file."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = work_dir.resolve() / "backups" / f"{path.stem}-{stamp}{path.suffix or '.db'}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open_source(path) as source, closing(sqlite3.connect(target)) as copy:
        source.backup(copy)
    return target
