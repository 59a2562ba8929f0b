"""``make lint``'s check of the revisions that run on the live database: squawk on their SQL,
and the project's own rule that a helper committing on its own never follows a change of its
revision that a second run would stop at (``commit-after-change``).

Each revision after the cutover's own is rendered alone as ``alembic upgrade <down>:<rev>
--sql`` would print it for the DBA, and its way back as ``alembic downgrade <rev>:<down>
--sql`` (``make downgrade ENV=prod`` runs that on the live database too); squawk (PyPI
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
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError

from data_migrations.run.errors import DataMigrationError
from data_migrations.run.lock_retry import data_revision_range
from data_migrations.run.open_work import changes

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
    """The revisions after the cutover's own, in the order they run."""
    script = ScriptDirectory.from_config(config)
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
        raise LintError(f"{relative(ini, revision)}: revises {revision.down_revision!r}; "
                        "the check renders a revision after exactly one other")
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


def relative(ini: Path, revision: Script) -> str:
    assert revision.path is not None
    return os.path.relpath(revision.path, ini.parent)


def squawk_findings(ini: Path, sql_files: dict[Path, str]) -> list[Finding]:
    """squawk on the rendered files (keyed by the revision file each came from)."""
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


def check(ini: Path) -> list[Finding]:
    revisions = live_revisions(Config(str(ini)))
    if not revisions:
        return []
    with tempfile.TemporaryDirectory() as scratch:
        sql_files, own = {}, []
        for revision in revisions:
            for direction, named in (("upgrade", ""), ("downgrade", " (downgrade)")):
                path = Path(scratch) / f"{Path(str(revision.path)).stem}.{direction}.sql"
                sql = rendered_sql(ini, revision, direction)
                path.write_text(sql, encoding="utf-8")
                sql_files[path] = relative(ini, revision) + named
                own += commit_after_change(sql, sql_files[path])
        return own + squawk_findings(ini, sql_files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "alembic.ini")
    ini = parser.parse_args(argv).config.resolve()
    try:
        findings = check(ini)
    except LintError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    for finding in findings:
        print(finding.line(), file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
