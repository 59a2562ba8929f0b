"""Data changes on a live table, in small batches that each commit on their own.

A revision that must set a value on every row of a big table cannot do it in one ``UPDATE``:
that holds a row lock on every row until the end, and the app's writes to those rows wait
for all of it. ``backfill_in_batches`` walks the table by its key instead, a batch of keys
at a time, and commits each batch. Each batch is ONE statement that updates the rows and
moves the backfill's cursor (``cutover_backfills.last_key``) together, so PostgreSQL
commits both or neither: after a kill, the next run starts after the last committed batch,
and no committed batch is ever run again. The batches run in Alembic's
``autocommit_block()`` (``run.outside_transaction``: the revision's transaction commits
before, a new one under its lock timeout begins after).

Between batches it pauses (``pause_seconds``), or sizes the batches so that each takes about
``target_seconds``, leaving room for the app's own work. Progress is logged every few seconds
(keys passed of the total, percentage, rows per second, rows updated).

Each batch waits for its row locks at most the run's ``LOCK_TIMEOUT``: an app transaction
that wants a row of the batch queues behind it, so the batch must not wait long for a
session that holds one. The revision's ``SET LOCAL lock_timeout`` ended with its
transaction when ``autocommit_block()`` committed it, so the backfill sets it again for its
session while the batches run (and resets it after). A batch not granted its locks in time is
rolled back alone and tried again after the run's pause (``LOCK_RETRIES``,
``LOCK_RETRY_BACKOFF``, as a revision is); after the last attempt the backfill stops with the
batches before it committed, and the next run resumes after them.

    from data_migrations.online.backfill import Backfill, backfill_in_batches, forget_backfill

    CLIENT_IP = Backfill(name="0006_audit_logs_client_ip", table="audit_logs",
                         set="client_ip = ip_address",
                         where="client_ip IS DISTINCT FROM ip_address")

    def upgrade() -> None:
        backfill_in_batches(CLIENT_IP)

    def downgrade() -> None:
        forget_backfill(CLIENT_IP)  # so that an upgrade after this backfills again

``backfill_in_batches`` takes ``max()`` of the key, which a uuid key does not have;
``backfill_in_batches_by_any_key`` finds the last key by the key's order instead.

The rows the app inserts or changes while the backfill runs are the app's to write in the
new form (expand and contract: deploy the app that writes both before the backfill). The
``where`` predicate keeps a batch from touching rows that are right already.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from alembic import op

from data_migrations.online.run import (
    WITHOUT_LOCK_TIMEOUT,
    lock_policy,
    outside_transaction,
    skipped_in_dry_run,
)
from data_migrations.run.errors import DataMigrationError
from data_migrations.run.lock_retry import Policy, lock_not_available, plural, seconds
from data_migrations.run.report import Progress
from data_migrations.run.revision_error import BACKFILL_CURSORS
from data_migrations.run.sql import quote

log = logging.getLogger("cutover.online")

# cutover_: bookkeeping that autogenerate leaves alone; a failed run names what it holds.
PROGRESS_TABLE = BACKFILL_CURSORS
CREATE_PROGRESS_TABLE = f"""
CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} (
    name text PRIMARY KEY,
    table_name text NOT NULL,
    last_key text,
    rows_updated bigint NOT NULL DEFAULT 0,
    batches integer NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
)"""
# Two backfills of one name at once would both move its cursor: the session lock
# (classid, hashtext(name)) keeps a second run out while the first one's connection lives.
LOCK_CLASS = 0x0BAC_F111


@dataclass(frozen=True)
class Backfill:
    """One backfill. ``name`` keys its cursor: unique, never reused for another backfill.
    ``key`` is a unique, indexed column (the primary key); ``set`` and ``where`` are SQL
    (the ``UPDATE``'s assignments, and which rows of a batch need it)."""

    name: str
    table: str
    set: str
    key: str = "id"
    where: str | None = None
    batch_size: int = 1000
    pause_seconds: float = 0.05
    target_seconds: float | None = None


@dataclass
class Cursor:
    """Where a backfill stands: the last committed key (None: none yet), whether done."""

    last_key: str | None
    finished: bool


@dataclass(frozen=True)
class LastKey:
    """How the table's last key and a batch's last key are found (SQL, ``{key}`` and
    ``{table}`` filled in; ``k`` is a batch's key)."""

    of_table: str
    of_batch: str


MAX_KEY = LastKey("SELECT max({key})::text FROM {table}", "max(k)")
# uuid has no max(): the last key in the key's own order, for any key that has one.
# (Ordered by the key itself, in a subquery: an output column {key}::text named like the key
# would order the keys as text.)
ORDERED_KEY = LastKey("SELECT k::text FROM (SELECT {key} AS k FROM {table} WHERE {key} IS NOT "
                      "NULL ORDER BY {key} DESC LIMIT 1) AS last",
                      "(array_agg(k ORDER BY k DESC))[1]")


def backfill_in_batches(job: Backfill) -> int:
    """From a revision: the whole backfill, one commit per batch; the rows updated by this
    run. With ``--sql``, a comment that says what will run instead (a loop is no SQL).
    The key must have ``max()`` (an integer or text key)."""
    return _in_batches(job, MAX_KEY)


def backfill_in_batches_by_any_key(job: Backfill) -> int:
    """``backfill_in_batches`` for a key of any type with an order, a uuid key too."""
    return _in_batches(job, ORDERED_KEY)


def _in_batches(job: Backfill, last: LastKey) -> int:
    context = op.get_context()
    if context.as_sql:
        context.impl.static_output(
            f"-- Backfill {job.name}: online only, in batches of {job.batch_size} keys of "
            f"{job.table}.{job.key}, one commit per batch:\n"
            f"-- UPDATE {job.table} SET {job.set} WHERE {job.key} > <last committed key> "
            f"AND {job.key} <= <batch end>{f' AND ({job.where})' if job.where else ''}")
        return 0
    if skipped_in_dry_run(f"backfill {job.name} is not run", "each batch commits on its own"):
        return 0
    with outside_transaction():
        return run_backfill(op.get_bind(), job, lock_policy(), last)


def forget_backfill(job: Backfill) -> None:
    """From a revision's downgrade: drop the backfill's cursor, so that the upgrade after it
    backfills again from the start."""
    context = op.get_context()
    if context.as_sql:
        context.impl.static_output(f"-- Backfill {job.name}: its cursor row in "
                                   f"{PROGRESS_TABLE} is deleted, if there is one")
        return
    connection = op.get_bind()
    if connection.execute(sa.text(f"SELECT to_regclass('{PROGRESS_TABLE}')")).scalar_one():
        connection.execute(sa.text(f"DELETE FROM {PROGRESS_TABLE} WHERE name = :name"),
                           {"name": job.name})


def run_backfill(connection: sa.Connection, job: Backfill,
                 policy: Policy = WITHOUT_LOCK_TIMEOUT, last: LastKey = MAX_KEY) -> int:
    """The backfill on ``connection``, which must be in autocommit (each batch statement
    commits as it ends); the rows updated by this run. Each batch waits for its locks at
    most ``policy.lock_timeout`` and is retried as ``policy`` says (by default it waits
    without limit)."""
    # The driver's own flag: set by an AUTOCOMMIT engine and by autocommit_block() alike.
    if not getattr(connection.connection.driver_connection, "autocommit", False):
        raise DataMigrationError(
            f"backfill {job.name}: needs a connection in autocommit, one commit per batch "
            "(in a revision: backfill_in_batches, or op.get_context().autocommit_block())")
    locked = sa.text("SELECT pg_try_advisory_lock(:class, hashtext(:name))")
    if not connection.execute(locked, {"class": LOCK_CLASS, "name": job.name}).scalar_one():
        raise DataMigrationError(f"backfill {job.name}: another session runs it now")
    try:
        return _run(connection, job, policy, last)
    finally:
        connection.execute(sa.text("SELECT pg_advisory_unlock(:class, hashtext(:name))"),
                           {"class": LOCK_CLASS, "name": job.name})


def _run(connection: sa.Connection, job: Backfill, policy: Policy, last_key: LastKey) -> int:
    cursor = _cursor(connection, job)
    if cursor.finished:
        log.info("Backfill %s: already finished", job.name)
        return 0
    table, key = quote(job.table), quote(job.key)
    last = connection.execute(sa.text(last_key.of_table.format(key=key, table=table))).scalar()
    total = connection.execute(sa.text(
        f"SELECT count(*) FROM {table} WHERE (:after IS NULL OR {key} > :after) "
        f"AND {key} <= :last"), {"after": cursor.last_key, "last": last}).scalar_one()
    log.info("Backfill %s: %s rows of %s to go%s", job.name, f"{total:,}", job.table,
             f", after {job.key} {cursor.last_key}" if cursor.last_key else "")
    counts = _Counts()
    progress = Progress(log, job.name, total, detail=counts.detail)
    statement = sa.text(_batch_sql(table, key, job, last_key))
    size = job.batch_size
    with _session_lock_timeout(connection, policy):
        while True:
            began = time.monotonic()
            done = _batch(connection, statement, job, cursor.last_key, last, size, policy,
                          counts)
            if done is None:
                break
            cursor.last_key, passed, updated = done
            counts.add(updated, cursor.last_key)
            progress.advance(passed)
            size = _next_size(size, time.monotonic() - began, job)
            time.sleep(job.pause_seconds)
    connection.execute(sa.text(f"UPDATE {PROGRESS_TABLE} SET finished_at = now() "
                               "WHERE name = :name"), {"name": job.name})
    log.info("Backfill %s: done, %s", job.name, progress.summary())
    return counts.updated


@contextmanager
def _session_lock_timeout(connection: sa.Connection, policy: Policy) -> Iterator[None]:
    """``lock_timeout`` for the session (``0``: none) while the batches run, each in its own
    transaction; reset to the session's default after, also when a batch failed."""
    connection.execute(sa.text(policy.set_session()))
    try:
        yield
    finally:
        if not connection.invalidated:  # a lost connection took the setting with it
            connection.execute(sa.text("RESET lock_timeout"))


def _cursor(connection: sa.Connection, job: Backfill) -> Cursor:
    connection.execute(sa.text(CREATE_PROGRESS_TABLE))
    connection.execute(sa.text(f"INSERT INTO {PROGRESS_TABLE} (name, table_name) "
                               "VALUES (:name, :table) ON CONFLICT (name) DO NOTHING"),
                       {"name": job.name, "table": job.table})
    row = connection.execute(sa.text(
        f"SELECT last_key, finished_at IS NOT NULL FROM {PROGRESS_TABLE} WHERE name = :name"),
        {"name": job.name}).one()
    return Cursor(row[0], row[1])


def _batch_sql(table: str, key: str, job: Backfill, last_key: LastKey) -> str:
    """One batch as one statement: the next ``size`` keys after the cursor, the update of
    those rows, and the cursor moved to the batch's last key only if it still stands where
    this run read it. It answers (batch end, keys passed, rows updated, cursor moved)."""
    after = f"(:after IS NULL OR {key} > :after)"
    needed = f" AND ({job.where})" if job.where else ""
    return f"""
WITH bounds AS (
    SELECT {last_key.of_batch} AS upto, count(*) AS passed FROM (
        SELECT {key} AS k FROM {table} WHERE {after} AND {key} <= :last
        ORDER BY {key} LIMIT :size) AS keys
), batch AS (
    UPDATE {table} SET {job.set}
    WHERE {after} AND {key} <= (SELECT upto FROM bounds){needed}
    RETURNING 1
), moved AS (
    UPDATE {PROGRESS_TABLE} SET last_key = (SELECT upto::text FROM bounds),
        rows_updated = rows_updated + (SELECT count(*) FROM batch),
        batches = batches + 1, updated_at = now()
    WHERE name = :name AND last_key IS NOT DISTINCT FROM :after
        AND (SELECT upto FROM bounds) IS NOT NULL
    RETURNING 1
)
SELECT (SELECT upto::text FROM bounds), (SELECT passed FROM bounds),
       (SELECT count(*) FROM batch), (SELECT count(*) FROM moved)"""


def _batch(connection: sa.Connection, statement: sa.TextClause, job: Backfill,
           after: str | None, last: str | None, size: int, policy: Policy,
           counts: _Counts) -> tuple[str, int, int] | None:
    """One batch, committed; None when no key is left. A lock timeout rolls the batch back
    whole, so it is tried again as it was."""
    values = {"after": after, "last": last, "size": size, "name": job.name}
    attempts = policy.retries + 1
    where = f"after {job.key} {after}" if after is not None else "from the start"
    for attempt in range(1, attempts + 1):
        try:
            upto, passed, updated, moved = connection.execute(statement, values).one()
            break
        except sa.exc.OperationalError as exc:
            if not lock_not_available(exc):
                raise
            waited = (f"the batch of {job.table} {where} was not granted its locks "
                      f"within {seconds(policy.lock_timeout)}")
            if attempt == attempts:
                raise DataMigrationError(
                    f"backfill {job.name}: {waited} in {plural(attempts, 'attempt')}; rolled "
                    f"back, the batches before it stay committed ({counts.batches:,} in "
                    "this run); end the session that holds those rows (pg_stat_activity, "
                    "pg_blocking_pids) or wait for it, then run again: the backfill resumes "
                    f"{where} (or -x lock_timeout=, -x lock_retries=)") from None
            policy.retry_after(attempt, f"Backfill {job.name}: {waited} (attempt {attempt} "
                               f"of {attempts})", log)
    if upto is None:
        return None
    if moved != 1:  # the advisory lock makes this unreachable unless someone edits the row
        raise DataMigrationError(
            f"backfill {job.name}: its cursor in {PROGRESS_TABLE} moved under this run "
            f"(expected {job.key} {after})")
    return upto, passed, updated


def _next_size(size: int, seconds: float, job: Backfill) -> int:
    """With ``target_seconds``: the size that would have taken about that long, at most
    double or half the last one, between a tenth and ten times ``batch_size``."""
    if job.target_seconds is None:
        return size
    wanted = size * job.target_seconds / max(seconds, 0.001)
    bounded = min(max(wanted, size / 2), size * 2)
    return int(min(max(bounded, job.batch_size / 10, 1), job.batch_size * 10))


@dataclass
class _Counts:
    """What the progress line adds for a backfill: rows updated, batches, the cursor."""

    updated: int = 0
    batches: int = 0
    at: str | None = None

    def add(self, updated: int, at: str) -> None:
        self.updated += updated
        self.batches += 1
        self.at = at

    def detail(self) -> str:
        return (f"{self.updated:,} updated in {self.batches:,} batches, "
                f"last key {self.at}")
