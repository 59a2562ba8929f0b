"""The predicted freeze window of a cutover started now: what ``make plan`` and ``make
presync`` end with, and what ``make migrate`` says before its first step (its cutover
report keeps it beside the window it measured); each run's report and page hold it.

Rows and paths from the dev file's row count at the rates the last copy on this machine
took (data_migrations/run/predicted_freeze.py), files from what changed since the presync
at the rate the presync measured (data_migrations/files/freeze_estimate.py). Reading the
dev file, the uploads folder and WORK_DIR only: nothing is written to the target or the
bucket.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection

import settings
from data_migrations.files.freeze_estimate import files_estimate
from data_migrations.report_page import record
from data_migrations.rows import source as src
from data_migrations.run import predicted_freeze as predicted
from data_migrations.run.predicted_freeze import Estimate, PredictedFreeze
from settings import ConfigError, declared

# The cutover's data revisions and the step each is.
DATA_STEPS = {"0002": "rows", "0003": "files", "0004": "paths"}


def source_rows(cutover: settings.Settings) -> int:
    """Every row of the dev file; none without one."""
    path = cutover.source_database_path()
    if path is None:
        return 0
    with src.open_source(path) as source:
        return sum(src.row_count(source, name) for name in src.table_names(source))


def predict(cutover: settings.Settings,
            pending: Collection[str] = tuple(DATA_STEPS.values())) -> PredictedFreeze:
    """The freeze window of the ``pending`` steps, started now."""
    measured = predicted.measured_rates(cutover[declared.WORK_DIR])
    try:
        rows: int | str = source_rows(cutover)
    except (ConfigError, sqlite3.Error) as error:
        # The presync alone gets here (the chain's preflight checks the dev file): its
        # files are stored all the same, and the rows are named unknown.
        rows = f"not counted ({error})"

    def share(step: str, estimate: Callable[[int], Estimate]) -> Estimate:
        if step not in pending:
            return predicted.not_pending(step)
        return Estimate(0.0, rows) if isinstance(rows, str) else estimate(rows)

    planned_per_file = None if measured is None else measured.seconds_per_planned_file
    files = (files_estimate(cutover.upload_options(), cutover.storage(), planned_per_file)
             if "files" in pending else predicted.not_pending("files"))
    return PredictedFreeze(
        share("rows", lambda count: predicted.rows_estimate(count, measured)), files,
        share("paths", lambda count: predicted.paths_estimate(count, measured)))


def announce(prediction: PredictedFreeze) -> None:
    """Log the prediction, and keep it for the run's report and page."""
    prediction.log("now")
    record.note(predicted_freeze=prediction.as_json())
