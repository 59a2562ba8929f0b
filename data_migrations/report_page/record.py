"""What one run of an operator's command leaves behind: its JSON report in REPORTS_DIR and,
beside it, the report page (data_migrations/report_page/page.py).

``make migrate`` (``cutover-<time>.json``), ``make plan`` (``plan-…``), ``make presync``
(``presync-…``) and ``make verify`` (``verify-…``) each run inside ``reported``: whatever
the run ends with, a success or its ``FAILED:`` lines, is written, with the settings it
used (secrets masked as ``Settings.shown`` masks them), the revisions it ran, the machine,
its start and end, and the commands that roll it back. The freeze window is counted from
the command's start, so the preflight is inside it and named as its own share.
"""

from __future__ import annotations

import getpass
import logging
import os
import platform
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.script import Script
from alembic.util import CommandError

from data_migrations.report_page import page
from data_migrations.run.errors import DataMigrationError
from data_migrations.run.failure import EXPECTED, NOT_READY_EXIT, driver_message
from data_migrations.run.report import cutover_document, report_path, stamp, write_json
from settings import Settings, declared

log = logging.getLogger("cutover.report")

# The report's file name of each command: a cutover's keeps the name it always had.
FILE_NAMES = {"migrate": "cutover", "plan": "plan", "presync": "presync", "verify": "verify"}
# What each command leaves done when its report cannot be written.
LEFT_DONE = {"migrate": "the migrations are committed", "plan": "the plan changed nothing",
             "presync": "the files stored so far are recorded",
             "verify": "verify changes nothing"}


@dataclass
class RunRecord:
    """One run as its report tells it; ``figures`` are the command's own (the steps, the
    checks, the files)."""

    command: str  # migrate, plan, presync, verify
    started: float = field(default_factory=time.time)
    settings: Settings | None = None
    preflight_seconds: float | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    # A migrate run that no operator started (an upgrade driven from Python) is reported
    # only when a data step ran.
    always: bool = True
    reported: bool = False  # written before the run's end (write_now)

    def note_revisions(self, current: Sequence[str], pending: Sequence[Script]) -> None:
        """The revisions this run upgrades through, and the downgrades that take each back,
        the last first."""
        self.figures["revisions"] = {"from": list(current) or ["base"],
                                     "ran": [script.revision for script in pending]}
        if self.command != "migrate":  # a plan changes nothing to roll back
            return
        self.figures["rollback"] = [f"make current{self.env_argument()}"] + [
            f"make downgrade{self.env_argument()} REV={down_revision(script)}"
            for script in reversed(pending)]

    def env_argument(self) -> str:
        env = self.settings.texts.get(declared.ENV.name) if self.settings else None
        return f" ENV={env}" if env else ""

    @property
    def succeeded(self) -> bool:
        return not self.failed and all(check["passed"]
                                       for check in self.figures.get("checks", []))

    def document(self, ended: float) -> dict[str, Any]:
        return {"command": self.command,
                "outcome": "succeeded" if self.succeeded else "failed",
                "failed": self.failed, "started_at": stamp(self.started),
                "ended_at": stamp(ended), "preflight_seconds": self.preflight_seconds,
                **self.figures, "settings": self.settings.shown() if self.settings else {},
                "machine": machine()}


def down_revision(script: Script) -> str:
    down = script.down_revision
    if isinstance(down, tuple):
        return ",".join(down)
    return down or "base"


def machine() -> dict[str, str]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container's uid with no passwd entry and no $USER
        user = str(os.getuid())
    return {"host": socket.gethostname(), "user": user,
            "system": platform.platform(), "python": platform.python_version(),
            "directory": os.getcwd()}


_current: list[RunRecord] = []


def current_run() -> RunRecord | None:
    """The run being recorded in this process, if any."""
    return _current[-1] if _current else None


def write_now() -> None:
    """Write the report of the run being recorded before the run ends, so that a line the
    run prints last (rows left in the dev file) stays its last line."""
    run = current_run()
    if run is not None:
        written(run)
        run.reported = True


def note(**figures: Any) -> None:
    """Add figures to the report of the run being recorded, if any (an upgrade driven from
    Python that no command reports has none)."""
    run = current_run()
    if run is not None:
        run.figures.update(figures)


@contextmanager
def reported(command: str, always: bool = True,
             also: tuple[type[Exception], ...] = ()) -> Iterator[RunRecord]:
    """Run the block as ``command`` and write its report at the end, failed or not (``also``:
    the command's own expected failures besides the project's); a report that cannot be
    written after a failure is never a second failure."""
    record = RunRecord(command, always=always)
    _current.append(record)
    try:
        yield record
    except BaseException as exc:
        record.failed = failed_lines(exc, also)
        if record.failed and not record.reported:
            with suppress(DataMigrationError, OSError):
                written(record)
        raise
    else:
        if not record.reported:
            written(record)
    finally:
        _current.remove(record)


def failed_lines(exc: BaseException, also: tuple[type[Exception], ...] = ()) -> list[str]:
    """What the terminal shows for the exception ending the run: its ``FAILED:`` lines
    (a preflight's are several), an interrupt's line, or nothing for a clean exit."""
    if isinstance(exc, SystemExit) and exc.code in (0, None, NOT_READY_EXIT):
        return []  # not ready to go live: the report's left_behind says so, not a failure
    if isinstance(exc, (*EXPECTED, CommandError, *also)):
        return f"FAILED: {exc}".split("\n")
    if isinstance(exc, sa.exc.OperationalError):
        return [f"FAILED: cannot connect: {driver_message(exc)}"]
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return ["interrupted (Ctrl-C or SIGTERM): run the same command again"]
    return [f"FAILED: stopped by an unexpected {type(exc).__name__}; the terminal shows "
            "where"]


def written(record: RunRecord) -> Path | None:
    """Write the run's JSON report and its page, in REPORTS_DIR and REPORT_LANGUAGE; the
    path of the JSON (none for a run that read no settings)."""
    if record.settings is None:  # bad settings ran nothing: the FAILED line is the answer
        return None
    if record.command == "migrate":
        steps = cutover_document(record.started, record.preflight_seconds)
        if steps is None and not record.always:
            return None
        record.figures.update(steps or {})
    directory = record.settings[declared.REPORTS_DIR]
    language = record.settings[declared.REPORT_LANGUAGE]
    path = report_path(directory, FILE_NAMES[record.command])
    document = record.document(time.time())
    write_json(path, document, LEFT_DONE[record.command])
    try:
        shown = page.write(path, document, language)
        if record.command == "verify":
            page.rebuild_cutover_before(path, language)
    except Exception as exc:  # the run's outcome stands in its JSON: a page never hides it
        log.warning(f"the report page of {path} was not written ({type(exc).__name__}: "
                    f"{exc}); make report builds it from the JSON")
        return path
    log.info(f"Report page: {shown}")
    return path
