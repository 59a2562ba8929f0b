"""Revisions written after go-live, run as ``make migrate`` runs them: a copy of the
repository's alembic/ with ``released = true``, revisions 0005… written into it, and
``alembic`` in a subprocess against a real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from settings import DECLARED
from tests.runs import repository_copy

COPIED = ("alembic", "alembic.ini", ".squawk.toml", "Makefile", "pyproject.toml", "devtools",
          "data_migrations")
HEADER = '''"""{message}

Revision ID: {revision}
Revises: {down_revision}
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from data_migrations.online.backfill import Backfill, backfill_in_batches, forget_backfill
from data_migrations.online.columns import drop_added_column
from data_migrations.online.indexes import create_index_concurrently, drop_index_concurrently
from data_migrations.online.lint import waive

revision: str = "{revision}"
down_revision: str | Sequence[str] | None = "{down_revision}"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

__all__ = ["Backfill", "backfill_in_batches", "create_index_concurrently",
           "drop_added_column", "drop_index_concurrently", "forget_backfill", "op", "sa",
           "waive"]
'''


def released_copy(destination: Path, steps: dict[str, str]) -> Path:
    """The copy, with each of ``steps`` (file name ``NNNN_words.py`` -> body after the
    header) written as the revision after the one before it, from 0004 on."""
    root = repository_copy(destination, COPIED)
    ini = root / "alembic.ini"
    ini.write_text(ini.read_text(encoding="utf-8").replace("released = false",
                                                           "released = true"), encoding="utf-8")
    write_steps(root, steps)
    return root


def write_steps(root: Path, steps: dict[str, str], after: str = "0004") -> None:
    down_revision = after
    for name, body in steps.items():
        header = HEADER.format(message=name[5:-3].replace("_", " "), revision=name[:4],
                               down_revision=down_revision)
        (root / "alembic" / "versions" / name).write_text(header + body, encoding="utf-8")
        down_revision = name[:4]


def alembic(root: Path, database_url: str, *args: str,
            settings: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``alembic -c <copy>/alembic.ini <args>`` with DATABASE_URL and ``settings``, and no
    setting of this process."""
    declared = {s.name for s in DECLARED}
    environment = {**{k: v for k, v in os.environ.items() if k not in declared},
                   "DATABASE_URL": database_url, "PYTHONPATH": str(root), **(settings or {})}
    return subprocess.run([sys.executable, "-m", "alembic", "-c", str(root / "alembic.ini"),
                           *args], cwd=root, env=environment, capture_output=True, text=True,
                          timeout=300)
