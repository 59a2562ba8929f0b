"""Reading the dev SQLite file: read-only, streamed, with set-based orphan checks."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from data_migrations.run.sql import open_source, quote


def table_names(source: sqlite3.Connection) -> list[str]:
    rows = source.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite_%' AND name <> 'alembic_version' ORDER BY name"
    )
    return [name for (name,) in rows]


def alembic_revisions(source: sqlite3.Connection) -> list[str] | None:
    """The revisions the file's ``alembic_version`` records; None when it has none (a file
    the app's ``create_all()`` made and nobody adopted)."""
    if source.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                      "AND name = 'alembic_version'").fetchone() is None:
        return None
    return sorted(row[0] for row in source.execute("SELECT version_num FROM alembic_version"))


def row_count(source: sqlite3.Connection, table: str) -> int:
    return source.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0]


# The largest rowid SQLite can give: the end of the last range.
LAST_ROWID = 2**63 - 1
# Rows sampled to estimate a table's row size.
SAMPLED_ROWS = 1000


def database_path(source: sqlite3.Connection) -> Path:
    """The file behind an open connection, for other processes to open it too."""
    return Path(source.execute("PRAGMA database_list").fetchone()[2])


def average_row_bytes(source: sqlite3.Connection, table: str, columns: Sequence[str]) -> float:
    """The stored size of a row, averaged over the table's first rows."""
    lengths = " + ".join(f"ifnull(length(CAST({quote(c)} AS BLOB)), 0)" for c in columns)
    sample = f"SELECT {', '.join(map(quote, columns))} FROM {quote(table)} LIMIT {SAMPLED_ROWS}"
    return source.execute(f"SELECT avg({lengths}) FROM ({sample})").fetchone()[0] or 0.0


def rowid_ranges(source: sqlite3.Connection, table: str, count: int,
                 rows_per_range: int) -> list[tuple[int, int]]:
    """Consecutive inclusive rowid ranges covering the table of ``count`` rows, of about
    ``rows_per_range`` rows each and never more than twice that.

    Rowids are usually dense (1, 2, 3, ...): then ranges of equal width do, at the cost of
    two lookups. Otherwise one pass over the rowids finds where each range starts."""
    if not count:
        return []
    first = source.execute(f"SELECT min(rowid) FROM {quote(table)}").fetchone()[0]
    last = source.execute(f"SELECT max(rowid) FROM {quote(table)}").fetchone()[0]
    if last - first + 1 <= 2 * count:
        width = max(1, rows_per_range * (last - first + 1) // count)
        starts = list(range(first, last + 1, width))
    else:
        starts = [rowid for (rowid,) in source.execute(
            f"SELECT r FROM (SELECT rowid AS r, row_number() OVER (ORDER BY rowid) - 1 AS n "
            f"FROM {quote(table)}) WHERE n % ? = 0", (rows_per_range,))]
    ends = [start - 1 for start in starts[1:]] + [LAST_ROWID]
    return list(zip(starts, ends, strict=True))


def stream_rows(source: sqlite3.Connection, table: str, columns: Sequence[str],
                rowids: tuple[int, int]) -> Iterator[tuple]:
    """The rows of a rowid range, one at a time as SQLite steps through them, so memory
    stays flat whatever the rows' size (batches of 5,000 transcripts held ~75 MB)."""
    cursor = source.execute(
        f"SELECT {', '.join(map(quote, columns))} FROM {quote(table)} "
        "WHERE rowid BETWEEN ? AND ? ORDER BY rowid", rowids)
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


def unused_backup_path(path: Path, folder: Path) -> Path:
    """``<name>-<UTC second>.db`` in ``folder``, with ``-2``, ``-3``… when a snapshot of that
    second is there already: a snapshot taken in the same second as the cutover's (a
    catch-up right after it) must never overwrite the one the copy record names."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = path.suffix or ".db"
    target, count = folder / f"{path.stem}-{stamp}{suffix}", 1
    while target.exists():
        count += 1
        target = folder / f"{path.stem}-{stamp}-{count}{suffix}"
    return target


def back_up(path: Path, work_dir: Path) -> Path:
    """A consistent copy of the dev database in ``work_dir/backups``, made with SQLite's
    online backup API, so it is safe even while the app still writes to the file."""
    target = unused_backup_path(path, work_dir.resolve() / "backups")
    with open_source(path) as source, closing(sqlite3.connect(target)) as copy:
        source.backup(copy)
    return target
