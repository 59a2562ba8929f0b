"""Build a run's report page again: ``make report ENV=prod`` (the latest report in
REPORTS_DIR) or ``make report REPORT=reports/cutover-20260101T020304Z.json``.

Each command writes its page itself (data_migrations/report_page/record.py); this builds
one again, in REPORT_LANGUAGE, from the JSON alone: for another language, or for a
cutover's page to show the presyncs and the verify around it in the same folder.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import settings
from data_migrations.report_page import page
from data_migrations.run import failure
from data_migrations.run.errors import DataMigrationError
from data_migrations.run.report import log_to_stderr
from settings import declared

log = logging.getLogger("cutover.report")
REPORT_NAMES = ("cutover-*.json", "plan-*.json", "presync-*.json", "verify-*.json")


def latest(directory: Path) -> Path:
    """The report of the run that ended last in ``directory``."""
    found = [(document["ended_at"], path) for name in REPORT_NAMES
             for path in directory.glob(name) if (document := page.read_report(path))]
    if not found:
        raise DataMigrationError(
            f"REPORTS_DIR ({directory.resolve()}) holds no run's report: make migrate, make "
            "plan, make presync and make verify write one")
    return max(found)[1]


def rebuilt(given: Path | None) -> int:
    cutover = settings.read({})
    path = given or latest(cutover[declared.REPORTS_DIR])
    if not path.is_file():
        raise DataMigrationError(f"REPORT {path} does not exist")
    shown = page.rebuild(path, cutover[declared.REPORT_LANGUAGE])
    if shown is None:
        raise DataMigrationError(f"REPORT {path} is not the JSON report of a run (a file "
                                 "named like cutover-<time>.json in REPORTS_DIR)")
    log.info(f"Report page: {shown}")
    return 0


def main(argv: list[str] | None = None) -> int:
    log_to_stderr()
    parser = argparse.ArgumentParser(prog="make report", description=__doc__)
    parser.add_argument("report", nargs="?", type=Path,
                        help="a run's JSON report; the latest in REPORTS_DIR without it")
    given = parser.parse_args(argv).report
    return failure.command("the report page", "the JSON report stays as it was",
                           lambda: rebuilt(given))


if __name__ == "__main__":
    sys.exit(main())
