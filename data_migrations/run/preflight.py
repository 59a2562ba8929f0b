"""The preflight of the whole chain: before the first pending revision writes anything,
check what every pending step will need, and stop with one line per problem.

Each data revision declares its checks as ``PREFLIGHT``, a tuple of check functions: its
steps' (data_migrations/rows/preflight.py, data_migrations/files/preflight.py,
data_migrations/paths/preflight.py) and the folder checks below. alembic/env.py works out
the pending revisions (the database's current revision up to the command's destination)
and runs each check they declare once, in chain order. A check takes the run's settings
and returns its problems (an empty list when all is well); it only reads, except for the
probe files it writes and removes again and the folders it creates when they are missing
(WORK_DIR, REPORTS_DIR).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError

from data_migrations.run.errors import DataMigrationError
from settings import Settings, declared

log = logging.getLogger("cutover.preflight")

Check = Callable[[Settings], list[str]]
WRITE_PROBE_PREFIX = ".preflight-"  # the file that shows a folder takes writes


class PreflightError(DataMigrationError):
    """Problems found before anything was written; alembic/env.py prints each as a
    ``FAILED:`` line."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\nFAILED: ".join(problems))
        self.problems = list(problems)


def pending_revisions(script: ScriptDirectory, current: Sequence[str],
                      destination: str | None) -> list[Script]:
    """The revisions an upgrade from ``current`` to ``destination`` runs, in chain order;
    none for a destination at or below the current revision (a downgrade)."""
    if destination is None:  # "base": only a downgrade goes there
        return []
    try:
        upgrades = script.iterate_revisions(destination, tuple(current), implicit_base=True)
        return list(reversed(list(upgrades)))
    except RevisionError:  # not an upgrade target from here: Alembic's own error says so
        return []


def declared_checks(revisions: Iterable[Script]) -> list[Check]:
    """Every check the revisions declare, each once, in chain order."""
    checks = [check for revision in revisions
              for check in getattr(revision.module, "PREFLIGHT", ())]
    return list(dict.fromkeys(checks))


def run(cutover: Settings, revisions: Sequence[Script]) -> None:
    """Run the checks of ``revisions``; raise PreflightError naming every problem."""
    checks = declared_checks(revisions)
    # Only the data steps declare checks, and without a source they do nothing.
    if not checks or cutover[declared.SOURCE_DATABASE_URL] is None:
        return
    names = ", ".join(r.revision for r in revisions)
    log.info(f"Preflight of {names}: checking the source, the folders and the storage "
             "before anything is written.")
    problems = [problem for check in checks for problem in check(cutover)]
    if problems:
        log.info(f"Preflight: {len(problems)} problem{'s' if len(problems) > 1 else ''}; "
                 "nothing was written, the database is as it was.")
        raise PreflightError(problems)
    log.info("Preflight passed.")


def writable(setting: declared.Setting, cutover: Settings) -> list[str]:
    """The folder the setting names exists (made when missing) and takes a file."""
    folder: Path = cutover[setting]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in folder.glob(f"{WRITE_PROBE_PREFIX}*"):  # a killed preflight's
            leftover.unlink(missing_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=WRITE_PROBE_PREFIX):
            pass
    except OSError as error:
        return [f"{setting.name} {folder.resolve()} is not writable "
                f"({error.strerror or error})"]
    return []


def work_dir_writable(cutover: Settings) -> list[str]:
    """WORK_DIR takes the backup, the rejects and the storage probe."""
    return writable(declared.WORK_DIR, cutover)


def reports_dir_writable(cutover: Settings) -> list[str]:
    """REPORTS_DIR takes the report at the end of a run: the cutover report, or the plan's
    and the presync's with their predicted freeze window."""
    return writable(declared.REPORTS_DIR, cutover)
