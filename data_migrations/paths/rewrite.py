"""Rewrite the stored file paths to the public URLs of the uploaded objects.

The columns to rewrite are the ones the calling revision names (table, column, key): a
revision spells out the schema it runs against, never the live models. A named column
that does not exist in the target stops the step: its paths would stay unrewritten.
A stored value is understood as the app wrote it — ``uploads/...``, ``./uploads/...``,
Windows backslashes, or an absolute path under one of ``UPLOADS_PATH_ALIASES`` (and under
``UPLOADS_DIR`` itself) — and turned into a path relative to the uploads folder. Rows
whose file is in the upload manifest, verified, get that object's URL; NULL, empty values
and values that are already URLs stay.

Everything is set-based SQL joined against the manifest, so ``--sql`` shows the very
statements that run. The original strings are kept in a bookkeeping table first, so the
downgrade restores them byte for byte.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from data_migrations.run.errors import DataMigrationError
from data_migrations.run.report import bulleted, record_step, shorten, table
from data_migrations.run.sql import column_names, quote

log = logging.getLogger("cutover.paths")

URL_PATTERN = "^[A-Za-z][A-Za-z0-9+.-]*://"


@dataclass(frozen=True)
class PathColumn:
    table: str
    column: str
    key: str


@dataclass(frozen=True)
class PathFinding:
    table: str
    key: str
    column: str
    value: str
    reason: str

    def __str__(self) -> str:
        return f"{self.table} key={self.key} column {self.column}: {self.reason} " \
               f"(value {shorten(self.value)})"


def checked_columns(connection: sa.Connection | None,
                    columns: Sequence[PathColumn]) -> list[PathColumn]:
    """The given file-path columns, each of which must exist in the target (checked with a
    connection). A missing one means the schema moved on without the list: its paths
    would stay unrewritten, so it stops the step."""
    if connection is None:
        return list(columns)
    present = _existing_columns(connection)
    missing = [f"{c.table}.{c.column}" for c in columns if (c.table, c.column) not in present]
    if missing:
        raise DataMigrationError(
            f"0004 names file-path columns the target does not have: {', '.join(missing)}. "
            "A revision that renames or adds a file-path column before the cutover updates "
            "FILE_PATH_COLUMNS in alembic/versions/0004_rewrite_file_paths.py in the same "
            "change (docs/runbook.md: \"Adding a schema revision before the cutover\"); nothing "
            "of 0004 was committed")
    return list(columns)


def _existing_columns(connection: sa.Connection) -> set[tuple[str, str]]:
    inspector = sa.inspect(connection)
    return {(t, c["name"]) for t in inspector.get_table_names() for c in inspector.get_columns(t)}


def normalized_aliases(aliases: Sequence[str], uploads_dir: Path) -> list[str]:
    """Absolute folders that meant the uploads folder, with ``/`` and no trailing slash."""
    folders = [*aliases, str(uploads_dir.resolve())]
    cleaned = (a.strip().replace("\\", "/").rstrip("/") for a in folders)
    return list(dict.fromkeys(a for a in cleaned if a))


RELATIVE_PATH_FUNCTION = "pg_temp.uploads_relative_path"


class PathSql:
    """The SQL that turns a stored value into a path relative to uploads/: a temporary
    function, so every statement that uses it stays short enough to review."""

    def __init__(self, aliases: list[str]) -> None:
        self.aliases = aliases
        self.params = {f"alias_{i}": alias for i, alias in enumerate(aliases)}

    @staticmethod
    def is_path(value: str) -> str:
        return f"({value} IS NOT NULL AND {value} <> '' AND {value} !~ '{URL_PATTERN}')"

    @staticmethod
    def relative(value: str) -> str:
        return f"{RELATIVE_PATH_FUNCTION}({value})"

    def create_function(self) -> sa.TextClause:
        """The function: aliases first, then ``uploads/`` and ``./uploads/``; '//' and
        '/./' collapse; a '..' segment would leave the folder, so it gives NULL."""
        branches = "\n".join(
            f"             WHEN left(s, length(:{name}) + 1) = :{name} || '/' "
            f"THEN substr(s, length(:{name}) + 2)"
            for name in self.params)
        return sa.text(
            f"CREATE FUNCTION {RELATIVE_PATH_FUNCTION}(stored text) RETURNS text\n"
            "LANGUAGE sql IMMUTABLE AS $function$\n"
            "  SELECT CASE WHEN p ~ '(^|/)\\.\\.(/|$)' THEN NULL ELSE p END\n"
            "  FROM (SELECT regexp_replace(regexp_replace(\n"
            "          CASE\n"
            f"{branches}\n"
            "             WHEN s ~ '^(\\./)*uploads/' "
            "THEN regexp_replace(s, '^(\\./)*uploads/', '')\n"
            "          END, '/+', '/', 'g'), '(^|/)\\./', '\\1', 'g') AS p\n"
            "        FROM (SELECT replace(stored, '\\', '/') AS s) AS slashed) AS inside\n"
            "$function$").bindparams(**self.params)

    @staticmethod
    def drop_function() -> sa.TextClause:
        return sa.text(f"DROP FUNCTION {RELATIVE_PATH_FUNCTION}(text)")


def _value(col: PathColumn) -> str:
    return f"t.{quote(col.column)}"


def _uploaded_file(col: PathColumn, paths: PathSql) -> str:
    """The join condition: the manifest row of the verified file the stored path names."""
    return f"m.relative_path = {paths.relative(_value(col))} AND m.status = 'verified'"


def findings_query(col: PathColumn, paths: PathSql, manifest: str) -> sa.TextClause:
    value = _value(col)
    return sa.text(
        f"SELECT t.{quote(col.key)}::text, {value}, {paths.relative(value)} "
        f"FROM {quote(col.table)} AS t LEFT JOIN {quote(manifest)} AS m "
        f"ON {_uploaded_file(col, paths)} "
        f"WHERE {paths.is_path(value)} AND m.relative_path IS NULL")


def preflight(connection: sa.Connection, columns: list[PathColumn], paths: PathSql,
              manifest: str) -> list[PathFinding]:
    """Every stored path that cannot be rewritten, with the reason."""
    found = []
    for col in columns:
        for key, value, relative in connection.execute(findings_query(col, paths, manifest)):
            found.append(PathFinding(col.table, key, col.column, value, _reason(value, relative)))
    return found


def _reason(value: str, relative: str | None) -> str:
    if relative is not None:
        return f"file {relative!r} is not among the uploaded files"
    slashed = value.replace("\\", "/")
    if slashed.startswith("/") or slashed[1:3] == ":/" or "/../" in f"/{slashed}/":
        return "outside the uploads folder (add its folder to UPLOADS_PATH_ALIASES?)"
    return "cannot be resolved to a file under the uploads folder"


def source_paths(source: sqlite3.Connection, columns: Sequence[PathColumn]) -> dict[str, str]:
    """The values the dev database's file-path columns hold, each with a row that holds
    it (``table.column key=...``): what this step will read once the rows are copied."""
    found: dict[str, str] = {}
    for col in columns:
        if col.column not in column_names(source, col.table):
            continue  # not in the source: the row copy brings no value for it
        for key, value in source.execute(
                f"SELECT {quote(col.key)}, {quote(col.column)} FROM {quote(col.table)} "
                f"WHERE {quote(col.column)} IS NOT NULL AND {quote(col.column)} <> ''"):
            found.setdefault(str(value), f"{col.table}.{col.column} {col.key}={key}")
    return found


def relative_paths(connection: sa.Connection, values: Sequence[str], paths: PathSql
                   ) -> dict[str, str]:
    """The path below the uploads folder each stored value names, as this step reads it
    (the same SQL function), by value; values that are URLs or lead outside the folder
    are left out. The function is created in the connection's transaction, rolled back
    at the end: nothing stays."""
    try:
        connection.execute(paths.create_function())
        rows = connection.execute(sa.text(
            f"SELECT v, {paths.relative('v')} FROM unnest(CAST(:stored AS text[])) AS v "
            f"WHERE {paths.is_path('v')}"), {"stored": list(values)}).all()
    finally:
        connection.rollback()
    return {value: relative for value, relative in rows if relative is not None}


def save_originals(col: PathColumn, paths: PathSql, manifest: str,
                   rewrites: str) -> sa.TextClause:
    return sa.text(
        f"INSERT INTO {quote(rewrites)} (table_name, column_name, key, original) "
        f"SELECT '{col.table}', '{col.column}', t.{quote(col.key)}::text, {_value(col)} "
        f"FROM {quote(col.table)} AS t JOIN {quote(manifest)} AS m "
        f"ON {_uploaded_file(col, paths)} WHERE {paths.is_path(_value(col))}")


def rewrite(col: PathColumn, paths: PathSql, manifest: str) -> sa.TextClause:
    return sa.text(
        f"UPDATE {quote(col.table)} AS t SET {quote(col.column)} = m.public_url "
        f"FROM {quote(manifest)} AS m "
        f"WHERE {_uploaded_file(col, paths)} AND {paths.is_path(_value(col))}")


def restore(col: PathColumn, rewrites: str) -> sa.TextClause:
    return sa.text(
        f"UPDATE {quote(col.table)} AS t SET {quote(col.column)} = r.original "
        f"FROM {quote(rewrites)} AS r WHERE r.table_name = '{col.table}' "
        f"AND r.column_name = '{col.column}' AND r.key = t.{quote(col.key)}::text")


def forget_replaced_originals(col: PathColumn, paths: PathSql, rewrites: str) -> sa.TextClause:
    """The saved originals of rows whose value is a stored path again (make catch-up wrote
    the row anew from the dev file): forgotten, so that the rewrite saves the new one."""
    return sa.text(
        f"DELETE FROM {quote(rewrites)} AS r USING {quote(col.table)} AS t "
        f"WHERE r.table_name = '{col.table}' AND r.column_name = '{col.column}' "
        f"AND r.key = t.{quote(col.key)}::text AND {paths.is_path(_value(col))}")


def rewrite_statements(columns: list[PathColumn], paths: PathSql, manifest: str,
                       rewrites: str) -> Iterator[sa.TextClause]:
    """The statements of the rewrite, in order: keep each column's originals, then update."""
    for col in columns:
        yield save_originals(col, paths, manifest, rewrites)
        yield rewrite(col, paths, manifest)
    yield paths.drop_function()


def rewritten_columns(connection: sa.Connection, rewrites: str) -> list[PathColumn]:
    """The columns the rewrite changed, as it recorded them."""
    pairs = connection.execute(sa.text(
        f"SELECT DISTINCT table_name, column_name FROM {quote(rewrites)} ORDER BY 1, 2"))
    inspector = sa.inspect(connection)
    return [PathColumn(t, c, inspector.get_pk_constraint(t)["constrained_columns"][0])
            for t, c in pairs]


def check_findings(found: list[PathFinding], missing_files: str, dry_run: bool) -> None:
    """Stop on paths that cannot be rewritten (missing_files=fail), or list them."""
    if not found:
        return
    listed = bulleted([str(f) for f in found])
    if dry_run:
        log.info(f"{len(found):,} stored paths cannot be rewritten (missing_files={missing_files} "
                 f"would {'stop the cutover' if missing_files == 'fail' else 'keep them'}):"
                 f"\n{listed}")
        return
    if missing_files == "fail":
        raise DataMigrationError(
            f"path rewrite stopped: {len(found):,} stored paths cannot be rewritten; nothing "
            f"was changed.\n{listed}\nUpload the files, add their folders to "
            "UPLOADS_PATH_ALIASES, or run with -x missing_files=keep to leave these values "
            "as they are.")
    log.info(f"{len(found):,} stored paths are left as they are (missing_files=keep):\n{listed}")


def print_summary(connection: sa.Connection, rewrites: str, kept: int, seconds: float,
                  dry_run: bool) -> None:
    rows = [(f"{t}.{c}", n) for t, c, n in connection.execute(sa.text(
        f"SELECT table_name, column_name, count(*) FROM {quote(rewrites)} "
        "GROUP BY 1, 2 ORDER BY 1, 2"))]
    rewritten = sum(n for _, n in rows)
    title = "Path rewrite plan (dry run, rolled back)" if dry_run else "Path rewrite"
    log.info(f"{title}:\n" + table(("column", "rewritten"), rows)
             + f"\nrewritten: {rewritten:,}; left as they are: {kept:,}")
    record_step("paths", seconds=seconds, summary=f"{rewritten:,} paths rewritten, {kept:,} left",
                columns=dict(rows), kept=kept)
