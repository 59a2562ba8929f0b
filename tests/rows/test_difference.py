"""What the dev file holds beyond a snapshot, found by SQLite, and the line that tells it."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from data_migrations.rows.difference import as_report, differences
from data_migrations.rows.watch import tell
from tests.dev_data import TASK_1, TASK_2, DevDatabase


@pytest.fixture
def snapshot(dev: DevDatabase, tmp_path: Path) -> Path:
    dev.add_minimal_tree()
    copy = tmp_path / "snapshot.db"
    shutil.copy(dev.path, copy)
    return copy


def execute(path: Path, sql: str) -> None:
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(sql)


def test_new_changed_and_deleted_rows_are_told_apart(dev: DevDatabase, snapshot: Path) -> None:
    dev.add("users", id=2)
    dev.add("tasks", id=TASK_2, user_id=2)
    execute(dev.path, f"UPDATE tasks SET title = 'renamed' WHERE id = '{TASK_1}'")
    execute(dev.path, "UPDATE users SET email = 'new@example.com' WHERE id = 1")
    execute(dev.path, "DELETE FROM audit_logs")
    found = {d.table: (d.new, d.changed, d.deleted) for d in differences(dev.path, snapshot)}
    assert found == {"audit_logs": (0, 0, 1), "tasks": (1, 1, 0), "users": (1, 1, 0)}


def test_an_unchanged_dev_file_has_no_difference(dev: DevDatabase, snapshot: Path) -> None:
    assert differences(dev.path, snapshot) == []


def test_the_last_line_names_the_tables_and_the_command(
        dev: DevDatabase, snapshot: Path, caplog: pytest.LogCaptureFixture) -> None:
    dev.add("users", id=2)
    execute(dev.path, "DELETE FROM audit_logs")
    found = differences(dev.path, snapshot)
    assert as_report(found) == {"users": {"new": 1, "changed": 0}}
    with caplog.at_level(logging.INFO, logger="cutover"):
        assert tell(found, "dev.db", leave=False, env_name="prod", not_ready_exit=3) == 3
    assert caplog.messages[-1] == (
        "NOT READY TO GO LIVE: the dev file dev.db changed after the cutover's snapshot: 1 rows "
        "are not in the target (users 1 new). Stop the app's API and worker (every process "
        "writing to the dev file), then run `make catch-up ENV=prod`; exit 3")
    assert "stay in the target (a catch-up never deletes): audit_logs 1" in caplog.messages[-2]


def test_rows_left_on_purpose_are_a_note_and_exit_0(
        dev: DevDatabase, snapshot: Path, caplog: pytest.LogCaptureFixture) -> None:
    dev.add("users", id=2)
    with caplog.at_level(logging.INFO, logger="cutover"):
        assert tell(differences(dev.path, snapshot), "dev.db", leave=True, env_name=None,
                    not_ready_exit=3) == 0
    assert caplog.messages[-1].startswith("Left in the dev file on purpose (LEAVE_DEV_ROWS=true")


def test_only_deleted_rows_leave_nothing_behind(dev: DevDatabase, snapshot: Path) -> None:
    execute(dev.path, "DELETE FROM audit_logs")
    assert tell(differences(dev.path, snapshot), "dev.db", leave=False, env_name=None,
                not_ready_exit=3) == 0
