"""Copy every row of the dev SQLite file into the PostgreSQL target, exactly.

One pass per table, in foreign-key order read from the target's own schema: each SQLite
row is checked and converted (see values.py), streamed to PostgreSQL with ``COPY ... FROM
STDIN``, and folded into an order-independent checksum. A row PostgreSQL would refuse is a
finding; depending on ``bad_rows`` the copy fails with every finding or writes the row to
the rejects file. A table is read in rowid ranges of about 512 KiB, converted in worker
processes (see conversion.py) while this process streams the finished ranges to
PostgreSQL in order. Afterwards each table's count and checksum are compared with what
PostgreSQL stored (checksum.py), the identity sequences are moved past the copied ids
(target.py), and the copied keys are recorded so that a downgrade removes exactly them
(rollback.py).

It all runs inside the revision's transaction: a failure, or a killed process, leaves the
target as it was, and running the upgrade again starts afresh.
"""

from __future__ import annotations

import functools
import io
import logging
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sqlalchemy as sa

from data_migrations.rows import source as src
from data_migrations.rows import watch
from data_migrations.rows.checksum import CHECKSUM_MASK, target_checksum, target_plan
from data_migrations.rows.conversion import (
    Converted,
    Finding,
    ForeignKey,
    ReferenceCheck,
    TablePlan,
    convert_range,
    convert_rows,
    in_order,
    worker_pool,
)
from data_migrations.rows.refusal import Refusals
from data_migrations.rows.target import deferred_checks, reset_sequences, use_lz4_compression
from data_migrations.run import lost_connection
from data_migrations.run.errors import DataMigrationError
from data_migrations.run.report import Progress, RejectsFile, record_step, table
from data_migrations.run.sql import column_names
from settings.steps import CopyOptions

log = logging.getLogger("cutover.rows")

COPY_CHUNK_BYTES = 1 << 18
# A table is read and converted in rowid ranges holding about this much SQLite data:
# enough rows that handing a range to a worker costs little, few enough that the ranges
# in flight stay small.
RANGE_BYTES = 1 << 19
IN_FLIGHT_PER_WORKER = 4
# Key kinds recorded as runs of consecutive ids (see record_copied_keys).
INTEGER_KEYS = ("integer", "bigint")


@dataclass
class TableResult:
    table: str
    read: int = 0
    written: int = 0
    rejected: int = 0
    nulled: int = 0
    checksum: int = 0
    verified: str = "-"
    seconds: float = 0.0
    # How many processes converted the rows: 1 when this one did.
    processes: int = 1


@dataclass
class CopyReport:
    tables: list[TableResult]
    refusals: Refusals = field(default_factory=lambda: Refusals(None))
    rejects_file: Path | None = None
    # The backup the rows were read from; None in a dry run, which reads the file itself.
    snapshot: Path | None = None
    # Every finding, root and dependent, when the copy refuses or only plans.
    findings_file: Path | None = None


class _LineReader(io.RawIOBase):
    """A file-like view of an iterator of blocks of whole lines, for ``copy_expert`` to
    read in chunks: at least ``size`` bytes unless the blocks run out, never a split block."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        limit = COPY_CHUNK_BYTES if size is None or size < 0 else size
        parts, length = [], 0
        for block in self._blocks:
            parts.append(block)
            length += len(block)
            if length >= limit:
                break
        return b"".join(parts)


class RowCopy:
    """One run of the copy: the plans, the findings, the rejects, the results."""

    def __init__(self, connection: sa.Connection, source: sqlite3.Connection,
                 options: CopyOptions, copied_keys: str, write: bool = True,
                 range_bytes: int = RANGE_BYTES) -> None:
        self.connection = connection
        # SQLite data per range a table is read and converted in (see RANGE_BYTES).
        self.range_bytes = range_bytes
        # False to only read and check the source, as make verify does.
        self.write = write
        self.copied_keys = copied_keys
        self.source = source
        self.options = options
        self.rejects = RejectsFile(options.work_dir, "row-copy")
        # A refusing copy or a plan writes its findings to a file of their own; a lenient
        # copy's rejects file holds them already, and make verify writes nothing.
        listing = write and (options.bad_rows == "fail" or options.dry_run)
        self.findings = RejectsFile(options.work_dir, "refusal") if listing else None
        self.refusals = Refusals(self.findings)
        self.report = CopyReport(tables=[], refusals=self.refusals)
        self.pool: Executor | None = None

    def run(self) -> CopyReport:
        self.begin()
        plans = self.plan()
        self.refuse_foreign_rows(plans)
        with deferred_checks(self.connection, [p.name for p in plans]):
            self.scan(plans)
        self.conclude()
        self.verify(plans)
        reset_sequences(self.connection, [p.name for p in plans])
        self.record_copied_keys(plans)
        return self.report

    def begin(self) -> None:
        # The converters spell values as PostgreSQL prints them in UTC, ISO style.
        self.connection.execute(sa.text("SET LOCAL TimeZone = 'UTC'"))
        self.connection.execute(sa.text("SET LOCAL DateStyle = 'ISO, YMD'"))
        use_lz4_compression(self.connection)

    def conclude(self) -> None:
        """The files of the scan into the report; refused rows stop a refusing copy."""
        if self.rejects.count:
            self.report.rejects_file = self.rejects.path
        if self.findings is not None and self.findings.count:
            self.report.findings_file = self.findings.path
        # A dry run copies too, in the transaction env.py rolls back, so that the later
        # steps rehearse on the real rows; its findings are reported, not raised.
        if self.refusals.rows and self.options.bad_rows == "fail" and not self.options.dry_run:
            raise DataMigrationError(self.findings_message())

    def scan(self, plans: list[TablePlan]) -> None:
        """Read, check and (when writing) copy every table, parents first."""
        pool = worker_pool(self.source, self.options.workers)
        try:
            with pool or nullcontext():
                self.pool = pool
                for plan in plans:
                    self.copy_table(plan)
        finally:
            self.pool = None
            self.rejects.close()
            if self.findings is not None:
                self.findings.close()

    def plan(self) -> list[TablePlan]:
        names = src.table_names(self.source)
        metadata = sa.MetaData()
        metadata.reflect(self.connection, only=lambda name, _: name in names)
        missing = sorted(set(names) - set(metadata.tables))
        if missing:
            raise DataMigrationError(f"source tables with no target table: {', '.join(missing)}")
        plans = []
        for target in metadata.sorted_tables:  # parents before children
            source_columns = set(column_names(self.source, target.name))
            target_columns = {c.name for c in target.columns}
            if source_columns != target_columns:
                raise DataMigrationError(
                    f"table {target.name}: columns differ between source and target: "
                    f"only in source {sorted(source_columns - target_columns)}, "
                    f"only in target {sorted(target_columns - source_columns)}")
            plan = target_plan(target)
            plan.foreign_keys = [self.foreign_key(plan, fk) for fk in target.foreign_keys]
            plans.append(plan)
        return plans

    def foreign_key(self, plan: TablePlan, fk: sa.ForeignKey) -> ForeignKey:
        column, parent = fk.parent, fk.column
        orphans = src.orphan_values(self.source, plan.name, column.name,
                                    parent.table.name, parent.name)
        return ForeignKey(plan.columns.index(column.name), column.name, parent.table.name,
                          bool(column.nullable), frozenset(orphans))

    def refuse_foreign_rows(self, plans: list[TablePlan]) -> None:
        occupied = [p.name for p in plans if self.connection.execute(
            sa.text(f"SELECT EXISTS (SELECT 1 FROM {src.quote(p.name)})")).scalar()]
        if occupied:
            raise DataMigrationError(
                f"the target already holds rows in {', '.join(occupied)} that this copy did "
                "not write; is DATABASE_URL the right database? The copy needs empty tables.")

    def copy_table(self, plan: TablePlan) -> None:
        result = TableResult(plan.name)
        self.report.tables.append(result)
        progress = Progress(log, f"{'copying' if self.write else 'checking'} {plan.name}",
                            self.rows_to_read(plan))
        lines = self.copy_lines(plan, result, progress)
        if not self.write:
            for _ in lines:
                pass
        else:
            self.load(plan, lines)
        progress.advance(0)
        result.seconds = progress.seconds

    def rows_to_read(self, plan: TablePlan) -> int:
        return src.row_count(self.source, plan.name)

    def load(self, plan: TablePlan, lines: Iterator[bytes]) -> None:
        """Stream the table's COPY text into it."""
        self.copy_into(plan.name, plan, lines)

    def copy_into(self, table_name: str, plan: TablePlan, lines: Iterator[bytes]) -> None:
        cursor = self.connection.connection.dbapi_connection.cursor()
        columns = ", ".join(map(src.quote, plan.columns))
        with lost_connection.driver_dumps_silenced():
            cursor.copy_expert(f"COPY {src.quote(table_name)} ({columns}) FROM STDIN",
                               _LineReader(lines), size=COPY_CHUNK_BYTES)

    def copy_lines(self, plan: TablePlan, result: TableResult,
                   progress: Progress) -> Iterator[bytes]:
        """The COPY text of the table, a rowid range at a time, counting as it goes."""
        checksum = 0
        for converted in self.converted_ranges(plan, result, progress.total):
            result.read += converted.read
            result.written += converted.written
            checksum += converted.checksum
            for raw, findings in converted.refused:
                self.refuse_row(plan, raw, findings, result)
            progress.advance(converted.read)
            yield converted.lines
        result.checksum = checksum & CHECKSUM_MASK

    def converted_ranges(self, plan: TablePlan, result: TableResult,
                         rows: int) -> Iterator[Converted]:
        row_bytes = src.average_row_bytes(self.source, plan.name, plan.columns)
        ranges = src.rowid_ranges(self.source, plan.name, rows,
                                  max(1, int(self.range_bytes / max(row_bytes, 1.0))))
        check = self.reference_check(plan, result)
        if self.pool is not None and len(ranges) > 1 and check is None:
            result.processes = self.options.workers
            window = self.options.workers * IN_FLIGHT_PER_WORKER
            yield from in_order(self.pool, convert_range,
                                ((plan.shape, rowids) for rowids in ranges), window)
            return
        for rowids in ranges:
            rows = src.stream_rows(self.source, plan.name, plan.columns, rowids)
            yield convert_rows(plan, rows, check)

    def reference_check(self, plan: TablePlan, result: TableResult) -> ReferenceCheck | None:
        """The check of the table's rows' references, None when none can fail."""
        # Only references that can fail need checking row by row: the parents are done.
        # Those checks need the parents' rejected keys, so such a table stays here.
        risky = [fk for fk in plan.foreign_keys
                 if fk.orphans or self.refusals.refused_in(fk.parent)]
        return functools.partial(self.check_references, plan, risky, result) if risky else None

    def check_references(self, plan: TablePlan, risky: list[ForeignKey], result: TableResult,
                         row: list) -> list[Finding]:
        findings = []
        key = row[plan.key_index]
        for fk in risky:
            value = row[fk.index]
            if value is None:
                continue
            parent = None
            if value in fk.orphans:
                reason = f"references {fk.parent} {value!r}, which does not exist"
            elif self.refusals.is_refused(fk.parent, value):
                reason = f"references {fk.parent} {value!r}, which is rejected"
                parent = (fk.parent, value)
            else:
                continue
            if fk.nullable and self.options.orphans == "set_null":
                row[fk.index] = None
                result.nulled += 1
                self.record_reject({"table": plan.name, "key": key, "action": "set_null",
                                    "column": fk.column, "original": value, "reason": reason})
            else:
                findings.append(Finding(plan.name, key, fk.column, value, reason, parent))
        return findings

    def refuse_row(self, plan: TablePlan, raw: tuple, findings: list[Finding],
                   result: TableResult) -> None:
        result.rejected += 1
        self.refusals.add(plan.name, raw[plan.key_index], findings)
        if self.options.bad_rows == "reject":
            self.record_reject({
                "table": plan.name, "key": raw[plan.key_index], "action": "rejected",
                "reasons": [{"column": f.column, "reason": f.reason} for f in findings],
                "row": dict(zip(plan.columns, raw, strict=True)),
            })

    def record_reject(self, record: dict) -> None:
        """A row left out or altered goes to the rejects file; a dry run only counts it."""
        if not self.options.dry_run and self.write:
            self.rejects.write(record)

    def findings_message(self) -> str:
        return "\n".join([
            f"row copy stopped: {self.refusals.headline()}; nothing was written.",
            *refusal_lines(self.report),
            "Fix the rows bad in themselves in the source, or run with -x bad_rows=reject "
            "(rows go to a rejects file) and/or -x orphans=set_null."])

    def record_copied_keys(self, plans: list[TablePlan]) -> None:
        # The tables were empty before the copy, so every row now in them is a copied one.
        for plan in plans:
            key, name = src.quote(plan.columns[plan.key_index]), src.quote(plan.name)
            if plan.shape.columns[plan.key_index].kind in INTEGER_KEYS:
                # Runs of consecutive ids, each one int8range: a few rows for a whole table.
                keys = (f"SELECT int8range(min({key}), max({key}), '[]')::text FROM ("
                        f"SELECT {key}, {key} - row_number() OVER (ORDER BY {key}) AS run "
                        f"FROM {name}) AS runs GROUP BY run")
            else:
                keys = f"SELECT {key}::text FROM {name}"
            self.connection.execute(sa.text(
                f"INSERT INTO {src.quote(self.copied_keys)} (table_name, key) "
                f"SELECT :table, k FROM ({keys}) AS copied (k)"), {"table": plan.name})

    def verify(self, plans: list[TablePlan]) -> None:
        mismatches = []
        for plan, result in zip(plans, self.report.tables, strict=True):
            count, checksum = target_checksum(self.connection, plan)
            matches = (count, checksum) == (result.written, result.checksum)
            result.verified = "ok" if matches else "MISMATCH"
            if not matches:
                mismatches.append(f"{plan.name}: wrote {result.written:,} rows with checksum "
                                  f"{result.checksum:x}, the target holds {count:,} rows with "
                                  f"checksum {checksum:x}")
        if mismatches:
            raise DataMigrationError("verification failed, the copy was rolled back:\n  "
                                     + "\n  ".join(mismatches))


def refuse_other_revision(source_path: Path, target_revision: str) -> None:
    """The dev file must be at the revision the target is at when the copy runs: then
    their schemas are the same one. A file without ``alembic_version`` is taken as the
    baseline, and the column comparison of the copy decides."""
    with src.open_source(source_path) as source:
        found = src.alembic_revisions(source)
    if found is None or found == [target_revision]:
        return
    at = ", ".join(found) if found else "no revision (its alembic_version is empty)"
    raise DataMigrationError(
        f"the dev file {source_path} is at {at}, the target at {target_revision} when 0002 "
        f"copies the rows: their schemas differ. Run `make upgrade-dev DEV_DB={source_path}` "
        "(it upgrades the dev file to the schema head) and run the cutover again; nothing "
        "was written")


def copy_rows(connection: sa.Connection, source_path: Path, options: CopyOptions,
              copied_keys: str, range_bytes: int = RANGE_BYTES) -> CopyReport:
    """Copy the dev database at ``source_path`` into the target behind ``connection``,
    recording the copied keys in the table ``copied_keys``.

    A real run first backs the file up and copies from the backup: one consistent
    snapshot, and a copy of the dev data that the cutover never touches."""
    started = time.monotonic()
    backup = None
    if not options.dry_run:
        # Watched from here to the end of the run: rows written after it are told then.
        backup = watch.watched_snapshot(source_path, options.work_dir)
        log.info(f"Backed up {source_path} to {backup}")
    log.info(f"Copying rows from {backup or source_path}")
    with src.open_source(backup or source_path) as source:
        report = RowCopy(connection, source, options, copied_keys,
                         range_bytes=range_bytes).run()
    report.snapshot = backup
    print_summary(report, options)
    # A dry run's too: its time is the rate the freeze prediction takes for the rows.
    written = sum(r.written for r in report.tables)
    rejected = sum(r.rejected for r in report.tables)
    record_step("rows", seconds=time.monotonic() - started, source=source_path,
                backup=backup, rejects_file=report.rejects_file,
                summary=f"{written:,} rows copied, {rejected:,} rejected",
                tables=[asdict(r) for r in report.tables])
    return report


def offline_comment(source_path: Path) -> str:
    """What the copy would do, for ``--sql`` output: it needs a live database to run."""
    with src.open_source(source_path) as source:
        counts = [(name, src.row_count(source, name)) for name in src.table_names(source)]
    listed = "\n".join(f"--   {name}: {count:,} rows" for name, count in counts)
    return ("-- 0002 copies the rows of the dev database " f"{source_path}\n"
            "-- into the tables of the same names, in foreign-key order, with COPY FROM STDIN,\n"
            "-- then verifies counts and checksums and resets the identity sequences:\n"
            f"{listed}\n"
            "-- The copy runs only online (alembic upgrade head); no SQL is emitted for it.\n\n")


def print_summary(report: CopyReport, options: CopyOptions) -> None:
    title = "Row copy plan (dry run, rolled back)" if options.dry_run else "Row copy"
    rows = [(r.table, r.read, r.written, r.rejected, r.nulled, r.verified, f"{r.seconds:.1f}s")
            for r in report.tables]
    log.info(f"{title}:\n" + table(
        ("table", "read", "written", "rejected", "set null", "checksum", "time"), rows))
    if report.refusals.rows:
        log.info("\n".join([f"{report.refusals.headline()}:", *refusal_lines(report)]))
    if report.rejects_file:
        log.info(f"Rejected and altered rows are in {report.rejects_file}")


def refusal_lines(report: CopyReport) -> list[str]:
    """The refused rows, root causes first, and where every finding is."""
    lines = report.refusals.lines()
    if report.findings_file:
        lines.append(f"Every finding is in {report.findings_file}")
    return lines
