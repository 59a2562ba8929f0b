"""The eight metadata tables of the meeting agent, column for column as the app has them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import FILE_PATH_INFO, Base, JsonDocument, TaskId, Timestamp


def _id() -> Mapped[int]:
    # BY DEFAULT (not ALWAYS) so the row copy can keep the dev ids.
    return mapped_column(Integer, Identity(always=False), primary_key=True)


def _task_ref(nullable: bool, ondelete: str) -> Mapped[Any]:
    return mapped_column(TaskId, ForeignKey("tasks.id", ondelete=ondelete), nullable=nullable)


def _user_ref(nullable: bool, ondelete: str) -> Mapped[Any]:
    return mapped_column(Integer, ForeignKey("users.id", ondelete=ondelete), nullable=nullable)


def _file_path() -> Mapped[str | None]:
    return mapped_column(String(512), info=FILE_PATH_INFO)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = _id()
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(128))
    wecom_userid: Mapped[str | None] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    is_active: Mapped[bool]
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_login_at: Mapped[datetime | None] = mapped_column(Timestamp)


class PromptTemplate(Base):
    __tablename__ = "prompt_templates"

    id: Mapped[int] = _id()
    owner_id: Mapped[int | None] = _user_ref(nullable=True, ondelete="SET NULL")
    name: Mapped[str] = mapped_column(String(128))
    artifact_type: Mapped[str] = mapped_column(String(32))
    content: Mapped[str] = mapped_column(Text)
    variables: Mapped[Any | None] = mapped_column(JsonDocument)
    is_default: Mapped[bool]
    version: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime | None] = mapped_column(Timestamp)


class HotwordSet(Base):
    __tablename__ = "hotword_sets"

    id: Mapped[int] = _id()
    owner_id: Mapped[int | None] = _user_ref(nullable=True, ondelete="SET NULL")
    name: Mapped[str] = mapped_column(String(128))
    words: Mapped[Any] = mapped_column(JsonDocument)
    asr_provider: Mapped[str] = mapped_column(String(32))
    provider_resource_id: Mapped[str | None] = mapped_column(String(128))
    file_path: Mapped[str | None] = _file_path()
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime | None] = mapped_column(Timestamp)


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        Index(None, "user_id", "created_at"),
        Index(None, "status"),
    )

    id: Mapped[str] = mapped_column(TaskId, primary_key=True)
    user_id: Mapped[int] = _user_ref(nullable=False, ondelete="CASCADE")
    hotword_set_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("hotword_sets.id", ondelete="SET NULL")
    )
    title: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    audio_path: Mapped[str | None] = _file_path()
    audio_size: Mapped[int | None] = mapped_column(BigInteger)
    audio_duration: Mapped[float | None] = mapped_column(Float)
    asr_provider: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str | None] = mapped_column(String(16))
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime | None] = mapped_column(Timestamp)
    completed_at: Mapped[datetime | None] = mapped_column(Timestamp)


class Transcript(Base):
    __tablename__ = "transcripts"

    id: Mapped[int] = _id()
    task_id: Mapped[str] = mapped_column(
        TaskId, ForeignKey("tasks.id", ondelete="CASCADE"), index=True
    )
    asr_provider: Mapped[str] = mapped_column(String(32))
    language: Mapped[str | None] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(Text)
    segments: Mapped[Any | None] = mapped_column(JsonDocument)
    raw_result_path: Mapped[str | None] = _file_path()
    word_count: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class SpeakerMapping(Base):
    __tablename__ = "speaker_mappings"
    __table_args__ = (UniqueConstraint("task_id", "speaker_label"),)

    id: Mapped[int] = _id()
    task_id: Mapped[str] = _task_ref(nullable=False, ondelete="CASCADE")
    speaker_label: Mapped[str] = mapped_column(String(32))
    speaker_name: Mapped[str | None] = mapped_column(String(128))
    user_id: Mapped[int | None] = _user_ref(nullable=True, ondelete="SET NULL")
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class GeneratedArtifact(Base):
    __tablename__ = "generated_artifacts"

    id: Mapped[int] = _id()
    task_id: Mapped[str] = mapped_column(
        TaskId, ForeignKey("tasks.id", ondelete="CASCADE"), index=True
    )
    prompt_template_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("prompt_templates.id", ondelete="SET NULL")
    )
    artifact_type: Mapped[str] = mapped_column(String(32))
    version: Mapped[int]
    content: Mapped[str | None] = mapped_column(Text)
    file_path: Mapped[str | None] = _file_path()
    llm_model: Mapped[str | None] = mapped_column(String(64))
    input_tokens: Mapped[int | None]
    output_tokens: Mapped[int | None]
    cost: Mapped[Decimal | None] = mapped_column(Numeric(12, 6))
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class AuditLog(Base):
    __tablename__ = "audit_logs"
    __table_args__ = (
        Index(None, "user_id", "created_at"),
        Index(None, "action"),
    )

    id: Mapped[int] = _id()
    user_id: Mapped[int | None] = _user_ref(nullable=True, ondelete="SET NULL")
    task_id: Mapped[str | None] = _task_ref(nullable=True, ondelete="SET NULL")
    action: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str | None] = mapped_column(String(32))
    cost: Mapped[Decimal | None] = mapped_column(Numeric(12, 6))
    currency: Mapped[str] = mapped_column(String(8))
    details: Mapped[Any | None] = mapped_column(JsonDocument)
    ip_address: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
