"""The docs stay true to the code: the English and Chinese runbooks name the same `make`
commands and the same settings, each Chinese page has its English page's sections, settings
and `FAILED:` lines, every `make` target the docs name exists, every relative link between
the pages leads to a file and a heading that exist (from a Chinese page to the Chinese one
where there is one), and every path, module and `python -m` the docs name is there."""

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
# Each English page with a Chinese twin, and the twin.
TRANSLATED = {english: english.with_name(f"{english.stem}.zh-CN.md")
              for english in sorted(DOCS.glob("*.md"))
              if ".zh-CN" not in english.name
              and english.with_name(f"{english.stem}.zh-CN.md").exists()}

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
FENCE = re.compile(r"^```.*?^```", flags=re.DOTALL | re.MULTILINE)
HEADING = re.compile(r"^(#{2,6}) (.+)$", flags=re.MULTILINE)
HEADING_NUMBER = re.compile(r"^(\d+)\.")
# A code span: a run of backticks, the code, the same run (`a`, ``a `b` c``); it may go on
# over a line break, which counts as a space.
SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", flags=re.DOTALL)


def make_commands(text: str) -> set[str]:
    """The targets of the `make` commands written as code (prose "make the folder
    writable" is not a command)."""
    return {target for code in CODE.findall(text) for target in MAKE_COMMAND.findall(code)}


def settings_named(text: str) -> set[str]:
    """The declared settings a page names (other upper-case words are not settings)."""
    declared = {setting.name for setting in DECLARED}
    return set(UPPER_NAME.findall(text)) & declared


def failed_entries(text: str) -> set[str]:
    """The `FAILED:` lines a page quotes as code (the tool prints them in English, so a
    translation quotes them as they are)."""
    spans = (" ".join(code.split()) for _, code in SPAN.findall(text))
    return {span for span in spans if span.startswith("FAILED:")}


def sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) for the text before the first `##` heading and for each `##`-or-
    deeper heading; headings inside fenced code are code, not headings."""
    bare = FENCE.sub(lambda found: re.sub(r"#", " ", found.group()), text)
    cuts = [(found.start(), found.group()) for found in HEADING.finditer(bare)]
    starts = [0, *(start for start, _ in cuts), len(text)]
    headings = ["(before the first heading)", *(heading for _, heading in cuts)]
    return [(heading, text[start:end])
            for heading, start, end in zip(headings, starts, starts[1:], strict=False)]


def twin_heading(english: str, chinese: str) -> bool:
    """The same level, the same number (`### 1. …`) and the same code (`make sql`)."""
    def shape(heading: str) -> tuple[str, str | None, list[str]]:
        level, _, title = heading.partition(" ")
        number = HEADING_NUMBER.match(title)
        return level, number and number.group(1), [code for _, code in SPAN.findall(title)]
    return shape(english) == shape(chinese)


def layout(body: str) -> tuple[int, int, int]:
    """A section's table rows, list items and fenced code blocks: a translation keeps
    them (the text before the first heading may add a glossary)."""
    return (len(re.findall(r"^\|", body, flags=re.MULTILINE)),
            len(re.findall(r"^\s*(?:[-*]|\d+\.) ", FENCE.sub("", body), flags=re.MULTILINE)),
            len(FENCE.findall(body)))


def translation_differences(english: str, chinese: str) -> list[str]:
    """What the Chinese text lacks, or holds beyond, the English one: section by section
    in order, its settings, `make` commands and `FAILED:` lines."""
    theirs, ours = sections(english), sections(chinese)
    if [h for h, _ in theirs if h.startswith("#")] and len(theirs) != len(ours):
        return [f"{len(theirs) - 1} headings in English, {len(ours) - 1} in Chinese: "
                + next((f"first differing: {e!r} / {c!r}"
                        for (e, _), (c, _) in zip(theirs, ours, strict=False)
                        if not twin_heading(e, c)), "the last ones differ")]
    found = []
    for (heading, body), (twin, twin_body) in zip(theirs, ours, strict=True):
        if heading.startswith("#") and not twin_heading(heading, twin):
            found.append(f"{heading!r} has no twin: {twin!r} stands in its place")
            continue
        if heading.startswith("#") and layout(body) != layout(twin_body):
            found.append(f"{heading}: (table rows, list items, code blocks) "
                         f"{layout(body)} in English, {layout(twin_body)} in Chinese")
        for what, names in (("settings", settings_named), ("make commands", make_commands),
                            ("FAILED: lines", failed_entries)):
            missing, extra = names(body) - names(twin_body), names(twin_body) - names(body)
            if missing or extra:
                found.append(f"{heading}: {what} only in English {sorted(missing)}, "
                             f"only in Chinese {sorted(extra)}")
    return found


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


@pytest.mark.parametrize("english", TRANSLATED, ids=lambda p: p.name)
def test_each_chinese_page_has_its_english_pages_sections(english: Path) -> None:
    chinese = TRANSLATED[english]
    assert translation_differences(english.read_text(), chinese.read_text()) == []


def test_every_english_page_the_runbook_links_has_a_chinese_twin() -> None:
    assert set(TRANSLATED) >= {RUNBOOK, DOCS / "configuration.md", DOCS / "troubleshooting.md"}


@pytest.mark.parametrize("chinese", TRANSLATED.values(), ids=lambda p: p.name)
def test_a_chinese_page_links_the_chinese_pages(chinese: Path) -> None:
    """A link to an English page with a Chinese twin goes to the twin, except where the
    page says so: its link to its own English original."""
    english = {page.name for page in TRANSLATED} - {chinese.name.replace(".zh-CN", "")}
    leading = [link for link in LINK.findall(chinese.read_text())
               if link.partition("#")[0] in english]
    assert leading == []


MUTILATIONS = {
    "a section": lambda text: re.sub(r"^## .*?(?=^## )", "", text, count=1,
                                     flags=re.DOTALL | re.MULTILINE),
    "a table row": lambda text: re.sub(r"(^## .*?^\|[^\n]*\n)\|[^\n]*\n", r"\1", text,
                                       count=1, flags=re.DOTALL | re.MULTILINE),
    "a setting": lambda text: text.replace("`SOURCE_DATABASE_URL`", "`源库`"),
    "a FAILED: line": lambda text: text.replace(f"`{min(failed_entries(text), default='')}`",
                                                "`…`"),
}


@pytest.mark.parametrize("removed", MUTILATIONS)
@pytest.mark.parametrize("english", TRANSLATED, ids=lambda p: p.name)
def test_a_chinese_page_missing_something_is_found(english: Path, removed: str,
                                                  tmp_path: Path) -> None:
    """The check above can fail: a copy of the Chinese page with one section, one setting
    or one FAILED: line taken out differs from the English page."""
    text = TRANSLATED[english].read_text()
    copy = tmp_path / TRANSLATED[english].name
    copy.write_text(MUTILATIONS[removed](text))
    if copy.read_text() == text:
        pytest.skip(f"{copy.name} holds no {removed} of that form")
    assert translation_differences(english.read_text(), copy.read_text()) != []


# X="name=value …" after a make command: the settings it passes on as -x.
MAKE_X = re.compile(r"\bmake [a-z][a-z0-9-]*[^`]*?\bX=\"([^\"]*)\"")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_a_make_command_takes_settings_as_x_and_only_ones_it_passes_on(page: Path) -> None:
    """`make … -x name=value` would reach make, not the run; and each name in X= is a
    setting's -x name, given to a target that passes X= on."""
    text = page.read_text()
    fenced = [line for block in FENCE.findall(text) for line in block.splitlines()]
    spans = fenced + [" ".join(code.split()) for _, code in SPAN.findall(FENCE.sub("", text))]
    wrong = [span for span in spans if re.search(r"\bmake [a-z][a-z0-9-]*\b.*\s-x\s", span)]
    x_names = {setting.x for setting in DECLARED if setting.x}
    passes_x = set(re.findall(r"^([a-z][a-z0-9-]*):.*\n(?:\t.*\n)*?\t.*\$\(X_ARGS\)",
                              (ROOT / "Makefile").read_text(), flags=re.MULTILINE))
    for span in spans:
        given = " ".join(re.findall(r"(?<![\w-])X=\"([^\"]*)\"", span)).split()
        # X="name=value …" is the form itself, not a setting
        if "…" not in given and not {pair.partition("=")[0] for pair in given} <= x_names:
            wrong.append(span)
        if MAKE_X.search(span) and MAKE_COMMAND.search(span).group(1) not in passes_x:
            wrong.append(span)
    assert wrong == []


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
