"""The docs stay true to the code: the English and Chinese runbooks name the same `make`
commands and the same settings, every `make` target the docs name exists, every relative
link between the pages leads to a file and a heading that exist, and every path, module
and `python -m` the docs name is there."""

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

from settings.declared import DECLARED

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RUNBOOK = DOCS / "runbook.md"
RUNBOOK_ZH = DOCS / "runbook.zh-CN.md"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

CODE = re.compile(r"```.*?```|`[^`\n]+`", flags=re.DOTALL)
MAKE_COMMAND = re.compile(r"\bmake ([a-z][a-z0-9-]*)")
UPPER_NAME = re.compile(r"\b[A-Z][A-Z0-9_]*[A-Z0-9]\b")
LINK = re.compile(r"\]\(([^)\s]+)\)")
# A path into one of the project's packages (data_migrations/run/failure.py, storage/), a
# dotted name in data_migrations (data_migrations.online.indexes.create_index_concurrently),
# and what `python -m` runs. Dotted names in the other packages are left alone: the docs
# write the app's YAML keys the same way (storage.bucket).
PACKAGE_PATH = re.compile(
    r"(?<![\w./-])((?:data_migrations|models|settings|storage|devtools)/[\w./-]*)")
DOTTED_NAME = re.compile(r"(?<![\w./-])(data_migrations(?:\.\w+)+)")
PYTHON_M = re.compile(r"\bpython3? -m ([\w.]+)")


def make_commands(text: str) -> set[str]:
    """The targets of the `make` commands written as code (prose "make the folder
    writable" is not a command)."""
    return {target for code in CODE.findall(text) for target in MAKE_COMMAND.findall(code)}


def settings_named(text: str) -> set[str]:
    """The declared settings a page names (other upper-case words are not settings)."""
    declared = {setting.name for setting in DECLARED}
    return set(UPPER_NAME.findall(text)) & declared


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, flags=re.MULTILINE))


def package_paths(text: str) -> set[str]:
    return {path.rstrip(".") for path in PACKAGE_PATH.findall(text)}


def resolves(dotted: str) -> bool:
    """A module, or a name in the longest module the dotted name starts with."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


def anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces
    to '-', a repeated heading numbered."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def test_both_runbooks_name_the_same_make_commands() -> None:
    english = make_commands(RUNBOOK.read_text())
    chinese = make_commands(RUNBOOK_ZH.read_text())
    assert english, "the runbook names no make command"
    assert english == chinese, (
        f"only in runbook.md: {sorted(english - chinese)}; "
        f"only in runbook.zh-CN.md: {sorted(chinese - english)}")


def test_both_runbooks_name_the_same_settings() -> None:
    english = settings_named(RUNBOOK.read_text())
    chinese = settings_named(RUNBOOK_ZH.read_text())
    assert english, "the runbook names no setting"
    assert english == chinese, (
        f"only in runbook.md: {sorted(english - chinese)}; "
        f"only in runbook.zh-CN.md: {sorted(chinese - english)}")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_make_target_the_docs_name_exists(page: Path) -> None:
    assert make_commands(page.read_text()) <= makefile_targets()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_leads_somewhere(page: Path) -> None:
    broken = []
    for link in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", link):  # http:, https:, mailto: — not ours to check
            continue
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists() or (anchor and anchor not in anchors(path.read_text())):
            broken.append(link)
    assert broken == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_path_module_and_command_the_docs_name_exists(page: Path) -> None:
    text = page.read_text()
    missing = sorted(path for path in package_paths(text) if not (ROOT / path).exists())
    missing += sorted(name for name in set(DOTTED_NAME.findall(text)) if not resolves(name))
    missing += sorted(f"python -m {module}" for module in set(PYTHON_M.findall(text))
                      if importlib.util.find_spec(module) is None)
    assert missing == []
