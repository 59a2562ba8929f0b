"""data_migrations/online/constraints.py: a foreign key, a check, NOT NULL and a unique
constraint added to populated tables in revisions run as ``make migrate`` runs them, while
the app inserts and updates; each upgrade then its downgrade; the ``--sql`` render; the
revisions pass ``make lint``'s revision check with no waiver of their own; duplicates and a
dangling reference stop the run in one line; a name written in full stays as written."""

from __future__ import annotations

import io
import random
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import op
from alembic.migration import MigrationContext
from alembic.operations import Operations

import models
from data_migrations.online.constraints import add_check_constraint, validate_constraint
from tests.conftest import fetch, version
from tests.online.app import Writers, writing
from tests.online.chain import alembic, released_copy, write_steps
from tests.runs import one_failure

ROWS = 20_000
IMPORTS = '''
from data_migrations.online.constraints import (
    add_check_constraint, add_foreign_key, add_not_null_check, add_unique_constraint,
    drop_constraint, drop_not_null, drop_not_null_check, set_not_null, validate_constraint,
    validate_not_null_check)
'''
FK = "fk_audit_logs_reviewer_id_users"
CHECK = "ck_audit_logs_cost_nonnegative"
UNIQUE = "uq_users_email"
NOTHING = "\n\ndef downgrade() -> None:\n    pass\n"
STEPS = {
    "0005_audit_logs_reviewer.py": '''
def upgrade() -> None:
    op.add_column("audit_logs", sa.Column("reviewer_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    drop_added_column("audit_logs", "reviewer_id")
''',
    "0006_audit_logs_reviewer_fk.py": IMPORTS + f'''

def upgrade() -> None:
    add_foreign_key("{FK}", "audit_logs", ["reviewer_id"], "users", ["id"],
                    ondelete="SET NULL")


def downgrade() -> None:
    drop_constraint("{FK}", "audit_logs")
''',
    "0007_validate_audit_logs_reviewer_fk.py": IMPORTS + f'''

def upgrade() -> None:
    validate_constraint("{FK}", "audit_logs")
''' + NOTHING,
    "0008_audit_logs_cost_check.py": IMPORTS + f'''

def upgrade() -> None:
    add_check_constraint("{CHECK}", "audit_logs", "cost >= 0")


def downgrade() -> None:
    drop_constraint("{CHECK}", "audit_logs")
''',
    "0009_validate_audit_logs_cost_check.py": IMPORTS + f'''

def upgrade() -> None:
    validate_constraint("{CHECK}", "audit_logs")
''' + NOTHING,
    "0010_audit_logs_ip_address_check.py": IMPORTS + '''

def upgrade() -> None:
    add_not_null_check("audit_logs", "ip_address")


def downgrade() -> None:
    drop_not_null_check("audit_logs", "ip_address")
''',
    "0011_validate_audit_logs_ip_address.py": IMPORTS + '''

def upgrade() -> None:
    validate_not_null_check("audit_logs", "ip_address")
''' + NOTHING,
    "0012_audit_logs_ip_address_not_null.py": IMPORTS + '''

def upgrade() -> None:
    set_not_null("audit_logs", "ip_address")


def downgrade() -> None:
    drop_not_null("audit_logs", "ip_address")
''',
    "0013_users_email_unique.py": IMPORTS + f'''

def upgrade() -> None:
    add_unique_constraint("{UNIQUE}", "users", ["email"])


def downgrade() -> None:
    drop_constraint("{UNIQUE}", "users")
''',
}
USERS = ("INSERT INTO users (username, email, tenant_id, role, is_active, created_at) "
         "SELECT 'user' || n, 'u' || n || '@example.com', 't1', 'user', true, now() "
         f"FROM generate_series(1, {ROWS}) AS n")
AUDIT_LOGS = ("INSERT INTO audit_logs (action, currency, user_id, cost, ip_address, "
              "created_at) SELECT 'asr.transcribe', 'cny', n, n % 7, '10.0.0.' || n % 256, "
              f"now() FROM generate_series(1, {ROWS}) AS n")
CONSTRAINTS = ("SELECT conname, contype, convalidated FROM pg_constraint WHERE conname IN "
               f"('{FK}', '{CHECK}', '{UNIQUE}', 'ck_audit_logs_ip_address_not_null') "
               "ORDER BY conname")

ALL_VALID = [(CHECK, "c", True), (FK, "f", True), (UNIQUE, "u", True)]


def work(connection: sa.Connection, chance: random.Random) -> None:
    """The app: a new user, a new audit row that meets every constraint, a changed row."""
    user = connection.execute(sa.text(
        "INSERT INTO users (username, email, tenant_id, role, is_active, created_at) "
        "VALUES (md5(random()::text), md5(random()::text) || '@example.com', 't1', 'user', "
        "true, now()) RETURNING id")).scalar_one()
    connection.execute(sa.text(
        "INSERT INTO audit_logs (action, currency, user_id, cost, ip_address, created_at) "
        "VALUES ('task.create', 'cny', :user, 1, '10.1.1.1', now())"), {"user": user})
    connection.execute(sa.text("UPDATE audit_logs SET cost = :cost WHERE id = :id"),
                       {"cost": chance.randrange(100), "id": chance.randrange(1, ROWS)})


@pytest.fixture
def root(tmp_path: Path, pg_url: str, pg_engine: sa.Engine) -> Path:
    """A copy at 0004 with 20,000 users and 20,000 audit rows, and the steps written."""
    root = released_copy(tmp_path / "repo", {})
    upgraded = alembic(root, pg_url, "upgrade", "head")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    with pg_engine.begin() as connection:
        connection.execute(sa.text(USERS))
        connection.execute(sa.text(AUDIT_LOGS))
    write_steps(root, STEPS)
    return root


def run(root: Path, pg_url: str, writers: Writers, *args: str) -> str:
    done = alembic(root, pg_url, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert writers.errors == [], args
    return done.stdout + done.stderr


def test_constraints_added_in_steps_while_the_app_writes(
    root: Path, pg_url: str, pg_engine: sa.Engine
) -> None:
    with writing(pg_engine, work, threads=1) as writers:
        for revision in ("0005", "0006"):
            run(root, pg_url, writers, "upgrade", revision)
        with pg_engine.begin() as connection:  # the backfill the runbook puts here
            connection.execute(sa.text("UPDATE audit_logs SET reviewer_id = user_id"))
        before = len(writers.commits)
        for revision in ("0007", "0008", "0009", "0010", "0011", "0012", "0013"):
            run(root, pg_url, writers, "upgrade", revision)
        assert len(writers.commits) > before
        assert fetch(pg_engine, CONSTRAINTS) == ALL_VALID
        assert fetch(pg_engine, "SELECT is_nullable FROM information_schema.columns WHERE "
                                "table_name = 'audit_logs' AND column_name = 'ip_address'"
                     ) == [("NO",)]

        run(root, pg_url, writers, "downgrade", "0011")
        assert fetch(pg_engine, CONSTRAINTS) == [
            (CHECK, "c", True), ("ck_audit_logs_ip_address_not_null", "c", False),
            (FK, "f", True)]
        run(root, pg_url, writers, "upgrade", "head")  # validates the check it put back
        run(root, pg_url, writers, "downgrade", "0005")  # the column holds values: kept
        assert fetch(pg_engine, CONSTRAINTS) == []
        assert fetch(pg_engine, f"SELECT to_regclass('{UNIQUE}')") == [(None,)]
        run(root, pg_url, writers, "upgrade", "head")
    assert version(pg_engine) == "0013"
    assert fetch(pg_engine, CONSTRAINTS) == ALL_VALID


def test_the_sql_render_and_the_lint_need_no_waiver_in_the_revisions(root: Path) -> None:
    rendered = alembic(root, "", "upgrade", "0004:head", "--sql")
    assert rendered.returncode == 0, rendered.stderr
    for statement in (
        f"ALTER TABLE audit_logs ADD CONSTRAINT {FK} FOREIGN KEY(reviewer_id) REFERENCES "
        "users (id) ON DELETE SET NULL NOT VALID;",
        f"ALTER TABLE audit_logs VALIDATE CONSTRAINT {FK};",
        f"ALTER TABLE audit_logs ADD CONSTRAINT {CHECK} CHECK (cost >= 0) NOT VALID;",
        "ALTER TABLE audit_logs ADD CONSTRAINT ck_audit_logs_ip_address_not_null CHECK "
        "(ip_address IS NOT NULL) NOT VALID;",
        "ALTER TABLE audit_logs ALTER COLUMN ip_address SET NOT NULL;",
        "ALTER TABLE audit_logs DROP CONSTRAINT IF EXISTS ck_audit_logs_ip_address_not_null;",
        f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {UNIQUE} ON users (email);",
        f"ALTER TABLE users ADD CONSTRAINT {UNIQUE} UNIQUE USING INDEX {UNIQUE};",
    ):
        assert statement in rendered.stdout, statement
    assert "ck_audit_logs_ck_" not in rendered.stdout
    lint = subprocess.run([sys.executable, "-m", "devtools.lint_revisions", "--config",
                           str(root / "alembic.ini")], cwd=root, capture_output=True,
                          text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "waive(" not in "".join(
        (root / "alembic" / "versions" / name).read_text() for name in STEPS)


def test_duplicates_stop_the_unique_constraint_in_one_line_leaving_nothing_invalid(
    root: Path, pg_url: str, pg_engine: sa.Engine
) -> None:
    with pg_engine.begin() as connection:
        connection.execute(sa.text("UPDATE users SET email = 'same@example.com' "
                                   "WHERE username IN ('user7', 'user9')"))
    assert alembic(root, pg_url, "upgrade", "0012").returncode == 0
    failure = one_failure(alembic(root, pg_url, "upgrade", "0013"))
    assert failure.startswith(
        "FAILED: alembic/versions/0013_users_email_unique.py: could not create unique index "
        f'"{UNIQUE}" (SQLSTATE 23505) in `CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS '
        f"{UNIQUE} ON users (email)`; rolled back, the database is at 0012; one duplicated "
        "value: (email)=(same@example.com); the rest: SELECT email, count(*) FROM \"users\" "
        "GROUP BY email HAVING count(*) > 1; remove the duplicates, then run again"), failure
    assert fetch(pg_engine, f"SELECT to_regclass('{UNIQUE}')") == [(None,)]

    with pg_engine.begin() as connection:
        connection.execute(sa.text("UPDATE users SET email = 'other@example.com' "
                                   "WHERE username = 'user9'"))
    again = alembic(root, pg_url, "upgrade", "head")
    assert again.returncode == 0, again.stdout + again.stderr
    assert fetch(pg_engine, f"SELECT contype FROM pg_constraint WHERE conname = '{UNIQUE}'"
                 ) == [("u",)]


def test_a_row_that_breaks_the_key_stops_the_validation_in_one_line(
    root: Path, pg_url: str, pg_engine: sa.Engine
) -> None:
    assert alembic(root, pg_url, "upgrade", "0005").returncode == 0
    with pg_engine.begin() as connection:  # written before the key: NOT VALID lets it be
        connection.execute(sa.text("UPDATE audit_logs SET reviewer_id = 999999 WHERE id = 5"))
    assert alembic(root, pg_url, "upgrade", "0006").returncode == 0
    failure = one_failure(alembic(root, pg_url, "upgrade", "0007"))
    assert failure.startswith(
        "FAILED: alembic/versions/0007_validate_audit_logs_reviewer_fk.py: insert or update on "
        f'table "audit_logs" violates foreign key constraint "{FK}" (SQLSTATE 23503)'), failure
    assert ("the database is at 0006; one row that references nothing: (reviewer_id)=(999999) "
            'in "audit_logs"') in failure, failure


def test_set_not_null_refuses_without_its_valid_check(
    root: Path, pg_url: str, pg_engine: sa.Engine
) -> None:
    steps = {name: body for name, body in STEPS.items() if name[:4] in ("0005", "0012")}
    for name in STEPS:
        (root / "alembic" / "versions" / name).unlink()
    write_steps(root, steps)
    assert alembic(root, pg_url, "upgrade", "0005").returncode == 0
    failure = one_failure(alembic(root, pg_url, "upgrade", "head"))
    assert failure == (
        "FAILED: alembic/versions/0012_audit_logs_ip_address_not_null.py: "
        "audit_logs.ip_address: SET NOT NULL would scan the table with its writes "
        "held (no check ck_audit_logs_ip_address_not_null); add it first in a revision of its "
        "own (add_not_null_check), validate it in the next (validate_not_null_check), then "
        "run this; rolled back, the database is at 0005")
    assert version(pg_engine) == "0005"


def test_a_check_named_in_full_is_not_doubled_by_the_models_convention() -> None:
    """The helpers keep a name as written; a plain Alembic operation, which applies the
    models' naming convention, gives a full name its prefix once, and a short one too."""
    buffer = io.StringIO()
    context = MigrationContext.configure(dialect_name="postgresql", opts={
        "as_sql": True, "output_buffer": buffer, "target_metadata": models.metadata})
    with Operations.context(context):
        op.create_check_constraint(CHECK, "audit_logs", "cost >= 0")
        op.create_check_constraint("cost_nonnegative", "audit_logs", "cost >= 0")
        add_check_constraint(CHECK, "audit_logs", "cost >= 0")
        validate_constraint(CHECK, "audit_logs")
    assert [line for line in buffer.getvalue().splitlines() if line] == [
        f"ALTER TABLE audit_logs ADD CONSTRAINT {CHECK} CHECK (cost >= 0);",
        f"ALTER TABLE audit_logs ADD CONSTRAINT {CHECK} CHECK (cost >= 0);",
        f"ALTER TABLE audit_logs ADD CONSTRAINT {CHECK} CHECK (cost >= 0) NOT VALID;",
        f"ALTER TABLE audit_logs VALIDATE CONSTRAINT {CHECK};"]


def test_the_plan_runs_them_and_skips_the_build_that_commits_on_its_own(
    root: Path, pg_url: str, pg_engine: sa.Engine
) -> None:
    plan = alembic(root, pg_url, "-x", "dry_run=true", "upgrade", "head")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    for said in (f"Dry run: index {UNIQUE} is not built",
                 f"Dry run: constraint {UNIQUE} is not attached"):
        assert said in plan.stderr, plan.stderr
    assert version(pg_engine) == "0004"
    assert fetch(pg_engine, CONSTRAINTS) == []
