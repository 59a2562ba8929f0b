"""``make lint``'s check of the revisions that run on the live database: squawk on their SQL,
and the project's own rules: a helper committing on its own never follows a change of its
revision that a second run would stop at (``commit-after-change``); no raw data change of a
live table (``raw-dml``); no drop of what ``models/`` still maps (``drop-mapped``;
devtools/revision_sql.py says why, and why a downgrade dropping its own upgrade's additions
needs no waiver). First of all the chain must be one line: no id in two files, one head
(devtools/revision_chain.py), each refused in one line that says how to fix it.

Each revision after the cutover's own is rendered alone as ``alembic upgrade <down>:<rev>
--sql`` would print it for the DBA, and its way back as ``alembic downgrade <rev>:<down>
--sql`` (``make downgrade ENV=prod`` runs that on the live database too), a merge revision
(it revises two) here in this process; squawk (PyPI
``squawk-cli``) checks both with the rule set of ``.squawk.toml`` beside alembic.ini. A
finding is one ``FAILED:`` line that names the revision file (with ``(downgrade)`` when it is
in the way back), the rule, squawk's message and the statement; any finding fails the check.

The cutover's own revisions (``last_data_revision`` of the given alembic.ini's ``[cutover]``,
the same key that runs them without lock timeout, and every revision before it, those
written before the release too) are exempt: they build and fill an empty target that no app
serves from while they run, so their plain CREATE INDEX and NOT NULL columns stall no one.

    python -m devtools.lint_revisions [--config alembic.ini]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError

import models
from data_migrations.run.errors import DataMigrationError
from data_migrations.run.lock_retry import data_revision_range
from data_migrations.run.open_work import changes
from devtools import revision_chain, revision_sql
from devtools.revision_sql import Statement

ROOT = Path(__file__).resolve().parent.parent
SQUAWK_CONFIG = ".squawk.toml"
# The project's own rule beside squawk's (data_migrations/run/open_work.py says why).
COMMIT_AFTER_CHANGE = "commit-after-change"


class LintError(Exception):
    """The revisions cannot be checked; the message says what and where."""


@dataclass(frozen=True)
class Finding:
    """One squawk finding, mapped back to the revision file it came from."""

    revision_file: str
    rule: str
    message: str
    statement: str

    def line(self) -> str:
        return f"FAILED: {self.revision_file}: {self.rule}: {self.message} ({self.statement})"


def live_revisions(config: Config) -> list[Script]:
    """The revisions after the cutover's own, in the order they run; refused while an id is
    written twice or the chain has more than one head (devtools/revision_chain.py)."""
    script = ScriptDirectory.from_config(config)
    with revision_chain.quiet_duplicates():
        try:
            forked = revision_chain.problems(config, script)
        except revision_chain.ChainError as exc:
            raise LintError(str(exc)) from None
    if forked:
        raise LintError("\n".join(forked))
    try:
        _, last = data_revision_range(config)
        script.get_revision(last)
    except DataMigrationError as exc:
        raise LintError(str(exc)) from None
    except CommandError:
        raise LintError(f"revision {last} (last_data_revision, the cutover's last) is not "
                        f"in {script.versions}") from None
    exempt = {r.revision for r in script.iterate_revisions(last, "base")}
    return [r for r in reversed(list(script.walk_revisions())) if r.revision not in exempt]


def rendered_sql(ini: Path, revision: Script, direction: str) -> str:
    """The revision's upgrade or downgrade as ``--sql`` renders it: offline, PostgreSQL, no
    settings of this shell (no ENV, no DATABASE_URL, no .env: a scratch working directory)."""
    if not isinstance(revision.down_revision, str):
        return merge_sql(ini, revision, direction)
    environment = {**os.environ, "ENV": "", "DATABASE_URL": "",
                   "PYTHONPATH": os.pathsep.join([str(ini.parent), os.environ.get(
                       "PYTHONPATH", "")])}
    steps = (revision.down_revision, revision.revision)
    span = ":".join(steps if direction == "upgrade" else reversed(steps))
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(
            [sys.executable, "-m", "alembic", "-c", str(ini), direction, span, "--sql"],
            cwd=scratch, env=environment, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        raise LintError(f"{relative(ini, revision)}: its {direction} SQL cannot be rendered: "
                        f"{reason[-1] if reason else f'exit {done.returncode}'}")
    return done.stdout


def merge_sql(ini: Path, revision: Script, direction: str) -> str:
    """A merge revision's own upgrade or downgrade, rendered offline for PostgreSQL here:
    Alembic renders no span that starts at two revisions. A merge that does nothing renders
    nothing."""
    buffer = io.StringIO()
    context = MigrationContext.configure(dialect_name="postgresql", opts={
        "as_sql": True, "output_buffer": buffer, "literal_binds": True})
    try:
        with Operations.context(context):
            getattr(revision.module, direction)()
    except Exception as exc:  # the revision's own code, whatever it raised: one line
        raise LintError(f"{relative(ini, revision)}: its {direction} SQL cannot be rendered: "
                        f"{type(exc).__name__}: {exc}") from None
    return buffer.getvalue()


def relative(ini: Path, revision: Script) -> str:
    assert revision.path is not None
    return os.path.relpath(revision.path, ini.parent)


def squawk_findings(ini: Path, sql_files: dict[Path, str],
                    skipped: Callable[[Path, dict], bool]) -> list[Finding]:
    """squawk on the rendered files (keyed by the revision file each came from), without
    the findings ``skipped`` (the file, squawk's finding) says are not reported."""
    squawk = Path(sys.executable).parent / "squawk"
    if not squawk.exists():
        raise LintError(f"{squawk} is not installed: make install (squawk-cli, test extras)")
    rules = ini.parent / SQUAWK_CONFIG
    if not rules.is_file():
        raise LintError(f"{rules} does not exist: the rule set of the revision check")
    done = subprocess.run(
        [str(squawk), "--config", str(rules), "--reporter", "json", *map(str, sql_files)],
        capture_output=True, text=True, check=False)
    try:
        reported = json.loads(done.stdout)
    except json.JSONDecodeError:
        reported = None
    if not isinstance(reported, list) or (done.returncode != 0 and not reported):
        raise LintError(f"squawk failed (exit {done.returncode}): "
                        f"{(done.stderr or done.stdout).strip()}")
    findings = []
    for found in reported:
        path = Path(found["file"])
        if skipped(path, found):
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        statement = " ".join(lines[found["line"]:found["line_end"] + 1]).strip()
        findings.append(Finding(sql_files[path], found["rule_name"], found["message"],
                                statement))
    return findings


def statements(sql: str) -> list[str]:
    """The rendered statements, without comment lines, each without its ``;``."""
    kept = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [" ".join(part.split()) for part in kept.split(";") if part.strip()]


def commit_after_change(sql: str, where: str) -> list[Finding]:
    """A ``COMMIT`` in the middle of a revision (a helper that commits on its own) after a
    change of the revision that a second run would stop at."""
    found, open_changes = [], []
    rendered = statements(sql)
    last_commit = max((i for i, s in enumerate(rendered) if s.upper() == "COMMIT"), default=-1)
    for index, statement in enumerate(rendered):
        if statement.upper() == "BEGIN":
            open_changes = []
        elif statement.upper() == "COMMIT":
            if index != last_commit and open_changes:
                found.append(Finding(
                    where, COMMIT_AFTER_CHANGE,
                    "a helper that commits on its own follows this change: if it failed, "
                    "the change would stay committed and the revision could not run again; "
                    "move the change into a revision of its own, after the helper, or write "
                    "it to run again (IF NOT EXISTS)", open_changes[0]))
            open_changes = []
        elif changes(statement):
            open_changes.append(statement)
    return found


@dataclass
class Rendered:
    """A revision's upgrade or downgrade as rendered, written to a file for squawk."""

    sql_file: Path
    where: str  # the revision file, with " (downgrade)" for the way back
    statements: list[Statement]


def check(ini: Path) -> list[Finding]:
    revisions = live_revisions(Config(str(ini)))
    if not revisions:
        return []
    with tempfile.TemporaryDirectory() as scratch:
        own: list[Finding] = []
        ups, downs = [], []
        for revision in revisions:
            for direction, named, into in (("upgrade", "", ups),
                                           ("downgrade", " (downgrade)", downs)):
                sql = rendered_sql(ini, revision, direction)
                path = Path(scratch) / f"{Path(str(revision.path)).stem}.{direction}.sql"
                path.write_text(sql, encoding="utf-8")
                into.append(Rendered(path, relative(ini, revision) + named,
                                     revision_sql.parsed(sql)))
                own += commit_after_change(sql, into[-1].where)
        own += own_rule_findings(ups, downs)
        return own + squawk_findings(ini, {r.sql_file: r.where for r in ups + downs},
                                     not_reported(ups, downs))


def own_rule_findings(ups: list[Rendered], downs: list[Rendered]) -> list[Finding]:
    """raw-dml in either direction; drop-mapped in the upgrades, of what no later upgrade
    adds back."""
    found = [Finding(r.where, revision_sql.RAW_DML, message, s.text) for r in ups + downs
             for message, s in revision_sql.raw_dml(r.statements)]
    for index, up in enumerate(ups):
        later = {obj for after in ups[index + 1:]
                 for obj in revision_sql.added_by(after.statements)}
        found += [Finding(up.where, revision_sql.DROP_MAPPED, message, s.text)
                  for message, s in revision_sql.mapped_drops(
                      up.statements, models.metadata, models.Base.registry, later)]
    return found


def not_reported(ups: list[Rendered],
                 downs: list[Rendered]) -> Callable[[Path, dict], bool]:
    """squawk's findings left out: a drop rule on a downgrade's drop of what its own upgrade
    added, and squawk's "unknown name" for a waiver of this check's own rules."""
    own_drops = {down.sql_file: revision_sql.own_drops(up.statements, down.statements)
                 for up, down in zip(ups, downs, strict=True)}

    def skipped(path: Path, found: dict) -> bool:
        if found["rule_name"] == "unused-ignore":
            return any(found["message"] == f"unknown name {rule}"
                       for rule in revision_sql.OWN_RULES)
        return found["rule_name"] in revision_sql.DROP_RULES and any(
            s.covers(found["line"]) for s in own_drops.get(path, []))
    return skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "alembic.ini")
    ini = parser.parse_args(argv).config.resolve()
    try:
        findings = check(ini)
    except LintError as exc:
        for line in str(exc).splitlines():
            print(f"FAILED: {line}", file=sys.stderr)
        return 1
    for finding in findings:
        print(finding.line(), file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
