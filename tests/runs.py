"""A whole cutover run as an operator runs it: ``alembic upgrade head`` in a subprocess, on a
small generated dev file, with only the settings given here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa

from devtools.sample import UPLOADS_ALIAS, generate_dev_database
from settings import DECLARED
from tests.conftest import ROOT


def cutover_environment(tmp_path: Path, database_url: str) -> dict[str, str]:
    """A small generated dev file and every setting a full cutover to a local bucket needs;
    nothing else of this process's settings."""
    if not (tmp_path / "dev.db").exists():
        generate_dev_database(tmp_path / "dev.db", rows=60, uploads_dir=tmp_path / "uploads")
        (tmp_path / "bucket").mkdir()
    declared = {s.name for s in DECLARED}
    return {**{k: v for k, v in os.environ.items() if k not in declared},
            "DATABASE_URL": database_url, "SOURCE_DATABASE_URL": f"sqlite:///{tmp_path}/dev.db",
            "UPLOADS_DIR": str(tmp_path / "uploads"), "UPLOADS_PATH_ALIASES": UPLOADS_ALIAS,
            "STORAGE_PROVIDER": "local", "STORAGE_LOCAL_ROOT": str(tmp_path / "bucket"),
            "WORK_DIR": str(tmp_path / "work"), "REPORTS_DIR": str(tmp_path / "reports")}


def failed_lines(result: subprocess.CompletedProcess) -> list[str]:
    """The FAILED lines of a run, which printed no traceback; a run with any exited
    non-zero (a FAILED line is never the end of a run that succeeded)."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    failed = [line for line in output.splitlines() if line.startswith("FAILED:")]
    assert not failed or result.returncode != 0, output
    return failed


def one_failure(result: subprocess.CompletedProcess) -> str:
    """The run's single FAILED line (no traceback), after a non-zero exit."""
    assert result.returncode != 0, result.stdout + result.stderr
    (failure,) = failed_lines(result)
    return failure


def upgrade_head(environment: dict[str, str], cwd: Path,
                 alembic: tuple[str, ...] = (sys.executable, "-m", "alembic")
                 ) -> subprocess.CompletedProcess:
    return subprocess.run([*alembic, "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
                          env=environment, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def copied_users(database_url: str) -> int:
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        count = connection.execute(sa.text("SELECT count(*) FROM users")).scalar_one()
    engine.dispose()
    return count


def repository_copy(destination: Path, names: Sequence[str]) -> Path:
    """A copy of the repository's folders and files ``names`` at ``destination``, with this
    interpreter's virtualenv as its .venv (alembic.ini's post-write hook formats new
    revisions with .venv/bin/ruff)."""
    for name in names:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, destination / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, destination / name)
    (destination / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return destination
