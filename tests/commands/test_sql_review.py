"""``make sql`` / ``make sql-downgrade`` (data_migrations/commands/sql_review.py): the DBA
reviews the SQL the target will run next, from its own revision, with the SET lines.

After go-live: a copy of the repository's alembic/, alembic.ini and Makefile with
``released = true``, a target at the cutover's head (0004), and two revisions written
after it with ``make revision``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config

from devtools import revision
from devtools.postgres_server import PASSWORD
from settings import DECLARED
from tests.conftest import version
from tests.runs import repository_copy

# A revision fresh from make revision imports only what it uses: none yet.
IMPORTS = '''
import sqlalchemy as sa
from alembic import op

'''
REVISIONS = {
    "add task priority": IMPORTS + '''
def upgrade() -> None:
    op.add_column("tasks", sa.Column("priority", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "priority")
''',
    "add transcript reviewer": IMPORTS + '''
def upgrade() -> None:
    op.add_column("transcripts", sa.Column("reviewer", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("transcripts", "reviewer")
''',
}
RUNNING = re.compile(r"^-- Running (?:upgrade|downgrade) (\S*) -> (\S+)$", re.MULTILINE)


class Released:
    """The copy, its target at 0004, revisions 0005 and 0006 written after it."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.root = repository_copy(tmp_path / "repo", ["alembic", "alembic.ini", "Makefile"])
        ini = self.root / "alembic.ini"
        ini.write_text(ini.read_text(encoding="utf-8").replace(
            "released = false", "released = true"), encoding="utf-8")
        declared = {s.name for s in DECLARED}
        self.environment = {k: v for k, v in os.environ.items() if k not in declared}
        self.env_file("prod", f"DATABASE_URL={database_url}\nLOCK_TIMEOUT=5s\n")
        self.alembic("upgrade", "head", DATABASE_URL=database_url)
        for rev_id, (message, body) in zip(("0005", "0006"), REVISIONS.items(), strict=True):
            created = revision.new_revision(Config(str(ini)), message, rev_id)
            text = created.read_text(encoding="utf-8")
            created.write_text(text[:text.index("\ndef upgrade() -> None:")] + body,
                               encoding="utf-8")

    def env_file(self, name: str, text: str) -> None:
        (self.root / f".env.{name}").write_text(text, encoding="utf-8")

    def alembic(self, *args: str, **environment: str) -> None:
        result = subprocess.run([sys.executable, "-m", "alembic", *args], cwd=self.root,
                                env={**self.environment, **environment},
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr

    def make(self, target: str, **variables: str) -> subprocess.CompletedProcess:
        """A Makefile target in the copy, with this interpreter's virtualenv."""
        assigned = [f"{name}={value}" for name, value in variables.items()]
        return subprocess.run(["make", "-s", "-o", "install", target,
                               f"BIN={Path(sys.executable).parent}", *assigned],
                              cwd=self.root, env=self.environment, capture_output=True,
                              text=True, timeout=120)

    def review(self, *args: str, env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "data_migrations.commands.sql_review", *args],
            cwd=self.root, env={**self.environment, "ENV": env}, capture_output=True,
            text=True, timeout=120)

    def sql(self, name: str) -> str:
        return (self.root / "sql" / name).read_text(encoding="utf-8")

    def sql_files(self) -> list[str]:
        folder = self.root / "sql"
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def released(tmp_path: Path, pg_url: str) -> Released:
    return Released(tmp_path, pg_url)


def test_make_sql_renders_only_what_a_target_at_0004_has_yet_to_run(
    released: Released, pg_engine: sa.Engine,
) -> None:
    result = released.make("sql", ENV="prod")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Upgrade SQL written to sql/upgrade-prod.sql" in result.stdout
    sql = released.sql("upgrade-prod.sql")
    assert sql.startswith("-- make sql: upgrade from 0004 (the target's alembic_version) "
                          "to head")
    assert RUNNING.findall(sql) == [("0004", "0005"), ("0005", "0006")]
    # Each revision under its header, then the lock timeout .env.prod gives, then its work.
    for rev, message, statement in (
            ("0005", "add task priority", "ALTER TABLE tasks ADD COLUMN priority INTEGER;"),
            ("0006", "add transcript reviewer",
             "ALTER TABLE transcripts ADD COLUMN reviewer VARCHAR(64);")):
        header = f"-- {rev}: {message}\n-- waits for its locks at most 5s (LOCK_TIMEOUT)"
        assert header in sql
        after = sql[sql.index(header):]
        assert after.index("SET LOCAL lock_timeout = '5000ms';") < after.index(statement)
    assert sql.count("SET LOCAL lock_timeout") == 2
    assert "CREATE TABLE" not in sql and PASSWORD not in sql
    assert version(pg_engine) == "0004"  # read, never changed


def test_from_renders_without_a_database(released: Released) -> None:
    released.env_file("review", "")

    result = released.make("sql", ENV="review", FROM="0005")

    assert result.returncode == 0, result.stdout + result.stderr
    sql = released.sql("upgrade-review.sql")
    assert sql.startswith("-- make sql: upgrade from 0005 (FROM) to head")
    assert RUNNING.findall(sql) == [("0005", "0006")]
    assert "SET LOCAL lock_timeout = '100ms';" in sql  # the default

    at_head = released.make("sql", ENV="review", FROM="0006")
    assert at_head.returncode == 0, at_head.stdout + at_head.stderr
    assert released.sql("upgrade-review.sql").splitlines()[1:] == [
        "-- Nothing to run: 0006 is where head is."]


def test_make_sql_downgrade_starts_at_the_targets_revision(
    released: Released, pg_url: str,
) -> None:
    released.alembic("upgrade", "head", DATABASE_URL=pg_url)

    result = released.make("sql-downgrade", ENV="prod", REV="0004")

    assert result.returncode == 0, result.stdout + result.stderr
    sql = released.sql("downgrade-prod.sql")
    assert RUNNING.findall(sql) == [("0006", "0005"), ("0005", "0004")]
    assert sql.count("SET LOCAL lock_timeout = '5000ms';") == 2
    assert sql.count("make downgrade rolls it back and retries it") == 2
    assert "make migrate" not in sql
    assert "ALTER TABLE tasks DROP COLUMN priority;" in sql


@pytest.mark.parametrize(("env", "env_text", "arguments", "failed"), [
    ("missing", None, (), r"FAILED: ENV=missing but \S+/\.env\.missing does not exist"),
    ("down", "DATABASE_URL=postgresql://cutover:{password}@127.0.0.1:9/meeting_agent\n", (),
     r"FAILED: cannot connect to postgresql\+psycopg2://cutover:\*\*\*@127\.0\.0\.1:9/"
     r"meeting_agent to read its revision \(.+\): give FROM=<revision> to render without it"),
    ("prod", None, ("--from", "9999"), r"FAILED: Can't locate revision identified by '9999'"),
    # A target URL may be sqlite:// (the settings accept it): no libpq connect_timeout for it.
    ("lite", "DATABASE_URL=sqlite:///{missing}/target.db\n", (),
     r"FAILED: cannot connect to sqlite:///\S+/no-such-folder/target\.db to read its "
     r"revision \(unable to open database file\): give FROM=<revision> to render without it"),
    ("prod", None, ("--from", "0004", "--out", "/proc/no-such/upgrade.sql"),
     r"FAILED: cannot write the SQL to /proc/no-such/upgrade\.sql \(.+\): give --out a "
     r"path that can be written"),
])
def test_a_failure_is_one_line_on_stderr_and_leaves_no_file(
    released: Released, env: str, env_text: str | None, arguments: tuple[str, ...],
    failed: str,
) -> None:
    if env_text is not None:
        released.env_file(env, env_text.format(password=PASSWORD,
                                               missing=released.root / "no-such-folder"))

    result = released.review("upgrade", "--out", f"sql/upgrade-{env}.sql", *arguments,
                             env=env)

    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert re.fullmatch(failed, line), line
    assert PASSWORD not in line
    assert released.sql_files() == []
    given = dict(zip(arguments[::2], arguments[1::2], strict=True))
    variables = {"FROM": given["--from"]} if "--from" in given else {}
    if "--out" in given:
        variables["SQL_DIR"] = str(Path(given["--out"]).parent)
    through_make = released.make("sql", ENV=env, **variables)
    assert through_make.stderr.count("FAILED:") == 1, through_make.stderr
    assert through_make.returncode != 0
    assert released.sql_files() == []


def test_after_an_index_built_concurrently_the_revision_is_under_its_lock_timeout_again(
    released: Released,
) -> None:
    # CONCURRENTLY commits the revision's transaction, and its SET LOCAL with it: what the
    # revision does next must not wait for its lock without limit.
    created = revision.new_revision(Config(str(released.root / "alembic.ini")), "index then",
                                    "0007")
    text = created.read_text(encoding="utf-8")
    created.write_text(text[:text.index("\ndef upgrade() -> None:")] + IMPORTS + '''
from data_migrations.online.indexes import create_index_concurrently


def upgrade() -> None:
    create_index_concurrently("ix_tasks_priority", "tasks", ["priority"])
    op.add_column("tasks", sa.Column("weight", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "weight")
''', encoding="utf-8")
    released.env_file("review", "LOCK_TIMEOUT=5s\n")

    result = released.make("sql", ENV="review", FROM="0006")

    assert result.returncode == 0, result.stdout + result.stderr
    sql = released.sql("upgrade-review.sql")
    after_index = sql[sql.index("CREATE INDEX CONCURRENTLY"):]
    assert after_index.index("BEGIN;") < after_index.index(
        "SET LOCAL lock_timeout = '5000ms';") < after_index.index(
        "ALTER TABLE tasks ADD COLUMN weight INTEGER;")
