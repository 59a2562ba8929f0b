"""A column's type changed without rewriting the live table under its lock.

``ALTER COLUMN … TYPE`` rewrites the whole table under ACCESS EXCLUSIVE: every read and
write of the app waits for the rewrite. Instead, in two revisions with app deploys between
them (GitLab's ``change_column_type_concurrently`` and
``cleanup_concurrent_column_type_change``):

1. expand, ``change_column_type_concurrently``: a new column ``<column>_for_type_change``
   of the new type, kept equal to the old one by a trigger on every insert and update,
   filled in committed batches (data_migrations/online/backfill.py), then given a copy of
   every index (``CONCURRENTLY``) and foreign key (``NOT VALID``) the old column carries,
   and a ``NOT NULL`` check if the old column is ``NOT NULL``.
2. contract, ``cleanup_concurrent_column_type_change``: the copies validated, then in one
   short transaction the two columns swap names, each index and key takes its original's
   name, the default and ``NOT NULL`` move over, and the old column is dropped. The app
   names the column as before throughout; it reads the new type from then on.

PostgreSQL drops a column's indexes and constraints with it without a word: so the
contract refuses, naming them, while any of them has no copy, and the expand refuses up
front what it cannot copy (data_migrations/online/column_carries.py). Each step runs
again after an interruption: the statements that commit on their own are written to run
again, the backfill resumes, the swap is one transaction. Each has its downgrade:
``undo_change_column_type_concurrently`` drops the new column; the contract's,
``undo_cleanup_concurrent_column_type_change``, is the same expand in the other direction
(``back``) and the same swap, so the database is as after step 1 again.

    from data_migrations.online.column_type import (ColumnTypeChange, ...)

    COST = ColumnTypeChange(name="0008_audit_logs_cost", table="audit_logs", column="cost",
                            old_type="numeric(12,6)", new_type="numeric(18,6)")
    0008: change_column_type_concurrently(COST)      downgrade: undo_change_column_type_…
    0009: cleanup_concurrent_column_type_change(COST)   downgrade: undo_cleanup_…

With ``--sql`` nothing is read: what depends on the catalog (the copies, the renames of
indexes and keys, the default, ``NOT NULL``) is a comment that says what will run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from alembic import op

from data_migrations.online import column_carries
from data_migrations.online.backfill import (
    Backfill,
    backfill_in_batches_by_any_key,
    forget_backfill,
)
from data_migrations.online.column_swap import Swap, committed_with_lock_timeout
from data_migrations.online.constraints import add_check_constraint, identifier, not_null_check
from data_migrations.online.indexes import INVALID_INDEX
from data_migrations.online.lint import waive
from data_migrations.online.run import is_dry_run, outside_transaction, skipped_in_dry_run
from data_migrations.run.errors import DataMigrationError
from data_migrations.run.sql import quote

log = logging.getLogger("cutover.online")
NOT_NULL = sa.text("SELECT attnotnull FROM pg_attribute WHERE attrelid = to_regclass(:table) "
                   "AND attname = :column AND NOT attisdropped")


@dataclass(frozen=True)
class ColumnTypeChange:
    """One type change. ``name`` keys its backfills' cursors (unique, never reused);
    ``using`` turns an old value into a new one and ``back`` a new one into an old one (SQL
    over the row's columns; by default a cast); ``key`` is the table's unique key the
    backfill walks (any key with an order, a uuid too)."""

    name: str
    table: str
    column: str
    old_type: str
    new_type: str
    using: str | None = None
    back: str | None = None
    key: str = "id"
    batch_size: int = 1000
    pause_seconds: float = 0.05

    @property
    def temporary(self) -> str:
        return f"{self.column[:46]}_for_type_change"

    def forward(self) -> Direction:
        return Direction(self, self.new_type, self.using or f"{identifier(self.column)}::"
                         f"{self.new_type}", self.name)

    def backward(self) -> Direction:
        return Direction(self, self.old_type, self.back or f"{identifier(self.column)}::"
                         f"{self.old_type}", f"{self.name}_back")


@dataclass(frozen=True)
class Direction:
    """The temporary column of ``type``, filled from the column by ``expression``."""

    change: ColumnTypeChange
    type: str
    expression: str
    backfill_name: str

    @property
    def function(self) -> str:
        return f"{self.change.table[:30]}_{self.change.column[:20]}_type_change"

    @property
    def backfill(self) -> Backfill:
        change, target = self.change, identifier(self.change.temporary)
        return Backfill(name=self.backfill_name, table=change.table,
                        set=f"{target} = {self.expression}",
                        where=f"{target} IS DISTINCT FROM ({self.expression})",
                        key=change.key, batch_size=change.batch_size,
                        pause_seconds=change.pause_seconds)

    def trigger_sql(self) -> list[str]:
        """The function and the trigger that keep the temporary column equal to what
        ``expression`` makes of the row, on every insert and update; both written to run
        again. The expression reads the row's columns by name, as in the backfill."""
        table, target = identifier(self.change.table), identifier(self.change.temporary)
        return [
            f"CREATE OR REPLACE FUNCTION {identifier(self.function)}() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$\nBEGIN\n    NEW.{target} := (SELECT {self.expression} "
            "FROM (SELECT NEW.*) AS row);\n    RETURN NEW;\nEND\n$$",
            f"CREATE OR REPLACE TRIGGER {identifier(self.function)} BEFORE INSERT OR UPDATE ON "
            f"{table} FOR EACH ROW EXECUTE FUNCTION {identifier(self.function)}()"]


    def drop_trigger(self) -> None:
        function = identifier(self.function)
        op.execute(f"DROP TRIGGER IF EXISTS {function} ON {identifier(self.change.table)}")
        waive("ban-drop-function", reason="the type change's own trigger function, which "
              "nothing else calls")
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")


def change_column_type_concurrently(change: ColumnTypeChange) -> None:
    """The expand revision's upgrade (its statements commit on their own: nothing of the
    revision's own before it)."""
    _expand(change.forward())


def undo_change_column_type_concurrently(change: ColumnTypeChange) -> None:
    """The expand revision's downgrade: the trigger, its function and the new column (with
    the copies of the indexes and keys on it) dropped, the backfill forgotten."""
    direction = change.forward()
    direction.drop_trigger()
    waive("ban-drop-column", reason=f"the downgrade of the expand step: {change.temporary} "
          f"holds only copies of {change.column}'s values")
    op.drop_column(change.table, change.temporary, if_exists=True)
    forget_backfill(direction.backfill)


def cleanup_concurrent_column_type_change(change: ColumnTypeChange) -> None:
    """The contract revision's upgrade: the swap, then the old column dropped. It refuses
    while the expand is unfinished or something the old column carries has no copy."""
    if _skipped(change, "the columns are not swapped"):
        return
    forward = change.forward()
    Swap(change.table, change.column, change.temporary, forward.backfill_name).run()
    forward.drop_trigger()
    waive("ban-drop-column", reason=f"the contract step: {change.column} is the new column "
          f"now, with a copy of each index and key of the old one, which this drops")
    op.drop_column(change.table, change.temporary)
    forget_backfill(change.backward().backfill)  # a later downgrade backfills from the start


def undo_cleanup_concurrent_column_type_change(change: ColumnTypeChange) -> None:
    """The contract revision's downgrade: the old type back in a temporary column (the
    expand, the other way), the swap, and the trigger as after the expand."""
    _expand(change.backward())
    if _skipped(change, "the columns are not swapped back"):
        return
    Swap(change.table, change.column, change.temporary, change.backward().backfill_name).run()
    for statement in change.forward().trigger_sql():
        op.execute(statement)


def _expand(direction: Direction) -> None:
    change = direction.change
    if skipped_in_dry_run(f"the type change {change.name} is not prepared",
                          "its statements commit on their own"):
        return
    carried = _carried(change)
    with committed_with_lock_timeout():
        op.execute(f"ALTER TABLE {identifier(change.table)} ADD COLUMN IF NOT EXISTS "
                   f"{identifier(change.temporary)} {direction.type}")
        for statement in direction.trigger_sql():
            op.execute(statement)
    backfill_in_batches_by_any_key(direction.backfill)
    _copy_indexes(change, carried)
    _copy_keys(change, carried)


def _carried(change: ColumnTypeChange) -> column_carries.Carried | None:
    """Online: what the column carries; refused, before anything is written, when any of it
    cannot be copied. None with ``--sql``."""
    if op.get_context().as_sql:
        return None
    carried = column_carries.carried(op.get_bind(), change.table, change.column,
                                     change.temporary, {not_null_check(change.table,
                                                                       change.temporary)})
    if carried.refused:
        raise DataMigrationError(
            f"{change.table}.{change.column}: the type change cannot carry "
            f"{', '.join(carried.refused)} over to the new column (a primary key, a unique or "
            "check constraint, an expression, a view or another table's key on it); nothing "
            "was changed; change those by hand in revisions of their own first")
    return carried


def _copy_indexes(change: ColumnTypeChange, carried: column_carries.Carried | None) -> None:
    context = op.get_context()
    if carried is None:
        context.impl.static_output(
            f"-- Each index on {change.table}.{change.column} (read from the catalog online): "
            f"a copy on {change.temporary}, CREATE INDEX CONCURRENTLY IF NOT EXISTS "
            "<index>_tc, after dropping an INVALID leftover")
        return
    for index in carried.indexes:
        with outside_transaction():
            left = op.get_bind().execute(INVALID_INDEX, {"name": index.copy, "schema": None})
            if left.first() is not None:
                log.info("Index %s: an earlier attempt left it INVALID; dropping it to build "
                         "it again", index.copy)
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {identifier(index.copy)}")
            op.execute(index.create)


def _copy_keys(change: ColumnTypeChange, carried: column_carries.Carried | None) -> None:
    """The foreign keys ``NOT VALID`` (the contract validates them), and the ``NOT NULL``
    check, in the transaction after the last commit."""
    context = op.get_context()
    check = not_null_check(change.table, change.temporary)
    if carried is None:
        context.impl.static_output(
            f"-- Each foreign key on {change.table}.{change.column}: a copy on "
            f"{change.temporary} NOT VALID, <key>_tc; if {change.column} is NOT NULL, "
            f"{check} CHECK ({change.temporary} IS NOT NULL) NOT VALID")
        return
    present = {name for (name,) in op.get_bind().execute(sa.text(
        "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(:table)"),
        {"table": quote(change.table)})}
    for key in carried.foreign_keys:
        if key.copy not in present:
            op.execute(key.create)
    not_null = op.get_bind().execute(NOT_NULL, {"table": quote(change.table),
                                                "column": change.column}).scalar()
    if not_null:
        add_check_constraint(check, change.table, f"{identifier(change.temporary)} IS NOT NULL")


def _skipped(change: ColumnTypeChange, what: str) -> bool:
    """In the plan, where the expand before it was skipped, there is nothing to swap."""
    if op.get_context().as_sql or not is_dry_run():
        return False
    present = op.get_bind().execute(sa.text(
        "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(:table) AND attname = :column "
        "AND NOT attisdropped"), {"table": quote(change.table), "column": change.temporary})
    if present.first() is not None:
        return False
    log.info("Dry run: type change %s: %s (the expand before it was skipped)", change.name,
             what)
    return True
