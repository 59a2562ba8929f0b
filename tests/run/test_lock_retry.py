"""A schema revision on the live database waits for its locks at most LOCK_TIMEOUT and is
retried (data_migrations/run/lock_retry.py).

After go-live: a copy of alembic/ and alembic.ini with ``released = true``, a target at the
cutover's head (0004) and a revision 0005 written with ``make revision`` that adds a
nullable column to ``tasks``. Real sessions run beside the migration (``alembic upgrade
head`` in a subprocess, as the operator runs it): a report that holds ``tasks`` in an open
transaction, and an app session that updates one task every 50 ms.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config

import settings
from data_migrations.run import lock_retry
from devtools import revision
from settings import DECLARED
from tests.conftest import ROOT, fetch, version
from tests.runs import cutover_environment, failed_lines, repository_copy, upgrade_head

LOCK_TIMEOUT = 1.0
# A revision fresh from make revision imports only what it uses: none yet.
ADD_PRIORITY = '''
import sqlalchemy as sa
from alembic import op


def upgrade() -> None:
    op.add_column("tasks", sa.Column("priority", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "priority")
'''
# Migration sessions (run_lock names them "cutover pid ...") the report blocks.
BLOCKED_MIGRATIONS = sa.text("SELECT count(*) FROM pg_stat_activity WHERE "
                             "application_name LIKE 'cutover pid %' "
                             "AND :pid = ANY (pg_blocking_pids(pid))")
TASK_COLUMNS = ("SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'tasks' ORDER BY ordinal_position")


class Live:
    """The copy of the scripts, the target at 0004 with one task, and 0005 written."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.root = repository_copy(tmp_path / "repo", ["alembic", "alembic.ini"])
        ini = self.root / "alembic.ini"
        ini.write_text(ini.read_text(encoding="utf-8").replace(
            "released = false", "released = true"), encoding="utf-8")
        self.database_url = database_url
        declared = {s.name for s in DECLARED}
        self.environment = {**{k: v for k, v in os.environ.items() if k not in declared},
                            "DATABASE_URL": database_url}
        upgraded = self.alembic("upgrade", "head")
        assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
        created = revision.new_revision(Config(str(ini)), "add task priority", "0005")
        text = created.read_text(encoding="utf-8")
        created.write_text(text[:text.index("\ndef upgrade() -> None:")] + ADD_PRIORITY,
                           encoding="utf-8")
        self.task_id = str(uuid.uuid4())
        engine = sa.create_engine(database_url)
        with engine.begin() as connection:
            user = connection.execute(sa.text(
                "INSERT INTO users (username, tenant_id, role, is_active, created_at) "
                "VALUES ('ann', 't1', 'user', true, now()) RETURNING id")).scalar_one()
            connection.execute(sa.text(
                "INSERT INTO tasks (id, user_id, title, status, created_at) "
                "VALUES (:id, :user, '周会', 'done', now())"), {"id": self.task_id, "user": user})
        engine.dispose()

    def alembic(self, *args: str, retries: int = 5) -> subprocess.CompletedProcess:
        options = [f"lock_timeout={LOCK_TIMEOUT:g}s", f"lock_retries={retries}",
                   "lock_retry_backoff=500ms"]
        return subprocess.run(
            [sys.executable, "-m", "alembic", "-c", str(self.root / "alembic.ini"),
             *(f"-x{option}" for option in options), *args],
            cwd=self.root, env=self.environment, capture_output=True, text=True, timeout=120)


@pytest.fixture
def live(tmp_path: Path, pg_url: str) -> Live:
    return Live(tmp_path, pg_url)


@pytest.fixture
def pg(pg_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


class Report:
    """A report session that read ``tasks`` (or ran ``holding``) and keeps its transaction
    open (its lock with it) until ``hold`` seconds after the migration was first seen waiting
    for it (``blocked`` is set then), or until ``close()``."""

    def __init__(self, engine: sa.Engine, hold: float,
                 holding: str = "SELECT count(*) FROM tasks") -> None:
        self.engine = engine
        self.connection = engine.connect()
        self.connection.exec_driver_sql("SET application_name = 'nightly-report'")
        self.connection.commit()
        self.pid = self.connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        self.connection.exec_driver_sql(holding)
        self.hold = hold
        self.blocked = threading.Event()
        self.closed = threading.Event()
        self.watch = threading.Thread(target=self._end_after_hold, daemon=True)
        self.watch.start()

    def _end_after_hold(self) -> None:
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as look:
            while not self.closed.wait(0.05):
                if look.execute(BLOCKED_MIGRATIONS, {"pid": self.pid}).scalar_one():
                    self.blocked.set()
                    break
        if not self.closed.wait(self.hold):
            self.connection.rollback()

    def close(self) -> None:
        self.closed.set()
        self.watch.join()
        self.connection.close()


class AppWriter(threading.Thread):
    """The app: updates one task every 50 ms and keeps how long each update took."""

    def __init__(self, engine: sa.Engine, task_id: str) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.task_id = task_id
        self.waits: list[float] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as app:
            app.exec_driver_sql("SET application_name = 'meeting-agent'")
            while not self.stopped.is_set():
                started = time.monotonic()
                app.execute(sa.text("UPDATE tasks SET updated_at = now() WHERE id = :id"),
                            {"id": self.task_id})
                self.waits.append(time.monotonic() - started)
                self.stopped.wait(0.05)

    def stop(self) -> list[float]:
        self.stopped.set()
        self.join(timeout=30)
        return self.waits


def test_a_blocked_revision_retries_and_succeeds_once_the_report_ends(
    live: Live, pg: sa.Engine,
) -> None:
    report = Report(pg, hold=LOCK_TIMEOUT + 0.3)
    try:
        result = live.alembic("upgrade", "head")
    finally:
        report.close()

    assert result.returncode == 0, result.stdout + result.stderr
    retried = [line for line in result.stderr.splitlines() if "retrying in" in line]
    assert retried, result.stderr
    assert retried[0].startswith(
        "0005 add task priority: lock not granted within 1s (attempt 1 of 6); blocked by "
        f"pid {report.pid} (nightly-report, idle in transaction for "), retried[0]
    assert retried[0].endswith(": SELECT count(*) FROM tasks); rolled back, retrying in 500ms"
                               ), retried[0]
    assert version(pg) == "0005"
    assert ("priority",) in fetch(pg, TASK_COLUMNS)


def test_a_report_that_never_ends_fails_in_one_line_naming_it_and_changes_nothing(
    live: Live, pg: sa.Engine,
) -> None:
    columns = fetch(pg, TASK_COLUMNS)
    report = Report(pg, hold=60)
    try:
        result = live.alembic("upgrade", "head", retries=2)
    finally:
        report.close()

    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    [failed] = failed_lines(result)
    assert failed.startswith(
        "FAILED: 0005 add task priority: lock not granted within 1s in 3 attempts, blocked "
        f"by pid {report.pid} (nightly-report, idle in transaction for "), failed
    assert failed.endswith(
        "rolled back, the database is at 0004 as before; end that session or run again "
        "when it is done (or -x lock_timeout=, -x lock_retries=)"), failed
    attempts = [line for line in result.stderr.splitlines()
                if line.startswith("0005 add task priority: lock not granted within 1s "
                                   "(attempt ")]
    assert len(attempts) == 3, result.stderr
    assert fetch(pg, TASK_COLUMNS) == columns
    assert version(pg) == "0004"


def test_the_app_waits_at_most_the_lock_timeout_while_the_revision_tries(
    live: Live, pg: sa.Engine,
) -> None:
    report = Report(pg, hold=6)
    writer = AppWriter(pg, live.task_id)
    writer.start()
    try:
        time.sleep(0.3)
        result = live.alembic("upgrade", "head", retries=2)
    finally:
        waits = writer.stop()
        report.close()

    # The app did queue behind the migration (else this proves nothing), and never longer
    # than the lock timeout and a second.
    assert max(waits) > 0.3
    assert max(waits) <= LOCK_TIMEOUT + 1, sorted(waits)[-5:]
    assert result.returncode != 0, result.stdout + result.stderr
    assert version(pg) == "0004"


def test_a_downgrade_waits_under_the_same_lock_timeout(live: Live, pg: sa.Engine) -> None:
    upgraded = live.alembic("upgrade", "head")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    report = Report(pg, hold=60)
    try:
        result = live.alembic("downgrade", "0004", retries=0)
    finally:
        report.close()

    [failed] = failed_lines(result)
    assert failed.startswith(
        "FAILED: 0005 add task priority: lock not granted within 1s in 1 attempt, blocked "
        f"by pid {report.pid} (nightly-report, "), failed
    assert "the database is at 0005 as before" in failed
    assert version(pg) == "0005"
    assert ("priority",) in fetch(pg, TASK_COLUMNS)


def test_the_plan_is_retried_too_and_changes_nothing(live: Live, pg: sa.Engine) -> None:
    columns = fetch(pg, TASK_COLUMNS)
    report = Report(pg, hold=LOCK_TIMEOUT + 0.3)
    try:
        result = live.alembic("-x", "dry_run=true", "upgrade", "head")
    finally:
        report.close()

    assert result.returncode == 0, result.stdout + result.stderr
    assert "(attempt 1 of 6); blocked by pid" in result.stderr
    assert "Dry run: every change was rolled back" in result.stderr
    assert fetch(pg, TASK_COLUMNS) == columns
    assert version(pg) == "0004"

@pytest.mark.parametrize("released", [True, False])
def test_a_revision_written_after_release_says_what_running_live_asks_of_it(
    tmp_path: Path, released: bool,
) -> None:
    root = repository_copy(tmp_path / "repo", ["alembic", "alembic.ini"])
    ini = root / "alembic.ini"
    ini.write_text(ini.read_text(encoding="utf-8").replace(
        "released = false", f"released = {str(released).lower()}"), encoding="utf-8")

    text = revision.new_revision(Config(str(ini)), "add task priority").read_text(
        encoding="utf-8")

    upgrade, downgrade = text.split("\ndef upgrade() -> None:\n")[1].split(
        "\ndef downgrade() -> None:\n")
    guidance = [("under LOCK_TIMEOUT (-x lock_timeout)", upgrade),
                ("rolls it back and retries it", upgrade),
                ("data_migrations.online.indexes.create_index_concurrently", upgrade),
                ("data_migrations.online.backfill", upgrade),
                ("Undo exactly what upgrade() did", downgrade),
                ("drop_index_concurrently", downgrade)]
    assert [phrase in part for phrase, part in guidance] == [released] * len(guidance)
    compile(text, "0005_add_task_priority.py", "exec")


@pytest.mark.parametrize(("given", "message"), [
    ({"lock_timeout": "3"}, "lock_timeout must be a duration such as 3s, 500ms or 1min "
                            "(0 for none), got '3'"),
    ({"lock_retry_backoff": "soon"}, "lock_retry_backoff must be a duration such as 3s, "
                                     "500ms or 1min (0 for none), got 'soon'"),
    ({"lock_retries": "-1"}, "lock_retries must be a whole number (0 or more), got '-1'"),
])
def test_a_lock_setting_without_a_unit_or_not_a_number_is_refused(
    given: dict[str, str], message: str,
) -> None:
    with pytest.raises(settings.ConfigError) as refused:
        settings.read(given, load_env_file=False)
    assert str(refused.value) == message


def test_lock_settings_parse_with_their_units() -> None:
    read = settings.read({"lock_timeout": "500ms", "lock_retries": "0",
                          "lock_retry_backoff": "1min"}, load_env_file=False)
    assert lock_retry.Policy.of(read) == lock_retry.Policy(0.5, 0, 60.0)
    assert lock_retry.Policy(3.0, 5, 2.0).pause(1) == 2.0
    assert [lock_retry.Policy(3.0, 9, 2.0).pause(n) for n in (2, 3, 4, 5)] == [4, 8, 10, 10]


def test_a_lock_timeout_is_told_apart_from_any_other_error(pg: sa.Engine) -> None:
    """lock_retry.lock_not_available, which the revision retries and the backfill's batch retries
    both ask: a real lock timeout, as SQLAlchemy wraps it and as the driver raises it."""
    with pg.connect() as holder, pg.connect() as waiter:
        holder.exec_driver_sql("CREATE TABLE held (id int)")
        holder.commit()
        holder.exec_driver_sql("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
        waiter.exec_driver_sql("SET lock_timeout = '50ms'")
        with pytest.raises(sa.exc.OperationalError) as timed_out:
            waiter.exec_driver_sql("SELECT * FROM held")
        waiter.rollback()
        with pytest.raises(sa.exc.DataError) as other:
            waiter.exec_driver_sql("SELECT 1 / 0")

    assert lock_retry.lock_not_available(timed_out.value)
    assert lock_retry.lock_not_available(timed_out.value.orig)
    assert not lock_retry.lock_not_available(other.value)
    assert not lock_retry.lock_not_available(other.value.orig)


def test_the_cutovers_data_revisions_wait_for_their_locks_without_a_timeout(
    tmp_path: Path, pg_url: str, pg: sa.Engine,
) -> None:
    """0002-0004 fill a fresh target while the app is stopped: a session that holds a lock
    for a moment (here SHARE on users, which 0002's COPY into users waits for) delays the
    copy, never cuts it off, even under a 1 ms LOCK_TIMEOUT that a later revision obeys."""
    env = {**cutover_environment(tmp_path, pg_url), "LOCK_TIMEOUT": "1ms", "LOCK_RETRIES": "0"}
    alembic = (sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"))
    schema = subprocess.run([*alembic, "upgrade", "0001"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert schema.returncode == 0, schema.stdout + schema.stderr
    report = Report(pg, hold=1.5, holding="LOCK TABLE users IN SHARE MODE")
    try:
        result = upgrade_head(env, tmp_path)
    finally:
        report.close()

    assert result.returncode == 0, result.stdout + result.stderr
    assert report.blocked.is_set()  # the copy did wait behind the lock (else this proves nothing)
    assert version(pg) == "0004"
    source = sa.create_engine(env["SOURCE_DATABASE_URL"], poolclass=sa.pool.NullPool)
    assert fetch(pg, "SELECT count(*) FROM users") == fetch(source, "SELECT count(*) FROM users")
    source.dispose()

    rendered = subprocess.run([*alembic, "upgrade", "0001:0002", "--sql"], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    sql = rendered.stdout[rendered.stdout.index("-- 0002: "):]
    assert "-- a data revision of the cutover: without lock or statement timeout" in sql
    assert sql.index("SET LOCAL lock_timeout = 0;") < sql.index("COMMIT;")
    assert sql.index("SET LOCAL statement_timeout = 0;") < sql.index("COMMIT;")
