"""A database error raised inside a revision, told in one line with where the database stands.

A revision that meets an error of the database (a unique index over duplicate values, a
``VALIDATE`` of a constraint that is not there, ``SET NOT NULL`` over nulls, a cancelled
statement) fails its step. What the operator needs then is not the driver's traceback but:
which revision file, which statement, what the database said, what the database now holds
(its version, an INVALID index a cancelled ``CONCURRENTLY`` build left, a backfill's
cursor) and, where there is one, the obvious next step (one duplicated value, and the query
that finds the rest). ``RevisionError`` carries what the error said; the run reads where the
database stands after the step was rolled back (``standing``) and writes the line.

A lost connection is not one of these (data_migrations/run/lost_connection.py tells it),
nor a lock not granted in time (lock_retry retries it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic.script import Script

from data_migrations.run.errors import DataMigrationError
from data_migrations.run.failure import driver_message
from data_migrations.run.sql import quote

STATEMENT_SHOWN = 80  # characters of the failed statement in the line
# The batched backfill's cursors (data_migrations/online/backfill.py), one row per backfill.
BACKFILL_CURSORS = "cutover_backfills"

INVALID_INDEXES = sa.text("""
    SELECT c.relname, t.relname FROM pg_index AS i
    JOIN pg_class AS c ON c.oid = i.indexrelid
    JOIN pg_class AS t ON t.oid = i.indrelid
    WHERE NOT i.indisvalid AND pg_table_is_visible(c.oid)
    ORDER BY c.relname""")
UNFINISHED_BACKFILLS = sa.text(
    f"SELECT name, coalesce(last_key, '(none yet)') FROM {BACKFILL_CURSORS} "
    "WHERE finished_at IS NULL ORDER BY name")
KEY_DETAIL = re.compile(r"Key \((?P<columns>.+?)\)=\((?P<values>.*)\)")


def revision_file(revision: Script) -> str:
    """The revision's file as the operator finds it: relative to the working folder when it
    lies under it (``alembic/versions/0005_….py``)."""
    path = Path(revision.path).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def shortened(statement: str) -> str:
    text = " ".join(statement.split())
    return text if len(text) <= STATEMENT_SHOWN else text[:STATEMENT_SHOWN - 1] + "…"


@dataclass(frozen=True)
class Diagnostics:
    """What PostgreSQL said about an error: SQLSTATE, message, detail, and the table,
    column and constraint it names (any may be empty)."""

    sqlstate: str
    message: str
    detail: str
    table: str
    column: str
    constraint: str

    @classmethod
    def of(cls, error: sa.exc.DBAPIError) -> Diagnostics:
        orig = error.orig
        diag = getattr(orig, "diag", None)

        def field(name: str) -> str:
            return (getattr(diag, name, None) or "").strip()

        message = field("message_primary") or driver_message(error)
        return cls(getattr(orig, "pgcode", None) or "", message, field("message_detail"),
                   field("table_name"), field("column_name"), field("constraint_name"))

    def next_step(self) -> str:
        """What to do about it, where it is plain from the error; else ''."""
        key = KEY_DETAIL.search(self.detail)
        table = quote(self.table) if self.table else "<table>"
        if self.sqlstate == "23505" and key:
            columns = key["columns"]
            return (f"one duplicated value: ({columns})=({key['values']}); the rest: SELECT "
                    f"{columns}, count(*) FROM {table} GROUP BY {columns} HAVING count(*) > 1;"
                    " remove the duplicates, then run again")
        if self.sqlstate == "23503" and key:
            return (f"one row that references nothing: ({key['columns']})=({key['values']}) "
                    f"in {table}; fix or remove such rows, then run again")
        if self.sqlstate == "23502":
            column = quote(self.column) if self.column else "<column>"
            return (f"the rows: SELECT count(*) FROM {table} WHERE {column} IS NULL; fill "
                    "them first (a batched backfill), then run again")
        if self.sqlstate == "23514":
            return (f"rows of {table} break the check; fix them (a batched backfill), then "
                    "run again")
        if self.sqlstate in ("42704", "42P01", "42703"):
            return ("compare the name in the revision with the database's (\\d in psql); "
                    "a name written in full is kept as it is only with op.f()")
        if self.sqlstate in ("42701", "42P07", "42710"):
            return ("it is in the database already, made by an earlier run or by hand; if "
                    "it is what this revision makes, drop it and run again")
        if self.sqlstate == "57014":
            return "a session cancelled it (pg_cancel_backend) or statement_timeout ended it; "\
                "run again"
        if self.sqlstate == "40P01":
            return "run again"
        return ""


class RevisionError(DataMigrationError):
    """A database error inside a revision's upgrade or downgrade, before the run knows where
    the database stands (``told`` writes the whole line)."""

    def __init__(self, revision: Script, upgrade: bool, error: sa.exc.DBAPIError) -> None:
        self.where = revision_file(revision) + ("" if upgrade else " (downgrade)")
        self.statement = shortened(str(error.statement or ""))
        self.diagnostics = Diagnostics.of(error)
        super().__init__(self.told("(where the database stands is not known)"))

    def told(self, standing: str) -> str:
        diag = self.diagnostics
        code = f" (SQLSTATE {diag.sqlstate})" if diag.sqlstate else ""
        step = diag.next_step()
        return (f"{self.where}: {diag.message}{code} in `{self.statement}`; rolled back, "
                f"{standing}{f'; {step}' if step else ''}")


class RevisionRefused(DataMigrationError):
    """A helper's refusal inside a revision (values it will not drop, duplicates a unique
    constraint cannot take): the line names the revision file and, like a database error,
    where the database stands once the step was rolled back."""

    def __init__(self, revision: Script, upgrade: bool, refusal: DataMigrationError) -> None:
        self.where = revision_file(revision) + ("" if upgrade else " (downgrade)")
        self.refusal = str(refusal)
        super().__init__(self.told("(where the database stands is not known)"))

    def told(self, standing: str) -> str:
        return f"{self.where}: {self.refusal}; rolled back, {standing}"


def standing(connection: sa.Connection) -> str:
    """Where the database stands: its version, and what a failed revision can leave behind
    outside its transaction (INVALID indexes, unfinished backfills)."""
    try:
        version = _version(connection)
        invalid = connection.execute(INVALID_INDEXES).all()
        backfills = _unfinished_backfills(connection)
        connection.rollback()
    except sa.exc.SQLAlchemyError as exc:
        return f"where the database stands could not be read ({exc.__class__.__name__})"
    left = [f"INVALID index {index} on {table} (the helper drops and builds it again on the "
            f"next run)" for index, table in invalid]
    left += [f"backfill {name} unfinished, last committed key {key} (the next run resumes "
             "after it)" for name, key in backfills]
    return f"the database is at {version}" + (f"; left behind: {', '.join(left)}" if left
                                              else "")


def _version(connection: sa.Connection) -> str:
    if connection.execute(sa.text("SELECT to_regclass('alembic_version')")).scalar_one() is None:
        return "base"
    versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
    return ", ".join(sorted(versions)) or "base"


def _unfinished_backfills(connection: sa.Connection) -> list[sa.Row]:
    present = connection.execute(sa.text(f"SELECT to_regclass('{BACKFILL_CURSORS}')"))
    if present.scalar_one() is None:
        return []
    return list(connection.execute(UNFINISHED_BACKFILLS).all())
