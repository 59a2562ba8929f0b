"""One run at a time, a target the app created, and failures in the middle of a run, with
real alembic processes against the real PostgreSQL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

import models
from data_migrations.run.run_lock import LOCK_KEY
from tests.conftest import ROOT, alembic_config
from tests.dev_data import DevDatabase
from tests.rows.test_row_copy import counts, fill_audit_logs, version

ALEMBIC = [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini")]
HEAD = "0004"


@pytest.fixture
def dev(tmp_path: Path) -> DevDatabase:
    database = DevDatabase(tmp_path / "meeting_agent.db")
    database.add_minimal_tree()
    (tmp_path / "uploads").mkdir()
    (tmp_path / "work" / "bucket").mkdir(parents=True)  # the local storage provider's
    return database


def environment(pg_url: str, **settings: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": pg_url, **settings}


def run(arguments: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(arguments, env=env, capture_output=True, text=True, timeout=300)


def only_failed_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one FAILED line of a failed run, which printed no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output
    failed = [line for line in output.splitlines() if line.startswith("FAILED:")]
    assert len(failed) == 1, output
    return failed[0]


def wait_for(what: str, probe: Callable[[], object], seconds: float = 120) -> object:
    """Poll until ``probe`` returns something true; fail the test when it never does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"never happened: {what}")


def session_of(engine: sa.Engine, process: subprocess.Popen, condition: str) -> int | None:
    """The server pid of the session a migration process named after itself."""
    with engine.connect() as conn:
        return conn.execute(sa.text(
            f"SELECT pid FROM pg_stat_activity WHERE application_name LIKE :name "
            f"AND {condition}"), {"name": f"cutover pid {process.pid}@%"}).scalar()


def session_gone(engine: sa.Engine, pid: int) -> bool:
    with engine.connect() as conn:
        return not conn.execute(sa.text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"),
                                {"pid": pid}).scalar()


# ------------------------------------------------------------------ one run at a time

def test_a_second_run_is_refused_naming_the_first_and_a_killed_first_frees_the_target(
    dev: DevDatabase, pg_url: str, pg_engine: sa.Engine
) -> None:
    command.upgrade(alembic_config(pg_url), "0001")
    env = environment(pg_url, SOURCE_DATABASE_URL=dev.url)
    upgrade = [*ALEMBIC, "upgrade", "head"]
    with pg_engine.connect() as blocker:
        # The first run holds the run lock and waits inside 0002 on this table lock.
        blocker.execute(sa.text("LOCK TABLE users IN ACCESS EXCLUSIVE MODE"))
        first = subprocess.Popen(upgrade, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        backend = wait_for("the first run waits inside 0002", lambda: session_of(
            pg_engine, first, "wait_event_type = 'Lock'"))

        line = only_failed_line(run(upgrade, env))
        assert line.startswith("FAILED: another cutover run is using this database: "
                               f"server session {backend} (cutover pid {first.pid}@")
        assert "upgrade head" in line and "connected from 127.0.0.1:" in line
        assert f"pg_terminate_backend({backend})" in line

        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
        # Killed, but its server session still waits on the table lock and holds the run
        # lock: the next run is refused the same way, as the hint says.
        assert f"server session {backend} " in only_failed_line(run(upgrade, env))
        with pg_engine.connect() as admin:
            assert admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                                 {"pid": backend}).scalar()
        blocker.rollback()
    wait_for("the killed run's session ends", lambda: session_gone(pg_engine, backend))

    third = run(upgrade, env)
    assert third.returncode == 0, third.stdout + third.stderr
    assert version(pg_engine) == HEAD
    assert counts(pg_engine)["users"] == 1


COMMANDS = {
    "upgrade": [*ALEMBIC, "upgrade", "head"],
    "downgrade": [*ALEMBIC, "downgrade", "base"],
    "plan": [*ALEMBIC, "-x", "dry_run=true", "upgrade", "head"],
    "verify": [sys.executable, "-m", "data_migrations.commands.verify"],
    "adopt-target": [sys.executable, "-m", "data_migrations.commands.adopt_target"],
}


@pytest.mark.parametrize("name", COMMANDS)
def test_every_cutover_command_is_refused_while_another_run_holds_the_target(
    name: str, dev: DevDatabase, pg_url: str, pg_engine: sa.Engine
) -> None:
    command.upgrade(alembic_config(pg_url), "0001")
    env = environment(pg_url, SOURCE_DATABASE_URL=dev.url)
    with pg_engine.connect() as holder:
        holder.execute(sa.text("SELECT set_config('application_name', 'cutover pid 4242@ops: "
                               "upgrade head', false), pg_advisory_lock(:key)"),
                       {"key": LOCK_KEY})
        holder.commit()  # the lock outlives the transaction, as in a migration
        holder_pid = holder.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        line = only_failed_line(run(COMMANDS[name], env))
        assert line.startswith(
            f"FAILED: another cutover run is using this database: server session "
            f"{holder_pid} (cutover pid 4242@ops: upgrade head), connected from 127.0.0.1:")
    assert version(pg_engine) == "0001"
    assert set(counts(pg_engine).values()) == {0}


def test_sql_and_current_need_no_lock(dev: DevDatabase, pg_url: str,
                                      pg_engine: sa.Engine) -> None:
    command.upgrade(alembic_config(pg_url), "0001")
    env = environment(pg_url)
    with pg_engine.connect() as holder:
        holder.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
        offline = run([*ALEMBIC, "upgrade", "head", "--sql"], env)
        assert offline.returncode == 0, offline.stdout + offline.stderr
        assert "CREATE TABLE users" in offline.stdout
        current = run([*ALEMBIC, "current"], env)
        assert current.returncode == 0 and "0001" in current.stdout, current.stderr


# ------------------------------------------------------------------ a target the app created

def test_a_target_made_by_create_all_is_named_then_adopted_then_migrated(
    pg_url: str, pg_engine: sa.Engine
) -> None:
    models.metadata.create_all(pg_engine)
    env = environment(pg_url)
    refused = run([*ALEMBIC, "upgrade", "head"], env)
    line = only_failed_line(refused)
    assert line.startswith("FAILED: the target already has the app's tables (")
    assert "users" in line and "make adopt-target" in line
    assert not sa.inspect(pg_engine).has_table("alembic_version")

    adopted = run([sys.executable, "-m", "data_migrations.commands.adopt_target"], env)
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    assert "Stamped" in adopted.stderr and "pg-test-secret" not in adopted.stderr
    assert version(pg_engine) == "0001"
    with pg_engine.connect() as conn:  # the scratch baseline left nothing behind
        assert conn.execute(sa.text("SELECT count(*) FROM pg_namespace "
                                    "WHERE nspname LIKE 'cutover_adopt_%'")).scalar() == 0

    migrated = run([*ALEMBIC, "upgrade", "head"], env)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert version(pg_engine) == HEAD


def test_a_target_that_differs_from_the_baseline_is_not_stamped_nor_touched(
    pg_url: str, pg_engine: sa.Engine
) -> None:
    models.metadata.create_all(pg_engine)
    with pg_engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE users ALTER COLUMN email TYPE varchar(100)"))
        conn.execute(sa.text("DROP INDEX ix_tasks_status"))
        conn.execute(sa.text("INSERT INTO users (username, tenant_id, role, is_active, "
                             "created_at) VALUES ('ada', 't1', 'member', true, now())"))
    before = schema_and_rows(pg_engine)

    result = run([sys.executable, "-m", "data_migrations.commands.adopt_target"],
                 environment(pg_url))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Not stamped" in result.stderr
    assert "table users: columns differ" in result.stderr and "VARCHAR(100)" in result.stderr
    assert "table tasks: indexes differ" in result.stderr
    assert not sa.inspect(pg_engine).has_table("alembic_version")
    assert schema_and_rows(pg_engine) == before


def schema_and_rows(engine: sa.Engine) -> tuple:
    inspector = sa.inspect(engine)
    tables = sorted(inspector.get_table_names())
    with engine.connect() as conn:
        rows = [conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() for t in tables]
    return (tables, [[(c["name"], str(c["type"])) for c in inspector.get_columns(t)]
                     for t in tables],
            [inspector.get_indexes(t) for t in tables], rows)


# ------------------------------------------------------------------ failures mid-run

def test_a_connection_lost_during_the_copy_is_one_line_and_a_rerun_resumes(
    dev: DevDatabase, pg_url: str, pg_engine: sa.Engine
) -> None:
    with sqlite3.connect(dev.path) as conn:  # enough rows that their COPY takes a while
        conn.execute("DELETE FROM audit_logs")
    conn.close()
    fill_audit_logs(dev, 200_000)
    env = environment(pg_url, SOURCE_DATABASE_URL=dev.url)
    upgrade = [*ALEMBIC, "upgrade", "0002"]
    process = subprocess.Popen(upgrade, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    backend = wait_for("the copy of audit_logs is streaming", lambda: session_of(
        pg_engine, process, "state = 'active' AND query LIKE 'COPY %audit_logs%'"))
    with pg_engine.connect() as admin:
        assert admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                             {"pid": backend}).scalar()
    stdout, stderr = process.communicate(timeout=120)
    line = only_failed_line(subprocess.CompletedProcess(upgrade, process.returncode,
                                                        stdout, stderr))
    for dump in ("AdminShutdown", "SystemError", "The above exception"):  # psycopg2's
        assert dump not in stdout + stderr, stderr
    assert line == ("FAILED: the connection to PostgreSQL was lost during 0002 "
                    "copy_sqlite_rows; nothing of this step was committed; run the same "
                    "command again to resume")
    assert version(pg_engine) == "0001"
    assert set(counts(pg_engine).values()) == {0}

    rerun = run(upgrade, env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert version(pg_engine) == "0002"
    assert counts(pg_engine)["audit_logs"] == 200_000


def test_an_unwritable_reports_dir_is_named_before_anything_is_written(
    dev: DevDatabase, tmp_path: Path, pg_url: str, pg_engine: sa.Engine
) -> None:
    not_a_folder = tmp_path / "reports-file"
    not_a_folder.write_text("a file where the reports folder should be")
    env = environment(pg_url, SOURCE_DATABASE_URL=dev.url,
                      REPORTS_DIR=str(not_a_folder / "reports"))
    line = only_failed_line(run([*ALEMBIC, "upgrade", "0002"], env))
    assert line == (f"FAILED: REPORTS_DIR {not_a_folder / 'reports'} is not writable "
                    "(Not a directory)")
    assert sa.inspect(pg_engine).get_table_names() == []
