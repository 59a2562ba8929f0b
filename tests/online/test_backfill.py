"""data_migrations/online/backfill.py: a backfill in committed batches, killed with SIGKILL
in the middle and run again, updates every row exactly once. A trigger counts the updates
of each row, so a batch run twice shows as a row updated twice."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.runtime.environment import EnvironmentContext

import settings
from data_migrations.online.backfill import (
    PROGRESS_TABLE,
    Backfill,
    backfill_in_batches,
    forget_backfill,
    run_backfill,
)
from data_migrations.run.errors import DataMigrationError
from tests.conftest import ROOT, fetch

ROWS = 100_000
# No ``where``: a batch run again would update its rows again, and the counts would show it.
JOB = Backfill(name="events_kind_code", table="events", set="kind_code = upper(kind)",
               batch_size=500, pause_seconds=0.01)

RUN = """
import sys
import sqlalchemy as sa
from data_migrations.online.backfill import Backfill, run_backfill
from data_migrations.run.report import log_to_stderr
log_to_stderr()
engine = sa.create_engine(sys.argv[1], isolation_level="AUTOCOMMIT",
                          connect_args={"application_name": "backfill-under-test"})
with engine.connect() as connection:
    run_backfill(connection, Backfill(name="events_kind_code", table="events",
                 set="kind_code = upper(kind)", batch_size=500, pause_seconds=0.01))
"""


@pytest.fixture
def events(pg_engine: sa.Engine) -> sa.Engine:
    with pg_engine.begin() as connection:
        connection.execute(sa.text(
            "CREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL, "
            "kind_code text, updates integer NOT NULL DEFAULT 0)"))
        connection.execute(sa.text(
            "CREATE FUNCTION count_update() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN NEW.updates := OLD.updates + 1; RETURN NEW; END $$"))
        connection.execute(sa.text(
            "CREATE TRIGGER count_update BEFORE UPDATE ON events "
            "FOR EACH ROW EXECUTE FUNCTION count_update()"))
        connection.execute(sa.text(
            "INSERT INTO events (kind) SELECT 'kind-' || (n % 7) "
            f"FROM generate_series(1, {ROWS}) AS n"))
    return pg_engine


def updated_so_far(engine: sa.Engine) -> int:
    rows = fetch(engine, f"SELECT rows_updated FROM {PROGRESS_TABLE} "
                         f"WHERE name = '{JOB.name}'") if fetch(
        engine, f"SELECT to_regclass('{PROGRESS_TABLE}')")[0][0] else []
    return rows[0][0] if rows else 0


def start_backfill(pg_url: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", RUN, pg_url], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_midway(process: subprocess.Popen, engine: sa.Engine) -> int:
    """SIGKILL once a fifth of the rows are done; the rows the killed run had committed."""
    deadline = time.monotonic() + 120
    while updated_so_far(engine) < ROWS // 5:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the backfill made no progress"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    # The server finishes (and commits) the batch statement it was running when its client
    # died, then notices and ends the session: count the rows once it has gone.
    while fetch(engine, "SELECT count(*) FROM pg_stat_activity "
                        "WHERE application_name = 'backfill-under-test'") != [(0,)]:
        assert time.monotonic() < deadline, "the killed backfill's session never ended"
        time.sleep(0.05)
    return updated_so_far(engine)


def test_a_killed_backfill_resumes_and_updates_every_row_exactly_once(
    events: sa.Engine, pg_url: str,
) -> None:
    first = start_backfill(pg_url)
    committed = kill_midway(first, events)
    assert first.returncode == -signal.SIGKILL
    assert 0 < committed < ROWS
    assert fetch(events, "SELECT count(*) FROM events WHERE updates > 0") == [(committed,)]

    second = start_backfill(pg_url)
    _, stderr = second.communicate(timeout=300)
    assert second.returncode == 0, stderr

    assert fetch(events, "SELECT updates, count(*) FROM events GROUP BY updates") == [(1, ROWS)]
    assert fetch(events, "SELECT count(*) FROM events WHERE kind_code = upper(kind)") == [(ROWS,)]
    assert f"{ROWS - committed:,} rows of events to go, after id" in stderr
    assert f"Backfill {JOB.name}: done, {JOB.name}: {ROWS - committed:,}/" in stderr
    assert fetch(events, f"SELECT rows_updated, finished_at IS NOT NULL FROM {PROGRESS_TABLE}"
                 ) == [(ROWS, True)]


def test_a_finished_backfill_run_again_updates_nothing(events: sa.Engine) -> None:
    with events.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        assert run_backfill(connection, JOB) == ROWS
        assert run_backfill(connection, JOB) == 0

    assert fetch(events, "SELECT updates, count(*) FROM events GROUP BY updates") == [(1, ROWS)]


def test_a_backfill_in_one_transaction_is_refused(events: sa.Engine) -> None:
    with events.connect() as connection, pytest.raises(
            DataMigrationError, match="backfill events_kind_code: needs a connection in "
                                      "autocommit, one commit per batch"):
        run_backfill(connection, JOB)
    assert fetch(events, "SELECT count(*) FROM events WHERE updates > 0") == [(0,)]


def test_a_target_time_per_batch_sizes_the_batches_within_bounds(events: sa.Engine) -> None:
    # Batches of 50 keys take far less than a second here: each next one doubles, up to
    # ten times batch_size (500), so 100,000 rows take about 200 batches, not 2,000.
    job = Backfill(name="events_sized", table="events", set="kind_code = kind",
                   batch_size=50, pause_seconds=0, target_seconds=1.0)
    with events.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        assert run_backfill(connection, job) == ROWS

    [(batches,)] = fetch(events, f"SELECT batches FROM {PROGRESS_TABLE} "
                                 "WHERE name = 'events_sized'")
    assert ROWS // 500 <= batches < ROWS // 500 + 10


def test_offline_the_review_sql_says_what_will_run() -> None:
    buffer = io.StringIO()
    context = MigrationContext.configure(dialect_name="postgresql",
                                         opts={"as_sql": True, "output_buffer": buffer})
    with Operations.context(context):
        assert backfill_in_batches(JOB) == 0
        forget_backfill(JOB)

    assert buffer.getvalue().splitlines() == [
        "-- Backfill events_kind_code: online only, in batches of 500 keys of events.id, "
        "one commit per batch:",
        "-- UPDATE events SET kind_code = upper(kind) WHERE id > <last committed key> "
        "AND id <= <batch end>", "",
        f"-- Backfill events_kind_code: its cursor row in {PROGRESS_TABLE} is deleted, "
        "if there is one", ""]


HELD_ID = 50_000  # a row of the batch after 49,500: 99 batches of 500 commit before it
LOCKED = Backfill(name="events_kind_code", table="events", set="kind_code = upper(kind)",
                  batch_size=500, pause_seconds=0)


class RowHolder:
    """A second session that holds one row of ``events`` (``SELECT ... FOR UPDATE``) in an
    open transaction, as an app transaction or a stuck idle-in-transaction session does.
    After two minutes at most it commits, so that a backfill that waits without limit
    ends (and its test fails) rather than hangs."""

    def __init__(self, engine: sa.Engine) -> None:
        self.connection = engine.connect()
        self.connection.execute(sa.text("SELECT id FROM events WHERE id = :id FOR UPDATE"),
                                {"id": HELD_ID}).one()
        self.ended = threading.Lock()
        self.guard = threading.Timer(120, self.commit)
        self.guard.start()

    def commit(self) -> None:
        with self.ended:
            if not self.connection.closed:
                self.connection.commit()
                self.connection.close()
        self.guard.cancel()


class Retries(logging.Handler):
    """The backfill's retry lines; ``seen`` is set at the first."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.seen.set()


@pytest.fixture
def retries() -> Iterator[Retries]:
    handler = Retries()
    logger = logging.getLogger("cutover.online")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def backfill_in_a_revision(engine: sa.Engine, job: Backfill, after: list[str],
                           **x: str) -> int:
    """``backfill_in_batches`` as a revision runs it: in a migration context whose config
    holds the run's settings (``-x`` values ``x``), in the revision's transaction. ``after``
    gets the lock_timeout once the helper returned or failed: in the revision's transaction,
    then the session's own once that transaction ended."""
    config = Config()
    config.attributes[settings.ATTRIBUTE] = settings.read(x, load_env_file=False, environ={})
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, environment_context=EnvironmentContext(config, None))  # type: ignore[arg-type]
        show = "SHOW lock_timeout"
        with Operations.context(context):
            try:
                with context.begin_transaction():
                    # The revision's; it ends as the block commits.
                    context.execute("SET LOCAL lock_timeout = '200ms'")
                    try:
                        return backfill_in_batches(job)
                    finally:
                        after.append(connection.exec_driver_sql(show).scalar_one())
            finally:
                after.append(connection.exec_driver_sql(show).scalar_one())


def test_a_batch_blocked_by_a_held_row_is_retried_and_the_backfill_completes(
    events: sa.Engine, retries: Retries,
) -> None:
    holder = RowHolder(events)
    # The holder's transaction ends once the backfill has given way to it once.
    ender = threading.Thread(target=lambda: (retries.seen.wait(60), holder.commit()))
    ender.start()
    after: list[str] = []
    try:
        updated = backfill_in_a_revision(events, LOCKED, after, lock_timeout="200ms",
                                         lock_retries="5", lock_retry_backoff="100ms")
    finally:
        ender.join()

    assert updated == ROWS
    assert retries.lines[0] == (
        "Backfill events_kind_code: the batch of events after id 49500 was not granted "
        "its locks within 200ms (attempt 1 of 6); rolled back, retrying in 100ms")
    assert fetch(events, "SELECT updates, count(*) FROM events GROUP BY updates") == [(1, ROWS)]
    # The revision's lock timeout again after the helper, and the backfill's own session-wide
    # one reset: the session's is its default once the revision's transaction ended.
    assert after == ["200ms", "0"]


def test_a_row_held_for_good_fails_the_backfill_in_one_line_after_its_retries(
    events: sa.Engine, retries: Retries,
) -> None:
    holder = RowHolder(events)
    after: list[str] = []
    try:
        with pytest.raises(DataMigrationError) as failed:
            backfill_in_a_revision(events, LOCKED, after, lock_timeout="200ms",
                                   lock_retries="2", lock_retry_backoff="100ms")
    finally:
        holder.commit()

    assert str(failed.value) == (
        "backfill events_kind_code: the batch of events after id 49500 was not granted its "
        "locks within 200ms in 3 attempts; rolled back, the batches before it stay committed "
        "(99 in this run); end the session that holds those rows (pg_stat_activity, "
        "pg_blocking_pids) or wait for it, then run again: the backfill resumes after id "
        "49500 (or -x lock_timeout=, -x lock_retries=)")
    assert [line.split("(attempt ")[1] for line in retries.lines] == [
        "1 of 3); rolled back, retrying in 100ms", "2 of 3); rolled back, retrying in 200ms"]
    # The batches before it committed, each once, and the cursor stands after them.
    assert fetch(events, "SELECT updates, count(*) FROM events GROUP BY updates "
                         "ORDER BY updates") == [(0, ROWS - 49_500), (1, 49_500)]
    assert fetch(events, f"SELECT last_key FROM {PROGRESS_TABLE}") == [("49500",)]
    assert after == ["0", "0"]  # reset after the failure too

    assert backfill_in_a_revision(events, LOCKED, after) == ROWS - 49_500  # resumed
    assert fetch(events, "SELECT updates, count(*) FROM events GROUP BY updates") == [(1, ROWS)]
