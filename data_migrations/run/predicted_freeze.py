"""The freeze window a cutover started now would take, predicted while the app still runs.

Each step's share comes from what this machine measured, never from a write made for the
purpose: the rows and the paths from the last run of the chain that copied them (``make
plan`` copies every row into the transaction it rolls back, and ``make migrate`` copies
them for good), kept in ``WORK_DIR/freeze-rates.json``; the files from what changed since
the presync at the upload rate the presync measured (data_migrations/files/freeze_estimate.py).
What was never measured here is taken at a rate below the benchmarks' and named
"assumed" in the basis. Every share carries MARGIN on top, so that the prediction errs
long: a window that ends early costs less than one that overruns.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from data_migrations.run.report import RecordedStep, table

log = logging.getLogger("cutover.report")

MARGIN = 1.2  # every predicted share is this much longer than its measured rate gives
RATES_FILE = "freeze-rates.json"
# Below the 2-core figures of docs/benchmarks.md (28,000-39,000 rows/s; a path rewrite of
# 200,000 rows in 1.2 s), for a machine that has measured nothing yet.
ASSUMED_ROWS_PER_SECOND = 20_000.0
ASSUMED_PATHS_ROWS_PER_SECOND = 100_000.0


@dataclass(frozen=True)
class Estimate:
    """One step's predicted seconds (the margin included) and what they come from."""

    seconds: float
    basis: str


@dataclass(frozen=True)
class PredictedFreeze:
    rows: Estimate
    files: Estimate
    paths: Estimate

    @property
    def total_seconds(self) -> float:
        return self.rows.seconds + self.files.seconds + self.paths.seconds

    def as_json(self) -> dict[str, Any]:
        return {"rows_seconds": self.rows.seconds, "files_seconds": self.files.seconds,
                "paths_seconds": self.paths.seconds, "total_seconds": self.total_seconds,
                "basis": f"rows {self.rows.basis}; files {self.files.basis}; paths "
                         f"{self.paths.basis}; each +{MARGIN - 1:.0%}"}

    def log(self, when: str) -> None:
        """One line, then each step's share and its basis."""
        log.info(f"Predicted freeze window for a cutover started {when}: "
                 f"{self.total_seconds:.1f} s (rows {self.rows.seconds:.1f} s, files "
                 f"{self.files.seconds:.1f} s, paths {self.paths.seconds:.1f} s; each "
                 f"+{MARGIN - 1:.0%} on the rate it was measured at)")
        rows = [(name, f"{estimate.seconds:.1f}s", estimate.basis) for name, estimate in
                (("rows", self.rows), ("files", self.files), ("paths", self.paths))]
        rows.append(("freeze window", f"{self.total_seconds:.1f}s", "predicted"))
        log.info(table(("step", "predicted", "from"), rows))


def not_pending(step: str) -> Estimate:
    return Estimate(0.0, f"none: the target has {step} already")


@dataclass(frozen=True)
class MeasuredRates:
    """What the last run of the chain on this machine took for its rows and paths."""

    rows: int
    rows_seconds: float | None
    paths_seconds: float | None
    measured_by: str
    measured_at: str
    # A plan's files step: the scan and the manifest's rows of every file, nothing sent.
    planned_files: int | None = None
    planned_files_seconds: float | None = None

    @property
    def seconds_per_planned_file(self) -> float | None:
        if not self.planned_files or self.planned_files_seconds is None:
            return None
        return self.planned_files_seconds / self.planned_files

    def rate(self, seconds: float | None) -> float | None:
        return self.rows / seconds if seconds and self.rows else None


def rates_path(work_dir: Path) -> Path:
    return work_dir / RATES_FILE


def remember_rates(work_dir: Path, steps: list[RecordedStep], measured_by: str) -> None:
    """Keep the row copy's and the path rewrite's times of this run for the next
    prediction; a run without a row copy (resumed past it) keeps the last one's."""
    by_name = {step.name: step for step in steps}
    rows = by_name.get("rows")
    if rows is None:
        return
    paths, files = by_name.get("paths"), by_name.get("files")
    planned = files is not None and "planned_files" in files.figures
    measured = MeasuredRates(
        sum(table["read"] for table in rows.figures["tables"]), rows.seconds,
        None if paths is None else paths.seconds, measured_by,
        datetime.now(UTC).isoformat(timespec="seconds"),
        files.figures["planned_files"] if planned else None,
        files.seconds if planned else None)
    path = rates_path(work_dir)
    try:
        path.write_text(json.dumps(asdict(measured), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        # The run itself is done: only the next prediction loses this machine's rates.
        log.info(f"Cannot keep the measured rates in {path} ({exc.strerror or exc}); the "
                 "next freeze prediction assumes them.")


def measured_rates(work_dir: Path) -> MeasuredRates | None:
    """The rates the last run kept; None when none did, or the file is not one we wrote
    (then the prediction says it assumed them)."""
    try:
        return MeasuredRates(**json.loads(rates_path(work_dir).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def by_rows(rows: int, per_second: float | None, fallback: float,
            measured: MeasuredRates | None) -> Estimate:
    """``rows`` at the measured rate, or at the assumed ``fallback`` when none was."""
    if per_second is None or measured is None:
        return Estimate(MARGIN * rows / fallback,
                        f"{rows:,} rows at an assumed {fallback:,.0f}/s (nothing measured "
                        "here yet: run make plan)")
    return Estimate(MARGIN * rows / per_second,
                    f"{rows:,} rows at {per_second:,.0f}/s ({measured.measured_by}, "
                    f"{measured.measured_at})")


def rows_estimate(rows: int, measured: MeasuredRates | None) -> Estimate:
    rate = None if measured is None else measured.rate(measured.rows_seconds)
    return by_rows(rows, rate, ASSUMED_ROWS_PER_SECOND, measured)


def paths_estimate(rows: int, measured: MeasuredRates | None) -> Estimate:
    rate = None if measured is None else measured.rate(measured.paths_seconds)
    return by_rows(rows, rate, ASSUMED_PATHS_ROWS_PER_SECOND, measured)
