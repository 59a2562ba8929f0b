"""The layers hold: import-linter's contracts (pyproject.toml [tool.importlinter]) pass on
the repository, and they do catch a package that imports one above it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("models", "storage", "settings", "data_migrations", "devtools")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the tree at ``cwd``, which must be the one imported: the packages
    are found through PYTHONPATH, and no cache is kept between runs."""
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={"PYTHONPATH": str(cwd), "PATH": ""})


def test_every_contract_is_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_storage_importing_the_settings_breaks_a_contract(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    base = tmp_path / "storage" / "base.py"
    base.write_text(base.read_text() + "\nimport settings  # noqa: E402,F401\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    assert "storage imports neither settings nor data_migrations BROKEN" in result.stdout
    assert "storage.base -> settings" in result.stdout
