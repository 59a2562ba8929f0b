"""What the dev file holds that the cutover's snapshot does not, found by SQLite itself.

The snapshot is attached to a read-only connection to the dev file, and each table is
compared whole rows at a time (``SELECT … EXCEPT SELECT …``): a row of the dev file that
the snapshot lacks is new when the snapshot has no row with its key, changed otherwise;
a key of the snapshot the dev file no longer holds is a deleted row. The cutover's last
line, ``make verify`` and ``make catch-up`` all read the difference from here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote as percent_encoded

from data_migrations.run.errors import DataMigrationError
from data_migrations.run.sql import open_source, quote

SNAPSHOT = "snapshot"


@dataclass(frozen=True)
class TableDifference:
    table: str
    new: int
    changed: int
    deleted: int

    @property
    def left_behind(self) -> int:
        """Rows of the dev file the target lacks or holds in an older version."""
        return self.new + self.changed


@dataclass(frozen=True)
class Shape:
    """A table as the snapshot defines it: its columns and its key."""

    table: str
    columns: tuple[str, ...]
    key: str

    def rows_since(self) -> str:
        """The rows of the dev file (``main``) not in the snapshot, whole."""
        listed = ", ".join(map(quote, self.columns))
        return (f"SELECT {listed} FROM main.{quote(self.table)} "
                f"EXCEPT SELECT {listed} FROM {SNAPSHOT}.{quote(self.table)}")

    def keys_since(self) -> str:
        """The keys of those rows."""
        return f"SELECT {quote(self.key)} FROM ({self.rows_since()})"


@contextmanager
def attached(dev_file: Path, snapshot: Path) -> Iterator[sqlite3.Connection]:
    """The dev file opened read-only, with the snapshot attached read-only as ``snapshot``."""
    with open_source(dev_file) as live:
        live.execute(f"ATTACH DATABASE ? AS {SNAPSHOT}",
                     (f"file:{percent_encoded(str(snapshot.resolve()))}?mode=ro",))
        yield live


def shapes(connection: sqlite3.Connection, schema: str = SNAPSHOT) -> list[Shape]:
    """Every table of ``schema`` with its columns and its primary key, as SQLite's own
    catalog says (the row copy needs a key in every table too)."""
    found = []
    for name in _tables(connection, schema):
        info = connection.execute(f"PRAGMA {schema}.table_info({quote(name)})").fetchall()
        keys = [row[1] for row in sorted(info, key=lambda row: row[5]) if row[5]]
        if not keys:
            raise DataMigrationError(
                f"the dev file's table {name} has no primary key: its rows written after the "
                "cutover's snapshot cannot be told new or changed")
        found.append(Shape(name, tuple(row[1] for row in info), keys[0]))
    return found


def _tables(connection: sqlite3.Connection, schema: str) -> list[str]:
    return [name for (name,) in connection.execute(
        f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite_%' AND name <> 'alembic_version' ORDER BY name")]


def table_difference(connection: sqlite3.Connection, shape: Shape) -> TableDifference:
    """How many rows of one table are new, changed and deleted since the snapshot."""
    table, key = quote(shape.table), quote(shape.key)
    try:
        since, new = connection.execute(
            f"SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM "
            f"{SNAPSHOT}.{table} AS s WHERE s.{key} = d.{key})) FROM ({shape.rows_since()}) AS d"
        ).fetchone()
        (deleted,) = connection.execute(
            f"SELECT count(*) FROM {SNAPSHOT}.{table} AS s WHERE NOT EXISTS "
            f"(SELECT 1 FROM main.{table} AS l WHERE l.{key} = s.{key})").fetchone()
    except sqlite3.OperationalError as error:
        raise DataMigrationError(
            f"the dev file's table {shape.table} cannot be compared with the cutover's "
            f"snapshot ({error}): its schema changed since the snapshot was taken") from None
    return TableDifference(shape.table, new, since - new, deleted)


def differences(dev_file: Path, snapshot: Path) -> list[TableDifference]:
    """Per table of the snapshot, what the dev file holds beyond it (tables with none
    left out)."""
    with attached(dev_file, snapshot) as connection:
        found = [table_difference(connection, shape) for shape in shapes(connection)]
    return [d for d in found if d.new or d.changed or d.deleted]


def left_behind(found: list[TableDifference]) -> list[TableDifference]:
    """The tables whose new or changed rows the target lacks."""
    return [d for d in found if d.left_behind]


def counts_text(found: list[TableDifference]) -> str:
    """``tasks 3 new, 1 changed; audit_logs 22 new``."""
    def one(d: TableDifference) -> str:
        parts = [f"{d.new:,} new" if d.new else "", f"{d.changed:,} changed" if d.changed else ""]
        return f"{d.table} " + ", ".join(p for p in parts if p)
    return "; ".join(one(d) for d in found)


def as_report(found: list[TableDifference]) -> dict[str, dict[str, int]]:
    """The cutover report's ``left_behind``: ``{"tasks": {"new": 3, "changed": 1}}``."""
    return {d.table: {"new": d.new, "changed": d.changed} for d in left_behind(found)}
