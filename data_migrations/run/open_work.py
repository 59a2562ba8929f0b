"""What a revision has changed in its open transaction, so that a helper that commits on its
own never follows it.

Why: each revision is one transaction, and the version row moves in it, so a revision that
fails leaves nothing and runs again from the start. A helper that must commit on its own (an
index built ``CONCURRENTLY``, a batched backfill) commits the revision's transaction before
it runs. If that helper then fails (a cancelled build, a batch out of lock retries, a kill),
what the revision changed before it stays committed while the version does not move, and the
re-run stops at that change (``DuplicateColumn``). GitLab asks the same of its migrations
without a DDL transaction: they hold only work that can run again. So such a helper
refuses, before anything is committed, to follow a change of its own revision: that change
goes into a revision of its own, before it. What a revision does after its last such helper
is safe: it runs in a new transaction with the version row, and commits with it or not at
all.

How: a listener on the migration's connection keeps every statement since the revision's
transaction began that is neither a read (``SELECT``, ``SHOW``, ``SET``) nor written to run
again (``IF NOT EXISTS``); the lock retry (lock_retry.py) starts it for each revision, and
``data_migrations.online.run`` asks it before an autocommit block. ``make lint`` checks the
same rule in each revision's rendered SQL (``changes`` decides for both).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from alembic.script import Script

from data_migrations.run.errors import DataMigrationError
from data_migrations.run.revision_error import revision_file, shortened

INFO_KEY = "cutover.open_work"
READS = ("select", "show", "set", "reset", "begin", "commit", "rollback", "--")
RERUNNABLE = re.compile(r"\bIF\s+(NOT\s+)?EXISTS\b", re.IGNORECASE)


def changes(statement: str) -> bool:
    """Whether a statement changes the database in a way a second run would stop at:
    anything but a read or a setting, and not written to run again (``IF NOT EXISTS``,
    ``IF EXISTS``: ``op.add_column(..., if_not_exists=True)``)."""
    words = statement.lstrip().lower()
    return bool(words) and not words.startswith(READS) and not RERUNNABLE.search(statement)


@dataclass
class OpenWork:
    """The statements that changed something since the current revision's transaction
    began."""

    revision: Script | None = None
    statements: list[str] = field(default_factory=list)

    def seen(self, conn: sa.Connection, cursor: Any, statement: str, *rest: Any) -> None:
        if self.revision is not None and changes(statement):
            self.statements.append(statement)


def track(connection: sa.Connection) -> None:
    """Keep, from now on, what each revision run on ``connection`` changes."""
    if INFO_KEY not in connection.info:
        work = OpenWork()
        connection.info[INFO_KEY] = work
        sa.event.listen(connection, "before_cursor_execute", work.seen)


def begin(connection: sa.Connection, revision: Script | None) -> None:
    """A transaction of ``revision`` begins (None: outside any revision)."""
    work = connection.info.get(INFO_KEY)
    if work is not None:
        work.revision = revision
        work.statements.clear()


def committed(connection: sa.Connection) -> None:
    """The revision's transaction committed (an autocommit block ended): a new one begins."""
    work = connection.info.get(INFO_KEY)
    if work is not None:
        work.statements.clear()


def refuse_commit(connection: sa.Connection) -> None:
    """Before a helper commits the revision's transaction: refuse when the revision changed
    something in it, so that nothing is committed."""
    work = connection.info.get(INFO_KEY)
    if work is None or work.revision is None or not work.statements:
        return
    raise DataMigrationError(
        f"{revision_file(work.revision)}: a helper that commits on its own (an index built "
        "CONCURRENTLY, a batched backfill) follows this revision's own change "
        f"`{shortened(work.statements[0])}`; if the helper failed, that change would stay "
        "committed and the revision could not run again: move it into a revision of its own "
        "before this one, after the helper, or write it to run again (if_not_exists=True); "
        "nothing was committed")
