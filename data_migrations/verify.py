"""Re-check a finished cutover, at any time: ``make verify ENV=prod``.

- rows: per table, the row count and checksum of the target against the source, read
  again and converted with the same settings (the rows the copy rejected stay out; the
  paths the rewrite changed are compared through their saved originals);
- sequences: every identity sequence is past its table's largest id;
- files: every object in the upload manifest is in the bucket with the manifest's size
  and CRC-64, and every URL in a file-path column is one of those objects.

Prints a pass/fail table and exits non-zero on any failure.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

import sqlalchemy as sa

import settings
from data_migrations import source as src
from data_migrations.errors import DataMigrationError
from data_migrations.file_upload import difference
from data_migrations.path_rewrite import PathColumn, rewritten_columns
from data_migrations.report import table
from data_migrations.row_copy import RowCopy, identity_columns, target_checksum
from settings.steps import CopyOptions
from storage import StorageClient, StorageError
from storage.factory import build_storage

# The bookkeeping tables of revisions 0002, 0003 and 0004.
COPIED_KEYS = "cutover_copied_keys"
FILE_MANIFEST = "cutover_file_manifest"
PATH_REWRITES = "cutover_path_rewrites"


@dataclass(frozen=True)
class Check:
    kind: str
    subject: str
    passed: bool
    detail: str


def row_checks(connection: sa.Connection, source_path: Path,
               options: CopyOptions) -> Iterator[Check]:
    has_rewrites = sa.inspect(connection).has_table(PATH_REWRITES)
    rewritten = rewritten_columns(connection, PATH_REWRITES) if has_rewrites else []
    with src.open_source(source_path) as source:
        run = RowCopy(connection, source, options, COPIED_KEYS, write=False)
        plans = run.plan()
        run.scan(plans)
    for plan, expected in zip(plans, run.report.tables, strict=True):
        originals = {c.column: PATH_REWRITES for c in rewritten
                     if c.table == plan.name}
        count, checksum = target_checksum(connection, plan, originals)
        same = (count, checksum) == (expected.written, expected.checksum)
        detail = f"{count:,} rows" if same else (
            f"source {expected.written:,} rows / target {count:,} rows"
            + ("" if count != expected.written else ", values differ (checksum)"))
        yield Check("rows", plan.name, same, detail)


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


def file_checks(connection: sa.Connection, storage: StorageClient,
                key_prefix: str) -> Iterator[Check]:
    """Every manifest row against one listing of the bucket (``storage`` has no key prefix
    of its own: the manifest holds full keys)."""
    manifest = src.quote(FILE_MANIFEST)
    rows = connection.execute(sa.text(
        f"SELECT relative_path, object_key, size, crc64 FROM {manifest}")).all()
    stored = {info.key: info for info in storage.list(key_prefix)}
    bad = [problem for row in rows if (problem := difference(row, stored.get(row.object_key)))]
    yield Check("files", "objects in the bucket", not bad,
                f"{len(rows):,} objects" if not bad else "; ".join(sorted(bad)[:5]))
    rewritten = (rewritten_columns(connection, PATH_REWRITES)
                 if sa.inspect(connection).has_table(PATH_REWRITES) else [])
    for column in rewritten:
        yield _url_check(connection, column, manifest)


def _url_check(connection: sa.Connection, column: PathColumn, manifest: str) -> Check:
    value = f"t.{src.quote(column.column)}"
    stray = connection.execute(sa.text(
        f"SELECT count(*) FROM {src.quote(column.table)} AS t WHERE {value} ~ '://' "
        f"AND NOT EXISTS (SELECT 1 FROM {manifest} AS m WHERE m.public_url = {value})"
    )).scalar_one()
    return Check("urls", f"{column.table}.{column.column}", stray == 0,
                 "every URL is an uploaded object" if stray == 0
                 else f"{stray:,} URLs point to no uploaded object")


def run_checks(connection: sa.Connection, cutover: settings.Settings) -> list[Check]:
    source_path = cutover.source_database_path()
    if source_path is None:
        raise settings.ConfigError("SOURCE_DATABASE_URL is not set: nothing to verify against")
    options = cutover.copy_options()
    checks = [*row_checks(connection, source_path, options), *sequence_checks(connection)]
    if sa.inspect(connection).has_table(FILE_MANIFEST):
        storage_settings = cutover.storage()
        unprefixed = replace(storage_settings, key_prefix="")
        with closing(build_storage(unprefixed, options.work_dir)) as storage:
            checks += file_checks(connection, storage, storage_settings.key_prefix)
    return checks


def main() -> int:
    try:
        cutover = settings.read()
        engine = sa.create_engine(cutover.database_url())
        with engine.connect() as connection:
            connection.execute(sa.text("SET TimeZone = 'UTC'"))
            checks = run_checks(connection, cutover)
    except (settings.ConfigError, DataMigrationError, StorageError, ValueError) as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return 2
    except sa.exc.OperationalError as exc:
        print(f"verify: cannot connect: {str(exc.orig).strip().splitlines()[0]}",
              file=sys.stderr)
        return 2
    print(table(("check", "subject", "result", "detail"),
                [(c.kind, c.subject, "pass" if c.passed else "FAIL", c.detail) for c in checks]))
    failed = sum(not c.passed for c in checks)
    print(f"\n{len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
