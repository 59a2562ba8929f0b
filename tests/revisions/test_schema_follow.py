"""The cutover follows the schema: schema revisions written after the dev file was adopted,
before production has run the cutover.

Each test works on a copy of the repository, as a team would: it adopts a generated dev
file, writes revisions with ``make revision``, changes the copy's models to match, upgrades
the dev file to the schema head with ``make upgrade-dev`` and runs the cutover into an
empty PostgreSQL database. Every command is a subprocess whose working
directory and PYTHONPATH are the copy, so the copy's models and revisions are the ones
loaded.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import PUBLIC_BASE_URL, fetch, version
from tests.runs import cutover_environment, repository_copy

# Starts servers or commands in fresh interpreters: not in make test-fast.
pytestmark = pytest.mark.slow

COPIED = ("models", "alembic", "settings", "data_migrations", "storage", "devtools",
          "alembic.ini", "Makefile")

# A revision fresh from make revision imports only what it uses: none yet.
IMPORTS = '''
import sqlalchemy as sa
from alembic import op
'''
ADD_PRIORITY = IMPORTS + '''
def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("priority")
'''

RENAME_RAW_RESULT = IMPORTS + '''
def upgrade() -> None:
    with op.batch_alter_table("transcripts") as batch:
        batch.alter_column("raw_result_path", new_column_name="raw_result_file")


def downgrade() -> None:
    with op.batch_alter_table("transcripts") as batch:
        batch.alter_column("raw_result_file", new_column_name="raw_result_path")
'''

# The models' side of each revision: (what the line was, what it becomes).
PRIORITY_MODEL = ("    audio_path: Mapped[str | None] = _file_path()\n",
                  "    audio_path: Mapped[str | None] = _file_path()\n"
                  "    priority: Mapped[int | None] = mapped_column(Integer)\n")
RENAME_MODEL = ("    raw_result_path: Mapped[str | None] = _file_path()\n",
                "    raw_result_file: Mapped[str | None] = _file_path()\n")
RENAME_0004 = ('column="raw_result_path"', 'column="raw_result_file"')


class Repository:
    """A copy of the repository, its dev file and uploads, and the settings of a cutover
    from them into ``database_url`` with the local storage provider."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.root = repository_copy(tmp_path / "repo", COPIED)
        self.dev_db = tmp_path / "dev.db"
        self.environment = {**cutover_environment(tmp_path, database_url),
                            "PYTHONPATH": str(self.root),
                            "STORAGE_PUBLIC_BASE_URL": PUBLIC_BASE_URL}

    def run(self, *args: str, **environment: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=self.root, capture_output=True,
                              text=True, timeout=600,
                              env={**self.environment, **environment})

    def succeed(self, *args: str, **environment: str) -> str:
        result = self.run(*args, **environment)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def make(self, target: str, **variables: str) -> str:
        """A Makefile target in the copy, with this interpreter's virtualenv (not set up
        again: ``-o install``)."""
        assigned = [f"{name}={value}" for name, value in variables.items()]
        result = subprocess.run(["make", "-s", "-o", "install", target,
                                 f"BIN={Path(sys.executable).parent}", *assigned],
                                cwd=self.root, capture_output=True, text=True, timeout=600,
                                env=self.environment)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def alembic(self, *args: str, **environment: str) -> subprocess.CompletedProcess:
        return self.run("-m", "alembic", "-c", str(self.root / "alembic.ini"), *args,
                        **environment)

    def adopt_dev_file(self) -> None:
        self.succeed("-m", "data_migrations.commands.adopt_dev", f"sqlite:///{self.dev_db}")

    def new_revision(self, message: str, body: str) -> str:
        """``make revision MSG=...``, then the upgrade and downgrade written into it; its
        id."""
        created = Path(re.findall(r"^Created (.+)$", self.make("revision", MSG=message),
                                  re.MULTILINE)[0])
        text = created.read_text(encoding="utf-8")
        start = text.index("\ndef upgrade() -> None:")
        created.write_text(text[:start] + body, encoding="utf-8")
        return re.findall(r'^revision: str = "(.+)"$', text, re.MULTILINE)[0]

    def edit(self, relative: str, change: tuple[str, str]) -> None:
        path = self.root / relative
        text = path.read_text(encoding="utf-8")
        assert text.count(change[0]) == 1, f"{relative}: {change[0]!r}"
        path.write_text(text.replace(*change), encoding="utf-8")

    def upgrade_dev(self) -> None:
        """``make upgrade-dev DEV_DB=...``: the dev file to the schema head, no data step."""
        self.make("upgrade-dev", DEV_DB=str(self.dev_db))

    def dev_rows(self, sql: str) -> list[tuple]:
        with sqlite3.connect(self.dev_db) as connection:
            return connection.execute(sql).fetchall()


@pytest.fixture
def repository(tmp_path: Path, pg_url: str) -> Repository:
    repository = Repository(tmp_path, pg_url)
    repository.adopt_dev_file()
    return repository


def add_priority(repository: Repository) -> str:
    added = repository.new_revision("add task priority", ADD_PRIORITY)
    repository.edit("models/tables.py", PRIORITY_MODEL)
    return added


def rename_raw_result(repository: Repository, update_0004: bool = True) -> str:
    renamed = repository.new_revision("rename raw result path", RENAME_RAW_RESULT)
    repository.edit("models/tables.py", RENAME_MODEL)
    if update_0004:
        repository.edit("alembic/versions/0004_rewrite_file_paths.py", RENAME_0004)
    return renamed


def test_a_cutover_after_two_schema_revisions_copies_every_value_and_checks_clean(
    repository: Repository, pg_engine: sa.Engine,
) -> None:
    add_priority(repository)
    renamed = rename_raw_result(repository)
    repository.upgrade_dev()
    assert repository.dev_rows("SELECT version_num FROM alembic_version") == [(renamed,)]
    with sqlite3.connect(repository.dev_db) as connection:
        connection.execute("UPDATE tasks SET priority = rowid % 5 + 1")
    priorities = set(repository.dev_rows("SELECT id, priority FROM tasks"))
    raw_results = dict(repository.dev_rows("SELECT id, raw_result_file FROM transcripts"))
    assert len(priorities) > 1 and any(raw_results.values())

    result = repository.alembic("upgrade", "head")
    assert result.returncode == 0, result.stderr

    assert version(pg_engine) == "0004"
    assert set(fetch(pg_engine, "SELECT id::text, priority FROM tasks")) == priorities
    copied = dict(fetch(pg_engine, "SELECT id, raw_result_file FROM transcripts"))
    assert copied.keys() == raw_results.keys()
    for key, original in raw_results.items():
        if original:
            assert copied[key].startswith(f"{PUBLIC_BASE_URL}/"), (key, copied[key])
    assert len(fetch(pg_engine, "SELECT 1 FROM cutover_path_rewrites "
                                "WHERE column_name = 'raw_result_file'")) == sum(
        1 for value in raw_results.values() if value)
    check = repository.alembic("check")
    assert check.returncode == 0, check.stdout + check.stderr


def updates_in_upgrade_sql(repository: Repository) -> list[str]:
    """The UPDATE statements of ``make sql`` (``alembic upgrade head --sql``)."""
    result = repository.alembic("upgrade", "head", "--sql")
    assert result.returncode == 0, result.stderr
    statements = (s.strip() for s in result.stdout.split(";"))
    return [s for s in statements if s.upper().startswith("UPDATE")]


def test_the_review_sql_rewrites_the_renamed_column_under_its_new_name(
    repository: Repository,
) -> None:
    rename_raw_result(repository)
    repository.upgrade_dev()

    updates = updates_in_upgrade_sql(repository)

    assert [u for u in updates if "raw_result_file" in u]
    assert not [u for u in updates if "raw_result_path" in u]


def test_a_dev_file_behind_the_target_is_refused_with_the_fix(
    repository: Repository, pg_engine: sa.Engine,
) -> None:
    added = add_priority(repository)  # the dev file stays at 0001: no upgrade-dev

    result = repository.alembic("upgrade", "head")

    assert result.returncode != 0
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED:")]
    assert len(failed) == 1, result.stdout + result.stderr
    assert f"the dev file {repository.dev_db} is at 0001, the target at {added}" in failed[0]
    assert f"make upgrade-dev DEV_DB={repository.dev_db}" in failed[0]
    assert "Traceback" not in result.stderr
    assert version(pg_engine) == added
    assert fetch(pg_engine, "SELECT count(*) FROM users") == [(0,)]


def test_a_renamed_file_path_column_missing_from_0004_stops_0004(
    repository: Repository, pg_engine: sa.Engine,
) -> None:
    rename_raw_result(repository, update_0004=False)
    repository.upgrade_dev()

    result = repository.alembic("upgrade", "head")

    assert result.returncode != 0
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED:")]
    assert len(failed) == 1, result.stdout + result.stderr
    assert "transcripts.raw_result_path" in failed[0]
    assert "Adding a schema revision before the cutover" in failed[0]
    assert "Traceback" not in result.stderr
    assert version(pg_engine) == "0003"
    inspector = sa.inspect(pg_engine)
    assert not inspector.has_table("cutover_path_rewrites")
    stored = [value for (value,) in fetch(pg_engine, "SELECT raw_result_file FROM transcripts")]
    assert any(stored) and not any(v.startswith(PUBLIC_BASE_URL) for v in stored if v)


def test_once_released_the_dev_file_follows_head_without_running_a_data_step(
    repository: Repository,
) -> None:
    repository.edit("alembic.ini", ("released = false", "released = true"))
    added = add_priority(repository)  # after 0004 now

    # SOURCE_DATABASE_URL names the dev file itself in this environment: upgrade-dev
    # clears it, so the data steps pass without copying, uploading or rewriting.
    repository.upgrade_dev()

    assert repository.dev_rows("SELECT version_num FROM alembic_version") == [(added,)]
    tables = {name for (name,) in repository.dev_rows(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert not {name for name in tables if name.startswith("cutover_")}
    assert "priority" in {row[1] for row in repository.dev_rows("PRAGMA table_info(tasks)")}
