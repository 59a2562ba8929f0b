"""What an operator installs: the runtime-only install runs a whole cutover with a plain
``postgresql://`` URL, and the wheel holds the cutover without the development scaffolding.

Both build from a copy of the source tree, so no build output lands in the repository.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import ROOT
from tests.runs import copied_users, cutover_environment, upgrade_head

# Starts servers or commands in fresh interpreters: not in make test-fast.
pytestmark = pytest.mark.slow

NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "work", "reports", "sql", "build",
                                   "*.egg-info", "__pycache__", ".pytest_cache",
                                   ".ruff_cache", "*.db")


@pytest.fixture(scope="session")
def source_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("source") / "meeting-agent-cutover"
    shutil.copytree(ROOT, copy, ignore=NOT_SOURCE)
    return copy


@pytest.fixture(scope="session")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory, source_copy: Path) -> Path:
    """A virtualenv with ``pip install <repo>``: the runtime dependencies, no test extras."""
    venv = tmp_path_factory.mktemp("runtime") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(source_copy)],
                   check=True, timeout=900, capture_output=True)
    return venv


def test_the_runtime_only_install_runs_a_cutover_with_a_plain_url(
    runtime_venv: Path, pg_url: str, tmp_path: Path
) -> None:
    plain = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    result = upgrade_head(cutover_environment(tmp_path, plain), ROOT,
                          alembic=(str(runtime_venv / "bin" / "alembic"),))
    assert result.returncode == 0, result.stdout + result.stderr
    assert copied_users(pg_url) > 0
    psycopg3 = subprocess.run([str(runtime_venv / "bin" / "python"), "-c", "import psycopg"],
                              capture_output=True, text=True, timeout=60)
    assert psycopg3.returncode != 0
    assert "No module named 'psycopg'" in psycopg3.stderr


def built_wheel(source_copy: Path, out: Path) -> list[str]:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    str(source_copy), "-w", str(out)], check=True, timeout=600,
                   capture_output=True)
    (wheel,) = out.glob("*.whl")
    return zipfile.ZipFile(wheel).namelist()


@pytest.fixture(scope="session")
def wheel_files(tmp_path_factory: pytest.TempPathFactory, source_copy: Path) -> list[str]:
    return built_wheel(source_copy, tmp_path_factory.mktemp("wheel"))


def test_the_wheel_holds_the_cutover(wheel_files: list[str]) -> None:
    for module in ("settings/declared.py", "data_migrations/rows/row_copy.py", "models/tables.py",
                   "storage/tos.py"):
        assert module in wheel_files


@pytest.mark.parametrize("scaffolding", [
    "devtools/",
    "sample",
    "dev_schema",
    "postgres_server",
    "tos_server",
])
def test_the_wheel_holds_no_scaffolding(scaffolding: str, wheel_files: list[str]) -> None:
    assert not [name for name in wheel_files if scaffolding in name]
