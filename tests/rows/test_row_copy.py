"""The row-copy revision (0002) on a real PostgreSQL and real SQLite files."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError

import models
from data_migrations.commands.adopt_dev import alembic_config
from data_migrations.rows import row_copy
from data_migrations.run.report import write_cutover_report
from devtools.postgres_server import PostgresServer
from devtools.sample import generate_dev_database
from settings.steps import CopyOptions
from tests.conftest import ROOT, fetch, version
from tests.dev_data import TASK_1, TASK_2, DevDatabase

TABLES = ("users", "prompt_templates", "hotword_sets", "tasks", "transcripts",
          "speaker_mappings", "generated_artifacts", "audit_logs")
TABLE_ORDER = [t.name for t in models.metadata.sorted_tables]  # the copy's order


def counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in TABLES}


def test_every_type_and_datetime_form_round_trips(
    dev: DevDatabase, pg_url: str, pg_engine: sa.Engine
) -> None:
    forms = {
        1: ("2025-03-04 05:06:07.123456", datetime(2025, 3, 4, 5, 6, 7, 123456, UTC)),
        2: ("2025-03-04T05:06:07", datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)),
        3: ("2025-03-04T05:06:07Z", datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)),
        4: ("2025-03-04T13:06:07.5+08:00", datetime(2025, 3, 4, 5, 6, 7, 500000, UTC)),
        5: ("2025-03-04 05:06:07", datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)),
    }
    for user_id, (text, _) in forms.items():
        dev.add("users", id=user_id, created_at=text, is_active=user_id % 2,
                display_name="会议 🎙️ Zoë", last_login_at=None)
    dev.add("tasks", id=TASK_1, user_id=1, audio_size="123456789012", audio_duration=61.5,
            title="周会纪要 ✅ \\ tab\there\nnewline")
    dev.add("generated_artifacts", id=1, task_id=TASK_1, cost=0.1, input_tokens="42")
    dev.add("generated_artifacts", id=2, task_id=TASK_1, cost="0.000123", version="3")
    dev.add("audit_logs", id=1, task_id=TASK_1, cost=12.5,
            details='{"ip": "10.0.0.1", "nested": {"n": [1, 2.50, "三"]}, "ok": true}')
    dev.add("prompt_templates", id=1, content="请总结会议", variables="[]", is_default=1)

    command.upgrade(alembic_config(pg_url), "0002")

    created = dict(fetch(pg_engine, "SELECT id, created_at FROM users"))
    assert created == {user_id: moment for user_id, (_, moment) in forms.items()}
    assert fetch(pg_engine, "SELECT id, is_active FROM users ORDER BY id") == [
        (1, True), (2, False), (3, True), (4, False), (5, True)]
    assert {r[0] for r in fetch(pg_engine, "SELECT display_name FROM users")} == {"会议 🎙️ Zoë"}
    assert fetch(pg_engine, "SELECT id::text, title, audio_size, audio_duration FROM tasks") == [
        (TASK_1, "周会纪要 ✅ \\ tab\there\nnewline", 123456789012, 61.5)]
    assert fetch(pg_engine, "SELECT cost, input_tokens, version FROM generated_artifacts "
                            "ORDER BY id") == [(Decimal("0.100000"), 42, 1),
                                               (Decimal("0.000123"), None, 3)]
    [(details, kind)] = fetch(pg_engine, "SELECT details, jsonb_typeof(details) FROM audit_logs")
    assert kind == "object"
    assert details == {"ip": "10.0.0.1", "nested": {"n": [1, 2.5, "三"]}, "ok": True}
    assert fetch(pg_engine, "SELECT is_default, variables FROM prompt_templates") == [(True, [])]
    assert version(pg_engine) == "0002"


def test_a_cutover_report_is_written_as_json(
    dev: DevDatabase, pg_url: str, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    dev.add_minimal_tree()
    dev.add("users", id=2, email="x" * 300)
    config = alembic_config(pg_url)
    config.cmd_opts = type("Options", (), {"x": ["bad_rows=reject"]})()
    command.upgrade(config, "0002")
    [path] = (tmp_path / "reports").glob("cutover-*.json")
    assert f"Written to {path}" in capfd.readouterr().err
    [rows] = json.loads(path.read_text())["steps"]
    assert rows["step"] == "rows"
    assert rows["summary"] == "8 rows copied, 1 rejected"
    users = next(t for t in rows["tables"] if t["table"] == "users")
    assert (users["read"], users["written"], users["rejected"], users["verified"]) == (
        2, 1, 1, "ok")
    assert rows["rejects_file"].endswith(".jsonl")


def test_the_source_is_backed_up_before_the_copy_and_never_changed(
    dev: DevDatabase, pg_url: str, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    dev.add_minimal_tree()
    before = dev.path.read_bytes()
    command.upgrade(alembic_config(pg_url), "0002")
    [backup] = (tmp_path / "work" / "backups").glob("meeting_agent-*.db")
    assert f"Backed up {dev.path} to {backup}" in capfd.readouterr().err
    with sqlite3.connect(backup) as copy:
        assert copy.execute("SELECT id, username FROM users").fetchall() == [(1, "username-1")]
    copy.close()
    assert dev.path.read_bytes() == before


def test_copy_follows_foreign_keys_and_resets_sequences(
    dev: DevDatabase, pg_url: str, pg_engine: sa.Engine, capfd: pytest.CaptureFixture
) -> None:
    # Children inserted before their parents, ids out of order: the copy still works.
    dev.add("audit_logs", id=7, user_id=40, task_id=TASK_1)
    dev.add("transcripts", id=3, task_id=TASK_1)
    dev.add("tasks", id=TASK_1, user_id=40)
    dev.add("users", id=40)
    dev.add("users", id=9)

    command.upgrade(alembic_config(pg_url), "0002")

    # The foreign keys and indexes set aside for the load are back, exactly as they were.
    with pg_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        drift = [d for d in compare_metadata(context, models.metadata)
                 if not (d[0] == "remove_table" and d[1].name.startswith("cutover_"))]
    assert drift == []
    summary = capfd.readouterr().err
    order = [t for t in TABLES if f"\n{t} " in summary]
    assert order.index("users") < order.index("tasks") < order.index("transcripts")
    assert order.index("tasks") < order.index("audit_logs")
    with pg_engine.begin() as conn:
        new_user = conn.execute(sa.text(
            "INSERT INTO users (username, tenant_id, role, is_active, created_at) "
            "VALUES ('new', 't', 'member', true, now()) RETURNING id")).scalar_one()
        new_log = conn.execute(sa.text(
            "INSERT INTO audit_logs (action, currency, created_at) "
            "VALUES ('x', 'CNY', now()) RETURNING id")).scalar_one()
        new_template = conn.execute(sa.text(
            "INSERT INTO prompt_templates (name, artifact_type, content, is_default, version, "
            "created_at) VALUES ('n', 'a', 'c', false, 1, now()) RETURNING id")).scalar_one()
    assert (new_user, new_log, new_template) == (41, 8, 1)


def test_without_a_source_the_revision_does_nothing(
    pg_url: str, pg_engine: sa.Engine, capfd: pytest.CaptureFixture
) -> None:
    command.upgrade(alembic_config(pg_url), "0002")
    assert "SOURCE_DATABASE_URL is not set: no rows to copy" in capfd.readouterr().err
    assert version(pg_engine) == "0002"
    assert set(counts(pg_engine).values()) == {0}


def test_a_missing_source_file_is_named(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SOURCE_DATABASE_URL", f"sqlite:///{tmp_path}/nowhere.db")
    with pytest.raises(CommandError, match=r"nowhere\.db, which does not exist"):
        command.upgrade(alembic_config(pg_url), "0002")


def add_bad_rows(dev: DevDatabase) -> None:
    """One row of each class PostgreSQL refuses, plus good rows around them."""
    dev.add_minimal_tree()
    dev.add("users", id=2, email="x" * 300)                          # too long
    dev.add("users", id=3, created_at="2025-02-30 10:00:00")           # impossible date
    dev.add("users", id=4, display_name="nul\x00byte")                 # NUL character
    dev.add("hotword_sets", id=2, words="[1, 2")                       # malformed JSON
    dev.add("tasks", id="not-a-uuid", user_id=1)                       # non-UUID task id
    dev.add("tasks", id=TASK_2, user_id=99)                            # required orphan
    dev.add("transcripts", id=2, task_id=TASK_2)                       # depends on a reject
    dev.add("audit_logs", id=2, user_id=77, task_id=TASK_1)            # optional orphan
    dev.add("speaker_mappings", id=2, task_id=TASK_1, user_id=3)       # refers to a reject


BAD_FINDINGS = [
    ("users", 2, "email", "300 characters, longer than VARCHAR(255)"),
    ("users", 3, "created_at", "not a valid ISO-8601 date-time"),
    ("users", 4, "display_name", "contains a NUL character"),
    ("hotword_sets", 2, "words", "malformed JSON"),
    ("tasks", "not-a-uuid", "id", "not a UUID"),
    ("tasks", TASK_2, "user_id", "references users 99, which does not exist"),
    ("transcripts", 2, "task_id", f"references tasks '{TASK_2}', which is rejected"),
    ("audit_logs", 2, "user_id", "references users 77, which does not exist"),
    ("speaker_mappings", 2, "user_id", "references users 3, which is rejected"),
]


def test_bad_rows_fail_by_default_with_every_finding_and_nothing_written(
    dev: DevDatabase, pg_url: str, pg_engine: sa.Engine, tmp_path: Path
) -> None:
    add_bad_rows(dev)
    with pytest.raises(CommandError) as failure:
        command.upgrade(alembic_config(pg_url), "0002")
    message = str(failure.value)
    assert "nothing was written" in message
    roots = [f for f in BAD_FINDINGS if not f[3].endswith("which is rejected")]
    for table, key, column, reason in roots:
        line = next(line for line in message.splitlines()
                    if line.startswith(f"  - {table} key={key!r} column {column}:"))
        assert reason in line
    # The rows refused only through a refused parent are summed up per table.
    assert f"  - transcripts: 1 row depends on rejected tasks '{TASK_2}'" in message
    assert "  - speaker_mappings: 1 row depends on rejected users 3" in message
    assert set(counts(pg_engine).values()) == {0}
    assert version(pg_engine) == "0001"
    [findings] = (tmp_path / "work" / "rejects").glob("*.jsonl")
    assert findings.name.startswith("refusal-") and f"Every finding is in {findings}" in message
    records = [json.loads(line) for line in findings.read_text().splitlines()]
    assert [(r["table"], r["key"], r["cause"]) for r in records] == [
        (t, k, "depends" if r.endswith("which is rejected") else "itself")
        for t, k, _, r in sorted(BAD_FINDINGS, key=lambda f: TABLE_ORDER.index(f[0]))]


def read_rejects(tmp_path: Path) -> list[dict]:
    [path] = (tmp_path / "work" / "rejects").glob("row-copy-*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_reject_policy_copies_the_rest_and_writes_every_rejected_row(
    dev: DevDatabase, pg_url: str, pg_engine: sa.Engine, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    add_bad_rows(dev)
    monkeypatch.setenv("BAD_ROWS", "reject")
    command.upgrade(alembic_config(pg_url), "0002")

    assert counts(pg_engine) == {"users": 1, "prompt_templates": 1, "hotword_sets": 1,
                                 "tasks": 1, "transcripts": 1, "speaker_mappings": 1,
                                 "generated_artifacts": 1, "audit_logs": 1}
    rejects = read_rejects(tmp_path)
    assert {(r["table"], r["key"]) for r in rejects} == {(t, k) for t, k, _, _ in BAD_FINDINGS}
    assert all(r["action"] == "rejected" for r in rejects)
    email_reject = next(r for r in rejects if r["key"] == 2 and r["table"] == "users")
    assert email_reject["row"]["email"] == "x" * 300  # the whole row, as it was
    assert email_reject["reasons"] == [
        {"column": "email", "reason": "300 characters, longer than VARCHAR(255)"}]
    assert f"Rejected and altered rows are in {tmp_path / 'work' / 'rejects'}" in (
        capfd.readouterr().err)


def test_set_null_policy_keeps_rows_with_a_dangling_optional_reference(
    dev: DevDatabase, pg_url: str, pg_engine: sa.Engine, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    add_bad_rows(dev)
    config = alembic_config(pg_url)
    config.cmd_opts = type("Options", (), {"x": ["bad_rows=reject", "orphans=set_null"]})()
    command.upgrade(config, "0002")

    assert fetch(pg_engine, "SELECT id, user_id FROM audit_logs ORDER BY id") == [
        (1, 1), (2, None)]
    assert fetch(pg_engine, "SELECT id, user_id FROM speaker_mappings ORDER BY id") == [
        (1, 1), (2, None)]
    nulled = [r for r in read_rejects(tmp_path) if r["action"] == "set_null"]
    assert sorted((r["table"], r["key"], r["column"], r["original"]) for r in nulled) == [
        ("audit_logs", 2, "user_id", 77), ("speaker_mappings", 2, "user_id", 3)]
    # A required reference cannot be nulled: that row is still rejected.
    assert fetch(pg_engine, "SELECT count(*) FROM tasks") == [(1,)]


def test_a_foreign_non_empty_target_is_refused(
    dev: DevDatabase, pg_url: str, pg_engine: sa.Engine
) -> None:
    dev.add_minimal_tree()
    command.upgrade(alembic_config(pg_url), "0001")
    with pg_engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO users (username, tenant_id, role, is_active, "
                             "created_at) VALUES ('prod-user', 't', 'r', true, now())"))
    with pytest.raises(CommandError, match="already holds rows in users"):
        command.upgrade(alembic_config(pg_url), "0002")
    assert counts(pg_engine)["users"] == 1 and version(pg_engine) == "0001"


def test_dry_run_reports_and_writes_nothing(
    dev: DevDatabase, pg_url: str, pg_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture
) -> None:
    add_bad_rows(dev)
    monkeypatch.setenv("DRY_RUN", "true")
    command.upgrade(alembic_config(pg_url), "0002")
    err = capfd.readouterr().err
    assert "Row copy plan (dry run, rolled back)" in err
    assert "references users 99, which does not exist" in err
    assert "Dry run: every change was rolled back" in err
    assert fetch(pg_engine, "SELECT to_regclass('users'), to_regclass('alembic_version')") == [
        (None, None)]


def test_downgrade_removes_exactly_the_copied_rows(
    dev: DevDatabase, pg_url: str, pg_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev.add_minimal_tree()
    config = alembic_config(pg_url)
    command.upgrade(config, "0002")
    with pg_engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO audit_logs (action, currency, created_at) "
                             "VALUES ('after cutover', 'CNY', now())"))

    with pytest.raises(CommandError, match=r"did not come from the source \(audit_logs 1\)"):
        command.downgrade(config, "0001")
    assert counts(pg_engine)["users"] == 1 and version(pg_engine) == "0002"

    monkeypatch.setenv("FORCE", "true")
    command.downgrade(config, "0001")
    assert fetch(pg_engine, "SELECT action FROM audit_logs") == [("after cutover",)]
    assert counts(pg_engine)["users"] == 0 and version(pg_engine) == "0001"
    assert fetch(pg_engine, "SELECT to_regclass('cutover_copied_keys')") == [(None,)]
    with pg_engine.begin() as conn:  # sequences were reset with the rows
        new_user = conn.execute(sa.text(
            "INSERT INTO users (username, tenant_id, role, is_active, created_at) "
            "VALUES ('again', 't', 'r', true, now()) RETURNING id")).scalar_one()
    assert new_user == 1


def test_upgrade_after_downgrade_copies_again(
    dev: DevDatabase, pg_url: str, pg_engine: sa.Engine
) -> None:
    dev.add_minimal_tree()
    config = alembic_config(pg_url)
    command.upgrade(config, "0002")
    command.downgrade(config, "0001")
    assert set(counts(pg_engine).values()) == {0}
    command.upgrade(config, "0002")
    assert set(counts(pg_engine).values()) == {1}


def fill_audit_logs(dev: DevDatabase, rows: int) -> None:
    with sqlite3.connect(dev.path) as conn:
        conn.executemany(
            "INSERT INTO audit_logs (id, action, currency, details, created_at) "
            "VALUES (?, 'asr', 'CNY', ?, '2025-01-01 00:00:00')",
            ((i, f'{{"n": {i}, "note": "第{i}次"}}') for i in range(1, rows + 1)))
    conn.close()


def child_pids(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_a_copy_killed_mid_way_leaves_nothing_and_a_rerun_completes(
    dev: DevDatabase, pg_url: str, pg_engine: sa.Engine
) -> None:
    dev.add_minimal_tree()
    with sqlite3.connect(dev.path) as conn:
        conn.execute("DELETE FROM audit_logs")
    conn.close()
    fill_audit_logs(dev, 400_000)
    env = {**os.environ, "DATABASE_URL": pg_url}
    upgrade = [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"),
               "upgrade", "0002"]
    process = subprocess.Popen(upgrade, env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:  # a progress line: the copy of audit_logs is under way
        if line.strip().startswith("copying audit_logs:"):
            workers = child_pids(process.pid)
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert workers, "the copy converts in worker processes"
    deadline = time.monotonic() + 30  # the workers notice and end too
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]

    assert version(pg_engine) == "0001"
    assert set(counts(pg_engine).values()) == {0}

    rerun = subprocess.run(upgrade, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert version(pg_engine) == "0002"
    assert counts(pg_engine)["audit_logs"] == 400_000
    assert fetch(pg_engine, "SELECT count(DISTINCT id), min(id), max(id) FROM audit_logs") == [
        (400_000, 1, 400_000)]


def test_command_line_options_and_a_bad_option_value(
    dev: DevDatabase, pg_url: str, pg_engine: sa.Engine
) -> None:
    add_bad_rows(dev)
    env = {**os.environ, "DATABASE_URL": pg_url}
    base = [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini")]
    wrong = subprocess.run([*base, "-x", "bad_rows=skip", "upgrade", "0002"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert wrong.returncode != 0 and "Traceback" not in wrong.stdout + wrong.stderr
    assert "FAILED: bad_rows must be one of fail, reject, got 'skip'" in wrong.stdout
    no_workers = subprocess.run([*base, "upgrade", "0002"], capture_output=True, text=True,
                                env={**env, "ROW_COPY_WORKERS": "0"}, timeout=120)
    assert no_workers.returncode != 0 and "Traceback" not in no_workers.stderr
    assert ("FAILED: ROW_COPY_WORKERS must be a whole number of at least 1, got '0'"
            in no_workers.stdout)
    ok = subprocess.run([*base, "-x", "bad_rows=reject", "upgrade", "0002"], env=env,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert counts(pg_engine)["users"] == 1


def copied_state(url: str, reports: Path, work: Path) -> tuple[dict, list, list]:
    """Every copied row, the report's tables and the rejects file of one copy."""
    engine = sa.create_engine(url)
    rows = {t: fetch(engine, f"SELECT * FROM {t} ORDER BY 1") for t in TABLES}
    engine.dispose()
    [report] = reports.glob("cutover-*.json")
    [step] = json.loads(report.read_text())["steps"]
    [rejects] = (work / "rejects").glob("row-copy-*.jsonl")
    return rows, step["tables"], rejects.read_text().splitlines()


def copy_in_small_ranges(url: str, source: Path, workers: int, work: Path,
                         reports: Path) -> None:
    """The row copy of ``source`` into a database at the baseline, in ranges of a few rows
    so that a small file is shared among the workers too, with its cutover report."""
    command.upgrade(alembic_config(url), "0001")
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        copied_keys = sa.Table("cutover_copied_keys", sa.MetaData(),
                               sa.Column("table_name", sa.Text(), nullable=False),
                               sa.Column("key", sa.Text(), nullable=False))
        copied_keys.create(connection)
        options = CopyOptions(bad_rows="reject", orphans="reject", dry_run=False, force=False,
                              workers=workers, work_dir=work)
        row_copy.copy_rows(connection, source, options, copied_keys.name, range_bytes=2048)
    engine.dispose()
    write_cutover_report(reports)


def test_worker_processes_copy_exactly_what_one_process_copies(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    source = tmp_path / "meeting_agent.db"
    generate_dev_database(source, rows=600)
    with sqlite3.connect(source) as conn:
        first, last = conn.execute("SELECT min(id), max(id) FROM audit_logs").fetchone()
        conn.execute("UPDATE audit_logs SET details = '{\"broken' WHERE id = ?", (first,))
        conn.execute("UPDATE audit_logs SET currency = 'far too long' WHERE id = ?", (last,))
    conn.close()
    states = {}
    for workers in (1, 2):
        reports, work = tmp_path / f"reports-{workers}", tmp_path / f"work-{workers}"
        with postgres_server.database(f"workers_{workers}_{uuid.uuid4().hex[:8]}") as url:
            copy_in_small_ranges(url, source, workers, work, reports)
            states[workers] = copied_state(url, reports, work)
    (one_rows, one_tables, one_rejects), (two_rows, two_tables, two_rejects) = states.values()
    assert two_rows == one_rows
    assert two_rejects == one_rejects
    assert [json.loads(line)["key"] for line in two_rejects] == [first, last]
    audit_logs = {t["table"]: t for t in two_tables}["audit_logs"]
    assert (audit_logs["processes"], audit_logs["rejected"], audit_logs["verified"]) == (
        2, 2, "ok")
    assert {t["table"]: t["processes"] for t in one_tables} == dict.fromkeys(TABLES, 1)

    def counted(tables: list[dict]) -> list[tuple]:
        return [(t["table"], t["read"], t["written"], t["rejected"], t["checksum"])
                for t in tables]
    assert counted(two_tables) == counted(one_tables)


def test_integer_keys_are_kept_as_runs_and_rows_added_in_the_gaps_stay(
    dev: DevDatabase, pg_url: str, pg_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    for user_id in (1, 2, 5, 9):
        dev.add("users", id=user_id)
    dev.add("tasks", id=TASK_1, user_id=1)
    config = alembic_config(pg_url)
    command.upgrade(config, "0002")
    assert fetch(pg_engine, "SELECT table_name, key FROM cutover_copied_keys "
                            "ORDER BY table_name, key") == [
        ("tasks", TASK_1), ("users", "[1,3)"), ("users", "[5,6)"), ("users", "[9,10)")]
    with pg_engine.begin() as conn:  # the app adds a user in a gap, and one after the last
        conn.execute(sa.text(
            "INSERT INTO users (id, username, tenant_id, role, is_active, created_at) "
            "VALUES (3, 'in a gap', 't', 'r', true, now())"))
        conn.execute(sa.text(
            "INSERT INTO users (username, tenant_id, role, is_active, created_at) "
            "VALUES ('after', 't', 'r', true, now())"))

    with pytest.raises(CommandError, match=r"did not come from the source \(users 2\)"):
        command.downgrade(config, "0001")
    monkeypatch.setenv("FORCE", "true")
    command.downgrade(config, "0001")
    assert fetch(pg_engine, "SELECT id, username FROM users ORDER BY id") == [
        (3, "in a gap"), (10, "after")]
    assert counts(pg_engine)["tasks"] == 0
