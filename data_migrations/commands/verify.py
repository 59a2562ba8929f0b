"""Re-check a finished cutover, at any time: ``make verify ENV=prod``.

- rows: per table, the row count and checksum of the target against the snapshot the
  row copy read (its backup of the dev file), converted again under the policies the copy
  recorded in ``cutover_row_copy_runs`` (the rows it rejected stay out, the references it
  set to NULL are NULL; the paths the rewrite changed are compared through their saved
  originals). Nothing needs exporting again. If the snapshot is gone, the target is
  compared with the counts and checksums the copy recorded;
- snapshot: the snapshot still reads as what the copy wrote;
- sequences: every identity sequence is past its table's largest id;
- files: every object in the upload manifest is in the bucket with the manifest's size
  and CRC-64, and every URL in a file-path column is one of those objects;
- disk: every file of the manifest is in UPLOADS_DIR as it was uploaded (size, modification
  time, and with ``-x checksum=true`` CRC-64): one the app changed since holds bytes the
  bucket lacks;
- fetch: every such URL (``-x urls=sample:N``: N of them, ``-x urls=none``: none) answers
  a request made as the app makes it, with no credentials, with the object's size
  (data_migrations/files/url_fetch.py).

- left: the dev file against the snapshot (data_migrations/rows/difference.py): rows new or
  changed since fail the check, naming the tables, since going live would lose them
  (``make catch-up`` copies them; ``LEAVE_DEV_ROWS=true`` leaves them on purpose); rows
  deleted since are a note, the target keeps them.

The files changed since their upload are listed in the notes, and fail the ``disk``
check; files deleted since are a note. Prints a pass/fail table and exits non-zero on any failure.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import sqlalchemy as sa

import settings
from data_migrations.files.ledger import difference
from data_migrations.files.url_fetch import Target, chosen, fetch_all
from data_migrations.paths.rewrite import PathColumn, rewritten_columns
from data_migrations.report_page import record
from data_migrations.rows import source as src
from data_migrations.rows.checksum import target_checksum, target_plan
from data_migrations.rows.conversion import TablePlan
from data_migrations.rows.copy_record import CopyRecord, read_record, recorded_policies, reread
from data_migrations.rows.difference import counts_text, differences, left_behind
from data_migrations.rows.target import identity_columns
from data_migrations.rows.watch import LEAVE_SETTING
from data_migrations.run import failure, lost_connection, run_lock
from data_migrations.run.errors import DataMigrationError
from data_migrations.run.report import log_to_stderr, table
from data_migrations.run.storage_factory import build_storage
from settings import declared
from settings.steps import CopyOptions
from storage import StorageClient, file_crc64

# The bookkeeping tables of revisions 0002, 0003 and 0004.
COPIED_KEYS = "cutover_copied_keys"
FILE_MANIFEST = "cutover_file_manifest"
PATH_REWRITES = "cutover_path_rewrites"

log = logging.getLogger("cutover.verify")
# The files changed since their upload that the notes name, and the check's detail.
CHANGED_LISTED = 20
CHANGED_SHOWN = 5

# Per table: (rows, checksum).
Figures = dict[str, tuple[int, int]]


@dataclass(frozen=True)
class Check:
    kind: str
    subject: str
    passed: bool
    detail: str


def target_plans(connection: sa.Connection, record: CopyRecord) -> list[TablePlan]:
    """The copied tables as the target defines them, parents first."""
    metadata = sa.MetaData()
    metadata.reflect(connection, only=lambda name, _: name in record.tables)
    return [target_plan(target) for target in metadata.sorted_tables]


def snapshot_figures(connection: sa.Connection, record: CopyRecord,
                     options: CopyOptions) -> Figures:
    """What the copy writes from the snapshot under the recorded policies, read again."""
    report = reread(connection, record.snapshot, recorded_policies(record, options))
    return {r.table: (r.written, r.checksum) for r in report.tables}


def recorded_figures(record: CopyRecord) -> Figures:
    return {name: (f.written, f.checksum) for name, f in record.tables.items()}


def snapshot_check(record: CopyRecord, figures: Figures) -> Check:
    recorded = recorded_figures(record)
    differ = sorted(name for name in recorded if figures.get(name) != recorded[name])
    return Check("snapshot", record.snapshot.name, not differ,
                 "reads as the cutover copied it" if not differ
                 else f"differs from what the cutover copied in {', '.join(differ)}")


def recorded_path_columns(connection: sa.Connection) -> list[PathColumn]:
    """The file-path columns revision 0004 rewrote, as it recorded them."""
    if not sa.inspect(connection).has_table(PATH_REWRITES):
        return []
    return rewritten_columns(connection, PATH_REWRITES)


def row_checks(connection: sa.Connection, plans: list[TablePlan], expected: Figures,
               rewritten: list[PathColumn]) -> Iterator[Check]:
    for plan in plans:
        originals = {c.column: PATH_REWRITES for c in rewritten
                     if c.table == plan.name}
        count, checksum = target_checksum(connection, plan, originals)
        rows, _ = expected[plan.name]
        same = (count, checksum) == expected[plan.name]
        detail = f"{count:,} rows" if same else (
            f"snapshot {rows:,} rows / target {count:,} rows"
            + ("" if count != rows else ", values differ (checksum)"))
        yield Check("rows", plan.name, same, detail)


def left_behind_check(record: CopyRecord, leave: bool) -> tuple[list[Check], list[str]]:
    """The dev file against the snapshot: rows new or changed since fail the check (going
    live would lose them) unless ``leave`` says they stay on purpose; deleted rows are a
    note (the target keeps them)."""
    if not record.snapshot.is_file():
        return [], []
    if not record.source.is_file():
        return [], [f"the dev file {record.source} is gone: rows written to it after the "
                    "cutover's snapshot cannot be counted"]
    found = differences(record.source, record.snapshot)
    if not found:
        return [Check("left", record.source.name, True, "no rows written to the dev file "
                      "after the cutover's snapshot")], []
    behind = left_behind(found)
    detail = (f"not in the target: {counts_text(behind)}" if behind
              else "only deleted rows (the target keeps them)")
    if behind and leave:
        detail += f"; left on purpose ({LEAVE_SETTING})"
    elif behind:
        detail += "; stop the app's API and worker, then make catch-up"
    notes = ["rows written to the dev file after the cutover's snapshot (new and changed ones "
             "are not in the target; deleted ones stay in it):"]
    notes += [f"  {d.table}: {d.new:,} new, {d.changed:,} changed, {d.deleted:,} deleted"
              for d in found]
    return [Check("left", record.source.name, not behind or leave, detail)], notes


def copied_rows_checks(connection: sa.Connection, record: CopyRecord, plans: list[TablePlan],
                       options: CopyOptions, rewritten: list[PathColumn]) -> list[Check]:
    """The target against the snapshot, or against the recorded figures without it."""
    log.info(f"Verifying the row copy of {record.copied_at:%Y-%m-%d %H:%M:%S %Z} from the "
             f"snapshot {record.snapshot} (bad_rows={record.bad_rows}, orphans={record.orphans}"
             + (f", rejects in {record.rejects_file})" if record.rejects_file else ")"))
    if not record.snapshot.is_file():
        log.info(f"The cutover's snapshot {record.snapshot} is gone: the rows are compared with "
                 "the counts and checksums recorded when they were copied; rows written to the "
                 "dev file since cannot be counted.")
        return list(row_checks(connection, plans, recorded_figures(record), rewritten))
    figures = snapshot_figures(connection, record, options)
    return [snapshot_check(record, figures),
            *row_checks(connection, plans, figures, rewritten)]


def sequence_checks(connection: sa.Connection) -> Iterator[Check]:
    tables = sorted(sa.inspect(connection).get_table_names())
    for name, column in identity_columns(connection, tables):
        quoted = src.quote(column)
        largest, last, called = connection.execute(sa.text(
            f"SELECT (SELECT max({quoted}) FROM {src.quote(name)}), last_value, is_called "
            f"FROM {_sequence(connection, name, column)}")).one()
        next_id = last + 1 if called else last
        ok = largest is None or next_id > largest
        yield Check("sequence", f"{name}.{column}", ok,
                    f"next {next_id:,}, largest id {largest if largest is not None else '-'}")


def _sequence(connection: sa.Connection, table_name: str, column: str) -> str:
    return connection.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                              {"t": table_name, "c": column}).scalar_one()


def file_checks(connection: sa.Connection, storage: StorageClient, key_prefix: str,
                rewritten: list[PathColumn]) -> Iterator[Check]:
    """Every manifest row against one listing of the bucket (``storage`` has no key prefix
    of its own: the manifest holds full keys)."""
    manifest = src.quote(FILE_MANIFEST)
    rows = connection.execute(sa.text(
        f"SELECT relative_path, object_key, size, crc64 FROM {manifest}")).all()
    stored = {info.key: info for info in storage.list(key_prefix)}
    bad = [problem for row in rows if (problem := difference(row, stored.get(row.object_key)))]
    yield Check("files", "objects in the bucket", not bad,
                f"{len(rows):,} objects" if not bad else "; ".join(sorted(bad)[:5]))
    for column in rewritten:
        yield _url_check(connection, column, manifest)


def manifest_files(connection: sa.Connection) -> Sequence[sa.Row]:
    """Each manifest row's file as uploaded: relative path, size, modification time (None
    in a manifest written before it was recorded) and CRC-64."""
    manifest = src.quote(FILE_MANIFEST)
    columns = {c["name"] for c in sa.inspect(connection).get_columns(FILE_MANIFEST)}
    mtime = "mtime_ns" if "mtime_ns" in columns else "NULL"
    return connection.execute(sa.text(
        f"SELECT relative_path, size, {mtime} AS mtime_ns, crc64 FROM {manifest} "
        "ORDER BY relative_path")).all()


def file_change(row: sa.Row, uploads_dir: Path, checksum: bool) -> str | None:
    """How the file on disk differs from its upload, if it does; "gone" when it is."""
    path = uploads_dir / row.relative_path
    try:
        stat = path.stat()
        if stat.st_size != row.size:
            return f"{row.size:,} bytes uploaded, {stat.st_size:,} now"
        if row.mtime_ns is not None and stat.st_mtime_ns != row.mtime_ns:
            return "modified since its upload"
        if checksum and file_crc64(path) != int(row.crc64):
            return "other bytes than uploaded (CRC-64), same size and modification time"
    except FileNotFoundError:
        return "gone"
    except OSError as error:  # not readable by verify: not known to be as uploaded
        return f"cannot be read ({error.strerror})"
    return None


def disk_check(connection: sa.Connection, uploads_dir: Path,
               checksum: bool) -> tuple[list[Check], list[str]]:
    """Every manifest file against UPLOADS_DIR now: those changed since their upload fail
    the check and are listed in the notes, as the rows written after the snapshot are;
    those deleted since are a note (the bucket holds them)."""
    if not uploads_dir.is_dir():
        return [], [f"UPLOADS_DIR {uploads_dir} is not here: the files cannot be compared "
                    "with their uploads"]
    rows = manifest_files(connection)
    found = {row.relative_path: change for row in rows
             if (change := file_change(row, uploads_dir, checksum))}
    changed = [f"{path}: {change}" for path, change in found.items() if change != "gone"]
    notes = disk_notes(len(found) - len(changed), changed,
                       any(row.mtime_ns is None for row in rows), checksum)
    compared = "size, modification time" + (", CRC-64" if checksum else "")
    detail = (f"{len(rows) - len(found):,} files as uploaded ({compared})" if not changed
              else f"{len(changed):,} files changed since their upload: "
              + ", ".join(line.partition(":")[0] for line in changed[:CHANGED_SHOWN]))
    return [Check("disk", "files since their upload", not changed, detail)], notes


def disk_notes(gone: int, changed: list[str], no_mtimes: bool, checksum: bool) -> list[str]:
    """What the disk check found beyond pass or fail, and the changed files by name."""
    notes = [] if not gone else [f"{gone:,} files of the manifest are gone from UPLOADS_DIR "
                                 "since their upload (the bucket holds them; not a failure)"]
    if no_mtimes:
        notes.append("the manifest records no modification times: files compared by size"
                     + (" and CRC-64" if checksum else " (-x checksum=true compares bytes)"))
    if changed:
        more = len(changed) - CHANGED_LISTED
        notes += ["files changed in UPLOADS_DIR since their upload (the bucket holds the bytes "
                  "they had then):", *(f"  {line}" for line in changed[:CHANGED_LISTED])]
        notes += [f"  ... and {more:,} more"] if more > 0 else []
    return notes


def _url_check(connection: sa.Connection, column: PathColumn, manifest: str) -> Check:
    value = f"t.{src.quote(column.column)}"
    stray = connection.execute(sa.text(
        f"SELECT count(*) FROM {src.quote(column.table)} AS t WHERE {value} ~ '://' "
        f"AND NOT EXISTS (SELECT 1 FROM {manifest} AS m WHERE m.public_url = {value})"
    )).scalar_one()
    return Check("urls", f"{column.table}.{column.column}", stray == 0,
                 "every URL is an uploaded object" if stray == 0
                 else f"{stray:,} URLs point to no uploaded object")


def fetch_targets(connection: sa.Connection, columns: list[PathColumn]) -> list[Target]:
    """Every distinct URL of the rewritten columns that is an uploaded object, with its size
    (a URL that is none is the ``urls`` check's failure)."""
    manifest = src.quote(FILE_MANIFEST)
    selects = [f"SELECT m.public_url, m.size, m.acl FROM {src.quote(c.table)} AS t JOIN "
               f"{manifest} AS m ON m.public_url = t.{src.quote(c.column)}" for c in columns]
    if not selects:
        return []
    rows = connection.execute(sa.text(" UNION ".join(selects) + " ORDER BY 1")).all()
    return [Target(url, size, acl) for url, size, acl in rows]


def fetch_checks(connection: sa.Connection, columns: list[PathColumn], count: int | None,
                 max_concurrent: int) -> list[Check]:
    """The rewritten URLs fetched as the app fetches them: one row per failure class, or
    one passing row."""
    every = fetch_targets(connection, columns)
    targets = chosen(every, count)
    if not targets:
        return []
    log.info(f"Fetching {len(targets):,} of {len(every):,} URLs as the app does (no "
             f"credentials, no proxy), {max_concurrent} at a time")
    failures = fetch_all(targets, max_concurrent)
    if not failures:
        sample = "" if len(targets) == len(every) else f" (a random {len(targets):,} of " \
                                                        f"{len(every):,})"
        return [Check("fetch", "URLs", True, f"{len(targets):,} fetched{sample}, each "
                                             "answers 2xx with its object's size")]
    return [Check("fetch", f.failure.subject, False, f.detail) for f in failures]


def run_checks(connection: sa.Connection,
               cutover: settings.Settings) -> tuple[list[Check], list[str]]:
    """Every check, and the notes that go with them."""
    record = read_record(connection)
    if record is None:
        raise DataMigrationError(
            "the target holds no record of a row copy (no cutover_row_copy_runs): nothing to "
            "verify against; run make migrate with SOURCE_DATABASE_URL set first")
    plans = target_plans(connection, record)
    options = cutover.copy_options()
    rewritten = recorded_path_columns(connection)
    checks = [*copied_rows_checks(connection, record, plans, options, rewritten),
              *sequence_checks(connection)]
    left, notes = left_behind_check(record, cutover[declared.LEAVE_DEV_ROWS])
    checks += left
    if sa.inspect(connection).has_table(FILE_MANIFEST):
        storage_settings = cutover.storage()
        unprefixed = replace(storage_settings, key_prefix="")
        with closing(build_storage(unprefixed, options.work_dir)) as storage:
            checks += file_checks(connection, storage, storage_settings.key_prefix, rewritten)
        disk, noted = disk_check(connection, cutover[declared.UPLOADS_DIR],
                                 cutover[declared.CHECKSUM_EVERY_FILE])
        checks += disk
        notes += noted
        checks += fetch_checks(connection, rewritten, cutover[declared.VERIFY_URLS],
                               storage_settings.max_concurrent)
    return checks, notes


def main(argv: list[str] | None = None) -> int:
    """Check the cutover: the table of checks is the answer, on stdout; what verify says
    on the way and its failures are log lines on stderr."""
    log_to_stderr()
    x_args = settings.x_arguments(argv, "python -m data_migrations.commands.verify")
    return failure.command("verify", "verify changes nothing", lambda: verify(x_args),
                           also=(ValueError,))


def verify(x_args: dict[str, str]) -> int:
    """Run every check and print the table: 0 when all pass, 1 otherwise; the report and
    its page hold the checks too."""
    with record.reported("verify", also=(ValueError,)) as run:
        cutover = settings.read(x_args)
        run.settings = cutover
        checks, notes = checked(cutover)
        run.figures.update(checks=[asdict(check) for check in checks], notes=notes)
    print(table(("check", "subject", "result", "detail"),
                [(c.kind, c.subject, "pass" if c.passed else "FAIL", c.detail) for c in checks]))
    if notes:
        print("\n" + "\n".join(notes))
    failed = sum(not c.passed for c in checks)
    print(f"\n{len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


def checked(cutover: settings.Settings) -> tuple[list[Check], list[str]]:
    engine = sa.create_engine(cutover.database_url())
    with engine.connect() as connection, \
            lost_connection.translated(connection, "verify", read_only=True):
        run_lock.take(connection, "verify")  # one cutover run at a time
        connection.execute(sa.text("SET TimeZone = 'UTC'"))
        return run_checks(connection, cutover)


if __name__ == "__main__":
    sys.exit(main())
