"""make catch-up's rows: the rows written to the dev file after the cutover's snapshot,
copied into the target through the same conversion, checks and rejects as the copy.

A new snapshot of the dev file is taken (watched, like the cutover's), and the rows the
dev file deleted since the cutover's snapshot are put back into it, so that it holds
exactly what the target is to hold: the target keeps rows the dev file deleted, because a
delete would cascade to their children and no downgrade could bring them back. The rows of
that snapshot that the cutover's snapshot lacks whole (new, or changed since) are found by
SQLite (difference.py), converted and checked by the row copy's own code (``RowCopy``,
under the policies the cutover recorded, references checked against the whole new
snapshot), loaded with COPY into a temporary table, then inserted, or updated in place
(``ON CONFLICT … DO UPDATE``: a row referenced by others is never deleted). The keys of
the inserted ones join ``cutover_copied_keys``, so the rows downgrade removes them too.

Nothing is caught up once the app has written to the target: its rows would be
overwritten. The target must still read, per table, as the copy record says the copy (or
the last catch-up) left it: the row count and checksum ``make verify`` compares.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import sqlalchemy as sa

from data_migrations.rows import watch
from data_migrations.rows.checksum import target_checksum
from data_migrations.rows.conversion import Converted, TablePlan, convert_rows
from data_migrations.rows.copy_record import CopyRecord
from data_migrations.rows.difference import SNAPSHOT, Shape, attached, shapes
from data_migrations.rows.row_copy import INTEGER_KEYS, CopyReport, RowCopy, TableResult
from data_migrations.rows.target import reset_sequences
from data_migrations.run.errors import DataMigrationError
from data_migrations.run.failure import driver_message
from data_migrations.run.sql import quote
from settings.steps import CopyOptions

log = logging.getLogger("cutover.rows")

# The temporary table a table's caught-up rows are loaded into first; dropped at commit.
STAGE_PREFIX = "catch_up_"

# Per table, the columns a later step rewrote, each with the table of their originals.
Originals = dict[str, dict[str, str]]


def refuse_app_writes(connection: sa.Connection, record: CopyRecord, plans: list[TablePlan],
                      originals: Originals) -> None:
    """Stop when a table no longer reads as the copy record says the copy left it (row
    count and checksum, rewritten paths through their originals): the app has written to
    the target, and a catch-up would overwrite what it wrote."""
    changed = [plan.name for plan in plans
               if target_checksum(connection, plan, originals.get(plan.name))
               != (record.tables[plan.name].written, record.tables[plan.name].checksum)]
    if changed:
        raise DataMigrationError(
            f"catch-up refused: the target's {', '.join(changed)} differ from what the cutover "
            "copied (row count or checksum): the app has written to the target since, and a "
            "catch-up would overwrite its changes; nothing was copied")


def caught_up_snapshot(dev_file: Path, snapshot: Path, work_dir: Path) -> Path:
    """A new snapshot of the dev file (watched from here), with the rows it deleted since
    ``snapshot`` put back: what the target holds once the catch-up is done."""
    taken = watch.watched_snapshot(dev_file, work_dir)
    with closing(sqlite3.connect(taken)) as connection:
        connection.execute(f"ATTACH DATABASE ? AS {SNAPSHOT}", (str(snapshot),))
        with connection:
            for shape in shapes(connection):
                restore_deleted(connection, shape)
    return taken


def restore_deleted(connection: sqlite3.Connection, shape: Shape) -> None:
    table, key = quote(shape.table), quote(shape.key)
    listed = ", ".join(map(quote, shape.columns))
    try:
        connection.execute(
            f"INSERT INTO main.{table} ({listed}) SELECT {listed} FROM {SNAPSHOT}.{table} AS s "
            f"WHERE NOT EXISTS (SELECT 1 FROM main.{table} AS l WHERE l.{key} = s.{key})")
    except sqlite3.DatabaseError as error:
        raise DataMigrationError(
            f"catch-up stopped: the rows of {shape.table} the dev file deleted since the "
            f"cutover's snapshot, which the target keeps, clash with its rows now ({error}); "
            "nothing was copied") from None


class CatchUpCopy(RowCopy):
    """The row copy of the rows a caught-up snapshot holds beyond the cutover's."""

    def __init__(self, connection: sa.Connection, source: sqlite3.Connection,
                 options: CopyOptions, copied_keys: str, since: dict[str, int]) -> None:
        super().__init__(connection, source, options, copied_keys)
        self.shapes = {shape.table: shape for shape in shapes(source)}
        self.since = since  # per table, the rows new or changed since the snapshot

    def rows_to_read(self, plan: TablePlan) -> int:
        return self.since.get(plan.name, 0)

    def run(self) -> CopyReport:
        self.begin()
        plans = self.plan()
        self.scan(plans)
        self.conclude()
        reset_sequences(self.connection, [p.name for p in plans])
        return self.report

    def converted_ranges(self, plan: TablePlan, result: TableResult,
                         rows: int) -> Iterator[Converted]:
        if not self.rows_to_read(plan):
            return
        shape = self.shapes[plan.name]
        since = self.source.execute(
            f"SELECT {', '.join(map(quote, plan.columns))} FROM main.{quote(plan.name)} "
            f"WHERE {quote(shape.key)} IN ({shape.keys_since()}) ORDER BY rowid")
        yield convert_rows(plan, since, self.reference_check(plan, result))

    def load(self, plan: TablePlan, lines: Iterator[bytes]) -> None:
        """Into a temporary table first; then the new rows' keys are recorded, and every row
        inserted or, when the target has its key, updated in place."""
        stage = quote(STAGE_PREFIX + plan.name)
        table, key = quote(plan.name), quote(plan.columns[plan.key_index])
        self.connection.execute(sa.text(
            f"CREATE TEMPORARY TABLE {stage} (LIKE {table}) ON COMMIT DROP"))
        self.copy_into(STAGE_PREFIX + plan.name, plan, lines)
        kind = plan.shape.columns[plan.key_index].kind
        recorded = f"int8range(s.{key}, s.{key}, '[]')::text" if kind in INTEGER_KEYS \
            else f"s.{key}::text"
        self.connection.execute(sa.text(
            f"INSERT INTO {quote(self.copied_keys)} (table_name, key) SELECT :table, {recorded} "
            f"FROM {stage} AS s WHERE NOT EXISTS (SELECT 1 FROM {table} AS t "
            f"WHERE t.{key} = s.{key})"), {"table": plan.name})
        listed = ", ".join(map(quote, plan.columns))
        updates = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in plan.columns)
        try:
            self.connection.execute(sa.text(
                f"INSERT INTO {table} ({listed}) SELECT {listed} FROM {stage} "
                f"ON CONFLICT ({key}) DO UPDATE SET {updates}"))
        except sa.exc.IntegrityError as error:
            # A unique value the target holds already (a row the dev file deleted and made
            # again), or a reference to a row the cutover rejected.
            raise DataMigrationError(
                f"catch-up stopped: the rows of {plan.name} written since the snapshot do not "
                f"fit the target: {driver_message(error)}; nothing was copied") from None


def copy_since(connection: sa.Connection, caught_up: Path, snapshot: Path,
               options: CopyOptions, copied_keys: str, since: dict[str, int]) -> CopyReport:
    """Copy the rows ``caught_up`` holds beyond ``snapshot`` (``since``: how many per
    table) into the target, converted in this process (they are few: no worker processes)."""
    with attached(caught_up, snapshot) as source:
        return CatchUpCopy(connection, source, replace(options, workers=1), copied_keys,
                           since).run()
