"""make verify: re-checking a finished cutover against the source."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from models.adopt import alembic_config
from tests.dev_data import DevDatabase


@pytest.fixture
def cut_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str) -> str:
    dev = DevDatabase(tmp_path / "meeting_agent.db")
    dev.add_minimal_tree()
    dev.add("users", id=2, email="x" * 300)  # rejected, and still verify passes
    monkeypatch.setenv("SOURCE_DATABASE_URL", dev.url)
    monkeypatch.setenv("BAD_ROWS", "reject")
    command.upgrade(alembic_config(pg_url), "0002")
    return pg_url


def verify(url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "data_migrations.verify"],
                          env={**os.environ, "DATABASE_URL": url}, capture_output=True,
                          text=True, timeout=120)


def result_of(output: str, kind: str, subject: str) -> str:
    line = next(line for line in output.splitlines() if line.split()[:2] == [kind, subject])
    return line.split()[2]


def test_a_finished_cutover_passes(cut_over: str) -> None:
    result = verify(cut_over)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result_of(result.stdout, "rows", "users") == "pass"
    assert result_of(result.stdout, "sequence", "users.id") == "pass"
    assert result.stdout.rstrip().endswith("0 failed")


def test_a_changed_row_fails_its_table(cut_over: str) -> None:
    engine = sa.create_engine(cut_over)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE tasks SET title = 'edited after the cutover'"))
    engine.dispose()
    result = verify(cut_over)
    assert result.returncode == 1
    assert result_of(result.stdout, "rows", "tasks") == "FAIL"
    assert "values differ" in result.stdout
    assert result_of(result.stdout, "rows", "users") == "pass"


def test_a_sequence_behind_its_ids_fails(cut_over: str) -> None:
    engine = sa.create_engine(cut_over)
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('users', 'id'), 1, false)"))
    engine.dispose()
    result = verify(cut_over)
    assert result.returncode == 1
    assert result_of(result.stdout, "sequence", "users.id") == "FAIL"


def test_verify_without_a_source_says_so(pg_url: str) -> None:
    result = verify(pg_url)
    assert result.returncode == 2
    assert "SOURCE_DATABASE_URL is not set" in result.stderr
    assert "Traceback" not in result.stderr
