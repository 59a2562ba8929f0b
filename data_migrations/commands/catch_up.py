"""Copy the rows the cutover left in the dev file: ``make catch-up ENV=prod``.

A process still writing to the dev file during the cutover (a forgotten worker) leaves
the rows it wrote after the snapshot behind; the cutover then ends with NOT READY TO GO
LIVE and exit 3, and ``make verify`` fails naming the tables. With the app's API and
worker stopped, this command copies exactly the difference between the cutover's snapshot
and the dev file as it is now, in one transaction:

1. refused, in one line, once the app has written to the target (data_migrations/rows/
   catch_up.py: the tables must read as the copy record says the copy left them);
2. the rows new or changed since the snapshot, through the row copy's conversion, checks
   and rejects under the policies the cutover recorded, inserted or updated in place; their
   keys recorded, so that ``make downgrade REV=0001`` removes them with the others. Rows the
   dev file deleted since stay in the target (a delete would cascade to their children,
   and nothing could bring them back) and are listed;
3. when the cutover uploaded the files (0003): UPLOADS_DIR uploaded as the files step does,
   the new and changed files added to its manifest;
4. when it rewrote the paths (0004): the caught-up rows' paths rewritten as 0004 does, to
   the URLs of its FILE_PATH_COLUMNS, their originals saved for its downgrade;
5. every table checked against the new snapshot (row count and checksum), and a new copy
   record written, so ``make verify`` re-checks the target against it.

Rows still being written meanwhile end it as the cutover ends: NOT READY TO GO LIVE, exit 3.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import sqlalchemy as sa

import settings
from data_migrations.commands.adopt_dev import revisions
from data_migrations.commands.verify import recorded_path_columns, target_plans
from data_migrations.files.upload import upload_files
from data_migrations.paths import rewrite
from data_migrations.rows import watch
from data_migrations.rows.catch_up import (
    STAGE_PREFIX,
    Originals,
    caught_up_snapshot,
    copy_since,
    refuse_app_writes,
)
from data_migrations.rows.checksum import target_checksum
from data_migrations.rows.conversion import TablePlan
from data_migrations.rows.copy_record import (
    TABLE,
    CopyRecord,
    read_record,
    record_copy,
    recorded_policies,
    reread,
)
from data_migrations.rows.difference import differences, left_behind
from data_migrations.run import failure, lost_connection, run_lock
from data_migrations.run.errors import DataMigrationError
from data_migrations.run.report import log_to_stderr, table
from data_migrations.run.sql import quote
from settings import declared
from settings.steps import CopyOptions

log = logging.getLogger("cutover.catch_up")

# The bookkeeping tables of revisions 0002, 0003 and 0004, and the revision whose
# FILE_PATH_COLUMNS name the columns to rewrite.
COPIED_KEYS = "cutover_copied_keys"
FILE_MANIFEST = "cutover_file_manifest"
PATH_REWRITES = "cutover_path_rewrites"
PATHS_REVISION = "0004"
# The files step's manifest of this run, merged into 0003's; dropped at commit.
STAGE_MANIFEST = STAGE_PREFIX + "file_manifest"
MANIFEST_COLUMNS = ("relative_path", "object_key", "public_url", "size", "mtime_ns", "crc64",
                    "status", "acl", "storage_class", "sse")


def originals_of(connection: sa.Connection) -> Originals:
    """Per table, the columns 0004 rewrote, with the table of their originals."""
    found: Originals = {}
    for column in recorded_path_columns(connection):
        found.setdefault(column.table, {})[column.column] = PATH_REWRITES
    return found


def has_table(connection: sa.Connection, name: str) -> bool:
    return sa.inspect(connection).has_table(name)


def upload_files_since(connection: sa.Connection, cutover: settings.Settings) -> int:
    """UPLOADS_DIR uploaded as the files step does (an object already stored with the same
    bytes is skipped); the files new or changed since 0003's manifest are added to it.
    Returns how many."""
    connection.execute(sa.text(
        f"CREATE TEMPORARY TABLE {STAGE_MANIFEST} (LIKE {FILE_MANIFEST} INCLUDING DEFAULTS) "
        "ON COMMIT DROP"))
    upload_files(connection, cutover.upload_options(), cutover.storage, STAGE_MANIFEST)
    listed = ", ".join(MANIFEST_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in MANIFEST_COLUMNS[1:])
    return connection.execute(sa.text(
        f"INSERT INTO {FILE_MANIFEST} AS m ({listed}) SELECT {listed} FROM {STAGE_MANIFEST} "
        f"ON CONFLICT (relative_path) DO UPDATE SET {updates}, uploaded_at = now() "
        "WHERE (m.size, m.crc64, m.mtime_ns) IS DISTINCT FROM "
        "(EXCLUDED.size, EXCLUDED.crc64, EXCLUDED.mtime_ns)")).rowcount


def file_path_columns() -> Sequence[rewrite.PathColumn]:
    """The columns revision 0004 rewrites, as it names them itself."""
    return revisions().get_revision(PATHS_REVISION).module.FILE_PATH_COLUMNS


def caught_up_keys(connection: sa.Connection, name: str, key: str) -> set[str]:
    """The keys of the rows this run wrote to a table, as text."""
    return set(connection.execute(sa.text(
        f"SELECT {quote(key)}::text FROM {quote(STAGE_PREFIX + name)}")).scalars())


def rewrite_paths_since(connection: sa.Connection, cutover: settings.Settings) -> None:
    """The caught-up rows' stored paths rewritten to their objects' URLs as 0004 does, the
    originals saved; a path that cannot be rewritten is told as 0004 tells it."""
    options = cutover.path_options()
    columns = rewrite.checked_columns(connection, file_path_columns())
    paths = rewrite.PathSql(rewrite.normalized_aliases(options.aliases, options.uploads_dir))
    connection.execute(paths.create_function())
    for column in columns:
        connection.execute(rewrite.forget_replaced_originals(column, paths, PATH_REWRITES))
    written = {c.table: caught_up_keys(connection, c.table, c.key) for c in columns}
    found = [f for f in rewrite.preflight(connection, columns, paths, FILE_MANIFEST)
             if f.key in written[f.table]]
    rewrite.check_findings(found, options.missing_files, dry_run=False)
    for statement in rewrite.rewrite_statements(columns, paths, FILE_MANIFEST, PATH_REWRITES):
        connection.execute(statement)


def copy_policies(record: CopyRecord, cutover: settings.Settings) -> CopyOptions:
    """The policies the cutover recorded, unless this run sets its own (``-x bad_rows=reject``
    for a late row PostgreSQL would refuse); the new copy record keeps the ones used."""
    given = cutover.copy_options()
    recorded = recorded_policies(record, given)
    return replace(recorded, **{name: getattr(given, name) for name, setting in
                                (("bad_rows", declared.BAD_ROWS), ("orphans", declared.ORPHANS))
                                if setting.name in cutover.explicit})


def check_and_record(connection: sa.Connection, record: CopyRecord, plans: list[TablePlan],
                     options: CopyOptions, snapshot: Path, rejects: Path | None) -> None:
    """Every table against the new snapshot, then the new snapshot recorded as the one the
    target was copied from."""
    report = reread(connection, snapshot, options)
    originals = originals_of(connection)
    expected = {r.table: (r.written, r.checksum) for r in report.tables}
    differ = [plan.name for plan in plans
              if target_checksum(connection, plan, originals.get(plan.name))
              != expected[plan.name]]
    if differ:
        raise DataMigrationError(
            f"catch-up verification failed: the target's {', '.join(differ)} do not read as "
            f"the dev file's snapshot {snapshot} (row count or checksum); nothing was copied")
    report.snapshot = snapshot
    report.rejects_file = rejects or record.rejects_file
    record_copy(connection, TABLE, record.source, report, options)


def catch_up_rows(connection: sa.Connection, cutover: settings.Settings,
                  record: CopyRecord, deleted: dict[str, int]) -> None:
    """The rows, files and paths since the snapshot, checked and recorded; ``deleted``: per
    table, the rows the dev file deleted since, which the target keeps."""
    options = copy_policies(record, cutover)
    snapshot = caught_up_snapshot(record.source, record.snapshot, options.work_dir)
    log.info(f"Copying the rows written to {record.source} since the cutover's snapshot, "
             f"from the new snapshot {snapshot} (bad_rows={options.bad_rows}, "
             f"orphans={options.orphans})")
    caught = {d.table: d for d in differences(snapshot, record.snapshot)}
    report = copy_since(connection, snapshot, record.snapshot, options, COPIED_KEYS,
                        {name: d.left_behind for name, d in caught.items()})
    files = upload_files_since(connection, cutover) if has_table(connection, FILE_MANIFEST) \
        else None
    if has_table(connection, PATH_REWRITES):
        rewrite_paths_since(connection, cutover)
    check_and_record(connection, record, target_plans(connection, record), options,
                     snapshot, report.rejects_file)
    rows = [(r.table, caught[r.table].new if r.table in caught else 0,
             caught[r.table].changed if r.table in caught else 0, r.rejected,
             deleted.get(r.table, 0)) for r in report.tables]
    log.info("Caught up:\n" + table(
        ("table", "new", "changed", "rejected", "deleted in the dev file (kept)"),
        [row for row in rows if any(row[1:])]))
    if files is not None:
        log.info(f"{files:,} files new or changed since the cutover's upload added to "
                 f"{FILE_MANIFEST}")
    if report.rejects_file:
        log.info(f"Rejected and altered rows are in {report.rejects_file}")


def caught_up(connection: sa.Connection, cutover: settings.Settings) -> Path | None:
    """Catch up in the connection's transaction; the dev file caught up from, None when
    there was nothing to do."""
    record = read_record(connection)
    if record is None:
        raise DataMigrationError(
            "catch-up refused: the target holds no record of a row copy "
            "(no cutover_row_copy_runs); run make migrate with SOURCE_DATABASE_URL set first")
    for what, path in (("the cutover's snapshot", record.snapshot),
                       ("the dev file", record.source)):
        if not path.is_file():
            raise DataMigrationError(
                f"catch-up refused: {what} {path} is gone, so the rows written after the "
                "snapshot cannot be told apart; nothing was copied")
    refuse_app_writes(connection, record, target_plans(connection, record),
                      originals_of(connection))
    found = differences(record.source, record.snapshot)
    if not left_behind(found):
        log.info(f"Nothing to catch up: {record.source} holds no row new or changed since the "
                 f"cutover's snapshot {record.snapshot}.")
        return None
    catch_up_rows(connection, cutover, record, {d.table: d.deleted for d in found})
    return record.source


def catch_up(x_args: dict[str, str]) -> int:
    """Catch up and commit; then the dev file as the cutover's end tells it: exit 3 while
    rows are still being written to it."""
    cutover = settings.read(x_args)
    engine = sa.create_engine(cutover.database_url())
    with failure.connect(engine) as connection, \
            lost_connection.translated(connection, "catch-up"):
        run_lock.take(connection, "catch-up")  # one cutover run at a time
        with connection.begin():
            dev_file = caught_up(connection, cutover)
    engine.dispose()
    found = watch.since_snapshot()
    if dev_file is None or found is None:
        return 0
    return watch.tell(found, str(dev_file), cutover[declared.LEAVE_DEV_ROWS],
                      os.environ.get("ENV") or None, failure.NOT_READY_EXIT)


def main(argv: list[str] | None = None) -> int:
    log_to_stderr()
    x_args = settings.x_arguments(argv, "python -m data_migrations.commands.catch_up")
    return failure.command("the catch-up", "nothing of it was committed",
                           lambda: catch_up(x_args))


if __name__ == "__main__":
    sys.exit(main())
