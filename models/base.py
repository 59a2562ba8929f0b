"""The declarative base of the metadata tables, with the types they share.

The same models describe the dev SQLite file the app created and the PostgreSQL
production schema: each portable type below renders as what SQLite already holds and
as what a DBA expects on PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Constraint, DateTime, MetaData, String, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import DeclarativeBase


def constraint_name(constraint: Constraint, table: Table) -> str:
    """The ``%(constraint_name)s`` of the convention: a check's name as written, less a
    ``ck_<table>_`` it already starts with, so that a name written in full
    (``ck_audit_logs_cost_nonnegative``) comes out once instead of doubled."""
    name = constraint.name
    if not isinstance(name, str):
        raise InvalidRequestError("Naming convention including %(constraint_name)s token "
                                  "requires that constraint is explicitly named.")
    prefix = f"ck_{table.name}_"
    return name.removeprefix(prefix)


# Every constraint and index gets a deterministic name, so revisions can address them
# and autogenerate compares like with like. The index form reproduces the dev names
# (ix_tasks_user_id_created_at).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "constraint_name": constraint_name,
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Naive UTC text on SQLite (DATETIME), timestamptz on PostgreSQL.
Timestamp = DateTime(timezone=True)
# JSON text on SQLite, jsonb on PostgreSQL.
JsonDocument = JSON().with_variant(postgresql.JSONB(), "postgresql")
# A task id: dashed UUID text on SQLite, native uuid on PostgreSQL.
TaskId = String(36).with_variant(postgresql.UUID(as_uuid=False), "postgresql")

# The column info key that marks a column holding the path of a file under uploads/.
FILE_PATH_INFO_KEY = "file_path"
FILE_PATH_INFO = {FILE_PATH_INFO_KEY: True}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def file_path_columns(metadata: MetaData) -> list[Column]:
    """Every column marked as holding an uploads/ file path, in table order."""
    return [
        column
        for table in metadata.sorted_tables
        for column in table.columns
        if column.info.get(FILE_PATH_INFO_KEY)
    ]
