"""Configuration and the Alembic command line: clear failures, reviewable SQL, no secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.postgres_server import PASSWORD, PostgresServer
from settings import mask_url
from tests.conftest import ROOT

# Starts servers or commands in fresh interpreters: not in make test-fast.
pytestmark = pytest.mark.slow

SECRET = "offline-secret-93xq"


def alembic(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the alembic command line as an operator would, from the current directory."""
    return subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), *args],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120,
    )


def assert_one_clear_failure(result: subprocess.CompletedProcess, message: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    failures = [line for line in output.splitlines() if line.startswith("FAILED:")]
    assert len(failures) == 1, output
    assert message in failures[0]


def test_offline_sql_is_transactional_postgres_ddl_without_secrets() -> None:
    url = f"postgresql://admin:{SECRET}@db.internal:5432/meetings"
    result = alembic("upgrade", "head", "--sql", env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    sql = result.stdout
    assert sql.count("CREATE TABLE ") == 9  # the eight tables and alembic_version
    for table in ("users", "tasks", "transcripts", "speaker_mappings", "generated_artifacts",
                  "prompt_templates", "hotword_sets", "audit_logs"):
        assert f"CREATE TABLE {table} (" in sql
    assert sql.lstrip().startswith("BEGIN;") and sql.rstrip().endswith("COMMIT;")
    assert "JSONB" in sql and "TIMESTAMP WITH TIME ZONE" in sql and "UUID" in sql
    assert SECRET not in sql + result.stderr


def test_offline_sql_needs_no_database_url() -> None:
    result = alembic("upgrade", "head", "--sql")
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE users (" in result.stdout


def test_offline_downgrade_sql_drops_the_tables() -> None:
    result = alembic("downgrade", "head:base", "--sql")
    assert result.returncode == 0, result.stderr
    for table in ("users", "tasks", "transcripts", "speaker_mappings", "generated_artifacts",
                  "prompt_templates", "hotword_sets", "audit_logs"):
        assert f"DROP TABLE {table};" in result.stdout
    assert "DROP TABLE IF EXISTS cutover_copied_keys;" in result.stdout


def test_missing_database_url_is_named() -> None:
    assert_one_clear_failure(alembic("upgrade", "head"), "DATABASE_URL is not set")


def test_malformed_database_url_is_named_and_masked() -> None:
    result = alembic("current", env={"DATABASE_URL": f"postgres ql://u:{SECRET}@h/db"})
    assert_one_clear_failure(result, "DATABASE_URL is not a valid database URL")
    assert SECRET not in result.stdout + result.stderr


def test_unknown_env_file_is_named() -> None:
    assert_one_clear_failure(alembic("current", env={"ENV": "nowhere"}), ".env.nowhere")


def test_env_file_is_read_and_the_process_environment_wins(
    tmp_path: Path, postgres_server: PostgresServer, pg_url: str
) -> None:
    bad = postgres_server.url("postgres", password="from-the-file")
    (tmp_path / ".env.staging").write_text(f"DATABASE_URL={bad}\n")
    from_file = alembic("current", env={"ENV": "staging"})
    assert_one_clear_failure(from_file, "password authentication failed")
    overridden = alembic("current", env={"ENV": "staging", "DATABASE_URL": pg_url})
    assert overridden.returncode == 0, overridden.stdout + overridden.stderr


def test_unreachable_server_is_reported_with_the_masked_url() -> None:
    url = f"postgresql://cutover:{SECRET}@127.0.0.1:9/meetings"
    result = alembic("upgrade", "head", env={"DATABASE_URL": url})
    # Printed as used: a plain postgresql:// URL means psycopg2.
    assert_one_clear_failure(
        result, "cannot connect to postgresql+psycopg2://cutover:***@127.0.0.1:9/meetings")
    assert "Connection refused" in result.stdout
    assert SECRET not in result.stdout + result.stderr


def test_wrong_password_is_reported_without_either_password(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.url("postgres", password=SECRET)
    result = alembic("upgrade", "head", env={"DATABASE_URL": url})
    assert_one_clear_failure(result, "password authentication failed for user")
    assert SECRET not in result.stdout + result.stderr
    assert PASSWORD not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:p%40ss@h:5/d", "postgresql://u:***@h:5/d"),
        ("sqlite:///./meeting_agent.db", "sqlite:///./meeting_agent.db"),
        ("not a url", "?://***"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_alembic_ini_controls_what_the_steps_print(pg_url: str, tmp_path: Path) -> None:
    """The steps log under ``cutover``: alembic.ini prints them as bare lines on stderr, and
    a copy of it that sets that logger to WARNING silences them, Alembic's own lines not."""
    line = "0002: SOURCE_DATABASE_URL is not set: no rows to copy."
    shown = alembic("upgrade", "head", env={"DATABASE_URL": pg_url})
    assert shown.returncode == 0, shown.stderr
    assert line in shown.stderr.splitlines()
    assert line not in shown.stdout

    ini = (ROOT / "alembic.ini").read_text(encoding="utf-8")
    quiet_section = "[logger_cutover]\nlevel = WARNING"
    quiet = tmp_path / "quiet.ini"
    quiet.write_text(ini.replace("%(here)s", str(ROOT)).replace(
        "[logger_cutover]\nlevel = INFO", quiet_section), encoding="utf-8")
    assert quiet_section in quiet.read_text(encoding="utf-8")
    silenced = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(quiet), "downgrade", "0001"],
        capture_output=True, text=True, env={**os.environ, "DATABASE_URL": pg_url}, timeout=120)
    assert silenced.returncode == 0, silenced.stderr
    assert "Running downgrade 0002 -> 0001" in silenced.stderr
    assert "0002: no rows were copied" not in silenced.stderr
