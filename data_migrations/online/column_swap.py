"""The swap at the heart of a type change (data_migrations/online/column_type.py): a column
and its temporary twin exchange names in one short transaction, and so do each index and
foreign key and its copy, so that what the app and the DBA know by name stays as it was.

Before anything is renamed it checks, online, what the swap relies on: the backfill has
finished, and every index and key the column carries has its copy on the twin (else the
drop after the swap would take it with the old column, silently); it validates the copied
keys and the ``NOT NULL`` check (scans under SHARE UPDATE EXCLUSIVE, while the app writes),
so the ``SET NOT NULL`` after the rename needs no scan. Each refusal is one line naming
what is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from alembic import op

from data_migrations.online import column_carries
from data_migrations.online.column_carries import copy_name, scratch_name
from data_migrations.online.constraints import identifier, not_null_check
from data_migrations.online.lint import waive
from data_migrations.online.run import lock_policy, outside_transaction
from data_migrations.run.errors import DataMigrationError
from data_migrations.run.revision_error import BACKFILL_CURSORS
from data_migrations.run.sql import quote

COLUMN = sa.text("""
    SELECT a.attnotnull, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute AS a
    LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = to_regclass(:table) AND a.attname = :column AND NOT a.attisdropped""")
CONSTRAINTS = sa.text("SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(:table)")
INDEXES = sa.text("SELECT c.relname FROM pg_index AS i JOIN pg_class AS c "
                  "ON c.oid = i.indexrelid WHERE i.indrelid = to_regclass(:table) "
                  "AND i.indisvalid")


@contextmanager
def committed_with_lock_timeout() -> Iterator[None]:
    """Statements that commit one by one (outside the revision's transaction), each waiting
    for its lock at most the run's lock timeout: a DDL statement that waits for its lock
    queues the app's statements behind it. One not granted in time fails the revision,
    which the run then retries as it retries any; what committed is written to run again."""
    policy = lock_policy()
    with outside_transaction():
        if not policy.lock_timeout:
            yield
            return
        op.execute(policy.set_session())
        try:
            yield
        finally:  # also after a failure: later work of the run (an index build) waits freely
            context = op.get_context()
            if context.as_sql or not op.get_bind().invalidated:
                op.execute("RESET lock_timeout")


@dataclass(frozen=True)
class Swap:
    """``column`` and ``twin`` of ``table`` exchange names; ``backfill`` is the name of the
    backfill that filled the twin."""

    table: str
    column: str
    twin: str
    backfill: str

    def run(self) -> None:
        check = not_null_check(self.table, self.twin)
        if op.get_context().as_sql:
            self._render_offline(check)
            return
        connection = op.get_bind()
        self._refuse_unfinished(connection)
        carried = column_carries.carried(connection, self.table, self.column, self.twin,
                                         {check})
        self._refuse_missing(connection, carried)
        table = identifier(self.table)
        for key in carried.foreign_keys:
            op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {identifier(key.copy)}")
        constraints = self._names(CONSTRAINTS)
        if check in constraints:
            op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {identifier(check)}")
        not_null, default = connection.execute(
            COLUMN, {"table": quote(self.table), "column": self.column}).one()
        self._rename_columns()
        for index in carried.indexes:
            self._exchange("ALTER INDEX {} RENAME TO {}", index.name)
        for key in carried.foreign_keys:
            self._exchange(f"ALTER TABLE {table} RENAME CONSTRAINT {{}} TO {{}}", key.name)
        if default is not None:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {identifier(self.column)} SET DEFAULT "
                       f"{default}")
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {identifier(self.twin)} DROP DEFAULT")
        if not_null:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {identifier(self.column)} SET NOT NULL")
            waive("ban-drop-constraint", reason=f"NOT NULL on {self.column} holds what "
                  f"{check} did")
            op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {identifier(check)}")
            waive("ban-drop-not-null", reason=f"{self.twin} is the column the app left")
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {identifier(self.twin)} DROP NOT NULL")

    def _rename_columns(self) -> None:
        scratch = scratch_name(self.column)
        table = identifier(self.table)
        for old, new in ((self.column, scratch), (self.twin, self.column),
                         (scratch, self.twin)):
            waive("renaming-column", reason=f"a swap in one transaction: the app's statements "
                  f"name {self.column} before and after it")
            op.execute(f"ALTER TABLE {table} RENAME COLUMN {identifier(old)} TO {identifier(new)}")

    @staticmethod
    def _exchange(template: str, name: str) -> None:
        """``name`` and its copy exchange names, through a third."""
        scratch, copy = scratch_name(name), copy_name(name)
        for old, new in ((name, scratch), (copy, name), (scratch, copy)):
            op.execute(template.format(identifier(old), identifier(new)))

    def _render_offline(self, check: str) -> None:
        op.get_context().impl.static_output(
            f"-- Swap of {self.table}.{self.column} and {self.twin} (online, read from the "
            f"catalog first: refused unless backfill {self.backfill} has finished and every "
            f"index and foreign key on {self.column} has its copy <name>_tc; the copied keys "
            f"and {check}, if any, VALIDATEd)")
        self._rename_columns()
        op.get_context().impl.static_output(
            f"-- Then each index and foreign key exchanges names with its copy, the default "
            f"moves to {self.column}, and if {self.column} was NOT NULL: SET NOT NULL (no "
            f"scan: {check} is valid), {check} dropped, DROP NOT NULL on {self.twin}")

    def _refuse_unfinished(self, connection: sa.Connection) -> None:
        finished = None
        if connection.execute(sa.text(f"SELECT to_regclass('{BACKFILL_CURSORS}')")).scalar():
            finished = connection.execute(sa.text(
                f"SELECT finished_at IS NOT NULL FROM {BACKFILL_CURSORS} WHERE name = :name"),
                {"name": self.backfill}).scalar()
        if not finished:
            raise DataMigrationError(
                f"{self.table}.{self.column}: the backfill {self.backfill} of {self.twin} has "
                "not finished; nothing was swapped; run the revision that fills it to its "
                "end first")

    def _refuse_missing(self, connection: sa.Connection,
                        carried: column_carries.Carried) -> None:
        present = self._names(CONSTRAINTS) | self._names(INDEXES)
        missing = [f"{c.kind} {c.name} (no copy {c.copy})" for c in carried.copies
                   if c.copy not in present] + carried.refused
        if missing:
            raise DataMigrationError(
                f"{self.table}.{self.column}: the old column would be dropped with "
                f"{', '.join(missing)}; nothing was swapped; run the expand revision again "
                "to copy them (or drop them in a revision of their own first)")

    def _names(self, query: sa.TextClause) -> set[str]:
        return set(op.get_bind().execute(query, {"table": quote(self.table)}).scalars())
