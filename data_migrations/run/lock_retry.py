"""Schema revisions on the live database: each waits for its locks at most ``LOCK_TIMEOUT``;
one whose lock is not granted in time is rolled back and run again after a pause.

Why: an ``ALTER TABLE`` waiting for its lock behind a long report query makes every app
statement on that table queue behind the ``ALTER`` — for as long as the report runs. Under
a lock timeout the app waits at most that long, then the revision gives way and tries again
(GitLab's ``with_lock_retries``, strong_migrations' lock timeout retries).

How: alembic/env.py passes Alembic's steps through ``LockRetry.steps``. Each revision first
runs ``SET LOCAL lock_timeout`` in its own transaction (``transaction_per_migration``), so
the setting ends with it. A lock not granted in time (SQLSTATE 55P03) ends the revision:
Alembic rolls its transaction back, and ``LockRetry.run`` runs the command's migrations
again from where the database is (the revisions before it are committed) after a pause
that doubles each time. While an attempt runs, a watcher on a second connection samples
the sessions that block it (``pg_blocking_pids``): at the failure the waiting statement is
gone, and with it the answer. ``--sql`` writes the same ``SET`` lines where they will run.

The cutover's data revisions (alembic.ini ``[cutover]``, ``first_data_revision`` to
``last_data_revision``) run with neither lock nor statement timeout: they run on the day
of the cutover on a fresh target while the app is stopped, so nobody queues behind them;
a timeout would throw away a long ``COPY`` (and a retry would redo it, with the uploads
of the files step outside any transaction).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext, RevisionStep
from alembic.script import ScriptDirectory

import settings
from data_migrations.run import drop_guard, open_work
from data_migrations.run.errors import DataMigrationError
from data_migrations.run.lost_connection import ConnectionLost, is_lost_connection
from data_migrations.run.revision_error import (
    RevisionError,
    RevisionRefused,
    revision_file,
    standing,
)
from settings import declared

log = logging.getLogger("cutover.locks")

# SQLSTATE lock_not_available: a lock not granted within lock_timeout. PostgreSQL rolls the
# statement back whole (the transaction too, unless a savepoint catches it).
LOCK_NOT_AVAILABLE = "55P03"
LONGEST_PAUSE = 10.0  # the pause between attempts grows to this and no further
QUERY_SHOWN = 80  # characters of a blocker's query in a message
SECTION = "cutover"

Steps = Callable[[tuple[str, ...], MigrationContext], Iterable[Any]]

# pg_blocking_pids() only while the migration waits for a lock: the function takes the
# lock manager's locks, which the PostgreSQL manual warns against calling often.
BLOCKERS = sa.text("""
    SELECT b.pid, coalesce(b.application_name, ''), coalesce(b.state, ''),
           extract(epoch FROM clock_timestamp() - coalesce(b.xact_start, b.query_start)),
           coalesce(b.query, '')
    FROM pg_stat_activity AS w
    CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS blocker(pid)
    JOIN pg_stat_activity AS b ON b.pid = blocker.pid
    WHERE w.pid = :pid AND w.wait_event_type = 'Lock'
    ORDER BY b.xact_start
""")


@dataclass(frozen=True)
class Policy:
    """How long a lock is waited for, and how often and after what pause the work that
    waited is tried again: LOCK_TIMEOUT, LOCK_RETRIES, LOCK_RETRY_BACKOFF."""

    lock_timeout: float  # seconds; 0 = none
    retries: int
    backoff: float  # seconds before the first retry

    @classmethod
    def of(cls, cutover: settings.Settings) -> Policy:
        return cls(cutover[declared.LOCK_TIMEOUT], cutover[declared.LOCK_RETRIES],
                   cutover[declared.LOCK_RETRY_BACKOFF])

    def pause(self, failed_attempt: int) -> float:
        return min(self.backoff * 2 ** (failed_attempt - 1), LONGEST_PAUSE)

    def retry_after(self, failed_attempt: int, failed: str, logger: logging.Logger) -> None:
        """Say that the attempt was rolled back and wait out the pause before the next one:
        the one schedule of a revision's attempts and a backfill batch's."""
        pause = self.pause(failed_attempt)
        logger.warning(f"{failed}; rolled back, retrying in {seconds(pause)}")
        time.sleep(pause)

    def set_local(self) -> str:
        """The statement that puts the rest of a transaction under this lock timeout."""
        return f"SET LOCAL {self.setting()}"

    def set_session(self) -> str:
        """The statement that puts the session under this lock timeout until a RESET."""
        return f"SET {self.setting()}"

    def setting(self) -> str:
        return f"lock_timeout = '{round(self.lock_timeout * 1000)}ms'"


def lock_not_available(exc: BaseException) -> bool:
    """Whether ``exc`` (from SQLAlchemy or straight from the driver) is SQLSTATE 55P03."""
    error = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    return getattr(error, "pgcode", None) == LOCK_NOT_AVAILABLE


@dataclass(frozen=True)
class Blocker:
    """A session that held up a migration's lock, as pg_stat_activity showed it."""

    pid: int
    application_name: str
    state: str
    seconds: float  # in its transaction
    query: str

    def __str__(self) -> str:
        query = " ".join(self.query.split())
        if len(query) > QUERY_SHOWN:
            query = query[:QUERY_SHOWN - 1] + "…"
        name = self.application_name or "no application_name"
        return (f"pid {self.pid} ({name}, {self.state or 'unknown state'} for "
                f"{self.seconds:.0f}s: {query or '?'})")


class LockNotGranted(DataMigrationError):
    """One attempt of a revision did not get its lock in time."""

    def __init__(self, step: RevisionStep, attempt: int, policy: Policy,
                 blockers: tuple[Blocker, ...]) -> None:
        self.label = f"{step.revision.revision} {step.revision.doc}".strip()
        self.at = ", ".join(step.from_revisions) or "base"
        self.attempt = attempt
        self.last = attempt > policy.retries
        self.timeout = policy.lock_timeout
        self.blockers = blockers
        super().__init__(f"{self.label}: lock not granted within {seconds(self.timeout)} "
                         f"(attempt {attempt} of {policy.retries + 1}); {self.blocked_by()}")

    def blocked_by(self) -> str:
        if not self.blockers:
            return "the blocking session ended before it could be seen"
        return "blocked by " + "; ".join(str(b) for b in self.blockers)


def seconds(value: float) -> str:
    return f"{value:g}s" if value >= 1 else f"{value * 1000:g}ms"


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def data_revision_range(config: Config) -> tuple[str, str]:
    """alembic.ini's ``[cutover]`` first_data_revision and last_data_revision: the one
    place that says which revisions are the cutover's own (make lint exempts them too)."""
    first = config.get_section_option(SECTION, "first_data_revision")
    last = config.get_section_option(SECTION, "last_data_revision")
    if not first or not last:
        raise DataMigrationError(f"{config.config_file_name}: [{SECTION}] needs "
                                 "first_data_revision and last_data_revision")
    return first, last


def data_revisions(script: ScriptDirectory, config: Config) -> frozenset[str]:
    """The cutover's data revisions, first_data_revision to last_data_revision."""
    first, last = data_revision_range(config)
    return frozenset(s.revision for s in script.walk_revisions(base=first, head=last))


class BlockerWatch:
    """Samples, from a second connection, the sessions that block the migration's session
    while an attempt runs; the last sample that found any is kept."""

    def __init__(self, connection: sa.Connection, pid: int, timeout: float) -> None:
        self.engine = connection.engine
        self.pid = pid
        # Not at once: most attempts get their locks at once and need no second session.
        self.first_look = min(0.5, timeout / 4)
        self.every = min(0.2, timeout / 4)
        self.done = threading.Event()
        self.blockers: tuple[Blocker, ...] = ()
        self.thread = threading.Thread(target=self._watch, name="lock-watch", daemon=True)

    def __enter__(self) -> BlockerWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.done.set()
        self.thread.join()

    def _watch(self) -> None:
        if self.done.wait(self.first_look):
            return
        try:
            # Autocommit: pg_stat_activity is read once per transaction, so each sample
            # needs its own.
            with self.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT") as watcher:
                while not self.done.is_set():
                    found = watcher.execute(BLOCKERS, {"pid": self.pid}).all()
                    if found:
                        self.blockers = tuple(Blocker(*row) for row in found)
                    self.done.wait(self.every)
        except sa.exc.SQLAlchemyError as exc:  # the run goes on; only the report is poorer
            log.warning(f"cannot see what blocks the migration: {exc.__class__.__name__}")


class LockRetry:
    """One command's lock timeouts and retries."""

    def __init__(self, policy: Policy, exempt: frozenset[str],
                 drop_app_data: bool = False) -> None:
        self.policy = policy
        self.exempt = exempt
        self.drop_app_data = drop_app_data
        self.attempts: dict[str, int] = {}
        self.backend_pid: int | None = None
        self.connection: sa.Connection | None = None

    @classmethod
    def of(cls, cutover: settings.Settings, script: ScriptDirectory,
           config: Config) -> LockRetry:
        return cls(Policy.of(cutover), data_revisions(script, config),
                   cutover[declared.DROP_APP_DATA])

    def install(self, context: MigrationContext) -> None:
        """Pass the command's steps (Alembic's ``fn``: none for a command that runs no
        revision) through the lock timeouts. Alembic has no public hook around each
        revision; its step list is where each one's function is found."""
        steps: Steps | None = context._migrations_fn
        if steps is None:
            return
        if not context.as_sql and context.connection is not None:
            self.connection = context.connection
            open_work.track(context.connection)

        def timed_steps(heads: tuple[str, ...], context: MigrationContext) -> Iterator[Any]:
            for step in steps(heads, context):
                if isinstance(step, RevisionStep):
                    step.migration_fn = self._timed(step, context)
                yield step
        context._migrations_fn = timed_steps

    def run(self, migrate: Callable[[], None]) -> None:
        """Run the command's migrations; again, after a pause, while a revision's lock
        is not granted and retries are left."""
        while True:
            try:
                migrate()
                return
            except (RevisionError, RevisionRefused) as failed:
                if self.connection is None:
                    raise
                raise DataMigrationError(failed.told(standing(self.connection))) from None
            except LockNotGranted as failed:
                if failed.last:
                    log.warning(f"{failed}; rolled back")
                    raise DataMigrationError(
                        f"{failed.label}: lock not granted within {seconds(failed.timeout)} "
                        f"in {plural(failed.attempt, 'attempt')}, {failed.blocked_by()}; "
                        f"rolled back, the database is at {failed.at} as before; end that "
                        "session or run again when it is done (or -x lock_timeout=, "
                        "-x lock_retries=)"
                    ) from None
                self.policy.retry_after(failed.attempt, str(failed), log)

    def _timed(self, step: RevisionStep, context: MigrationContext) -> Callable[..., None]:
        run = step.migration_fn
        exempt = step.revision.revision in self.exempt

        @functools.wraps(run)  # Alembic logs the function's name ("Running upgrade ...")
        def timed(**kw: Any) -> None:
            if context.dialect.name != "postgresql":  # the dev SQLite file: no lock queue
                run(**kw)
                return
            self._set_timeouts(step, exempt, context)
            with self._told(step, exempt, context):
                if not step.is_upgrade and step.revision.down_revision is None:
                    self._guard_baseline_drop(step, context)
                if exempt or context.as_sql or not self.policy.lock_timeout:
                    run(**kw)
                    return
                self._attempt(step, context, run, kw)
        return timed

    @contextmanager
    def _told(self, step: RevisionStep, exempt: bool,
              context: MigrationContext) -> Iterator[None]:
        """The revision's own transaction: what it changes is kept (open_work), a database
        error it meets becomes a ``RevisionError`` (a lost connection and a lock not granted
        keep their own ways), and a helper's refusal a ``RevisionRefused`` naming the file
        (the cutover's own revisions name their steps themselves)."""
        connection = None if context.as_sql else context.connection
        if connection is not None:
            open_work.begin(connection, step.revision)
        try:
            yield
        except sa.exc.DBAPIError as exc:
            if lock_not_available(exc) or is_lost_connection(exc, context.dialect):
                raise
            raise RevisionError(step.revision, step.is_upgrade, exc) from None
        except DataMigrationError as refused:
            if exempt or isinstance(refused, (LockNotGranted, RevisionError, ConnectionLost)) \
                    or str(refused).startswith(revision_file(step.revision)):
                raise
            raise RevisionRefused(step.revision, step.is_upgrade, refused) from None
        finally:
            if connection is not None:
                open_work.begin(connection, None)

    def _guard_baseline_drop(self, step: RevisionStep, context: MigrationContext) -> None:
        """Before the baseline's downgrade drops the app's tables (drop_guard)."""
        if context.as_sql:
            context.impl.static_output(
                "-- make downgrade refuses this while any of these tables holds a row, "
                f"unless {drop_guard.SETTING}")
            return
        assert context.connection is not None
        drop_guard.refuse_dropping_rows(
            context.connection, f"{revision_file(step.revision)} (downgrade)",
            ", ".join(step.from_revisions), self.drop_app_data)

    def _set_timeouts(self, step: RevisionStep, exempt: bool,
                      context: MigrationContext) -> None:
        """The revision's SET lines (in --sql too, under a comment saying why)."""
        policy, revision = self.policy, step.revision
        if exempt:
            why = ("a data revision of the cutover: without lock or "
                   "statement timeout (a fresh target, the app stopped; its COPY is not cut "
                   "off)")
            lines = ("SET LOCAL lock_timeout = 0", "SET LOCAL statement_timeout = 0")
        elif policy.lock_timeout:
            command = "make migrate" if step.is_upgrade else "make downgrade"
            why = ("waits for its locks at most "
                   f"{seconds(policy.lock_timeout)} (LOCK_TIMEOUT); {command} rolls it "
                   f"back and retries it up to {policy.retries} times, pausing from "
                   f"{seconds(policy.backoff)} (LOCK_RETRIES, LOCK_RETRY_BACKOFF)")
            lines = (policy.set_local(),)
        else:
            why = "waits for its locks without limit (LOCK_TIMEOUT=0)"
            lines = ("SET LOCAL lock_timeout = 0",)
        if context.as_sql:
            context.impl.static_output(f"-- {revision.revision}: {revision.doc}\n-- {why}")
        for line in lines:
            context.execute(line)

    def _attempt(self, step: RevisionStep, context: MigrationContext,
                 run: Callable[..., None], kw: dict[str, Any]) -> None:
        connection = context.connection
        assert connection is not None
        if self.backend_pid is None:
            self.backend_pid = connection.exec_driver_sql(
                "SELECT pg_backend_pid()").scalar_one()
        key = step.revision.revision
        self.attempts[key] = attempt = self.attempts.get(key, 0) + 1
        with BlockerWatch(connection, self.backend_pid, self.policy.lock_timeout) as watch:
            try:
                run(**kw)
            except Exception as exc:
                if not lock_not_available(exc):
                    raise
                watch.stop()
                raise LockNotGranted(step, attempt, self.policy, watch.blockers) from None
