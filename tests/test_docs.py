"""The docs stay true to the code: the English and Chinese runbooks name the same `make`
commands and the same settings, every `make` target the docs name exists, and every
relative link between the pages leads to a file and a heading that exist."""

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
