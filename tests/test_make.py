"""The Makefile as the operator uses it: ``make help`` names every target, and
``X="name=value ..."`` reaches each command that reads settings as ``-x name=value``,
shown by what the setting does in the run (not by what ``make -n`` would print)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from settings import DECLARED
from tests.runs import repository_copy

ROOT = Path(__file__).resolve().parent.parent
# The commands that read settings, and so take X=.
X_TARGETS = ["plan", "migrate", "downgrade", "sql", "sql-downgrade", "presync", "verify",
             "current", "check"]
# Nothing listens on port 1: a command that got as far as connecting would fail otherwise.
NOWHERE = "postgresql://meeting_agent:secret@127.0.0.1:1/meeting_agent"


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, flags=re.MULTILINE))


class Checkout:
    """A copy of the Makefile, alembic/ and alembic.ini, run with this interpreter's
    virtualenv and no setting from the test's own environment."""

    def __init__(self, root: Path) -> None:
        self.root = repository_copy(root, ["alembic", "alembic.ini", "Makefile"])
        declared = {setting.name for setting in DECLARED}
        self.environment = {k: v for k, v in os.environ.items()
                            if k not in declared and k not in ("ENV", "X")}

    def make(self, target: str, database_url: str, **variables: str
             ) -> subprocess.CompletedProcess:
        assigned = [f"{name}={value}" for name, value in variables.items()]
        return subprocess.run(
            ["make", "-s", "-o", "install", target, f"BIN={Path(sys.executable).parent}",
             *assigned],
            cwd=self.root, env={**self.environment, "DATABASE_URL": database_url},
            capture_output=True, text=True, timeout=300)


@pytest.fixture
def checkout(tmp_path: Path) -> Checkout:
    return Checkout(tmp_path / "repo")


def test_make_help_lists_every_target() -> None:
    shown = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True,
                           timeout=60, check=True).stdout
    listed = set(re.findall(r"\bmake ([a-z][a-z0-9-]*)", shown))
    assert makefile_targets() - listed == set()


@pytest.mark.slow
@pytest.mark.parametrize("target", X_TARGETS)
def test_x_reaches_the_command_as_its_x_option(checkout: Checkout, target: str) -> None:
    """A value only the -x spelling names in its FAILED line: through the environment
    the line would name LOCK_TIMEOUT."""
    result = checkout.make(target, NOWHERE, REV="base", FROM="base",
                           X="lock_retries=3 lock_timeout=3")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    failed = [line for line in output.splitlines() if line.startswith("FAILED:")]
    assert failed == ["FAILED: lock_timeout must be a duration such as 3s, 500ms or 1min "
                      "(0 for none), got '3'"], output


@pytest.mark.slow
def test_x_gives_make_sql_every_setting(checkout: Checkout) -> None:
    result = checkout.make("sql", NOWHERE, FROM="base", X="lock_timeout=7s lock_retries=4")
    assert result.returncode == 0, result.stderr
    sql = (checkout.root / "sql" / "upgrade-default.sql").read_text(encoding="utf-8")
    assert "SET LOCAL lock_timeout = '7000ms';" in sql
    assert "retries it up to 4 times" in sql


def test_x_lets_the_baseline_downgrade_drop_the_apps_rows(checkout: Checkout,
                                                          pg_url: str) -> None:
    """Without X the downgrade to base refuses a table that holds a row; with
    X="drop_app_data=true" it drops the tables."""
    assert checkout.make("migrate", pg_url).returncode == 0
    engine = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO users (username, tenant_id, role, is_active, created_at) "
            "VALUES ('kept', 't1', 'member', true, now())"))

    refused = checkout.make("downgrade", pg_url, REV="base")
    assert refused.returncode != 0
    assert "would drop tables that still hold rows (users 1)" in refused.stdout + refused.stderr
    assert sa.inspect(engine).has_table("users")

    dropped = checkout.make("downgrade", pg_url, REV="base", X="drop_app_data=true")
    assert dropped.returncode == 0, dropped.stderr
    assert not sa.inspect(engine).has_table("users")
