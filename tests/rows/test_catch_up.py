"""Rows written to the dev file after the cutover's snapshot: the cutover's last line and
exit code, make verify's failure, make catch-up, and the rows downgrade after it; each
command a process of its own, the dev file written by another process (tests/rows/dev_writer.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from data_migrations.run.failure import NOT_READY_EXIT
from tests.conftest import ROOT
from tests.rows import dev_writer
from tests.run.test_run_guard import session_of, wait_for
from tests.runs import cutover_environment, failed_lines, one_failure, upgrade_head

pytestmark = pytest.mark.slow


def alembic(environment: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"),
                           *args], env=environment, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def command(module: str, environment: dict[str, str], cwd: Path,
            *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"data_migrations.commands.{module}", *args],
                          env=environment, cwd=cwd, capture_output=True, text=True, timeout=600)


def write_dev_file(tmp_path: Path, phase: str) -> None:
    """The forgotten worker writes to the dev file, in a process of its own."""
    subprocess.run([sys.executable, "-m", "tests.rows.dev_writer", str(tmp_path / "dev.db"),
                    str(tmp_path / "uploads"), phase], cwd=ROOT, check=True, timeout=60)


def last_line(result: subprocess.CompletedProcess) -> str:
    return result.stderr.rstrip().splitlines()[-1]


def scalar(engine: sa.Engine, sql: str) -> object:
    with engine.connect() as connection:
        return connection.execute(sa.text(sql)).scalar()


def left_line(result: subprocess.CompletedProcess) -> str:
    [line] = [line for line in result.stdout.splitlines() if line.startswith("left ")]
    return line


@pytest.fixture
def environment(tmp_path: Path, pg_url: str) -> dict[str, str]:
    return {**cutover_environment(tmp_path, pg_url), "VERIFY_URLS": "none"}


def waiting_on_a_lock(what: str, process: subprocess.Popen, pg_engine: sa.Engine) -> None:
    """Until the process's session waits on the test's lock; a process that ended first
    fails the test with what it printed."""
    def waiting() -> bool:
        if process.poll() is not None:
            stdout, stderr = process.communicate()
            pytest.fail(f"{what} ended (exit {process.returncode}) before it waited on "
                        f"audit_logs:\n{stdout}{stderr}")
        return bool(session_of(pg_engine, process, "wait_event_type = 'Lock'"))
    wait_for(f"{what} waiting on audit_logs", waiting)


def cut_over_while_written(environment: dict[str, str], tmp_path: Path,
                           pg_engine: sa.Engine) -> subprocess.CompletedProcess:
    """The cutover, held after its snapshot (on a lock of the test's) while the worker
    writes to the dev file."""
    assert alembic(environment, tmp_path, "upgrade", "0001").returncode == 0
    with pg_engine.connect() as blocker:
        blocker.execute(sa.text("LOCK TABLE audit_logs IN ACCESS EXCLUSIVE MODE"))
        process = subprocess.Popen(
            [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade",
             "head"], env=environment, cwd=tmp_path, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        waiting_on_a_lock("the row copy", process, pg_engine)
        assert list((tmp_path / "work" / "backups").glob("*.db")), "no snapshot taken yet"
        write_dev_file(tmp_path, "during")
        blocker.rollback()
    stdout, stderr = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_rows_written_during_and_after_the_cutover_are_caught_up_and_rolled_back(
        environment: dict[str, str], tmp_path: Path, pg_engine: sa.Engine) -> None:
    cutover = cut_over_while_written(environment, tmp_path, pg_engine)
    assert cutover.returncode == NOT_READY_EXIT, cutover.stdout + cutover.stderr
    assert not failed_lines(cutover)
    line = last_line(cutover)
    assert line.startswith("NOT READY TO GO LIVE: the dev file"), line
    assert "8 rows are not in the target (audit_logs 5 new; tasks 1 new; users 1 new, " \
           "1 changed)" in line
    assert "Stop the app's API and worker" in line and "`make catch-up`" in line
    # The last one: upgrade 0001 before it wrote its own.
    report = sorted((tmp_path / "reports").glob("cutover-*.json"))[-1]
    assert json.loads(report.read_text())["left_behind"] == {
        "audit_logs": {"new": 5, "changed": 0}, "tasks": {"new": 1, "changed": 0},
        "users": {"new": 1, "changed": 1}}
    users = scalar(pg_engine, "SELECT count(*) FROM users")

    write_dev_file(tmp_path, "after")
    verify = command("verify", environment, tmp_path)
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert "FAIL" in left_line(verify)
    assert ("audit_logs 7 new; generated_artifacts 1 new; tasks 1 new, 1 changed; users 1 new, "
            "1 changed") in left_line(verify)

    caught_up = command("catch_up", environment, tmp_path)
    assert caught_up.returncode == 0, caught_up.stdout + caught_up.stderr
    assert not failed_lines(caught_up)
    assert scalar(pg_engine, "SELECT count(*) FROM users") == users + 1
    assert scalar(pg_engine, "SELECT display_name FROM users WHERE id = 1") == \
        dev_writer.CHANGED_NAME
    assert scalar(pg_engine, "SELECT count(*) FROM tasks WHERE title = "
                             f"'{dev_writer.CHANGED_TITLE}'") == 1
    assert scalar(pg_engine, "SELECT count(*) FROM audit_logs WHERE id >= 1000") == 7
    url = scalar(pg_engine, f"SELECT audio_path FROM tasks WHERE id = '{dev_writer.LATE_TASK}'")
    assert url == scalar(pg_engine, "SELECT public_url FROM cutover_file_manifest WHERE "
                                    "relative_path = 'audio/late recording #1.wav'")
    assert (tmp_path / "bucket" / "audio" / "late recording #1.wav").read_bytes() == \
        b"RIFF late recording"
    assert "1 files new or changed since the cutover's upload" in caught_up.stderr
    minutes = scalar(pg_engine, "SELECT file_path FROM generated_artifacts WHERE id = 500")
    assert minutes == scalar(pg_engine, "SELECT public_url FROM cutover_file_manifest WHERE "
                                        "relative_path = 'exports/late minutes 纪要.md'")
    assert (tmp_path / "bucket" / "exports" / "late minutes 纪要.md").is_file()

    verified = command("verify", environment, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "pass" in left_line(verified)

    back = alembic(environment, tmp_path, "downgrade", "0001")
    assert back.returncode == 0, back.stdout + back.stderr
    for table in ("users", "tasks", "audit_logs", "generated_artifacts"):
        assert scalar(pg_engine, f"SELECT count(*) FROM {table}") == 0, table


def test_catch_up_after_the_app_wrote_to_the_target_is_refused_in_one_line(
        environment: dict[str, str], tmp_path: Path, pg_engine: sa.Engine) -> None:
    cutover = upgrade_head(environment, tmp_path)
    assert cutover.returncode == 0, cutover.stdout + cutover.stderr
    write_dev_file(tmp_path, "after")
    with pg_engine.begin() as connection:  # the app, live on the target
        connection.execute(sa.text("UPDATE users SET display_name = 'set by the app' "
                                   "WHERE id = 1"))
    refused = command("catch_up", environment, tmp_path)
    assert refused.returncode == 2
    assert one_failure(refused).startswith(
        "FAILED: catch-up refused: the target's users differ from what the cutover copied")
    assert scalar(pg_engine, "SELECT count(*) FROM audit_logs WHERE id >= 2000") == 0


def test_a_worker_still_writing_during_the_catch_up_ends_it_not_ready(
        environment: dict[str, str], tmp_path: Path, pg_engine: sa.Engine) -> None:
    assert upgrade_head(environment, tmp_path).returncode == 0
    write_dev_file(tmp_path, "again")
    snapshots = set((tmp_path / "work" / "backups").glob("*.db"))
    with pg_engine.connect() as blocker:  # reads pass, the catch-up's writes wait
        blocker.execute(sa.text("LOCK TABLE audit_logs IN EXCLUSIVE MODE"))
        process = subprocess.Popen(
            [sys.executable, "-m", "data_migrations.commands.catch_up"], env=environment,
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        waiting_on_a_lock("the catch-up", process, pg_engine)
        assert set((tmp_path / "work" / "backups").glob("*.db")) - snapshots, "no snapshot"
        write_dev_file(tmp_path, "last")
        blocker.rollback()
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == NOT_READY_EXIT, stdout + stderr
    assert stderr.rstrip().splitlines()[-1].startswith(
        "NOT READY TO GO LIVE: the dev file")
    assert "3 rows are not in the target (audit_logs 3 new)" in stderr
    assert scalar(pg_engine, "SELECT count(*) FROM audit_logs WHERE id >= 3000") == 3

    again = command("catch_up", environment, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert scalar(pg_engine, "SELECT count(*) FROM audit_logs WHERE id >= 3000") == 6
    assert command("verify", environment, tmp_path).returncode == 0


def test_a_late_row_postgresql_refuses_stops_the_catch_up_unless_rejected(
        environment: dict[str, str], tmp_path: Path, pg_engine: sa.Engine) -> None:
    assert upgrade_head(environment, tmp_path).returncode == 0
    write_dev_file(tmp_path, "bad")
    write_dev_file(tmp_path, "again")
    refused = command("catch_up", environment, tmp_path)
    assert one_failure(refused).startswith(
        "FAILED: row copy stopped: 1 row PostgreSQL would refuse; nothing was written.")
    assert scalar(pg_engine, "SELECT count(*) FROM audit_logs WHERE id >= 3000") == 0

    rejecting = command("catch_up", environment, tmp_path, "-x", "bad_rows=reject")
    assert rejecting.returncode == 0, rejecting.stdout + rejecting.stderr
    assert scalar(pg_engine, "SELECT count(*) FROM audit_logs WHERE id >= 3000") == 3
    assert scalar(pg_engine, f"SELECT count(*) FROM users WHERE id = {dev_writer.BAD_USER}") == 0
    [rejects] = (tmp_path / "work" / "rejects").glob("row-copy-*.jsonl")
    assert json.loads(rejects.read_text())["key"] == dev_writer.BAD_USER
    verified = command("verify", environment, tmp_path)  # under the policy the catch-up used
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_cutover_resumed_after_its_rows_step_still_tells_the_rows_left_behind(
        environment: dict[str, str], tmp_path: Path) -> None:
    rows = alembic(environment, tmp_path, "upgrade", "0002")  # then killed, say
    assert rows.returncode == 0, rows.stdout + rows.stderr
    write_dev_file(tmp_path, "again")
    left_on_purpose = alembic({**environment, "LEAVE_DEV_ROWS": "true"}, tmp_path,
                              "upgrade", "0003")
    assert left_on_purpose.returncode == 0, left_on_purpose.stdout + left_on_purpose.stderr
    assert last_line(left_on_purpose).startswith(
        "Left in the dev file on purpose (LEAVE_DEV_ROWS=true (-x leave_dev_rows=true)): the "
        "dev file")

    resumed = upgrade_head(environment, tmp_path)
    assert resumed.returncode == NOT_READY_EXIT, resumed.stdout + resumed.stderr
    assert "3 rows are not in the target (audit_logs 3 new)" in last_line(resumed)


def test_a_late_row_referencing_a_row_the_cutover_rejected_stops_the_catch_up_in_one_line(
        environment: dict[str, str], tmp_path: Path, pg_engine: sa.Engine) -> None:
    write_dev_file(tmp_path, "bad")  # before the cutover, which rejects it
    cutover = upgrade_head({**environment, "BAD_ROWS": "reject"}, tmp_path)
    assert cutover.returncode == 0, cutover.stdout + cutover.stderr
    write_dev_file(tmp_path, "orphan")
    stopped = command("catch_up", environment, tmp_path)
    assert one_failure(stopped).startswith(
        "FAILED: catch-up stopped: the rows of audit_logs written since the snapshot do not "
        "fit the target: insert or update on table \"audit_logs\" violates foreign key")
    assert scalar(pg_engine, "SELECT count(*) FROM audit_logs WHERE id = 5000") == 0


def test_nothing_written_after_the_snapshot_is_nothing_to_catch_up(
        environment: dict[str, str], tmp_path: Path) -> None:
    cutover = upgrade_head(environment, tmp_path)
    assert cutover.returncode == 0, cutover.stdout + cutover.stderr
    assert "NOT READY" not in cutover.stderr
    result = command("catch_up", environment, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Nothing to catch up" in result.stderr
