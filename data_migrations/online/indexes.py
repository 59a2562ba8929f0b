"""Indexes built and dropped without blocking the app's writes.

``CREATE INDEX CONCURRENTLY`` cannot run inside a transaction, so both helpers run in
Alembic's ``autocommit_block()`` (``run.outside_transaction``): the revision's transaction is
committed before it, and a new one begins after it, under the revision's lock timeout again
(with ``transaction_per_migration``, the version row then moves in that new one). A build
that was interrupted (a kill, a cancelled statement, a unique index that met a duplicate)
leaves an INVALID index behind that PostgreSQL still maintains on every
write but never uses; ``IF NOT EXISTS`` would take it for done. So a retry first drops an
invalid index of that name, then builds it again. In ``--sql`` mode the statements are
rendered as they will run, without the catalog query. The plan (``-x dry_run=true``), one
transaction rolled back, skips them with a line that says so.

No lock timeout for the index statements themselves: the revision's ``SET LOCAL
lock_timeout`` ends as ``autocommit_block()`` commits, and the helpers set none of their own
(unlike the backfill's batches), on purpose.
A lock timeout exists so that the app's statements do not queue behind a migration that
waits for a lock. ``CREATE``/``DROP INDEX CONCURRENTLY`` take SHARE UPDATE EXCLUSIVE on the
table, which conflicts with none of the app's reads or writes (ACCESS SHARE, ROW SHARE, ROW
EXCLUSIVE), so no app statement ever queues behind them; what they wait for is the end of
the transactions already running (before each scan, and for old snapshots), which blocks
only the build itself. A timeout there would stall no one less, and would only throw away a
long build and leave the INVALID index behind (strong_migrations issue #233 is exactly
that); GitLab likewise runs its lock retries only on migrations inside a transaction, not on
its concurrent index helpers. A role's or database's own ``lock_timeout`` still applies.

    from data_migrations.online.indexes import create_index_concurrently

    def upgrade() -> None:
        create_index_concurrently("ix_tasks_priority", "tasks", ["priority"])

    def downgrade() -> None:
        drop_index_concurrently("ix_tasks_priority", "tasks")
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from data_migrations.online.run import outside_transaction, skipped_in_dry_run

log = logging.getLogger("cutover.online")
CONCURRENTLY_OUTSIDE = "CONCURRENTLY runs outside the transaction"

INVALID_INDEX = sa.text(
    "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE c.relname = :name AND NOT i.indisvalid "
    "AND c.relnamespace = coalesce(to_regnamespace(:schema), "
    "(SELECT oid FROM pg_namespace WHERE nspname = current_schema()))")


def create_index_concurrently(name: str, table: str, columns: Sequence[str], *,
                              unique: bool = False, where: str | None = None,
                              schema: str | None = None) -> None:
    """``CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS``, after dropping an invalid
    leftover of an interrupted attempt; ``where`` makes it a partial index."""
    if skipped_in_dry_run(f"index {name} is not built", CONCURRENTLY_OUTSIDE):
        return
    context = op.get_context()
    with outside_transaction():
        if not context.as_sql and _is_invalid(name, schema):
            log.info("Index %s: an earlier attempt left it INVALID; dropping it to build "
                     "it again", name)
            op.drop_index(name, table_name=table, schema=schema,
                          postgresql_concurrently=True, if_exists=True)
        op.create_index(name, table, list(columns), unique=unique, schema=schema,
                        postgresql_concurrently=True, if_not_exists=True,
                        postgresql_where=sa.text(where) if where else None)


def drop_index_concurrently(name: str, table: str, *, schema: str | None = None) -> None:
    """``DROP INDEX CONCURRENTLY IF EXISTS``: valid or not, the index is gone after it."""
    if skipped_in_dry_run(f"index {name} is not dropped", CONCURRENTLY_OUTSIDE):
        return
    with outside_transaction():
        op.drop_index(name, table_name=table, schema=schema, postgresql_concurrently=True,
                      if_exists=True)


def _is_invalid(name: str, schema: str | None) -> bool:
    found = op.get_bind().execute(INVALID_INDEX, {"name": name, "schema": schema})
    return found.first() is not None
