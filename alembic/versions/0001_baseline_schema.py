"""Baseline: the eight metadata tables of the meeting agent.

Creates users, prompt_templates, hotword_sets, tasks, transcripts, speaker_mappings,
generated_artifacts and audit_logs with their keys, foreign keys (with ON DELETE) and
indexes, as the app had them on SQLite. On PostgreSQL the columns get the types a DBA
expects: timestamptz, boolean, jsonb, numeric(12,6), bigint, a native uuid task id and
identity integer keys. Written out in full, never imported from models/: this file is
history and must not change when the models do.

Downgrade drops the eight tables (their indexes and identity sequences go with them).

Revision ID: 0001
Revises:
Create Date: 2026-11-27

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The portable types of this revision, frozen here on purpose (see the docstring).
TIMESTAMP = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TASK_ID = sa.String(36).with_variant(postgresql.UUID(as_uuid=False), "postgresql")


def identity_key() -> sa.Column:
    return sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False)


def upgrade() -> None:
    op.create_table(
        "users",
        identity_key(),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("email", sa.String(255), nullable=True),
        sa.Column("display_name", sa.String(128), nullable=True),
        sa.Column("wecom_userid", sa.String(64), nullable=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=True),
        sa.Column("last_login_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
        sa.UniqueConstraint("wecom_userid", name="uq_users_wecom_userid"),
    )
    op.create_table(
        "prompt_templates",
        identity_key(),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("artifact_type", sa.String(32), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("variables", JSON_DOCUMENT, nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_templates"),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"],
            name="fk_prompt_templates_owner_id_users", ondelete="SET NULL",
        ),
    )
    op.create_table(
        "hotword_sets",
        identity_key(),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("words", JSON_DOCUMENT, nullable=False),
        sa.Column("asr_provider", sa.String(32), nullable=False),
        sa.Column("provider_resource_id", sa.String(128), nullable=True),
        sa.Column("file_path", sa.String(512), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_hotword_sets"),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"],
            name="fk_hotword_sets_owner_id_users", ondelete="SET NULL",
        ),
    )
    op.create_table(
        "tasks",
        sa.Column("id", TASK_ID, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("hotword_set_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("audio_path", sa.String(512), nullable=True),
        sa.Column("audio_size", sa.BigInteger(), nullable=True),
        sa.Column("audio_duration", sa.Float(), nullable=True),
        sa.Column("asr_provider", sa.String(32), nullable=True),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=True),
        sa.Column("completed_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"],
            name="fk_tasks_user_id_users", ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["hotword_set_id"], ["hotword_sets.id"],
            name="fk_tasks_hotword_set_id_hotword_sets", ondelete="SET NULL",
        ),
    )
    op.create_index("ix_tasks_user_id_created_at", "tasks", ["user_id", "created_at"])
    op.create_index("ix_tasks_status", "tasks", ["status"])
    op.create_table(
        "transcripts",
        identity_key(),
        sa.Column("task_id", TASK_ID, nullable=False),
        sa.Column("asr_provider", sa.String(32), nullable=False),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("segments", JSON_DOCUMENT, nullable=True),
        sa.Column("raw_result_path", sa.String(512), nullable=True),
        sa.Column("word_count", sa.Integer(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_transcripts"),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"],
            name="fk_transcripts_task_id_tasks", ondelete="CASCADE",
        ),
    )
    op.create_index("ix_transcripts_task_id", "transcripts", ["task_id"])
    op.create_table(
        "speaker_mappings",
        identity_key(),
        sa.Column("task_id", TASK_ID, nullable=False),
        sa.Column("speaker_label", sa.String(32), nullable=False),
        sa.Column("speaker_name", sa.String(128), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_speaker_mappings"),
        sa.UniqueConstraint(
            "task_id", "speaker_label", name="uq_speaker_mappings_task_id_speaker_label"
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"],
            name="fk_speaker_mappings_task_id_tasks", ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"],
            name="fk_speaker_mappings_user_id_users", ondelete="SET NULL",
        ),
    )
    op.create_table(
        "generated_artifacts",
        identity_key(),
        sa.Column("task_id", TASK_ID, nullable=False),
        sa.Column("prompt_template_id", sa.Integer(), nullable=True),
        sa.Column("artifact_type", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("file_path", sa.String(512), nullable=True),
        sa.Column("llm_model", sa.String(64), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cost", sa.Numeric(12, 6), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_generated_artifacts"),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"],
            name="fk_generated_artifacts_task_id_tasks", ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["prompt_template_id"], ["prompt_templates.id"],
            name="fk_generated_artifacts_prompt_template_id_prompt_templates",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_generated_artifacts_task_id", "generated_artifacts", ["task_id"])
    op.create_table(
        "audit_logs",
        identity_key(),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("task_id", TASK_ID, nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(32), nullable=True),
        sa.Column("cost", sa.Numeric(12, 6), nullable=True),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("details", JSON_DOCUMENT, nullable=True),
        sa.Column("ip_address", sa.String(45), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_logs"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"],
            name="fk_audit_logs_user_id_users", ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"],
            name="fk_audit_logs_task_id_tasks", ondelete="SET NULL",
        ),
    )
    op.create_index("ix_audit_logs_user_id_created_at", "audit_logs", ["user_id", "created_at"])
    op.create_index("ix_audit_logs_action", "audit_logs", ["action"])


def downgrade() -> None:
    # Children first; dropping a table drops its indexes and identity sequence.
    for table in (
        "audit_logs",
        "generated_artifacts",
        "speaker_mappings",
        "transcripts",
        "tasks",
        "hotword_sets",
        "prompt_templates",
        "users",
    ):
        op.drop_table(table)
