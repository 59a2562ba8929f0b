"""Upload the app's uploads folder to object storage, record every file, verify them all.

The folder is scanned first (scan.py: exclusions, refusal of anything leading outside
it). After the storage preflight, one listing of the bucket tells which objects are
already there: an object with the same size and CRC-64 as the file is skipped, which makes
a rerun after a killed upgrade resume instead of starting over; an object with other
content is uploaded again and named in the summary. A presync (data_migrations/commands/presync.py)
run before the freeze leaves a record of what it stored: a file unchanged since (size and
modification time) whose object the listing shows as recorded is taken without being read
at all. Files go up on MAX_CONCURRENT threads, each retried as a whole a few times when a
transient failure outlives the SDK's own retries. A file's state is taken before it is read
and again after its last byte is stored: one that changed meanwhile is sent again, and one
that keeps changing is "changing while read" (the cutover fails naming it, a presync leaves
it out); the cutover also fails on a file changed after it was stored, before the step
ends. The outcomes go to a ledger: the manifest, written in batches as files finish (or
the presync record, for a presync); at the end every manifest row is checked against a
fresh listing of the bucket (size and CRC-64) and marked 'verified'.

It all runs inside the revision's transaction: a failure rolls the manifest back, while
the objects already uploaded stay and are skipped next time. The uploads folder is only
read, never written: the preflight probe and any scratch file go to WORK_DIR.
"""

from __future__ import annotations

import errno
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import PurePosixPath
from threading import Event, Lock
from typing import TypeVar

import sqlalchemy as sa

from data_migrations.files import presync_record
from data_migrations.files.folder_guard import orphans_of, prune_refusal, vouches_for
from data_migrations.files.ledger import (
    Ledger,
    ManifestLedger,
    Outcome,
    ResumedUploads,
    StorageSettingsSource,
    UploadReport,
    manifest_table,
    plan_manifest,
)
from data_migrations.files.output import (
    describe_target,
    kinds,
    print_plan,
    print_summary,
    refusal_message,
)
from data_migrations.files.presync_record import PresyncRecord
from data_migrations.files.retry import (
    RETRY_BACKOFF_SECONDS,
    ActionFailure,
    denied,
    failure_text,
    retrying,
)
from data_migrations.files.rollback import delete_objects
from data_migrations.files.scan import FolderScan, LocalFile, scan_folder
from data_migrations.run.errors import DataMigrationError
from data_migrations.run.parallel import Done, run_in_parallel
from data_migrations.run.report import Progress, record_step, size_text
from data_migrations.run.storage_factory import build_storage
from settings import ConfigError
from settings.steps import UploadOptions
from settings.storage import StorageSettings
from storage import (
    FileChanged,
    ObjectInfo,
    PendingUpload,
    StorageClient,
    StorageError,
    file_crc64,
    file_state,
)
from storage.tos import guess_content_type
from storage.tos_checks import LEFTOVER_UPLOADS_NOT_LISTED

log = logging.getLogger("cutover.files")

R = TypeVar("R")


class PartsStored:
    """The bytes of the files still uploading that the store already holds (their stored
    parts), by file, fed from the part threads: the progress line counts them, so that a
    large file moves it before it is done. An attempt that starts over forgets its file's
    parts, which are sent again."""

    def __init__(self) -> None:
        self._lock = Lock()
        self._by_file: Counter[str] = Counter()

    def stored(self, name: str, size: int) -> None:
        with self._lock:
            self._by_file[name] += size

    def forget(self, name: str) -> None:
        with self._lock:
            self._by_file.pop(name, None)

    def total(self) -> int:
        with self._lock:
            return sum(self._by_file.values())


def check_folders(options: UploadOptions, settings: StorageSettings) -> None:
    """The uploads folder exists, and nothing this step writes lies inside it."""
    root = options.uploads_dir
    if not root.is_dir():
        raise ConfigError(f"UPLOADS_DIR {root} is not an existing folder (set UPLOADS_DIR to "
                          "the app's uploads folder)")
    written = {"WORK_DIR": options.work_dir}
    if settings.provider == "local":
        written["STORAGE_LOCAL_ROOT"] = settings.local_root
    for name, folder in written.items():
        if folder.resolve().is_relative_to(root.resolve()):
            raise ConfigError(f"{name} {folder} lies inside UPLOADS_DIR {root}: the upload "
                              "never writes into the folder it uploads")


def scanned(options: UploadOptions, settings: StorageSettings) -> FolderScan:
    """The uploads folder, scanned; refusals stop here unless ``unsafe_files=skip`` (a dry
    run only reports them)."""
    check_folders(options, settings)
    scan = scan_folder(options.uploads_dir, options.exclude)
    log.info(f"Uploading files from {scan.root} to {describe_target(settings)}")
    if scan.refused and options.unsafe_files == "fail" and not options.dry_run:
        raise DataMigrationError(refusal_message(scan))
    return scan


def upload_files(connection: sa.Connection, options: UploadOptions,
                 storage_settings: StorageSettingsSource, manifest: str,
                 retry_backoff: Sequence[float] = RETRY_BACKOFF_SECONDS) -> None:
    """Upload UPLOADS_DIR to the configured storage and fill the table ``manifest``;
    ``retry_backoff`` is the waits between the attempts of each storage action. A presync
    record of the same target (data_migrations/files/presync_record.py) spares reading the files
    it holds unchanged."""
    settings = storage_settings()
    started = time.monotonic()
    scan = scanned(options, settings)
    if options.dry_run:
        print_plan(scan, options, settings, "the plan of a cutover")
        with closing(build_storage(settings, options.work_dir)) as storage:
            plan_manifest(connection, manifest_table(manifest), scan, storage, settings)
        # What a file costs the files step besides its bytes (the scan, its manifest
        # row), for the freeze prediction (data_migrations/run/predicted_freeze.py).
        record_step("files", seconds=time.monotonic() - started, planned_files=len(scan.files))
        return
    with closing(build_storage(settings, options.work_dir)) as storage, \
            presync_record.opened(options, settings, create=False,
                                  who="the files step of a cutover") as record:
        # The chain's preflight (data_migrations/run/preflight.py) ran the storage preflight.
        ledger = ManifestLedger(connection, manifest_table(manifest), storage, settings)
        run = FileUpload(storage, settings, ledger, record, options, retry_backoff)
        with stopped_in("the files step", ledger):
            report = run.run(scan, time.monotonic() - started)
    print_summary(report)
    record_step("files", seconds=sum(report.seconds.values()), phases=dict(report.seconds),
                summary=f"{sum(report.files.values()):,} files in the bucket "
                        f"({report.files['presynced']:,} from the presync), "
                        f"{len(scan.excluded):,} excluded, {len(scan.refused):,} refused",
                **kinds(report),
                replaced=report.replaced, verified=report.verified,
                aborted_multipart_uploads=report.aborted,
                resumed_multipart_uploads=report.resumed.count,
                resumed_bytes_kept=report.resumed.reused_bytes,
                orphaned_objects=len(report.orphans), pruned_objects=report.pruned)


class FileUpload:
    """One run of the upload: the files, their outcomes in the ledger, the verification.

    With a presync ``record``, a file whose size and modification time are as recorded and
    whose object the bucket listing shows with the recorded size and CRC-64 is taken as it
    is, without reading it (unless ``options.checksum_every_file``); the record's objects
    whose files are gone are listed, and deleted with ``options.prune_objects``."""

    def __init__(self, storage: StorageClient, settings: StorageSettings, ledger: Ledger,
                 record: PresyncRecord | None, options: UploadOptions,
                 retry_backoff: Sequence[float] = RETRY_BACKOFF_SECONDS) -> None:
        self.retry_backoff = retry_backoff
        self.storage = storage
        self.key_prefix = settings.key_prefix
        self.object_options = settings.object_options
        self.workers = settings.max_concurrent
        self.ledger = ledger
        self.record = record
        self.options = options
        self.stopping = Event()  # set on the first failure: retries stop early
        self.parts_stored = PartsStored()
        # The uploads a killed run left, by key, to resume; the resumed ones' reused bytes.
        self.resumable: dict[str, PendingUpload] = {}
        self.resumed = ResumedUploads()
        self.leftovers_unlisted = False  # the key may not list incomplete multipart uploads

    def run(self, scan: FolderScan, scan_seconds: float) -> UploadReport:
        report = UploadReport(scan, seconds={"scan": scan_seconds})
        started = time.monotonic()
        recorded = self.record.entries if self.record is not None else {}
        keys = {file.relative_path for file in scan.files} | recorded.keys()
        present = self.stored_objects()
        unchanged, to_check = self.partition(scan.files, present)
        report.aborted = self.take_leftover_uploads(keys, {f.relative_path for f in to_check})
        for file in unchanged:
            self.tally(report, Outcome(file, "presynced", present[file.relative_path]))
        if recorded:
            log.info(f"{len(unchanged):,} files are unchanged since the presync and in the bucket "
                     f"as it recorded them: taken from {self.record.path}, not read.")
        log.info(f"{len(present):,} objects already stored; uploading {len(to_check):,} files "
                 f"({size_text(sum(f.size for f in to_check))}) on {self.workers} threads.")
        self.upload(to_check, present, report)
        # Leftovers of files found complete in the bucket after all, and of retries whose own
        # abort failed too: the step ends with none of its keys incomplete.
        report.aborted += self.take_leftover_uploads(keys, set())
        report.resumed = self.resumed
        self.orphans(scan, present, report)
        report.seconds["upload"] = time.monotonic() - started
        started = time.monotonic()
        report.verified = self.ledger.verify(self.stored_objects)
        report.seconds["verify"] = time.monotonic() - started
        return report

    def partition(self, files: list[LocalFile], present: dict[str, ObjectInfo]
                  ) -> tuple[list[LocalFile], list[LocalFile]]:
        """The files the presync record vouches for, and the others."""
        if self.record is None or self.options.checksum_every_file:
            return [], files
        unchanged, others = [], []
        for file in files:
            recorded = self.record.entries.get(file.relative_path)
            trusted = recorded is not None and vouches_for(
                recorded, file, present.get(file.relative_path),
                self.key_prefix + file.relative_path, self.object_options)
            (unchanged if trusted else others).append(file)
        return unchanged, others

    def tally(self, report: UploadReport, outcome: Outcome) -> None:
        report.files[outcome.status] += 1
        report.bytes[outcome.status] += outcome.stored.size
        if outcome.status == "replaced":
            report.replaced.append(outcome.file.relative_path)
        if outcome.status == "changing":
            report.changing.append(outcome.file.relative_path)
        self.ledger.add(outcome)

    def upload(self, files: list[LocalFile], present: dict[str, ObjectInfo],
               report: UploadReport) -> None:
        progress = Progress(log, "uploading", len(files), "files",
                            total_bytes=sum(f.size for f in files),
                            bytes_in_flight=self.parts_stored.total)

        def upload_one(file: LocalFile) -> Outcome:
            return self.upload_one(file, present.get(file.relative_path))

        with closing(run_in_parallel(upload_one, files, self.workers,
                                     on_idle=partial(progress.advance, 0))) as finished:
            for done in finished:
                outcome = self.outcome(done)
                self.tally(report, outcome)
                self.parts_stored.forget(outcome.file.relative_path)
                progress.advance(1, outcome.file.size)
        self.ledger.flush()

    def outcome(self, done: Done[LocalFile, Outcome]) -> Outcome:
        failure = failure_text(done)
        if failure is None:
            assert done.result is not None
            return done.result
        self.stopping.set()
        self.ledger.flush()
        raise DataMigrationError(
            f"file upload stopped: {failure}\n{self.ledger.after_failure} The objects already "
            "uploaded stay in the bucket and are skipped when the run is started again.")

    def upload_one(self, file: LocalFile, present: ObjectInfo | None) -> Outcome:
        """Upload the file unless the bucket holds its bytes already, written with the
        upload options (ACL, storage class, SSE) or brought to them in place; a file deleted
        since the scan is "vanished", one that changed each time it was read "changing"
        (what either means is the ledger's to say)."""
        try:
            return self.send(file, present)
        except FileNotFoundError:
            return Outcome(file, "vanished", ObjectInfo(file.relative_path, 0, None))
        except FileChanged:
            return Outcome(file, "changing", ObjectInfo(file.relative_path, file.size, None))

    def send(self, file: LocalFile, present: ObjectInfo | None) -> Outcome:
        if present is None:
            return self.put(file, "uploaded")
        crc, read = self.retrying(partial(read_unchanged, file, partial(file_crc64, file.source)),
                                  file.relative_path)
        if (present.size, present.crc64) != (read.size, crc):
            return self.put(file, "replaced")
        correction = self.retrying(lambda: self.storage.conform(file.relative_path),
                                   file.relative_path)
        if correction == "resend":
            return self.put(file, "resent")
        return Outcome(read, "acl_set" if correction == "acl" else "skipped", present)

    def put(self, file: LocalFile, status: str) -> Outcome:
        stored, read = self.put_with_retries(file)
        return Outcome(read, status, stored)

    def put_with_retries(self, file: LocalFile) -> tuple[ObjectInfo, LocalFile]:
        """Upload the file, retried whole, and say which version of it was stored; the first
        attempt finishes the multipart upload a killed run left for it, if any, from its
        stored parts."""
        name = file.relative_path
        content_type = guess_content_type(PurePosixPath(name))
        resume = self.resumable.pop(name, None)

        resumed = False

        def attempt() -> tuple[ObjectInfo, LocalFile]:
            nonlocal resume, resumed
            self.parts_stored.forget(name)
            if not file.source.is_file():  # deleted since the scan: no attempt will find it
                raise FileNotFoundError(errno.ENOENT, "deleted since the scan", str(file.source))
            given, resume = resume, None  # a failed attempt aborts it: retries start afresh
            resumed = given is not None
            return read_unchanged(file, partial(
                self.storage.put_file, name, file.source, content_type,
                partial(self.parts_stored.stored, name), given))

        stored, read = self.retrying(attempt, name)
        if resumed:
            self.resumed.add(stored.reused_bytes)
            # The resumed upload was started with the options of its run: today's win.
            if self.retrying(lambda: self.storage.conform(name), name) == "resend":
                return self.retrying(attempt, name)
        return stored, read

    def retrying(self, action: Callable[[], R], name: str) -> R:
        return retrying(action, name, self.retry_backoff, self.stopping)

    def take_leftover_uploads(self, keys: set[str], to_send: set[str]) -> int:
        """The incomplete multipart uploads of ``keys`` (the files this step uploads, and
        those the presync record holds) that a killed or failed earlier attempt left in the
        bucket: the newest of each file in ``to_send`` is kept to be resumed from its stored
        parts, every other one is aborted; return how many were. An upload of any other key,
        under the key prefix or not, is someone else's and stays."""
        try:
            leftovers = self.retrying(
                lambda: [upload for upload in self.storage.pending_uploads()
                         if upload.key in keys],
                "listing of the incomplete multipart uploads")
        except ActionFailure as failure:
            # Safe to do without: every upload of this run is new and completed or aborted
            # by its own attempt; only a killed run's parts are left to the lifecycle rule.
            if not denied(failure):
                raise
            if not self.leftovers_unlisted:
                log.info(LEFTOVER_UPLOADS_NOT_LISTED)
            self.leftovers_unlisted = True
            return 0
        aborted = 0
        for upload in sorted(leftovers, key=started_at, reverse=True):  # the newest first
            if upload.key in to_send and upload.key not in self.resumable:
                self.resumable[upload.key] = upload
                continue
            self.retrying(partial(self.storage.abort_upload, upload),
                          f"abort of the incomplete multipart upload of {upload.key}")
            aborted += 1
        return aborted

    def orphans(self, scan: FolderScan, present: dict[str, ObjectInfo],
                report: UploadReport) -> None:
        """The objects the presync stored whose files are gone (``orphans_of``): listed,
        and with ``prune_objects`` deleted and forgotten, unless ``prune_refusal`` stops it."""
        if self.record is None:
            return
        report.orphans = orphans_of(self.record, scan, present)
        if not report.orphans or not self.options.prune_objects:
            return
        refusal = prune_refusal(self.record, scan, report.orphans, self.options)
        if refusal is not None:
            raise DataMigrationError(refusal)
        delete_objects(self.storage, report.orphans, self.workers, self.retry_backoff,
                       "they stay listed; run again to delete them")
        self.record.forget(report.orphans)
        report.pruned = len(report.orphans)

    def stored_objects(self) -> dict[str, ObjectInfo]:
        return self.retrying(partial(stored_objects, self.storage), BUCKET_LISTING)


BUCKET_LISTING = "listing of the bucket"


def stored_objects(storage: StorageClient) -> dict[str, ObjectInfo]:
    """Every object in the bucket (under the key prefix) by key, with its size and CRC-64:
    one listing, 1,000 objects a page, instead of a request per file."""
    return {info.key: info for info in storage.list()}


def started_at(upload: PendingUpload) -> datetime:
    """When an incomplete upload was started; one the store does not date counts as oldest."""
    return upload.initiated or datetime.min.replace(tzinfo=UTC)






def read_unchanged(file: LocalFile, read: Callable[[], R]) -> tuple[R, LocalFile]:
    """``read()`` of the file, and the file as it was read. Its state (size, modification
    and change times, inode) is taken before the first byte is read and again after the
    last one is stored: a file that left it meanwhile raises FileChanged, also when that
    is what made the read fail (the CRC-64 of the bytes checked here against that of the
    bytes sent, a multipart upload not completed)."""
    before = file_state(file.source)
    try:
        result = read()
    except StorageError as error:
        if isinstance(error, FileChanged) or file_state(file.source) != before:
            raise FileChanged(f"{file.relative_path} changed while it was read") from error
        raise
    if file_state(file.source) != before:
        raise FileChanged(f"{file.relative_path} changed while it was read")
    return result, replace(file, size=before.size, mtime_ns=before.mtime_ns)


@contextmanager
def stopped_in(step: str, ledger: Ledger) -> Iterator[None]:
    """A storage call outside any one file's upload (a listing, an abort) that kept failing
    stops ``step`` in one line that says what a re-run does."""
    try:
        yield
    except ActionFailure as failure:
        raise DataMigrationError(
            f"{step} stopped: {str(failure).rstrip('.')}. {ledger.after_failure} A re-run "
            "resumes: the objects already uploaded stay in the bucket and are skipped."
        ) from failure
