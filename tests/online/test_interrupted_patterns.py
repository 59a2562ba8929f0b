"""Each documented way of changing the live schema, interrupted at each of its statements —
the statement cancelled, or its session killed — reaches head when ``make migrate`` runs
again, with the same schema as an uninterrupted run.

The interruption is the database's own: an event trigger (``ddl_command_start``) and a
statement trigger on the tables the patterns update count the migration session's
statements (a sequence, so a rollback does not undo the count) and, at the chosen one, the
session cancels (``pg_cancel_backend``) or terminates (``pg_terminate_backend``) itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from devtools.postgres_server import ROLE, PostgresServer
from tests.conftest import fetch
from tests.online.chain import alembic, released_copy
from tests.runs import one_failure

pytestmark = pytest.mark.slow

INTERRUPTER = f"""
CREATE SEQUENCE interrupt_seen;
CREATE TABLE interrupt_plan (nth bigint NOT NULL, how text NOT NULL);
GRANT USAGE, SELECT, UPDATE ON SEQUENCE interrupt_seen TO {ROLE};
GRANT SELECT ON interrupt_plan TO {ROLE};
CREATE FUNCTION interrupt_here() RETURNS void LANGUAGE plpgsql AS $$
DECLARE plan interrupt_plan%ROWTYPE;
BEGIN
    IF current_setting('application_name') NOT LIKE 'cutover pid %' THEN RETURN; END IF;
    SELECT * INTO plan FROM interrupt_plan;
    IF NOT FOUND THEN RETURN; END IF;
    IF nextval('interrupt_seen') <> plan.nth THEN RETURN; END IF;
    IF plan.how = 'kill' THEN PERFORM pg_terminate_backend(pg_backend_pid());
    ELSE PERFORM pg_cancel_backend(pg_backend_pid()); END IF;
    PERFORM pg_sleep(30);
END $$;
CREATE FUNCTION interrupt_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM interrupt_here(); END $$;
CREATE EVENT TRIGGER interrupt_ddl ON ddl_command_start EXECUTE FUNCTION interrupt_ddl();
CREATE FUNCTION interrupt_dml() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM interrupt_here(); RETURN NULL; END $$;
CREATE TRIGGER interrupt_dml BEFORE UPDATE ON tasks
    FOR EACH STATEMENT EXECUTE FUNCTION interrupt_dml();
CREATE TRIGGER interrupt_dml BEFORE UPDATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION interrupt_dml();
"""
ROWS = """
INSERT INTO users (username, tenant_id, role, is_active, created_at)
SELECT 'user' || n, 't1', 'user', true, now() FROM generate_series(1, 5) AS n;
INSERT INTO tasks (id, user_id, title, status, language, created_at)
SELECT md5(n::text)::uuid, 1 + n % 5, '周会 ' || n, 'done', 'zh', now()
FROM generate_series(1, 30) AS n;
INSERT INTO audit_logs (action, currency, created_at)
SELECT 'asr.transcribe', 'cny', now() FROM generate_series(1, 40) AS n;
"""
# The documented patterns (docs/runbook.md, "After go-live"), each as the revisions it
# takes, written as the runbook writes them.
PATTERNS: dict[str, dict[str, str]] = {
    "column-with-default": {"0005_task_priority.py": '''
def upgrade() -> None:
    op.add_column("tasks", sa.Column("priority", sa.Integer(), server_default="0",
                                     nullable=False))


def downgrade() -> None:
    drop_added_column("tasks", "priority")
'''},
    "index-concurrently": {"0005_task_title_index.py": '''
def upgrade() -> None:
    create_index_concurrently("ix_tasks_title", "tasks", ["title"])


def downgrade() -> None:
    drop_index_concurrently("ix_tasks_title", "tasks")
'''},
    "foreign-key-in-two-steps": {"0005_task_reviewer.py": '''
def upgrade() -> None:
    op.add_column("tasks", sa.Column("reviewer_id", sa.Integer(), nullable=True))
    op.execute("ALTER TABLE tasks ADD CONSTRAINT fk_tasks_reviewer_id_users "
               "FOREIGN KEY (reviewer_id) REFERENCES users (id) NOT VALID")


def downgrade() -> None:
    op.drop_constraint("fk_tasks_reviewer_id_users", "tasks")
    drop_added_column("tasks", "reviewer_id")
''', "0006_validate_task_reviewer.py": '''
def upgrade() -> None:
    op.execute("ALTER TABLE tasks VALIDATE CONSTRAINT fk_tasks_reviewer_id_users")


def downgrade() -> None:
    pass
'''},
    "not-null-through-a-check": {"0005_task_language_check.py": '''
def upgrade() -> None:
    op.execute("ALTER TABLE tasks ADD CONSTRAINT ck_tasks_language_not_null "
               "CHECK (language IS NOT NULL) NOT VALID")


def downgrade() -> None:
    op.drop_constraint("ck_tasks_language_not_null", "tasks")
''', "0006_validate_task_language.py": '''
def upgrade() -> None:
    op.execute("ALTER TABLE tasks VALIDATE CONSTRAINT ck_tasks_language_not_null")


def downgrade() -> None:
    pass
''', "0007_task_language_not_null.py": '''
def upgrade() -> None:
    op.alter_column("tasks", "language", nullable=False)
    op.drop_constraint("ck_tasks_language_not_null", "tasks")


def downgrade() -> None:
    op.execute("ALTER TABLE tasks ADD CONSTRAINT ck_tasks_language_not_null "
               "CHECK (language IS NOT NULL) NOT VALID")
    op.alter_column("tasks", "language", nullable=True)
'''},
    "backfill": {"0005_audit_currency_code.py": '''
def upgrade() -> None:
    op.add_column("audit_logs", sa.Column("currency_code", sa.Text(), nullable=True))


def downgrade() -> None:
    drop_added_column("audit_logs", "currency_code")
''', "0006_backfill_currency_code.py": '''
CODES = Backfill(name="0006_audit_logs_currency_code", table="audit_logs",
                 set="currency_code = upper(currency)",
                 where="currency_code IS DISTINCT FROM upper(currency)",
                 batch_size=10, pause_seconds=0)


def upgrade() -> None:
    backfill_in_batches(CODES)


def downgrade() -> None:
    forget_backfill(CODES)
'''},
    "expand": {"0005_expand_task_summary.py": '''
def upgrade() -> None:
    op.add_column("tasks", sa.Column("summary", sa.Text(), nullable=True), if_not_exists=True)
    create_index_concurrently("ix_tasks_summary", "tasks", ["summary"])


def downgrade() -> None:
    drop_index_concurrently("ix_tasks_summary", "tasks")
    drop_added_column("tasks", "summary")
'''},
}
SCHEMA = """
SELECT 'column', table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL SELECT 'constraint', format('%s %s %s', conname, contype, convalidated)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL SELECT 'index', format('%s %s', c.relname, i.indisvalid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE c.relnamespace = 'public'::regnamespace
UNION ALL SELECT 'version', version_num FROM alembic_version
UNION ALL SELECT 'tasks', md5(string_agg(t::text, ',' ORDER BY t::text)) FROM tasks AS t
UNION ALL SELECT 'audit_logs', md5(string_agg(a::text, ',' ORDER BY a::text))
FROM audit_logs AS a
ORDER BY 1, 2"""


class Databases:
    """A template at 0004 with rows and the interrupter, and copies of it."""

    def __init__(self, server: PostgresServer, root: Path) -> None:
        self.server = server
        self.root = root
        self.admin = sa.create_engine(
            f"postgresql+psycopg2://postgres@/postgres?host={server.socket_dir}"
            f"&port={server.port}", isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        self.template = f"template_{uuid.uuid4().hex[:10]}"
        self._admin_sql(f"CREATE DATABASE {self.template} OWNER {ROLE}")
        upgraded = alembic(root, server.url(self.template), "upgrade", "head")
        assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
        with self._superuser(self.template) as connection:
            cursor = connection.connection.driver_connection.cursor()
            cursor.execute(ROWS)  # several statements, with % in them: no parameters
            cursor.execute(INTERRUPTER)

    def _admin_sql(self, sql: str) -> None:
        with self.admin.connect() as connection:
            connection.exec_driver_sql(sql)

    @contextmanager
    def _superuser(self, name: str) -> Iterator[sa.Connection]:
        engine = sa.create_engine(self.admin.url.set(database=name),
                                  isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with engine.connect() as connection:
            yield connection
        engine.dispose()

    @contextmanager
    def copy(self, nth: int = 0, how: str = "cancel") -> Iterator[tuple[str, sa.Engine]]:
        """A copy of the template whose ``nth`` migration statement is interrupted
        (0: none, the statements only counted)."""
        name = f"case_{uuid.uuid4().hex[:10]}"
        self._admin_sql(f"CREATE DATABASE {name} TEMPLATE {self.template} OWNER {ROLE}")
        with self._superuser(name) as connection:
            connection.execute(sa.text("INSERT INTO interrupt_plan VALUES (:nth, :how)"),
                               {"nth": nth, "how": how})
        engine = sa.create_engine(self.server.url(name), poolclass=sa.pool.NullPool)
        try:
            yield self.server.url(name), engine
        finally:
            engine.dispose()
            self._admin_sql(f"DROP DATABASE {name} WITH (FORCE)")

    def disarm(self, engine: sa.Engine) -> None:
        with self._superuser(engine.url.database or "") as connection:
            connection.exec_driver_sql("DELETE FROM interrupt_plan")

    def close(self) -> None:
        self._admin_sql(f"DROP DATABASE {self.template} WITH (FORCE)")
        self.admin.dispose()


@pytest.fixture(params=list(PATTERNS))
def pattern(request: pytest.FixtureRequest, tmp_path: Path,
            postgres_server: PostgresServer) -> Iterator[tuple[Path, Databases]]:
    root = released_copy(tmp_path / "repo", {})
    databases = Databases(postgres_server, root)
    released_copy(tmp_path / "with", PATTERNS[request.param])
    yield tmp_path / "with", databases
    databases.close()


def uninterrupted(root: Path, databases: Databases) -> tuple[int, list[tuple]]:
    """How many statements the patterns' revisions run, and the schema they leave."""
    with databases.copy() as (url, engine):
        done = alembic(root, url, "upgrade", "head")
        assert done.returncode == 0, done.stdout + done.stderr
        counted = fetch(engine, "SELECT last_value FROM interrupt_seen")[0][0]
        return counted, fetch(engine, SCHEMA)


@pytest.mark.parametrize("how", ["cancel", "kill"])
def test_an_interrupted_pattern_finishes_when_run_again(
    pattern: tuple[Path, Databases], how: str
) -> None:
    root, databases = pattern
    statements, schema = uninterrupted(root, databases)
    assert statements >= 1
    for nth in range(1, statements + 1):
        with databases.copy(nth, how) as (url, engine):
            failure = one_failure(alembic(root, url, "upgrade", "head"))
            said = ("canceling statement due to user request (SQLSTATE 57014)"
                    if how == "cancel" else "the connection to PostgreSQL was lost during")
            assert said in failure, (nth, failure)
            databases.disarm(engine)
            again = alembic(root, url, "upgrade", "head")
            assert again.returncode == 0, (nth, again.stdout + again.stderr)
            assert fetch(engine, SCHEMA) == schema, nth
