"""Where a new schema revision goes, and how far the dev file follows the chain.

Until production has run the cutover (``released = false`` in alembic.ini's ``[cutover]``
section), the data revisions (``first_data_revision``, 0002, and those after it) stay last
in the chain: a new revision is placed before them. Its ``down_revision`` is the schema
head (the revision the first data revision revises), and the first data revision's
``down_revision`` is rewired to the new one — the one edit a data revision may take while
no database has applied it (the dev file never runs the data steps, production has not
run them yet). Once ``released = true``, a new revision goes after the last one.

The dev file follows the schema head only: ``dev-head`` prints the revision
``make upgrade-dev`` upgrades it to.

    python -m devtools.revision new "add task priority"
    python -m devtools.revision dev-head
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

ROOT = Path(__file__).resolve().parent.parent
SECTION = "cutover"


class RevisionError(Exception):
    """The chain is not as this tool expects it; the message says what and where."""


@dataclass(frozen=True)
class Chain:
    """The chain's layout as alembic.ini's ``[cutover]`` section describes it."""

    first_data_revision: str
    released: bool

    @classmethod
    def of(cls, config: Config) -> Chain:
        first = config.get_section_option(SECTION, "first_data_revision")
        released = config.get_section_option(SECTION, "released", "false").strip().lower()
        if not first or released not in ("true", "false"):
            raise RevisionError(f"{config.config_file_name}: [{SECTION}] needs "
                                "first_data_revision and released = true|false")
        return cls(first.strip(), released == "true")


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


def next_id(script: ScriptDirectory) -> str:
    """The next number: ids are unique and tell the order revisions were written in; the
    chain (``make history``) tells the order they run in."""
    return f"{len(list(script.walk_revisions())) + 1:04d}"


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


def new_revision(config: Config, message: str) -> Path:
    """Create the revision file; before the data revisions unless released."""
    chain = Chain.of(config)
    script = ScriptDirectory.from_config(config)
    rev_id = next_id(script)
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
    assert created is not None and not isinstance(created, list) and created.path
    return Path(created.path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "alembic.ini")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("new", help="create a revision").add_argument("message")
    commands.add_parser("dev-head", help="print the revision the dev file follows")
    args = parser.parse_args(argv)
    config = Config(str(args.config))
    try:
        if args.command == "dev-head":
            print(dev_head(config))
        else:
            print(f"Created {new_revision(config, args.message)}")
    except RevisionError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
