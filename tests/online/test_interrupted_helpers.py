"""The constraint and type-change helpers (data_migrations/online/constraints.py,
column_type.py), each interrupted at each of its statements — cancelled, or its session
killed — reach head when ``make migrate`` runs again, with the same schema and rows as an
uninterrupted run: the database's own interrupter of test_interrupted_patterns.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.postgres_server import PostgresServer
from tests.conftest import fetch
from tests.online.chain import alembic, released_copy
from tests.online.test_interrupted_patterns import SCHEMA, Databases, uninterrupted
from tests.runs import one_failure

pytestmark = pytest.mark.slow

CONSTRAINTS = '''
from data_migrations.online.constraints import (
    add_foreign_key, add_not_null_check, add_unique_constraint, drop_constraint,
    drop_not_null, drop_not_null_check, set_not_null, validate_constraint,
    validate_not_null_check)
'''
TYPE_CHANGE = '''
from data_migrations.online.column_type import (
    ColumnTypeChange, change_column_type_concurrently, cleanup_concurrent_column_type_change,
    undo_change_column_type_concurrently, undo_cleanup_concurrent_column_type_change)

USER_ID = ColumnTypeChange(name="0005_tasks_user_id", table="tasks", column="user_id",
                           old_type="integer", new_type="bigint", batch_size=10,
                           pause_seconds=0)
'''
PATTERNS: dict[str, dict[str, str]] = {
    "constraints": {"0005_constraints.py": CONSTRAINTS + '''

def upgrade() -> None:
    add_unique_constraint("uq_users_email", "users", ["email"])
    add_foreign_key("fk_tasks_hotword_set_id_users", "tasks", ["hotword_set_id"], "users",
                    ["id"])
    add_not_null_check("tasks", "language")


def downgrade() -> None:
    drop_not_null_check("tasks", "language")
    drop_constraint("fk_tasks_hotword_set_id_users", "tasks")
    drop_constraint("uq_users_email", "users")
''', "0006_validate.py": CONSTRAINTS + '''

def upgrade() -> None:
    validate_constraint("fk_tasks_hotword_set_id_users", "tasks")
    validate_not_null_check("tasks", "language")


def downgrade() -> None:
    pass
''', "0007_not_null.py": CONSTRAINTS + '''

def upgrade() -> None:
    set_not_null("tasks", "language")


def downgrade() -> None:
    drop_not_null("tasks", "language")
'''},
    "type-change": {"0005_expand_tasks_user_id.py": TYPE_CHANGE + '''

def upgrade() -> None:
    change_column_type_concurrently(USER_ID)


def downgrade() -> None:
    undo_change_column_type_concurrently(USER_ID)
''', "0006_contract_tasks_user_id.py": TYPE_CHANGE + '''

def upgrade() -> None:
    cleanup_concurrent_column_type_change(USER_ID)


def downgrade() -> None:
    undo_cleanup_concurrent_column_type_change(USER_ID)
'''},
}


@pytest.fixture(params=list(PATTERNS))
def pattern(request: pytest.FixtureRequest, tmp_path: Path,
            postgres_server: PostgresServer) -> Iterator[tuple[Path, Databases]]:
    root = released_copy(tmp_path / "repo", {})
    databases = Databases(postgres_server, root)
    released_copy(tmp_path / "with", PATTERNS[request.param])
    yield tmp_path / "with", databases
    databases.close()


@pytest.mark.parametrize("how", ["cancel", "kill"])
def test_an_interrupted_helper_finishes_when_run_again(
    pattern: tuple[Path, Databases], how: str
) -> None:
    root, databases = pattern
    statements, schema = uninterrupted(root, databases)
    assert statements >= 5
    for nth in range(1, statements + 1):
        with databases.copy(nth, how) as (url, engine):
            one_failure(alembic(root, url, "upgrade", "head"))
            databases.disarm(engine)
            again = alembic(root, url, "upgrade", "head")
            assert again.returncode == 0, (nth, again.stdout + again.stderr)
            assert fetch(engine, SCHEMA) == schema, nth
