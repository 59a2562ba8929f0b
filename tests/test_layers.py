"""The layers hold: import-linter's contracts (pyproject.toml [tool.importlinter]) pass on
the repository, and they do catch a package that imports one above it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("models", "storage", "settings", "data_migrations", "devtools")

# Runs lint-imports in a fresh process: not in make test-fast (make lint runs it too).
pytestmark = pytest.mark.slow


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the tree at ``cwd``, which must be the one imported: the packages
    are found through PYTHONPATH, and no cache is kept between runs."""
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={"PYTHONPATH": str(cwd), "PATH": ""})


def test_every_contract_is_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


# Each: the module given an import it must not have, the contract it breaks, and the chain
# lint-imports names.
BREACHES = {
    "storage imports settings": (
        "storage/base.py", "import settings",
        "storage imports neither settings nor data_migrations BROKEN", "storage.base -> settings"),
    "an online helper reaches models": (
        "data_migrations/online/run.py", "import data_migrations.run.run_guard",
        "The helpers revisions import never reach models (revisions are frozen) BROKEN",
        "data_migrations.run.run_guard -> models"),
    "online imports a step": (
        "data_migrations/online/indexes.py", "import data_migrations.files.scan",
        "Each layer imports only the layers below it (so no package cycles) BROKEN",
        "data_migrations.online.indexes -> data_migrations.files.scan"),
}


@pytest.mark.parametrize("breach", list(BREACHES))
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, breach: str) -> None:
    module, line, contract, chain = BREACHES[breach]
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    path = tmp_path / module
    path.write_text(path.read_text() + f"\n{line}  # noqa: E402,F401\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    assert contract in result.stdout
    assert chain in result.stdout
