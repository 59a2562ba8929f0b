"""make verify: re-checking a finished cutover against what the row copy recorded."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from data_migrations.commands.adopt_dev import alembic_config
from tests.dev_data import TASK_1, TASK_2, DevDatabase
from tests.run.test_run_guard import session_of, wait_for

CutOver = Callable[..., str]


@pytest.fixture
def dev(tmp_path: Path) -> DevDatabase:
    database = DevDatabase(tmp_path / "meeting_agent.db")
    database.add_minimal_tree()
    return database


@pytest.fixture
def cut_over(dev: DevDatabase, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> CutOver:
    """Run 0002 with the given ``-x`` policies, then forget every setting but DATABASE_URL:
    verify must find the rest in what the cutover recorded."""

    def run(*x_args: str) -> str:
        monkeypatch.setenv("SOURCE_DATABASE_URL", dev.url)
        config = alembic_config(pg_url)
        config.cmd_opts = type("Options", (), {"x": list(x_args)})()
        command.upgrade(config, "0002")
        monkeypatch.delenv("SOURCE_DATABASE_URL")
        return pg_url

    return run


def verify(url: str, **settings: str) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items()
           if name not in ("SOURCE_DATABASE_URL", "BAD_ROWS", "ORPHANS")}
    return subprocess.run([sys.executable, "-m", "data_migrations.commands.verify"],
                          env={**env, **settings, "DATABASE_URL": url}, capture_output=True,
                          text=True, timeout=120)


def result_of(output: str, kind: str, subject: str) -> str:
    line = next(line for line in output.splitlines() if line.split()[:2] == [kind, subject])
    return line.split()[2]


def execute(url: str, sql: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(sql))
    engine.dispose()


def snapshot_of(tmp_path: Path) -> Path:
    [backup] = (tmp_path / "work" / "backups").glob("*.db")
    return backup


def test_a_reject_cutover_verifies_clean_without_its_policies(
    dev: DevDatabase, cut_over: CutOver, tmp_path: Path
) -> None:
    dev.add("users", id=2, email="x" * 300)  # rejected
    dev.add("tasks", id=TASK_2, user_id=2)  # rejected with it
    result = verify(cut_over("bad_rows=reject"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result_of(result.stdout, "rows", "users") == "pass"
    assert result_of(result.stdout, "rows", "tasks") == "pass"
    assert result_of(result.stdout, "sequence", "users.id") == "pass"
    assert result_of(result.stdout, "snapshot", snapshot_of(tmp_path).name) == "pass"
    assert "bad_rows=reject" in result.stderr
    assert result.stdout.rstrip().endswith("0 failed")


def test_a_set_null_cutover_verifies_clean_without_its_policies(
    dev: DevDatabase, cut_over: CutOver
) -> None:
    # Under the default orphans=reject this task would be left out, and tasks would fail.
    dev.add("tasks", id=TASK_2, user_id=1, hotword_set_id=99)
    result = verify(cut_over("orphans=set_null"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result_of(result.stdout, "rows", "tasks") == "pass"
    assert "orphans=set_null" in result.stderr


def test_rows_written_to_the_dev_file_after_the_snapshot_fail_naming_the_tables(
    dev: DevDatabase, cut_over: CutOver
) -> None:
    url = cut_over()
    dev.add("users", id=3)
    dev.add("tasks", id=TASK_2, user_id=3)
    dev.add("audit_logs", id=2, user_id=3, task_id=TASK_2)
    with closing(sqlite3.connect(dev.path)) as connection, connection:
        connection.execute("UPDATE users SET email = 'changed@example.com' WHERE id = 1")
        connection.execute("DELETE FROM audit_logs WHERE id = 1")
    result = verify(url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result_of(result.stdout, "rows", "users") == "pass"
    assert result_of(result.stdout, "left", dev.path.name) == "FAIL"
    [line] = [line for line in result.stdout.splitlines() if line.startswith("left")]
    assert "audit_logs 1 new; tasks 1 new; users 1 new, 1 changed" in line
    assert "make catch-up" in line
    notes = result.stdout.split("rows written to the dev file after the cutover's snapshot", 1)[1]
    assert [line.split() for line in notes.splitlines()[1:4]] == [
        ["audit_logs:", "1", "new,", "0", "changed,", "1", "deleted"],
        ["tasks:", "1", "new,", "0", "changed,", "0", "deleted"],
        ["users:", "1", "new,", "1", "changed,", "0", "deleted"]]

    left_on_purpose = verify(url, LEAVE_DEV_ROWS="true")
    assert left_on_purpose.returncode == 0, left_on_purpose.stdout + left_on_purpose.stderr
    assert "left on purpose (LEAVE_DEV_ROWS=true" in left_on_purpose.stdout


def test_a_dev_file_unchanged_since_the_snapshot_says_so(dev: DevDatabase,
                                                          cut_over: CutOver) -> None:
    result = verify(cut_over())
    assert result_of(result.stdout, "left", dev.path.name) == "pass"
    assert "no rows written to the dev file after the cutover's snapshot" in result.stdout


def test_a_changed_row_fails_its_table(dev: DevDatabase, cut_over: CutOver) -> None:
    dev.add("users", id=2, email="x" * 300)
    url = cut_over("bad_rows=reject")
    execute(url, "UPDATE tasks SET title = 'edited after the cutover'")
    result = verify(url)
    assert result.returncode == 1
    assert result_of(result.stdout, "rows", "tasks") == "FAIL"
    assert "values differ" in result.stdout
    assert result_of(result.stdout, "rows", "users") == "pass"


def test_without_its_snapshot_verify_compares_with_the_recorded_checksums(
    dev: DevDatabase, cut_over: CutOver, tmp_path: Path
) -> None:
    dev.add("tasks", id=TASK_2, user_id=1, hotword_set_id=99)
    url = cut_over("orphans=set_null")
    snapshot = snapshot_of(tmp_path)
    snapshot.unlink()
    result = verify(url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"The cutover's snapshot {snapshot} is gone" in result.stderr
    assert result_of(result.stdout, "rows", "tasks") == "pass"

    execute(url, f"UPDATE tasks SET title = 'edited' WHERE id = '{TASK_1}'")
    result = verify(url)
    assert result.returncode == 1
    assert result_of(result.stdout, "rows", "tasks") == "FAIL"


def test_a_snapshot_changed_since_the_copy_fails(cut_over: CutOver, tmp_path: Path) -> None:
    url = cut_over()
    snapshot = snapshot_of(tmp_path)
    with closing(sqlite3.connect(snapshot)) as connection, connection:
        connection.execute("UPDATE users SET email = 'changed@example.com'")
    result = verify(url)
    assert result.returncode == 1
    assert result_of(result.stdout, "snapshot", snapshot.name) == "FAIL"
    assert "differs from what the cutover copied in users" in result.stdout


def test_the_record_holds_what_the_copy_used_and_the_downgrade_drops_it(
    dev: DevDatabase, cut_over: CutOver, tmp_path: Path
) -> None:
    dev.add("users", id=2, email="x" * 300)
    url = cut_over("bad_rows=reject", "orphans=set_null")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM cutover_row_copy_runs")).one()
    assert (row.source, row.snapshot) == (str(dev.path.resolve()), str(snapshot_of(tmp_path)))
    assert (row.bad_rows, row.orphans) == ("reject", "set_null")
    assert Path(row.rejects_file).parent == tmp_path / "work" / "rejects"
    assert {k: v for k, v in row.tables["users"].items() if k != "checksum"} == {
        "written": 1, "rejected": 1, "nulled": 0}
    command.downgrade(alembic_config(url), "0001")
    with engine.connect() as conn:
        assert not sa.inspect(conn).has_table("cutover_row_copy_runs")
    engine.dispose()


def test_a_sequence_behind_its_ids_fails(cut_over: CutOver) -> None:
    url = cut_over()
    execute(url, "SELECT setval(pg_get_serial_sequence('users', 'id'), 1, false)")
    result = verify(url)
    assert result.returncode == 1
    assert result_of(result.stdout, "sequence", "users.id") == "FAIL"


def test_verify_without_a_recorded_copy_says_so(pg_url: str) -> None:
    result = verify(pg_url)
    assert result.returncode == 2
    # The run's report and its page come first, and name where they are.
    assert result.stderr.splitlines()[-1].startswith(
        "FAILED: the target holds no record of a row copy")
    assert "Traceback" not in result.stderr


def test_a_connection_lost_during_verify_is_one_line_saying_so(
        cut_over: CutOver, pg_engine: sa.Engine) -> None:
    url = cut_over()
    env = {**os.environ, "DATABASE_URL": url}
    env.pop("SOURCE_DATABASE_URL", None)
    with pg_engine.connect() as blocker:  # verify waits on this lock, inside its checks
        blocker.execute(sa.text("LOCK TABLE users IN ACCESS EXCLUSIVE MODE"))
        process = subprocess.Popen([sys.executable, "-m", "data_migrations.commands.verify"],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        backend = wait_for("verify waits for the table", lambda: session_of(
            pg_engine, process, "wait_event_type = 'Lock'"))
        with pg_engine.connect() as admin:
            assert admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                                 {"pid": backend}).scalar()
        stdout, stderr = process.communicate(timeout=120)
        blocker.rollback()
    assert process.returncode == 2
    assert "Traceback" not in stdout + stderr
    failed = [line for line in stderr.splitlines() if line.startswith("FAILED:")]
    assert failed == [stderr.splitlines()[-1]]
    assert failed == ["FAILED: the connection to PostgreSQL was lost during verify; it "
                      "changes nothing; run it again once PostgreSQL answers"]
