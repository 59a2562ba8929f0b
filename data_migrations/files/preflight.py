"""The files step's preflight checks (data_migrations/run/preflight.py runs them; the
presync runs them too): the uploads folder can be read, the storage is ready, a
presync record can be read, and what ``-x prune=true`` would delete passes its guards.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import closing
from functools import partial
from typing import TypeVar

from data_migrations.files import plan_storage, presync_record
from data_migrations.files import upload as file_upload
from data_migrations.files.folder_guard import orphans_of, prune_refusal
from data_migrations.files.presync_record import PresyncRecord
from data_migrations.files.retry import ActionFailure, denied, retrying
from data_migrations.files.scan import FolderScan, scan_folder
from data_migrations.run.errors import DataMigrationError
from data_migrations.run.preflight import writable
from data_migrations.run.report import Progress
from data_migrations.run.storage_factory import build_storage
from settings import ConfigError, Settings, declared
from settings.storage import StorageSettings
from storage import StorageError

log = logging.getLogger("cutover.preflight")

LISTED = 20  # refused uploads entries named before "... and N more"
R = TypeVar("R")


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
    _shared(cutover).scan = scan
    if options.unsafe_files != "fail" or not scan.refused:
        return []
    refused = [f"UPLOADS_DIR {scan.root}: {refusal}" for refusal in scan.refused]
    if len(refused) > LISTED:
        refused[LISTED:] = [f"UPLOADS_DIR {scan.root}: ... and {len(refused) - LISTED:,} "
                            "more entries that cannot be uploaded"]
    return refused


def storage_ready(cutover: Settings) -> list[str]:
    """The storage settings are complete, nothing the upload writes lies in UPLOADS_DIR,
    and the storage preflight passes (a dry run's asks only what it can without writing:
    data_migrations/files/plan_storage.py): credentials, bucket, every
    policy action a run calls (one it can do without is logged, not a problem), a probe
    object written, read back and deleted; each call retried as the data steps retry."""
    options = cutover.upload_options()
    try:
        storage_settings = cutover.storage()
        if options.uploads_dir.is_dir():  # a missing one is uploads_readable's to name
            file_upload.check_folders(options, storage_settings)
    except ConfigError as error:
        return [str(error)]
    if options.dry_run:  # the plan writes nothing to the storage
        return plan_storage.checked_without_writing(cutover, storage_settings,
                                                    options.work_dir, retried)
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
        return retrying(action, name)
    except ActionFailure as failure:
        cause = failure.__cause__
        if denied(failure):
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
        _recorded(cutover, target)
    except DataMigrationError as error:
        return [str(error)]
    return []



def prune_guarded(cutover: Settings) -> list[str]:
    """With ``-x prune=true``, what the files step would delete passes prune's guards
    (folder_guard.prune_refusal): checked here, before the first step writes, so that a
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
        record = _recorded(cutover, target)
        if record is None or not record.entries:
            return []
        scan = _shared(cutover).scan or scan_folder(options.uploads_dir, options.exclude)
        with closing(build_storage(target, options.work_dir)) as storage:
            try:
                present = retried(partial(file_upload.stored_objects, storage),
                                  file_upload.BUCKET_LISTING)
            except StorageError as error:  # unchecked is no pass: 0002 would commit first
                return [f"-x prune=true could not be checked: {error}. Run again once the "
                        "store answers, or without -x prune=true to upload without deleting"]
            orphans = orphans_of(record, scan, present)
            refusal = prune_refusal(record, scan, orphans, options) if orphans else None
    except (DataMigrationError, StorageError, OSError):
        # A record that cannot be used, or storage that cannot be reached: named by
        # presync_record_usable and storage_ready (and the presync's own opening of it).
        return []
    return [refusal] if refusal else []


class _SharedReads:
    """What the checks of one preflight (one Settings object) read once and share: the
    scan of UPLOADS_DIR (uploads_readable's) and the presync record (read by whichever
    check first needs it), so that prune's check neither scans the folder nor opens the
    record a second time on a folder of millions of files."""

    def __init__(self, cutover: Settings) -> None:
        self.cutover = cutover
        self.scan: FolderScan | None = None
        self.record: PresyncRecord | None = None
        self.record_read = False


_last: _SharedReads | None = None


def _shared(cutover: Settings) -> _SharedReads:
    """The reads of this preflight: a new set for another Settings object (another run)."""
    global _last
    if _last is None or _last.cutover is not cutover:
        _last = _SharedReads(cutover)
    return _last


def _recorded(cutover: Settings, target: StorageSettings) -> PresyncRecord | None:
    """The presync record of the folder and target as read (its entries; closed again),
    or None when there is none; a record that cannot be used raises DataMigrationError
    each time it is asked for."""
    shared = _shared(cutover)
    if not shared.record_read:
        with presync_record.opened(cutover.upload_options(), target, create=False,
                                   who="the preflight of a cutover") as record:
            shared.record = record
        shared.record_read = True
    return shared.record
