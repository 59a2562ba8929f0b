"""Constraints added to a live table without holding its writes for a scan.

Adding a foreign key or a check scans the whole table to prove every row meets it, under a
lock that holds the app's writes for as long as the scan takes. So it is done in two
revisions: the first adds the constraint ``NOT VALID`` (a brief lock, no scan: PostgreSQL
enforces it from then on for new and changed rows), a later one ``VALIDATE``s it (a scan
under SHARE UPDATE EXCLUSIVE, which lets the app read and write meanwhile). ``NOT NULL``
goes through a check the same way: ``CHECK (col IS NOT NULL) NOT VALID``, validated, then
``SET NOT NULL``, which PostgreSQL 12+ proves from the valid check without a scan, and the
check is dropped. A unique constraint is an index built ``CONCURRENTLY`` and attached
(``ADD CONSTRAINT … UNIQUE USING INDEX``).

    from data_migrations.online.constraints import (add_foreign_key, drop_constraint,
                                                     validate_constraint)

    0005:  add_foreign_key("fk_tasks_reviewer_id_users", "tasks", ["reviewer_id"],
                           "users", ["id"])                  # downgrade: drop_constraint(...)
    0006:  validate_constraint("fk_tasks_reviewer_id_users", "tasks")   # downgrade: nothing

A name is used exactly as written (``conv()``, as ``op.f()`` does): the models' naming
convention never turns ``ck_audit_logs_cost_nonnegative`` into
``ck_audit_logs_ck_audit_logs_cost_nonnegative``. Each helper runs again after an
interruption: online it reads the catalog and skips what is there already; with ``--sql``
it reads nothing and renders the statements as they will run. A database error (a row that
breaks the constraint, a duplicate) is the run's one ``FAILED:`` line
(data_migrations/run/revision_error.py), with an example row and the query for the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.sql.elements import conv

from data_migrations.online.indexes import create_index_concurrently
from data_migrations.online.lint import waive
from data_migrations.online.run import is_dry_run, outside_transaction
from data_migrations.run.errors import DataMigrationError
from data_migrations.run.sql import quote

log = logging.getLogger("cutover.online")

CONSTRAINT = sa.text(
    "SELECT convalidated FROM pg_constraint WHERE conrelid = to_regclass(:table) "
    "AND conname = :name")
NOT_NULL = sa.text(
    "SELECT attnotnull FROM pg_attribute WHERE attrelid = to_regclass(:table) "
    "AND attname = :column AND NOT attisdropped")


def add_foreign_key(name: str, table: str, columns: Sequence[str], referred_table: str,
                    referred_columns: Sequence[str], *, ondelete: str | None = None,
                    onupdate: str | None = None) -> None:
    """``ADD CONSTRAINT name FOREIGN KEY … NOT VALID``; ``validate_constraint`` it in a later
    revision. The downgrade: ``drop_constraint``."""
    if _present(name, table):
        return
    op.create_foreign_key(conv(name), table, referred_table, list(columns),
                          list(referred_columns), ondelete=ondelete, onupdate=onupdate,
                          postgresql_not_valid=True)


def add_check_constraint(name: str, table: str, condition: str) -> None:
    """``ADD CONSTRAINT name CHECK (condition) NOT VALID``; ``validate_constraint`` it in a
    later revision. The downgrade: ``drop_constraint``."""
    if not _present(name, table):
        op.create_check_constraint(conv(name), table, condition, postgresql_not_valid=True)


def validate_constraint(name: str, table: str) -> None:
    """``VALIDATE CONSTRAINT``: the scan, while the app reads and writes. Valid already: a
    no-op of PostgreSQL's own. Its revision's downgrade has nothing to undo."""
    op.execute(f"ALTER TABLE {identifier(table)} VALIDATE CONSTRAINT {identifier(name)}")


def drop_constraint(name: str, table: str) -> None:
    """From the downgrade of the revision that added it: ``DROP CONSTRAINT IF EXISTS``."""
    waive("ban-drop-constraint", reason=f"the downgrade of the revision that added {name}")
    op.drop_constraint(conv(name), table, if_exists=True)


def not_null_check(table: str, column: str) -> str:
    """The name of the check that stands for ``column``'s ``NOT NULL`` until it is set."""
    return f"ck_{table}_{column}_not_null"[:63]


def add_not_null_check(table: str, column: str) -> None:
    """``CHECK (column IS NOT NULL) NOT VALID``: from now on no row gets a null; validate it
    in a later revision (``validate_not_null_check``), then ``set_not_null``. The
    downgrade: ``drop_not_null_check``."""
    if _is_not_null(table, column):
        log.info("%s.%s: NOT NULL already; no check added", table, column)
        return
    add_check_constraint(not_null_check(table, column), table,
                         f"{identifier(column)} IS NOT NULL")


def validate_not_null_check(table: str, column: str) -> None:
    """``VALIDATE`` the check of ``add_not_null_check`` (the scan for nulls)."""
    validate_constraint(not_null_check(table, column), table)


def drop_not_null_check(table: str, column: str) -> None:
    """The downgrade of ``add_not_null_check``."""
    drop_constraint(not_null_check(table, column), table)


def set_not_null(table: str, column: str) -> None:
    """``SET NOT NULL`` without a scan under ACCESS EXCLUSIVE, then the check dropped. It
    refuses while the check of ``add_not_null_check`` is missing; a check not valid yet (a
    downgrade added it back) is validated first, while the app writes. The downgrade:
    ``drop_not_null``."""
    check = not_null_check(table, column)
    if not _is_not_null(table, column):
        if not op.get_context().as_sql and _validated(check, table) is None:
            raise DataMigrationError(
                f"{table}.{column}: SET NOT NULL would scan the table with its writes held "
                f"(no check {check}); add it first in a revision of its own "
                "(add_not_null_check), validate it in the next (validate_not_null_check), "
                "then run this")
        validate_constraint(check, table)
        op.alter_column(table, column, nullable=False)
    waive("ban-drop-constraint", reason=f"NOT NULL on {column} now holds what {check} did")
    op.drop_constraint(conv(check), table, if_exists=True)


def drop_not_null(table: str, column: str) -> None:
    """The downgrade of ``set_not_null``: the check back (``NOT VALID``; the next
    ``set_not_null`` validates it), then ``DROP NOT NULL``."""
    add_check_constraint(not_null_check(table, column), table,
                         f"{identifier(column)} IS NOT NULL")
    waive("ban-drop-not-null", reason=f"the downgrade of the revision that set {column} NOT "
          "NULL; the check stays in its place")
    op.alter_column(table, column, nullable=True)


def add_unique_constraint(name: str, table: str, columns: Sequence[str]) -> None:
    """``CREATE UNIQUE INDEX CONCURRENTLY name``, then ``ADD CONSTRAINT name UNIQUE USING
    INDEX name``. Duplicates stop it in one line with one duplicated value and the query for
    the rest, and the INVALID index the failed build left is dropped: nothing is left
    behind. The build commits on its own, so nothing of the revision's own may come before
    it. The downgrade: ``drop_constraint``."""
    if _validated(name, table) is not None:
        log.info("Constraint %s on %s: there already (an earlier run)", name, table)
        return
    try:
        create_index_concurrently(name, table, columns, unique=True)
    except sa.exc.IntegrityError:
        with outside_transaction():
            op.drop_index(name, table_name=table, postgresql_concurrently=True,
                          if_exists=True)
        raise
    if is_dry_run():  # the build was skipped: there is no index to attach
        log.info("Dry run: constraint %s is not attached (its index is not built)", name)
        return
    op.execute(f"ALTER TABLE {identifier(table)} ADD CONSTRAINT {identifier(name)} UNIQUE "
               f"USING INDEX {identifier(name)}")


def identifier(name: str) -> str:
    """An identifier as Alembic renders it: quoted only where it must be."""
    return op.get_context().dialect.identifier_preparer.quote(name)


def _validated(name: str, table: str) -> bool | None:
    """Online: whether ``name`` on ``table`` is valid; None when it is not there (and
    always with ``--sql``, which reads nothing)."""
    if op.get_context().as_sql:
        return None
    found = op.get_bind().execute(CONSTRAINT, {"table": quote(table), "name": name})
    return found.scalar()


def _present(name: str, table: str) -> bool:
    if _validated(name, table) is None:
        return False
    log.info("Constraint %s on %s: there already (an earlier run); not added again",
             name, table)
    return True


def _is_not_null(table: str, column: str) -> bool:
    if op.get_context().as_sql:
        return False
    found = op.get_bind().execute(NOT_NULL, {"table": quote(table), "column": column})
    return bool(found.scalar())
