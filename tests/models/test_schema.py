"""The baseline schema on a real PostgreSQL and on SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from data_migrations.commands.adopt_dev import adopt, alembic_config, differences, schema_signature
from devtools.sample import DEV_SCHEMA

TABLES = {
    "users", "prompt_templates", "hotword_sets", "tasks", "transcripts",
    "speaker_mappings", "generated_artifacts", "audit_logs",
}


def catalog(engine: sa.Engine, sql: str) -> set[tuple]:
    with engine.connect() as conn:
        return {tuple(row) for row in conn.execute(sa.text(sql))}


def test_postgres_column_types_and_nullability(pg_url: str, pg_engine: sa.Engine) -> None:
    command.upgrade(alembic_config(pg_url), "0001")
    columns = catalog(pg_engine, """
        SELECT table_name, column_name, data_type, is_nullable, is_identity
        FROM information_schema.columns WHERE table_schema = 'public'
          AND table_name <> 'alembic_version'""")
    by_name = {(t, c): (dt, null, ident) for t, c, dt, null, ident in columns}
    assert {t for t, _ in by_name} == TABLES
    assert by_name["tasks", "id"] == ("uuid", "NO", "NO")
    assert by_name["transcripts", "task_id"][0] == "uuid"
    assert by_name["audit_logs", "task_id"] == ("uuid", "YES", "NO")
    assert by_name["users", "id"] == ("integer", "NO", "YES")
    assert by_name["users", "is_active"] == ("boolean", "NO", "NO")
    assert by_name["users", "created_at"] == ("timestamp with time zone", "NO", "NO")
    assert by_name["users", "updated_at"] == ("timestamp with time zone", "YES", "NO")
    assert by_name["hotword_sets", "words"] == ("jsonb", "NO", "NO")
    assert by_name["audit_logs", "details"] == ("jsonb", "YES", "NO")
    assert by_name["tasks", "audio_size"][0] == "bigint"
    assert by_name["tasks", "audio_duration"][0] == "double precision"
    assert by_name["users", "username"] == ("character varying", "NO", "NO")
    numeric = catalog(pg_engine, """
        SELECT table_name, numeric_precision, numeric_scale FROM information_schema.columns
        WHERE column_name = 'cost'""")
    assert numeric == {("generated_artifacts", 12, 6), ("audit_logs", 12, 6)}
    identity_tables = {t for (t, c), (_, _, ident) in by_name.items() if ident == "YES"}
    assert identity_tables == TABLES - {"tasks"}


def test_postgres_foreign_keys_uniques_and_indexes(pg_url: str, pg_engine: sa.Engine) -> None:
    command.upgrade(alembic_config(pg_url), "0001")
    foreign_keys = catalog(pg_engine, """
        SELECT tc.table_name, kcu.column_name, ccu.table_name, rc.delete_rule
        FROM information_schema.table_constraints tc
        JOIN information_schema.key_column_usage kcu USING (constraint_name)
        JOIN information_schema.constraint_column_usage ccu USING (constraint_name)
        JOIN information_schema.referential_constraints rc USING (constraint_name)
        WHERE tc.constraint_type = 'FOREIGN KEY'""")
    assert foreign_keys == {
        ("prompt_templates", "owner_id", "users", "SET NULL"),
        ("hotword_sets", "owner_id", "users", "SET NULL"),
        ("tasks", "user_id", "users", "CASCADE"),
        ("tasks", "hotword_set_id", "hotword_sets", "SET NULL"),
        ("transcripts", "task_id", "tasks", "CASCADE"),
        ("speaker_mappings", "task_id", "tasks", "CASCADE"),
        ("speaker_mappings", "user_id", "users", "SET NULL"),
        ("generated_artifacts", "task_id", "tasks", "CASCADE"),
        ("generated_artifacts", "prompt_template_id", "prompt_templates", "SET NULL"),
        ("audit_logs", "user_id", "users", "SET NULL"),
        ("audit_logs", "task_id", "tasks", "SET NULL"),
    }
    uniques = catalog(pg_engine, """
        SELECT conname FROM pg_constraint
        WHERE contype = 'u' AND connamespace = 'public'::regnamespace""")
    assert uniques == {
        ("uq_users_username",), ("uq_users_wecom_userid",),
        ("uq_speaker_mappings_task_id_speaker_label",),
    }
    indexes = catalog(pg_engine, """
        SELECT tablename, indexname FROM pg_indexes
        WHERE schemaname = 'public' AND indexname LIKE 'ix_%'""")
    assert indexes == {
        ("tasks", "ix_tasks_user_id_created_at"), ("tasks", "ix_tasks_status"),
        ("transcripts", "ix_transcripts_task_id"),
        ("generated_artifacts", "ix_generated_artifacts_task_id"),
        ("audit_logs", "ix_audit_logs_user_id_created_at"), ("audit_logs", "ix_audit_logs_action"),
    }


def test_downgrade_to_base_leaves_nothing(pg_url: str, pg_engine: sa.Engine) -> None:
    config = alembic_config(pg_url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    leftovers = catalog(pg_engine, """
        SELECT c.relkind::text, c.relname FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relname <> 'alembic_version'
          AND c.relname NOT LIKE 'alembic_version%'
        UNION ALL
        SELECT 'type', t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'public' AND t.typname NOT LIKE '%alembic_version%'""")
    assert leftovers == set()


def test_alembic_check_is_clean_on_postgres_and_sqlite(pg_url: str, tmp_path: Path) -> None:
    for url in (pg_url, f"sqlite:///{tmp_path / 'dev.db'}"):
        config = alembic_config(url)
        command.upgrade(config, "head")
        command.check(config)  # raises AutogenerateDiffsDetected on any drift


def dev_database(path: Path, schema_sql: str) -> str:
    with sqlite3.connect(path) as conn:
        conn.executescript(schema_sql)
    return f"sqlite:///{path}"


def signature_of(url: str) -> dict:
    engine = sa.create_engine(url)
    try:
        return schema_signature(engine)
    finally:
        engine.dispose()


def test_baseline_on_sqlite_equals_the_dev_schema(tmp_path: Path) -> None:
    dev_url = dev_database(tmp_path / "dev.db", DEV_SCHEMA.read_text())
    baseline_url = f"sqlite:///{tmp_path / 'baseline.db'}"
    command.upgrade(alembic_config(baseline_url), "0001")
    expected = signature_of(dev_url)
    assert set(expected) == TABLES
    assert differences(expected, signature_of(baseline_url)) == []


def test_adopting_a_matching_dev_file_stamps_it(tmp_path: Path) -> None:
    dev_url = dev_database(tmp_path / "meeting_agent.db", DEV_SCHEMA.read_text())
    assert adopt(dev_url) == []
    with sqlite3.connect(tmp_path / "meeting_agent.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0001",)]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("email VARCHAR(255),", "email VARCHAR(200),"), "table users: columns differ"),
        (
            ("ON DELETE SET NULL\n);\n\nCREATE TABLE hotword_sets",
             "\n);\n\nCREATE TABLE hotword_sets"),
            "table prompt_templates: foreign keys differ",
        ),
        (("CREATE INDEX ix_tasks_status ON tasks (status);", ""), "table tasks: indexes differ"),
        (("UNIQUE (wecom_userid)", "CHECK (1)"), "table users: unique constraints differ"),
    ],
)
def test_adopting_a_mismatching_dev_file_reports_and_stamps_nothing(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    schema = DEV_SCHEMA.read_text()
    assert change[0] in schema
    path = tmp_path / "meeting_agent.db"
    found = adopt(dev_database(path, schema.replace(*change, 1)))
    assert len(found) == 1
    assert found[0].startswith(expected)
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "alembic_version" not in tables
