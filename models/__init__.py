"""The meeting agent's metadata schema as SQLAlchemy models.

The Alembic revisions own the schema history; these models are what the schema is now,
and ``alembic check`` keeps the two in agreement.
"""

from models.base import Base, file_path_columns
from models.tables import (
    AuditLog,
    GeneratedArtifact,
    HotwordSet,
    PromptTemplate,
    SpeakerMapping,
    Task,
    Transcript,
    User,
)

metadata = Base.metadata

__all__ = [
    "AuditLog",
    "Base",
    "GeneratedArtifact",
    "HotwordSet",
    "PromptTemplate",
    "SpeakerMapping",
    "Task",
    "Transcript",
    "User",
    "file_path_columns",
    "metadata",
]
