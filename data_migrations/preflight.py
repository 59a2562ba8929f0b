"""The preflight of the whole chain: before the first pending revision writes anything,
check what every pending step will need, and stop with one line per problem.

Each data revision declares its checks as ``PREFLIGHT``, a tuple of the functions below;
alembic/env.py works out the pending revisions (the database's current revision up to the
command's destination) and runs each check they declare once, in chain order. A check
takes the run's settings and returns its problems (an empty list when all is well); it
only reads, except for the probe files it writes and removes again and the folders it
creates when they are missing (WORK_DIR, REPORTS_DIR).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from data_migrations import file_upload, path_rewrite, presync_record
from data_migrations.errors import DataMigrationError
from data_migrations.file_scan import Exclusions, scan_folder
from data_migrations.report import Progress
from data_migrations.source import open_source, quote
from settings import ConfigError, Settings, declared
from settings.steps import PathOptions
from storage import StorageError
from storage.factory import build_storage

log = logging.getLogger("cutover.preflight")

Check = Callable[[Settings], list[str]]
R = TypeVar("R")
WRITE_PROBE_PREFIX = ".preflight-"  # the file that shows a folder takes writes
LISTED = 20  # refused uploads entries named before "... and N more"
# SQLite virtual machine steps between two looks at the clock during the integrity check.
SQLITE_STEPS_PER_TICK = 100_000


class PreflightError(DataMigrationError):
    """Problems found before anything was written; alembic/env.py prints each as a
    ``FAILED:`` line."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\nFAILED: ".join(problems))
        self.problems = list(problems)


def pending_revisions(script: ScriptDirectory, current: Sequence[str],
                      destination: str | None) -> list[Script]:
    """The revisions an upgrade from ``current`` to ``destination`` runs, in chain order;
    none for a destination at or below the current revision (a downgrade)."""
    if destination is None:  # "base": only a downgrade goes there
        return []
    try:
        upgrades = script.iterate_revisions(destination, tuple(current), implicit_base=True)
        return list(reversed(list(upgrades)))
    except RevisionError:  # not an upgrade target from here: Alembic's own error says so
        return []


def declared_checks(revisions: Iterable[Script]) -> list[Check]:
    """Every check the revisions declare, each once, in chain order."""
    checks = [check for revision in revisions
              for check in getattr(revision.module, "PREFLIGHT", ())]
    return list(dict.fromkeys(checks))


def run(cutover: Settings, revisions: Sequence[Script]) -> None:
    """Run the checks of ``revisions``; raise PreflightError naming every problem."""
    checks = declared_checks(revisions)
    # Only the data steps declare checks, and without a source they do nothing.
    if not checks or cutover[declared.SOURCE_DATABASE_URL] is None:
        return
    names = ", ".join(r.revision for r in revisions)
    log.info(f"Preflight of {names}: checking the source, the folders and the storage "
             "before anything is written.")
    problems = [problem for check in checks for problem in check(cutover)]
    if problems:
        log.info(f"Preflight: {len(problems)} problem{'s' if len(problems) > 1 else ''}; "
                 "nothing was written, the database is as it was.")
        raise PreflightError(problems)
    log.info("Preflight passed.")


# ------------------------------------------------------------------ the checks

def source_intact(cutover: Settings) -> list[str]:
    """SOURCE_DATABASE_URL names a readable SQLite file that passes ``PRAGMA quick_check``."""
    try:
        path = cutover.source_database_path()
    except ConfigError as error:
        return [str(error)]
    assert path is not None  # run() checks the source is set
    named = f"SOURCE_DATABASE_URL names {path}, which"
    try:
        with path.open("rb") as file:
            file.read(1)
    except OSError as error:
        return [f"{named} cannot be read ({error.strerror or error})"]
    try:
        findings = quick_check(path)
    except sqlite3.DatabaseError as error:
        return [f"{named} is not an intact SQLite file ({error})"]
    if findings != ["ok"]:
        shown = "; ".join(findings[:3]) + (f"; ... {len(findings) - 3} more" if
                                           len(findings) > 3 else "")
        return [f"{named} is not an intact SQLite file (PRAGMA quick_check: {shown})"]
    return []


def quick_check(path: Path) -> list[str]:
    """What ``PRAGMA quick_check`` says of each table and its indexes (``["ok"]`` when
    the file is intact), table by table so that a large file shows progress."""
    with open_source(path) as source:
        tables = [name for (name,) in source.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        progress = Progress(log, f"checking {path.name}", len(tables), "tables")
        # A long table still prints a line every few seconds.
        source.set_progress_handler(lambda: progress.advance(0), SQLITE_STEPS_PER_TICK)
        findings = []
        for table in tables:
            findings += [row[0] for row in source.execute(f"PRAGMA quick_check({quote(table)})")
                         if row[0] != "ok"]
            progress.advance()
    return findings or ["ok"]


def uploads_readable(cutover: Settings) -> list[str]:
    """UPLOADS_DIR exists and every folder and file in it can be read; with
    ``unsafe_files=fail`` nothing in it is refused (links outside it, special files)."""
    options = cutover.upload_options()
    root = options.uploads_dir
    if not root.is_dir():
        return [f"UPLOADS_DIR {root} is not an existing folder (set UPLOADS_DIR to the app's "
                "uploads folder)"]
    progress = Progress(log, f"scanning {root}", None, "entries")
    scan = scan_folder(root, options.exclude, on_folder=progress.advance)
    if options.unsafe_files != "fail" or not scan.refused:
        return []
    refused = [f"UPLOADS_DIR {scan.root}: {refusal}" for refusal in scan.refused]
    if len(refused) > LISTED:
        refused[LISTED:] = [f"UPLOADS_DIR {scan.root}: ... and {len(refused) - LISTED:,} "
                            "more entries that cannot be uploaded"]
    return refused


def storage_ready(cutover: Settings) -> list[str]:
    """The storage settings are complete, nothing the upload writes lies in UPLOADS_DIR,
    and (unless this is a dry run) the storage preflight passes: credentials, bucket, every
    policy action a run calls (one it can do without is logged, not a problem), a probe
    object written, read back and deleted; each call retried as the data steps retry."""
    options = cutover.upload_options()
    try:
        storage_settings = cutover.storage()
        if options.uploads_dir.is_dir():  # a missing one is uploads_readable's to name
            file_upload.check_folders(options, storage_settings)
    except ConfigError as error:
        return [str(error)]
    if options.dry_run:  # the plan touches no storage
        return []
    if writable(declared.WORK_DIR, cutover):  # the probe's scratch file goes there
        return []  # work_dir_writable names it
    try:
        with closing(build_storage(storage_settings, options.work_dir)) as storage:
            doing_without = storage.preflight(retried)
    except (StorageError, OSError) as error:
        return [str(error)]
    for note in doing_without:
        log.info(note)
    return []


def retried(action: Callable[[], R], name: str) -> R:
    """A storage call of the preflight, retried as the data steps retry theirs (a burst of
    5xx, a store down for a while); what still fails is a StorageError, as from one call."""
    try:
        return file_upload.retrying(action, name)
    except file_upload.ActionFailure as failure:
        cause = failure.__cause__
        if isinstance(cause, StorageError) and cause.denied:
            raise cause from cause.__cause__  # refused at once: the call's own error says all
        raise StorageError(str(failure)) from cause


def presync_record_usable(cutover: Settings) -> list[str]:
    """No presync is uploading to the same target, and its record, if there is one, can
    be read: the files step reads it."""
    options = cutover.upload_options()
    try:
        target = cutover.storage()
    except ConfigError:  # storage_ready names it
        return []
    if not presync_record.record_path(options, target).parent.is_dir():
        return []  # no presync has run: nothing to read (and WORK_DIR may not exist yet)
    try:
        with presync_record.opened(options, target, create=False,
                                   who="the preflight of a cutover"):
            return []
    except DataMigrationError as error:
        return [str(error)]


def prune_guarded(cutover: Settings) -> list[str]:
    """With ``-x prune=true``, what the files step would delete passes prune's guards
    (file_upload.prune_refusal): checked here, before the first step writes, so that a
    cutover never stops at its files step over prune after the rows step committed."""
    options = cutover.upload_options()
    if not options.prune_objects or options.dry_run or not options.uploads_dir.is_dir():
        return []  # the plan touches no storage; a missing folder is uploads_readable's
    try:
        target = cutover.storage()
    except ConfigError:  # storage_ready names it
        return []
    if not presync_record.record_path(options, target).exists():
        return []  # no presync, nothing to prune (and no lock file to leave)
    try:
        with presync_record.opened(options, target, create=False,
                                   who="the preflight of a cutover") as record, \
                closing(build_storage(target, options.work_dir)) as storage:
            if record is None or not record.entries:
                return []
            scan = scan_folder(options.uploads_dir, options.exclude)
            try:
                present = retried(lambda: {info.key: info for info in storage.list()},
                                  "listing of the bucket")
            except StorageError as error:  # unchecked is no pass: 0002 would commit first
                return [f"-x prune=true could not be checked: {error}. Run again once the "
                        "store answers, or without -x prune=true to upload without deleting"]
            orphans = file_upload.orphans_of(record, scan, present)
            refusal = file_upload.prune_refusal(record, scan, orphans,
                                                options.prune_max_delete) if orphans else None
    except (DataMigrationError, StorageError, OSError):
        # A record that cannot be used, or storage that cannot be reached: named by
        # presync_record_usable and storage_ready (and the presync's own opening of it).
        return []
    return [refusal] if refusal else []


@dataclass(frozen=True)
class ReferencedFilesKept:
    """The path rewrite's check: no UPLOAD_EXCLUDE pattern leaves out a file that rows
    of the dev database reference, as the rewrite (data_migrations/path_rewrite.py) reads
    their ``columns``; otherwise the rows and files steps would commit and the rewrite
    stop over paths it cannot rewrite. Skipped once the files step has written its
    ``manifest``: the rewrite checks against that itself."""

    columns: tuple[path_rewrite.PathColumn, ...]
    manifest: str

    def __call__(self, cutover: Settings) -> list[str]:
        options, path_options = cutover.upload_options(), cutover.path_options()
        try:
            source = cutover.source_database_path()
            url = cutover.database_url()
        except ConfigError:  # source_intact names the source; no URL: a connection handed in
            return []
        if source is None or not options.exclude or path_options.missing_files != "fail":
            return []  # with missing_files=keep the rewrite leaves such paths and lists them
        try:
            with open_source(source) as connection:
                stored = path_rewrite.source_paths(connection, self.columns)
        except sqlite3.Error:  # source_intact names it
            return []
        referenced = self.referenced(url, stored, path_options)
        return excluded_references(referenced, options.exclude, options.uploads_dir)

    def referenced(self, url: URL, stored: dict[str, str], options: PathOptions
                   ) -> dict[str, str]:
        """The files the stored values name, by relative path, each with a row naming it."""
        paths = path_rewrite.PathSql(path_rewrite.normalized_aliases(options.aliases,
                                                                     options.uploads_dir))
        engine = sa.create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                if sa.inspect(connection).has_table(self.manifest):
                    return {}
                relative = path_rewrite.relative_paths(connection, list(stored), paths)
        except SQLAlchemyError:  # the run's own connection names the database
            return {}
        finally:
            engine.dispose()
        return {path: stored[value] for value, path in relative.items()}


def excluded_references(referenced: dict[str, str], exclude: Sequence[str],
                        uploads_dir: Path) -> list[str]:
    """One line per pattern that leaves out files rows reference, with an example."""
    exclusions = Exclusions(exclude)
    by_pattern: dict[str, list[str]] = {}
    for relative in sorted(referenced):
        pattern = exclusions.excluding(relative)
        if pattern is not None and os.path.lexists(uploads_dir / relative):
            by_pattern.setdefault(pattern, []).append(relative)
    return [f"UPLOAD_EXCLUDE pattern {pattern!r} leaves out {len(files):,} files that rows "
            f"reference, e.g. {files[0]} ({referenced[files[0]]}): the path rewrite could not "
            "point those rows at their objects. Take the pattern out of UPLOAD_EXCLUDE (or "
            "run with -x missing_files=keep to leave those paths as they are)"
            for pattern, files in by_pattern.items()]


def writable(setting: declared.Setting, cutover: Settings) -> list[str]:
    """The folder the setting names exists (made when missing) and takes a file."""
    folder: Path = cutover[setting]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in folder.glob(f"{WRITE_PROBE_PREFIX}*"):  # a killed preflight's
            leftover.unlink(missing_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=WRITE_PROBE_PREFIX):
            pass
    except OSError as error:
        return [f"{setting.name} {folder.resolve()} is not writable "
                f"({error.strerror or error})"]
    return []


def work_dir_writable(cutover: Settings) -> list[str]:
    """WORK_DIR takes the backup, the rejects and the storage probe."""
    return writable(declared.WORK_DIR, cutover)


def reports_dir_writable(cutover: Settings) -> list[str]:
    """REPORTS_DIR takes the cutover report at the end of a real run (a dry run writes
    none)."""
    return [] if cutover[declared.DRY_RUN] else writable(declared.REPORTS_DIR, cutover)
