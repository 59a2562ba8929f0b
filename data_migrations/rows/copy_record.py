"""What the row copy (0002) used, kept in the target for ``make verify``.

One row in ``cutover_row_copy_runs``, written in the copy's transaction: the dev file it
was asked to copy, the snapshot (backup) it really read, the policies it applied, its
rejects file, and per table the rows written, rejected and set to NULL with the checksum
the copy verified. ``make verify`` re-reads that snapshot under those policies, so a
lenient cutover verifies clean without the policies exported again, and rows the app
wrote to the dev file afterwards are not mistaken for a mismatch. The rejected keys and
set-NULL decisions follow from the snapshot and the policies; the rejects file lists them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from data_migrations.rows import source as src
from data_migrations.rows.row_copy import CopyReport, RowCopy
from settings.steps import CopyOptions

TABLE = "cutover_row_copy_runs"


@dataclass(frozen=True)
class TableFigures:
    written: int
    rejected: int
    nulled: int
    checksum: int


@dataclass(frozen=True)
class CopyRecord:
    copied_at: datetime
    source: Path
    snapshot: Path
    bad_rows: str
    orphans: str
    rejects_file: Path | None
    tables: dict[str, TableFigures]


def record_copy(connection: sa.Connection, table: str, source: Path, report: CopyReport,
                options: CopyOptions) -> None:
    """Write the record of a finished copy into ``table`` (created by 0002)."""
    # Hex text: a 64-bit unsigned checksum does not fit a JSON integer everywhere.
    tables = {r.table: {"written": r.written, "rejected": r.rejected, "nulled": r.nulled,
                        "checksum": f"{r.checksum:016x}"} for r in report.tables}
    connection.execute(sa.text(
        f"INSERT INTO {src.quote(table)} (source, snapshot, bad_rows, orphans, rejects_file, "
        "tables) VALUES (:source, :snapshot, :bad_rows, :orphans, :rejects_file, "
        "CAST(:tables AS jsonb))"),
        {"source": str(source.resolve()), "snapshot": str(report.snapshot),
         "bad_rows": options.bad_rows, "orphans": options.orphans,
         "rejects_file": str(report.rejects_file) if report.rejects_file else None,
         "tables": json.dumps(tables)})


def read_record(connection: sa.Connection) -> CopyRecord | None:
    """The newest record of a row copy in the target, or None when it holds none."""
    if not sa.inspect(connection).has_table(TABLE):
        return None
    row = connection.execute(sa.text(
        f"SELECT copied_at, source, snapshot, bad_rows, orphans, rejects_file, tables "
        f"FROM {src.quote(TABLE)} ORDER BY copied_at DESC LIMIT 1")).one_or_none()
    if row is None:
        return None
    return CopyRecord(
        copied_at=row.copied_at, source=Path(row.source), snapshot=Path(row.snapshot),
        bad_rows=row.bad_rows, orphans=row.orphans,
        rejects_file=Path(row.rejects_file) if row.rejects_file else None,
        tables={name: TableFigures(f["written"], f["rejected"], f["nulled"],
                                   int(f["checksum"], 16))
                for name, f in row.tables.items()})


def recorded_policies(record: CopyRecord, options: CopyOptions) -> CopyOptions:
    """``options`` with the policies the copy applied (not those of today's settings)."""
    return replace(options, bad_rows=record.bad_rows, orphans=record.orphans, dry_run=False)


def reread(connection: sa.Connection, snapshot: Path, options: CopyOptions) -> CopyReport:
    """What the copy writes from ``snapshot`` under ``options``' policies, read and checked
    again but written nowhere: per table the rows and their checksum (make verify, make
    catch-up)."""
    with src.open_source(snapshot) as source:
        run = RowCopy(connection, source, options, copied_keys="", write=False)
        run.scan(run.plan())
    return run.report
