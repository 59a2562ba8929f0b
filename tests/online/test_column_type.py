"""data_migrations/online/column_type.py: audit_logs.user_id (NOT NULL, a default, a foreign
key to users and a two-column index) from integer to bigint by expand and contract, on
20,000 rows while the app inserts and updates them; each revision's downgrade; the indexes,
the key, NOT NULL and the default carried over under their own names; the contract refusing
while a copy is missing; the expand refusing what it cannot copy; the ``--sql`` render and
the revision check with no waiver in the revisions."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import fetch, version
from tests.online.app import Writers, writing
from tests.online.chain import alembic, released_copy, write_steps
from tests.runs import one_failure

ROWS = 20_000
USERS = 50
CHANGE = '''
from data_migrations.online.column_type import (
    ColumnTypeChange, change_column_type_concurrently, cleanup_concurrent_column_type_change,
    undo_change_column_type_concurrently, undo_cleanup_concurrent_column_type_change)

USER_ID = ColumnTypeChange(name="0005_audit_logs_user_id", table="audit_logs",
                           column="user_id", old_type="integer", new_type="bigint",
                           batch_size=2000, pause_seconds=0)
'''
STEPS = {
    "0005_expand_audit_logs_user_id.py": CHANGE + '''

def upgrade() -> None:
    change_column_type_concurrently(USER_ID)


def downgrade() -> None:
    undo_change_column_type_concurrently(USER_ID)
''',
    "0006_contract_audit_logs_user_id.py": CHANGE + '''

def upgrade() -> None:
    cleanup_concurrent_column_type_change(USER_ID)


def downgrade() -> None:
    undo_cleanup_concurrent_column_type_change(USER_ID)
''',
}
FILL = [
    "INSERT INTO users (username, tenant_id, role, is_active, created_at) SELECT 'user' || n, "
    f"'t1', 'user', true, now() FROM generate_series(1, {USERS}) AS n",
    "INSERT INTO audit_logs (action, currency, user_id, created_at) SELECT 'asr.transcribe', "
    f"'cny', 1 + n % {USERS}, now() FROM generate_series(1, {ROWS}) AS n",
    "ALTER TABLE audit_logs ALTER COLUMN user_id SET NOT NULL",
    "ALTER TABLE audit_logs ALTER COLUMN user_id SET DEFAULT 1",
]
SCHEMA = """
SELECT 'column', column_name || ' ' || data_type || ' ' || is_nullable || ' '
       || coalesce(column_default, '-')
FROM information_schema.columns WHERE table_name = 'audit_logs' AND column_name LIKE 'user_id%'
UNION ALL SELECT 'index', pg_get_indexdef(i.indexrelid) || ' ' || i.indisvalid
FROM pg_index AS i WHERE i.indrelid = 'audit_logs'::regclass
UNION ALL SELECT 'constraint', conname || ' ' || pg_get_constraintdef(oid) || ' '
       || convalidated
FROM pg_constraint WHERE conrelid = 'audit_logs'::regclass
ORDER BY 1, 2"""
EXPANDED_INDEX = ("CREATE INDEX ix_audit_logs_user_id_created_at_tc ON public.audit_logs "
                  "USING btree (user_id_for_type_change, created_at) true")
CONTRACTED = [
    ("column", "user_id bigint NO 1"),
    ("constraint", "fk_audit_logs_task_id_tasks FOREIGN KEY (task_id) REFERENCES "
                   "tasks(id) ON DELETE SET NULL true"),
    ("constraint", "fk_audit_logs_user_id_users FOREIGN KEY (user_id) REFERENCES "
                   "users(id) ON DELETE SET NULL true"),
    ("constraint", "pk_audit_logs PRIMARY KEY (id) true"),
    ("index", "CREATE INDEX ix_audit_logs_action ON public.audit_logs USING btree (action) "
              "true"),
    ("index", "CREATE INDEX ix_audit_logs_user_id_created_at ON public.audit_logs USING "
              "btree (user_id, created_at) true"),
    ("index", "CREATE UNIQUE INDEX pk_audit_logs ON public.audit_logs USING btree (id) true"),
]

BEFORE = [("column", "user_id integer NO 1"), *CONTRACTED[1:]]


def work(connection: sa.Connection, chance: random.Random) -> None:
    """The app: a new audit row and a changed one, by user_id as it always named it."""
    connection.execute(sa.text(
        "INSERT INTO audit_logs (action, currency, user_id, created_at) "
        "VALUES ('task.create', 'cny', :user, now())"), {"user": chance.randrange(1, USERS)})
    connection.execute(sa.text("UPDATE audit_logs SET user_id = :user WHERE id = :id"),
                       {"user": chance.randrange(1, USERS), "id": chance.randrange(1, ROWS)})


@pytest.fixture
def root(tmp_path: Path, pg_url: str, pg_engine: sa.Engine) -> Path:
    root = released_copy(tmp_path / "repo", {})
    upgraded = alembic(root, pg_url, "upgrade", "head")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    with pg_engine.begin() as connection:
        for statement in FILL:
            connection.execute(sa.text(statement))
    write_steps(root, STEPS)
    return root


def run(root: Path, pg_url: str, writers: Writers, *args: str) -> None:
    before = len(writers.commits)
    done = alembic(root, pg_url, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert writers.errors == [], args
    assert len(writers.commits) > before, args


def out_of_sync(engine: sa.Engine) -> list[tuple]:
    return fetch(engine, "SELECT count(*) FROM audit_logs "
                         "WHERE user_id_for_type_change IS DISTINCT FROM user_id")


def test_a_type_change_in_expand_and_contract_while_the_app_writes(
    root: Path, pg_url: str, pg_engine: sa.Engine
) -> None:
    with writing(pg_engine, work, threads=1) as writers:
        run(root, pg_url, writers, "upgrade", "0005")
        expanded = fetch(pg_engine, SCHEMA)
        assert ("index", EXPANDED_INDEX) in expanded
        assert ("constraint", "fk_audit_logs_user_id_users_tc FOREIGN KEY "
                "(user_id_for_type_change) REFERENCES users(id) ON DELETE SET NULL NOT VALID "
                "false") in expanded
        assert out_of_sync(pg_engine) == [(0,)]

        run(root, pg_url, writers, "upgrade", "0006")
        assert fetch(pg_engine, SCHEMA) == CONTRACTED

        run(root, pg_url, writers, "downgrade", "0005")  # the old type back, synced again
        again = fetch(pg_engine, SCHEMA)
        assert ("column", "user_id integer NO 1") in again
        assert ("column", "user_id_for_type_change bigint YES -") in again
        assert ("index", EXPANDED_INDEX) in again
        assert out_of_sync(pg_engine) == [(0,)]
        run(root, pg_url, writers, "downgrade", "0004")
        assert fetch(pg_engine, SCHEMA) == BEFORE
        run(root, pg_url, writers, "upgrade", "head")
    assert version(pg_engine) == "0006"
    assert fetch(pg_engine, SCHEMA) == CONTRACTED
    assert fetch(pg_engine, "SELECT count(*) FROM audit_logs WHERE user_id IS NULL") == [(0,)]


def test_the_contract_names_what_the_old_column_would_take_with_it(
    root: Path, pg_url: str, pg_engine: sa.Engine
) -> None:
    assert alembic(root, pg_url, "upgrade", "0005").returncode == 0
    with pg_engine.begin() as connection:  # a copy lost (by hand) before the contract
        connection.execute(sa.text("DROP INDEX ix_audit_logs_user_id_created_at_tc"))
    failure = one_failure(alembic(root, pg_url, "upgrade", "0006"))
    assert failure == (
        "FAILED: alembic/versions/0006_contract_audit_logs_user_id.py: audit_logs.user_id: "
        "the old column would be dropped with index "
        "ix_audit_logs_user_id_created_at (no copy ix_audit_logs_user_id_created_at_tc); "
        "nothing was swapped; run the expand revision again to copy them (or drop them in a "
        "revision of their own first); rolled back, the database is at 0005")
    assert version(pg_engine) == "0005"
    assert fetch(pg_engine, "SELECT data_type FROM information_schema.columns WHERE "
                            "table_name = 'audit_logs' AND column_name = 'user_id'"
                 ) == [("integer",)]


def test_the_expand_refuses_what_it_cannot_copy(
    root: Path, pg_url: str, pg_engine: sa.Engine
) -> None:
    for name in STEPS:
        (root / "alembic" / "versions" / name).unlink()
    write_steps(root, {"0005_expand_users_username.py": '''
from data_migrations.online.column_type import (
    ColumnTypeChange, change_column_type_concurrently, undo_change_column_type_concurrently)

USERNAME = ColumnTypeChange(name="0005_users_username", table="users", column="username",
                            old_type="varchar(64)", new_type="text")


def upgrade() -> None:
    change_column_type_concurrently(USERNAME)


def downgrade() -> None:
    undo_change_column_type_concurrently(USERNAME)
'''})
    failure = one_failure(alembic(root, pg_url, "upgrade", "head"))
    assert failure == (
        "FAILED: alembic/versions/0005_expand_users_username.py: users.username: the type "
        "change cannot carry constraint uq_users_username on "
        "table users over to the new column (a primary key, a unique or check constraint, an "
        "expression, a view or another table's key on it); nothing was changed; change those "
        "by hand in revisions of their own first; rolled back, the database is at 0004")
    assert fetch(pg_engine, "SELECT count(*) FROM information_schema.columns WHERE "
                            "column_name = 'username_for_type_change'") == [(0,)]


def test_the_sql_render_and_the_lint_need_no_waiver_in_the_revisions(root: Path) -> None:
    rendered = alembic(root, "", "upgrade", "0004:head", "--sql")
    assert rendered.returncode == 0, rendered.stderr
    for statement in (
        "ALTER TABLE audit_logs ADD COLUMN IF NOT EXISTS user_id_for_type_change bigint;",
        "CREATE OR REPLACE TRIGGER audit_logs_user_id_type_change BEFORE INSERT OR UPDATE ON "
        "audit_logs FOR EACH ROW EXECUTE FUNCTION audit_logs_user_id_type_change();",
        "-- Each index on audit_logs.user_id (read from the catalog online)",
        "ALTER TABLE audit_logs RENAME COLUMN user_id_for_type_change TO user_id;",
        "ALTER TABLE audit_logs DROP COLUMN user_id_for_type_change;",
    ):
        assert statement in rendered.stdout, statement
    lint = subprocess.run([sys.executable, "-m", "devtools.lint_revisions", "--config",
                           str(root / "alembic.ini")], cwd=root, capture_output=True,
                          text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_plan_skips_the_expand_and_the_swap_that_needs_it(
    root: Path, pg_url: str, pg_engine: sa.Engine
) -> None:
    plan = alembic(root, pg_url, "-x", "dry_run=true", "upgrade", "head")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    for said in ("Dry run: the type change 0005_audit_logs_user_id is not prepared",
                 "Dry run: type change 0005_audit_logs_user_id: the columns are not swapped"):
        assert said in plan.stderr, plan.stderr
    assert version(pg_engine) == "0004"
    assert fetch(pg_engine, SCHEMA) == BEFORE
