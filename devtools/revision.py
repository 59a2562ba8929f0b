"""Where a new schema revision goes, and how far the dev file follows the chain.

Until production has run the cutover (``released = false`` in alembic.ini's ``[cutover]``
section), the data revisions (``first_data_revision``, 0002, and those after it) stay last
in the chain: a new revision is placed before them. Its ``down_revision`` is the schema
head (the revision the first data revision revises), and the first data revision's
``down_revision`` is rewired to the new one — the one edit a data revision may take while
no database has applied it (the dev file never runs the data steps, production has not
run them yet). Once ``released = true``, a new revision goes after the last one.

A revision's id is the UTC second it was written (revision_chain.next_id says why), so revisions
written on two branches do not share one. A chain that two branches forked (two heads) or
that holds an id twice has no one place for a new revision: ``new`` refuses it in one line
that says how to linearise or merge it (devtools/revision_chain.py), and ``merge`` (``make
merge-heads``, after the release) writes the merge revision.

The dev file follows the schema head only: ``dev-head`` prints the revision
``make upgrade-dev`` upgrades it to.

    python -m devtools.revision new "add task priority"
    python -m devtools.revision merge "join the task and audit branches"
    python -m devtools.revision dev-head
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from devtools.revision_chain import (
    Chain,
    ChainError,
    next_id,
    problems,
    quiet_duplicates,
    taken_ids,
)

ROOT = Path(__file__).resolve().parent.parent


class RevisionError(ChainError):
    """A data revision this tool cannot rewire; the message says what and where."""


def schema_head(script: ScriptDirectory, chain: Chain) -> str:
    """The last schema revision before the data revisions: the one the first revises."""
    first = script.get_revision(chain.first_data_revision)
    if first is None or not isinstance(first.down_revision, str):
        raise RevisionError(f"revision {chain.first_data_revision} (first_data_revision) "
                            "must exist and revise exactly one revision")
    return first.down_revision


def dev_head(config: Config) -> str:
    """What the dev file is upgraded to: the schema head, or ``head`` once released."""
    chain = Chain.of(config)
    return "head" if chain.released else schema_head(ScriptDirectory.from_config(config), chain)


def rewire(path: Path, old: str, new: str) -> None:
    """Point the revision file at ``path`` from ``old`` to ``new``: its ``down_revision``
    and the ``Revises:`` line of its docstring, nothing else."""
    text = path.read_text(encoding="utf-8")
    for pattern, replacement in (
            (rf'^(down_revision: [^=]+= )"{re.escape(old)}"$', rf'\g<1>"{new}"'),
            (rf"^Revises: {re.escape(old)}$", f"Revises: {new}")):
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        if count != 1:
            raise RevisionError(f"{path}: expected one line matching {pattern!r}, "
                                f"found {count}; nothing was changed")
    path.write_text(text, encoding="utf-8")


def one_line_chain(config: Config) -> ScriptDirectory:
    """The revisions, refused (the first reason) while an id is written twice or the chain
    has more than one head: there is no one place for a new revision then."""
    script = ScriptDirectory.from_config(config)
    with quiet_duplicates():
        found = problems(config, script)
    if found:
        raise ChainError(found[0])
    return script


def new_revision(config: Config, message: str, rev_id: str | None = None) -> Path:
    """Create the revision file; before the data revisions unless released. ``rev_id``:
    this id instead of the time's."""
    chain = Chain.of(config)
    script = one_line_chain(config)
    rev_id = rev_id or next_id(taken_ids(script))
    if chain.released:
        created = command.revision(config, message, rev_id=rev_id)
    else:
        base = schema_head(script, chain)
        first = script.get_revision(chain.first_data_revision)
        assert first is not None and first.path is not None
        # Checked before the new file exists, so a failure leaves the chain as it was.
        rewire(Path(first.path), base, base)
        created = command.revision(config, message, rev_id=rev_id, head=base, splice=True)
        rewire(Path(first.path), base, rev_id)
    return created_path(created)


def merge_heads(config: Config, message: str) -> Path:
    """A revision that revises every head and does nothing, after the release only: before
    it, the data revisions stay last, and a merge would put a schema revision after them."""
    if not Chain.of(config).released:
        raise ChainError("before the release the data revisions stay last: linearise the "
                         "chain instead of merging it (make lint says how)")
    script = ScriptDirectory.from_config(config)
    with quiet_duplicates():
        heads = script.get_heads()
    if len(heads) < 2:
        raise ChainError(f"the chain has one head, {heads[0] if heads else 'none'}: "
                         "nothing to merge")
    return created_path(command.merge(config, "heads", message=message,
                                      rev_id=next_id(taken_ids(script))))


def created_path(created: object) -> Path:
    path = getattr(created, "path", None)
    assert path is not None, created
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "alembic.ini")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("new", help="create a revision").add_argument("message")
    commands.add_parser("merge", help="join the heads with a merge revision").add_argument(
        "message")
    commands.add_parser("dev-head", help="print the revision the dev file follows")
    args = parser.parse_args(argv)
    config = Config(str(args.config))
    try:
        if args.command == "dev-head":
            print(dev_head(config))
        elif args.command == "merge":
            print(f"Created {merge_heads(config, args.message)}")
        else:
            print(f"Created {new_revision(config, args.message)}")
    except ChainError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
