"""A refused row copy tells the root causes first; the rows downgrade never reaches a row
it did not copy. On a real PostgreSQL and real SQLite files."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.util import CommandError

import models
from devtools.sample import generate_dev_database
from tests.conftest import ROOT, alembic_config, fetch, version
from tests.dev_data import TASK_1, DevDatabase
from tests.rows.test_row_copy import TABLES, counts

Row = tuple[str, object]

# One impossible date on user 2, and real defects in several other tables, each on a row
# that depends on nothing refused: (table, the bad value, which row).
DEFECTS = [
    ("users", "created_at = '2025-02-30 10:00:00'", "2"),
    ("prompt_templates", "content = 'a' || char(0) || 'b'",
     "SELECT max(id) FROM prompt_templates"),
    ("hotword_sets", "words = '[1, 2'", "2"),
    ("tasks", "completed_at = '2025-13-01 00:00:00'",
     "SELECT id FROM tasks WHERE user_id = 1 AND hotword_set_id IS NULL ORDER BY rowid LIMIT 1"),
    ("generated_artifacts", "cost = 'lots'",
     "SELECT a.id FROM generated_artifacts a JOIN tasks t ON t.id = a.task_id "
     "WHERE t.user_id = 3 AND t.hotword_set_id IS NULL ORDER BY a.id LIMIT 1"),
    ("audit_logs", "details = '{\"broken'",
     "SELECT max(id) FROM audit_logs WHERE user_id = 1 AND task_id IS NULL"),
    ("audit_logs", "user_id = 999",
     "SELECT min(id) FROM audit_logs WHERE user_id = 3 AND task_id IS NULL"),
]


def dirty_dev_file(path: Path) -> set[Row]:
    """A sample dev file with the defects; returns the rows they are in."""
    generate_dev_database(path, rows=600)
    roots: set[Row] = set()
    with sqlite3.connect(path) as conn:
        for table, value, which in DEFECTS:
            [(key,)] = conn.execute(f"SELECT id FROM {table} WHERE id = ({which})")
            conn.execute(f"UPDATE {table} SET {value} WHERE id = ?", (key,))
            roots.add((table, key))
    conn.close()
    return roots


def expected_dependents(path: Path, roots: set[Row]) -> dict[str, set[Row]]:
    """Per table, the rows refused through a reference, worked out here from the models'
    foreign keys."""
    refused = set(roots)
    dependents: dict[str, set[Row]] = {}
    with sqlite3.connect(path) as conn:
        for target in models.metadata.sorted_tables:
            for fk in target.foreign_keys:
                for key, value in conn.execute(
                        f"SELECT id, {fk.parent.name} FROM {target.name}"):
                    row = (target.name, key)
                    if (fk.column.table.name, value) in refused and row not in roots:
                        dependents.setdefault(target.name, set()).add(row)
                        refused.add(row)
    conn.close()
    return dependents


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_findings_file(path: Path, roots: set[Row],
                        dependents: dict[str, set[Row]]) -> None:
    records = read_jsonl(path)
    assert {(r["table"], r["key"]) for r in records if r["cause"] == "itself"} == roots
    assert {(r["table"], r["key"]) for r in records if r["cause"] == "depends"} == set().union(
        *dependents.values())
    assert len(records) == len(roots) + sum(map(len, dependents.values()))
    for record in records:  # each dependent row names the root rows it leads back to
        if record["cause"] == "depends":
            named = {(r["table"], r["key"]) for r in record["root_rows"]}
            assert named and named <= roots
    assert any({"table": "users", "key": 2} in r["root_rows"] for r in records
               if r["table"] == "tasks" and r["cause"] == "depends")
    user_2 = next(r for r in records if (r["table"], r["key"]) == ("users", 2))
    assert user_2["findings"] == [{"column": "created_at", "value": "2025-02-30 10:00:00",
                                   "reason": "not a valid ISO-8601 date-time"}]


def check_refusal_lines(lines: list[str], roots: set[Row],
                        dependents: dict[str, set[Row]]) -> None:
    """Every root row on a line of its own, in table order, then one line per table."""
    listed = [line for line in lines if line.startswith("  - ") and " key=" in line]
    assert len(listed) == len(roots)
    order = [t.name for t in models.metadata.sorted_tables]
    tables = [line[4:].split(" ")[0] for line in listed]
    assert tables == sorted(tables, key=order.index)
    for table, key in roots:
        assert sum(line.startswith(f"  - {table} key={key!r} ") for line in listed) == 1
    assert any("users key=2 column created_at: not a valid ISO-8601 date-time" in line
               for line in listed)
    summaries = [line for line in lines if line.startswith("  - ") and " key=" not in line]
    assert [line.split(":")[0][4:] for line in summaries] == [
        t for t in order if t in dependents]
    for line in summaries:
        table = line.split(":")[0][4:]
        count = len(dependents[table])
        assert f": {count:,} {'row depends' if count == 1 else 'rows depend'} on rejected " in line
    tasks_line = next(line for line in summaries if line.startswith("  - tasks:"))
    assert "users 2" in tasks_line and "hotword_sets 2" in tasks_line


def test_a_refusal_lists_root_causes_first_and_fits_one_screen(
    tmp_path: Path, pg_url: str, pg_engine: sa.Engine
) -> None:
    source = tmp_path / "meeting_agent.db"
    roots = dirty_dev_file(source)
    dependents = expected_dependents(source, roots)
    assert len(roots) == len(DEFECTS) and sum(map(len, dependents.values())) > 40
    env = {**os.environ, "DATABASE_URL": pg_url, "SOURCE_DATABASE_URL": f"sqlite:///{source}"}
    run = subprocess.run([sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"),
                          "upgrade", "0002"], env=env, capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert run.returncode != 0 and "Traceback" not in run.stdout + run.stderr
    refusal = run.stdout[run.stdout.index("FAILED: "):].splitlines()
    assert len(refusal) <= 40, "\n".join(refusal)
    assert refusal[0] == (f"FAILED: row copy stopped: {len(roots)} rows PostgreSQL would "
                          f"refuse, and {sum(map(len, dependents.values()))} rows that depend "
                          "on them; nothing was written.")
    check_refusal_lines(refusal, roots, dependents)
    [path] = (tmp_path / "work" / "rejects").glob("refusal-*.jsonl")
    assert f"Every finding is in {path}" in refusal
    check_findings_file(path, roots, dependents)
    assert version(pg_engine) == "0001"
    assert set(counts(pg_engine).values()) == {0}


def test_make_plan_prints_the_same_refusal(
    tmp_path: Path, pg_url: str, pg_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture
) -> None:
    source = tmp_path / "meeting_agent.db"
    roots = dirty_dev_file(source)
    dependents = expected_dependents(source, roots)
    monkeypatch.setenv("SOURCE_DATABASE_URL", f"sqlite:///{source}")
    monkeypatch.setenv("DRY_RUN", "true")
    command.upgrade(alembic_config(pg_url), "0002")
    err = capfd.readouterr().err
    start = err.index(f"{len(roots)} rows PostgreSQL would refuse")
    block = err[start:err.index("Dry run: every change was rolled back")].splitlines()
    assert len(block) <= 40, "\n".join(block)
    check_refusal_lines(block, roots, dependents)
    [path] = (tmp_path / "work" / "rejects").glob("refusal-*.jsonl")
    assert f"Every finding is in {path}" in block
    check_findings_file(path, roots, dependents)
    assert fetch(pg_engine, "SELECT to_regclass('users')") == [(None,)]


def test_root_rows_beyond_the_cap_are_counted_and_all_in_the_file(
    dev: DevDatabase, pg_url: str, tmp_path: Path
) -> None:
    for user_id in range(1, 41):
        dev.add("users", id=user_id, email="x" * 300)
    with pytest.raises(CommandError) as failure:
        command.upgrade(alembic_config(pg_url), "0002")
    lines = str(failure.value).splitlines()
    assert len(lines) <= 40
    assert sum(line.startswith("  - users key=") for line in lines) == 25
    assert "  ... and 15 more bad in themselves" in lines
    [path] = (tmp_path / "work" / "rejects").glob("refusal-*.jsonl")
    assert [r["key"] for r in read_jsonl(path)] == list(range(1, 41))


APP_TASK = "11111111-2222-4333-8444-555555555555"


def add_app_task(engine: sa.Engine, user_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO tasks (id, user_id, title, status, created_at) "
            "VALUES (:id, :user, 'recorded after the cutover', 'done', now())"),
            {"id": APP_TASK, "user": user_id})


def test_force_never_deletes_an_app_row_that_references_a_copied_row(
    dev: DevDatabase, pg_url: str, pg_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev.add_minimal_tree()
    config = alembic_config(pg_url)
    command.upgrade(config, "0002")
    add_app_task(pg_engine, user_id=1)  # ON DELETE CASCADE from users
    with pg_engine.begin() as conn:  # ON DELETE SET NULL from tasks
        conn.execute(sa.text("INSERT INTO audit_logs (task_id, action, currency, created_at) "
                             f"VALUES ('{TASK_1}', 'download', 'CNY', now())"))
    before = {t: fetch(pg_engine, f"SELECT * FROM {t} ORDER BY 1") for t in TABLES}

    monkeypatch.setenv("FORCE", "true")
    env = {**os.environ, "DATABASE_URL": pg_url}
    run = subprocess.run([sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"),
                          "downgrade", "0001"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode != 0 and "Traceback" not in run.stdout + run.stderr
    assert ("FAILED: removing the copied rows would delete or change 2 rows the app wrote "
            "since the cutover") in run.stdout
    assert (f"  - tasks key='{APP_TASK}' column user_id references copied users 1: the row "
            "would be deleted (ON DELETE CASCADE)") in run.stdout
    assert (f"  - audit_logs key=2 column task_id references copied tasks '{TASK_1}': "
            "task_id would be set to NULL (ON DELETE SET NULL)") in run.stdout
    assert {t: fetch(pg_engine, f"SELECT * FROM {t} ORDER BY 1") for t in TABLES} == before
    assert version(pg_engine) == "0002"


def test_force_removes_the_copied_rows_and_keeps_an_app_row_that_needs_none(
    dev: DevDatabase, pg_url: str, pg_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev.add_minimal_tree()
    config = alembic_config(pg_url)
    command.upgrade(config, "0002")
    with pg_engine.begin() as conn:
        app_user = conn.execute(sa.text(
            "INSERT INTO users (username, tenant_id, role, is_active, created_at) "
            "VALUES ('app', 't', 'member', true, now()) RETURNING id")).scalar_one()
    add_app_task(pg_engine, user_id=app_user)  # depends on the app's own user only

    monkeypatch.setenv("FORCE", "true")
    command.downgrade(config, "0001")
    assert fetch(pg_engine, "SELECT id, username FROM users") == [(app_user, "app")]
    assert fetch(pg_engine, "SELECT id::text, user_id FROM tasks") == [(APP_TASK, app_user)]
    assert counts(pg_engine) == {**dict.fromkeys(TABLES, 0), "users": 1, "tasks": 1}
    assert version(pg_engine) == "0001"
