"""Whether the chain of revisions is one line: no id twice, one head.

Developers write revisions on their own branches. Two branches that each add a revision
after the same one merge in git without a conflict (two new files), and leave the chain
forked: two heads, which ``make migrate`` cannot run in one order and ``make revision``
cannot append to. An id written twice is worse: Alembic keeps one of the two files and
only warns, so the other one is neither run nor linted. ``make lint`` and ``make revision``
refuse both, each with one line that names the files and the way out.

The way out, which this module words: **linearise** (the branch that comes second revises
the other branch's head), while neither branch's revisions have run on a shared database;
or **merge** (``make merge-heads``: a revision that revises both heads and does nothing),
once both have run somewhere. Before the release, the data revisions stay last
(devtools/revision.py), so only linearising fits there: a merge would put a schema revision
after the data steps.
"""

from __future__ import annotations

import ast
import os
import warnings
from collections import defaultdict
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic.config import Config
from alembic.script import Script, ScriptDirectory

SECTION = "cutover"
# A revision's id: the UTC second it was written (20261205_233000).
ID_FORMAT = "%Y%m%d_%H%M%S"


class ChainError(Exception):
    """The chain is not as the tools expect it; the message says what and where."""


@dataclass(frozen=True)
class Chain:
    """The chain's layout as alembic.ini's ``[cutover]`` section describes it."""

    first_data_revision: str
    last_data_revision: str | None
    released: bool

    @classmethod
    def of(cls, config: Config) -> Chain:
        first = config.get_section_option(SECTION, "first_data_revision")
        last = config.get_section_option(SECTION, "last_data_revision")
        released = config.get_section_option(SECTION, "released", "false").strip().lower()
        if not first or released not in ("true", "false"):
            raise ChainError(f"{config.config_file_name}: [{SECTION}] needs "
                             "first_data_revision and released = true|false")
        return cls(first.strip(), last.strip() if last else None, released == "true")


def problems(config: Config, script: ScriptDirectory) -> list[str]:
    """One line for each id written twice; without those, one for a fork (more than one
    head). The heads of a chain that holds an id twice are not known: Alembic sees one of
    its files only."""
    root = Path(str(config.config_file_name)).resolve().parent
    chain = Chain.of(config)
    duplicated = duplicate_ids(script, root)
    if duplicated:
        return duplicated
    forked = fork_problem(script, root, chain)
    return [forked] if forked else []


def next_id(taken: Collection[str], now: datetime | None = None) -> str:
    """The UTC second the revision is written, the next free one if this one is taken.

    Not a count: two branches counting the same chain both write the next number, and git
    merges the two files without a word. A second of UTC time differs between developers
    unless two write a revision in the same second, and ``make lint`` refuses the id twice
    even then. Unlike Alembic's random ids, it sorts: file names (alembic.ini's
    file_template starts with the id) list in the order revisions were written, after
    0001-0004, and an operator reads and types it (``make downgrade REV=20261205_233000``).
    The chain (``make history``) tells the order they run in."""
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    while moment.strftime(ID_FORMAT) in taken:
        moment += timedelta(seconds=1)
    return moment.strftime(ID_FORMAT)


@contextmanager
def quiet_duplicates() -> Iterator[None]:
    """Alembic's own warning on an id written twice: ``duplicate_ids`` says it in a line that
    names both files instead."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Revision \S+ is present more than once")
        yield


def declared_id(path: Path) -> str | None:
    """The ``revision = "..."`` a revision file declares, read without running it."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError):
        return None  # not a revision Alembic could load either; it says so itself
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1
            else None)
        value = getattr(node, "value", None)
        if (isinstance(target, ast.Name) and target.id == "revision"
                and isinstance(value, ast.Constant) and isinstance(value.value, str)):
            return value.value
    return None


def taken_ids(script: ScriptDirectory) -> set[str]:
    with quiet_duplicates():
        return {r.revision for r in script.walk_revisions()}


def duplicate_ids(script: ScriptDirectory, root: Path) -> list[str]:
    """One line for each id that two or more files declare."""
    files: dict[str, list[str]] = defaultdict(list)
    for path in sorted(Path(script.versions).glob("*.py")):
        rev_id = declared_id(path)
        if rev_id is not None:
            files[rev_id].append(os.path.relpath(path, root))
    fresh = next_id(files)
    return [f"revision id {rev_id} is declared by {len(paths)} files, {' and '.join(paths)} "
            "(written on two branches): Alembic would run one of them only; give the one "
            f"written later a new id (e.g. {fresh}: its file name, its revision = and "
            "Revision ID: lines), then make lint again for the chain's heads"
            for rev_id, paths in files.items() if len(paths) > 1]


def fork_problem(script: ScriptDirectory, root: Path, chain: Chain) -> str | None:
    """The line for a chain with more than one head, or None for one head."""
    with quiet_duplicates():
        heads = sorted(script.get_revisions(script.get_heads()), key=lambda r: r.revision)
    if len(heads) < 2:
        return None
    named = " and ".join(f"{file_of(h, root)} ({h.revision})" for h in heads)
    if not chain.released:
        return unreleased_fork(script, root, heads, named, chain)
    # The later id (written last) runs second.
    first, second = heads[-2], heads[-1]
    start = branch_start(script, second, first)
    return (f"the chain has {len(heads)} heads, {named} (revisions written on two branches "
            f"after the same one): linearise it, pointing {file_of(start, root)}'s "
            f"down_revision (and its Revises: line) at {first.revision}, while neither "
            "branch's revisions have run on a shared database; or merge them with "
            "make merge-heads MSG='...' (a revision after both that does nothing)")


def unreleased_fork(script: ScriptDirectory, root: Path, heads: list[Script], named: str,
                    chain: Chain) -> str:
    """Before the release the data revisions stay last: a head other than the last data
    revision is a schema branch to put back before them."""
    others = [h for h in heads if h.revision != chain.last_data_revision]
    data_head = next((h for h in heads if h.revision == chain.last_data_revision), heads[0])
    stray = others[-1]
    start = branch_start(script, stray, data_head)
    first = script.get_revision(chain.first_data_revision)
    assert first is not None
    return (f"the chain has {len(heads)} heads, {named} (revisions written on two branches "
            f"before the release): the data revisions stay last until released, so "
            f"linearise it: point {file_of(start, root)}'s down_revision (and its Revises: "
            f"line) at {first.down_revision} and {file_of(first, root)}'s at {stray.revision}")


def branch_start(script: ScriptDirectory, head: Script, other: Script) -> Script:
    """The first revision of ``head``'s branch: the oldest one that is not also before
    ``other``."""
    shared = {r.revision for r in script.iterate_revisions(other.revision, "base")}
    start = head
    for revision in script.iterate_revisions(head.revision, "base"):
        if revision.revision in shared:
            break
        start = revision
    return start


def file_of(revision: Script, root: Path) -> str:
    assert revision.path is not None
    return os.path.relpath(revision.path, root)
