"""Revisions are frozen: none reaches the live models, directly or through what it imports.

Each revision file is imported alone, in a fresh interpreter, as Alembic would load it;
afterwards no ``models`` module may have been loaded. A revision that needs a table or a
column spells it out itself, as the schema is at that revision.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import models
from tests.conftest import ROOT

# Starts servers or commands in fresh interpreters: not in make test-fast.
pytestmark = pytest.mark.slow

REVISIONS = sorted((ROOT / "alembic" / "versions").glob("*.py"))

IMPORT_ALONE = """
import importlib.util, sys
sys.path.insert(0, sys.argv[1])
spec = importlib.util.spec_from_file_location("revision_under_test", sys.argv[2])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(module.revision)
print(",".join(sorted(n for n in sys.modules if n == "models" or n.startswith("models."))))
"""


def test_every_revision_file_is_checked() -> None:
    assert len(REVISIONS) >= 4


@pytest.mark.parametrize("revision", REVISIONS, ids=lambda path: path.name)
def test_a_revision_imported_alone_loads_no_model(revision: Path, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", IMPORT_ALONE, str(ROOT), str(revision)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    name, loaded = result.stdout.splitlines()
    assert name == revision.name[:4]
    assert loaded == "", f"{revision.name} loads {loaded}"


def test_the_file_path_columns_of_0004_are_the_ones_the_models_mark_today() -> None:
    """0004 names its columns as they are at the schema head, where it runs until production
    has run the cutover. A revision that renames or adds a file-path column before then
    updates 0004's list in the same change; this fails when it was forgotten (docs/runbook.md:
    "Adding a schema revision before the cutover")."""
    spec = importlib.util.spec_from_file_location(
        "revision_0004", ROOT / "alembic" / "versions" / "0004_rewrite_file_paths.py")
    assert spec is not None and spec.loader is not None
    revision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(revision)
    named = {(c.table, c.column, c.key) for c in revision.FILE_PATH_COLUMNS}
    marked = {(c.table.name, c.name, next(iter(c.table.primary_key.columns)).name)
              for c in models.file_path_columns(models.metadata)}
    assert named == marked
