"""A revision that fails on the live database: one ``FAILED:`` line naming the revision
file, the statement, the database's message and where the database stands, and no
traceback; a helper that commits on its own never follows its revision's own change; and a
downgrade never drops the app's rows without being told to."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import fetch, version
from tests.online.chain import alembic, released_copy, write_steps
from tests.runs import one_failure

USERS = ("INSERT INTO users (username, email, tenant_id, role, is_active, created_at) "
         "SELECT 'user' || n, CASE WHEN n <= 2 THEN 'same@example.com' ELSE 'u' || n || "
         "'@example.com' END, 't1', 'user', true, now() FROM generate_series(1, 6) AS n")
TASKS = ("INSERT INTO tasks (id, user_id, title, status, created_at) "
         "SELECT md5(n::text)::uuid, 1 + n % 6, '周会 ' || n, 'done', now() "
         "FROM generate_series(1, 30) AS n")


@pytest.fixture
def target(tmp_path: Path, pg_url: str, pg_engine: sa.Engine) -> Path:
    """A copy at 0004 with six users (two share an email) and thirty tasks."""
    root = released_copy(tmp_path / "repo", {})
    upgraded = alembic(root, pg_url, "upgrade", "head")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    with pg_engine.begin() as connection:
        connection.execute(sa.text(USERS))
        connection.execute(sa.text(TASKS))
    return root


def upgrade_fails(root: Path, pg_url: str, steps: dict[str, str]) -> str:
    write_steps(root, steps)
    return one_failure(alembic(root, pg_url, "upgrade", "head"))


def invalid_indexes(engine: sa.Engine) -> list[tuple]:
    return fetch(engine, "SELECT c.relname FROM pg_index i JOIN pg_class c "
                         "ON c.oid = i.indexrelid WHERE NOT i.indisvalid")


def test_a_unique_index_over_duplicates_names_one_and_the_invalid_index_left(
    target: Path, pg_url: str, pg_engine: sa.Engine
) -> None:
    failure = upgrade_fails(target, pg_url, {"0005_unique_user_email.py": '''
def upgrade() -> None:
    create_index_concurrently("ix_users_email", "users", ["email"], unique=True)


def downgrade() -> None:
    drop_index_concurrently("ix_users_email", "users")
'''})
    assert failure.startswith("FAILED: alembic/versions/0005_unique_user_email.py: could not "
                              "create unique index \"ix_users_email\" (SQLSTATE 23505) in "
                              "`CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ix_users_email"), \
        failure
    assert ("the database is at 0004; left behind: INVALID index ix_users_email on users "
            "(the helper drops and builds it again on the next run); one duplicated value: "
            "(email)=(same@example.com); the rest: SELECT email, count(*) FROM \"users\" "
            "GROUP BY email HAVING count(*) > 1") in failure, failure
    assert version(pg_engine) == "0004"
    assert invalid_indexes(pg_engine) == [("ix_users_email",)]

    with pg_engine.begin() as connection:
        connection.execute(sa.text("UPDATE users SET email = 'other@example.com' "
                                   "WHERE username = 'user2'"))
    again = alembic(target, pg_url, "upgrade", "head")
    assert again.returncode == 0, again.stdout + again.stderr
    assert version(pg_engine) == "0005"
    assert invalid_indexes(pg_engine) == []


@pytest.mark.parametrize(("body", "said", "next_step"), [
    ('    op.execute("ALTER TABLE tasks VALIDATE CONSTRAINT fk_tasks_reviewer")\n',
     'constraint "fk_tasks_reviewer" of relation "tasks" does not exist (SQLSTATE 42704) in '
     '`ALTER TABLE tasks VALIDATE CONSTRAINT fk_tasks_reviewer`',
     "compare the name in the revision with the database's"),
    ('    op.alter_column("tasks", "language", nullable=False)\n',
     'column "language" of relation "tasks" contains null values (SQLSTATE 23502) in '
     '`ALTER TABLE tasks ALTER COLUMN language SET NOT NULL`',
     'the rows: SELECT count(*) FROM "tasks" WHERE "language" IS NULL'),
    ('    op.add_column("tasks", sa.Column("title", sa.Text(), nullable=True))\n',
     'column "title" of relation "tasks" already exists (SQLSTATE 42701) in '
     '`ALTER TABLE tasks ADD COLUMN title TEXT`',
     "it is in the database already"),
], ids=["undefined-constraint", "nulls", "duplicate-column"])
def test_a_database_error_in_a_revision_is_one_line(
    target: Path, pg_url: str, pg_engine: sa.Engine, body: str, said: str, next_step: str
) -> None:
    failure = upgrade_fails(target, pg_url, {"0005_change_tasks.py": f'''
def upgrade() -> None:
    op.add_column("tasks", sa.Column("priority", sa.Integer(), nullable=True))
{body}

def downgrade() -> None:
    pass
'''})
    assert failure.startswith(f"FAILED: alembic/versions/0005_change_tasks.py: {said}; "
                              "rolled back, the database is at 0004; "), failure
    assert next_step in failure, failure
    assert version(pg_engine) == "0004"
    assert "priority" not in {c for (c,) in fetch(
        pg_engine, "SELECT column_name FROM information_schema.columns "
                   "WHERE table_name = 'tasks'")}


def test_a_helper_that_commits_refuses_to_follow_its_revisions_change(
    target: Path, pg_url: str, pg_engine: sa.Engine
) -> None:
    """Its change would stay committed if the build then failed: refused before anything
    commits; once the change has a revision of its own, the chain reaches head."""
    failure = upgrade_fails(target, pg_url, {"0005_task_priority.py": '''
def upgrade() -> None:
    op.add_column("tasks", sa.Column("priority", sa.Integer(), nullable=True))
    create_index_concurrently("ix_tasks_priority", "tasks", ["priority"])


def downgrade() -> None:
    drop_index_concurrently("ix_tasks_priority", "tasks")
    drop_added_column("tasks", "priority")
'''})
    assert failure == (
        "FAILED: alembic/versions/0005_task_priority.py: a helper that commits on its own (an "
        "index built CONCURRENTLY, a batched backfill) follows this revision's own change "
        "`ALTER TABLE tasks ADD COLUMN priority INTEGER`; if the helper failed, that change "
        "would stay committed and the revision could not run again: move it into a revision "
        "of its own before this one, after the helper, or write it to run again "
        "(if_not_exists=True); nothing was committed")
    assert version(pg_engine) == "0004"
    assert fetch(pg_engine, "SELECT count(*) FROM information_schema.columns WHERE "
                            "table_name = 'tasks' AND column_name = 'priority'") == [(0,)]

    (target / "alembic" / "versions" / "0005_task_priority.py").unlink()
    write_steps(target, {"0005_task_priority.py": '''
def upgrade() -> None:
    op.add_column("tasks", sa.Column("priority", sa.Integer(), nullable=True))


def downgrade() -> None:
    drop_added_column("tasks", "priority")
''', "0006_task_priority_index.py": '''
def upgrade() -> None:
    create_index_concurrently("ix_tasks_priority", "tasks", ["priority"])


def downgrade() -> None:
    drop_index_concurrently("ix_tasks_priority", "tasks")
'''})
    done = alembic(target, pg_url, "upgrade", "head")
    assert done.returncode == 0, done.stdout + done.stderr
    assert version(pg_engine) == "0006"


def test_a_downgrade_keeps_a_column_the_app_wrote_into_unless_told(
    target: Path, pg_url: str, pg_engine: sa.Engine
) -> None:
    write_steps(target, {"0005_task_priority.py": '''
def upgrade() -> None:
    op.add_column("tasks", sa.Column("priority", sa.Integer(), server_default="0",
                                     nullable=False))


def downgrade() -> None:
    drop_added_column("tasks", "priority")
'''})
    lint = subprocess.run([sys.executable, "-m", "devtools.lint_revisions", "--config",
                           str(target / "alembic.ini")], cwd=target, capture_output=True,
                          text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr  # no waiver of its own needed
    assert alembic(target, pg_url, "upgrade", "head").returncode == 0
    assert alembic(target, pg_url, "downgrade", "0004").returncode == 0  # only defaults
    assert alembic(target, pg_url, "upgrade", "head").returncode == 0
    with pg_engine.begin() as connection:
        connection.execute(sa.text("UPDATE tasks SET priority = 3 WHERE title = '周会 7'"))

    failure = one_failure(alembic(target, pg_url, "downgrade", "0004"))
    assert failure == (
        "FAILED: alembic/versions/0005_task_priority.py (downgrade): tasks.priority holds 1 "
        "value other than its default, written since the column was added; nothing was "
        "dropped; back them up first, or to drop them set DROP_APP_DATA=true (-x "
        "drop_app_data=true); rolled back, the database is at 0005")
    assert fetch(pg_engine, "SELECT priority FROM tasks WHERE title = '周会 7'") == [(3,)]
    assert version(pg_engine) == "0005"

    told = alembic(target, pg_url, "-x", "drop_app_data=true", "downgrade", "0004")
    assert told.returncode == 0, told.stdout + told.stderr
    assert version(pg_engine) == "0004"


def test_the_baseline_downgrade_refuses_while_the_app_has_rows(
    target: Path, pg_url: str, pg_engine: sa.Engine
) -> None:
    failure = one_failure(alembic(target, pg_url, "-x", "force=true", "downgrade", "base"))
    assert failure == (
        "FAILED: alembic/versions/0001_baseline_schema.py (downgrade): would drop tables that "
        "still hold rows (tasks 30, users 6): after go-live they are the app's; nothing was "
        "dropped, the database is at 0001; back them up first, or to drop them with their "
        "rows set DROP_APP_DATA=true (-x drop_app_data=true)")
    assert fetch(pg_engine, "SELECT count(*) FROM users") == [(6,)]
    assert version(pg_engine) == "0001"

    told = alembic(target, pg_url, "downgrade", "base", settings={"DROP_APP_DATA": "true"})
    assert told.returncode == 0, told.stdout + told.stderr
    assert fetch(pg_engine, "SELECT to_regclass('users')") == [(None,)]
