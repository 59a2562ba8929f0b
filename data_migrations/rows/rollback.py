"""The rows step's downgrade: delete exactly the rows the copy recorded
(``cutover_copied_keys``), children first, and refuse when that would reach rows the app
wrote since the cutover (a foreign key's ON DELETE would delete or change them) unless
``force`` says so.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from data_migrations.rows import source as src
from data_migrations.rows.row_copy import INTEGER_KEYS
from data_migrations.rows.target import reset_sequences
from data_migrations.rows.values import column_type
from data_migrations.run.errors import DataMigrationError

log = logging.getLogger("cutover.rows")


def remove_copied_rows(connection: sa.Connection, copied_keys: str, force: bool) -> None:
    """Delete exactly the rows the copy wrote, children first, then reset the sequences.

    Refuses when a table also holds rows the copy did not write (the app has been used
    since) unless ``force``, which still deletes only the copied rows. Even with ``force``
    it refuses when deleting the copied rows would reach such a row through its foreign
    key (ON DELETE CASCADE deleting it, SET NULL changing it), and lists those rows."""
    keys = src.quote(copied_keys)
    names = {n for (n,) in connection.execute(sa.text(f"SELECT DISTINCT table_name FROM {keys}"))}
    metadata = sa.MetaData()
    metadata.reflect(connection, only=lambda name, _: name in names)
    tables = list(reversed(metadata.sorted_tables))
    not_copied = {t.name: n for t in tables if (n := _rows_not_copied(connection, t, keys))}
    if not_copied:
        refuse_reaching_app_rows(connection, metadata.sorted_tables, keys)
    if not_copied and not force:
        listed = ", ".join(f"{name} {count:,}" for name, count in not_copied.items())
        raise DataMigrationError(
            f"the tables hold rows that did not come from the source ({listed}): the app has "
            "been used since the cutover. Nothing was removed. Run with -x force=true to "
            "remove only the copied rows and keep those.")
    for target in tables:
        deleted = connection.execute(sa.text(
            f"DELETE FROM {src.quote(target.name)} AS t WHERE {_copied(target, keys)}"),
            {"table": target.name}).rowcount
        log.info(f"  {target.name}: removed {deleted:,} copied rows")
    reset_sequences(connection, [t.name for t in tables])


def _copied(target: sa.Table, keys: str, alias: str = "t", table_param: str = "table") -> str:
    """The condition that a row ``alias`` of the table is one the copy wrote, by its key:
    in one of the recorded runs of an integer key, or among the recorded keys; the
    parameter ``table_param`` holds the table's name."""
    column = next(iter(target.primary_key.columns))
    key = f"{alias}.{src.quote(column.name)}"
    if column_type(column).kind in INTEGER_KEYS:
        # One multirange of all the runs, built once: each row is then a binary search.
        return (f"{key}::bigint <@ (SELECT coalesce(range_agg(k.key::int8range), '{{}}') "
                f"FROM {keys} AS k WHERE k.table_name = :{table_param})")
    return (f"EXISTS (SELECT 1 FROM {keys} AS k WHERE k.table_name = :{table_param} "
            f"AND k.key = {key}::text)")


# Rows of the app a refused downgrade lists before "... and N more": one screen.
APP_ROWS_LISTED = 25
_ON_DELETE_EFFECTS = {"CASCADE": "would be deleted", "SET NULL": "would be set to NULL",
                      "SET DEFAULT": "would be set to its default"}


@dataclass(frozen=True)
class AppReference:
    """A row the copy did not write whose foreign key points at a copied row."""

    table: str
    key: object
    column: str
    parent: str
    parent_key: object
    on_delete: str

    def __str__(self) -> str:
        effect = _ON_DELETE_EFFECTS.get(self.on_delete, "would block the delete")
        subject = "the row" if self.on_delete == "CASCADE" else self.column
        return (f"{self.table} key={self.key!r} column {self.column} references copied "
                f"{self.parent} {self.parent_key!r}: {subject} {effect} "
                f"(ON DELETE {self.on_delete})")


def refuse_reaching_app_rows(connection: sa.Connection, tables: Sequence[sa.Table],
                             keys: str) -> None:
    """Stop, whatever ``force`` says, when deleting the copied rows would delete or change
    rows the copy did not write. Rows reached only through such a row are reached through
    it: listing the direct ones names every row to deal with first."""
    found: list[AppReference] = []
    total = 0
    for child in tables:
        for fk in child.foreign_key_constraints:
            count, listed = _app_references(connection, child, fk, keys,
                                            APP_ROWS_LISTED - len(found))
            total += count
            found += listed
    if total:
        more = f"\n  ... and {total - len(found):,} more" if total > len(found) else ""
        raise DataMigrationError(
            f"removing the copied rows would delete or change {total:,} rows the app wrote "
            "since the cutover, so nothing was removed; -x force=true does not remove them "
            "either, as it never touches a row the copy did not write:\n"
            + "\n".join(f"  - {r}" for r in found) + more
            + "\nDelete those rows, or point them at rows of the app's own, first.")


def _app_references(connection: sa.Connection, child: sa.Table,
                    fk: sa.ForeignKeyConstraint, keys: str,
                    limit: int) -> tuple[int, list[AppReference]]:
    """How many rows of ``child`` the copy did not write point through ``fk`` at a copied
    row, and the first ``limit`` of them in key order."""
    [(column, referred)] = zip(fk.columns, fk.elements, strict=True)
    parent = referred.column.table
    key = next(iter(child.primary_key.columns)).name
    rows = connection.execute(sa.text(
        f"SELECT t.{src.quote(key)}, t.{src.quote(column.name)}, count(*) OVER () "
        f"FROM {src.quote(child.name)} AS t JOIN {src.quote(parent.name)} AS p "
        f"ON p.{src.quote(referred.column.name)} = t.{src.quote(column.name)} "
        f"WHERE NOT ({_copied(child, keys)}) AND {_copied(parent, keys, 'p', 'parent')} "
        f"ORDER BY 1 LIMIT :limit"),
        {"table": child.name, "parent": parent.name, "limit": max(limit, 1)}).all()
    on_delete = (fk.ondelete or "NO ACTION").upper()
    listed = [AppReference(child.name, _plain(k), column.name, parent.name, _plain(value),
                           on_delete) for k, value, _ in rows[:max(limit, 0)]]
    return (rows[0][2] if rows else 0), listed


def _rows_not_copied(connection: sa.Connection, target: sa.Table, keys: str) -> int:
    return connection.execute(sa.text(
        f"SELECT count(*) FROM {src.quote(target.name)} AS t WHERE NOT ({_copied(target, keys)})"),
        {"table": target.name}).scalar_one()


def _plain(key: object) -> object:
    """A key as the source spells it: a task id as its text, not a UUID object."""
    return str(key) if isinstance(key, uuid.UUID) else key


def offline_downgrade_comment() -> str:
    return ("-- 0002 downgrade deletes the rows listed in cutover_copied_keys, children first,\n"
            "-- after checking online that no other rows exist; it runs only online.\n"
            "DROP TABLE IF EXISTS cutover_copied_keys;\n\n")
