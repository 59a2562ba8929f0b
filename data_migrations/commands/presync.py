"""Move the files before the freeze: ``make presync ENV=prod``, while the app still runs.

It uploads UPLOADS_DIR exactly as revision 0003 would (same settings, keys, exclusions,
refusals, CRC-64 checks, multipart uploads, rate limit) and records each file it stored in
the presync record under WORK_DIR (data_migrations/files/presync_record.py). Run it as often as
you like: each run reads and sends only what is new or changed since the last one. The
cutover's files step then reads only those files too, so the freeze holds the rows and the
last changes, not the whole folder.

It needs no database: the record lives next to the other working files, and a file is
recorded only once its object is confirmed, with the size and modification time it had
when it was read (a file that changed while it was read, or since, is not recorded, so the
next run sends it again). Before it uploads anything it refuses a record it cannot write
or that is empty (presync_record.opened), and an UPLOADS_DIR that does not look like the
folder its record describes (folder_guard.presync_refusal: another app's folder at the
same path would put its files under the app's keys).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from contextlib import closing

import settings
from data_migrations.commands import freeze_prediction
from data_migrations.files import preflight as files_preflight
from data_migrations.files import presync_record
from data_migrations.files.folder_guard import presync_refusal
from data_migrations.files.ledger import (
    Listing,
    Outcome,
    StorageSettingsSource,
    UploadReport,
    changed_since,
    difference,
)
from data_migrations.files.output import kinds, print_plan, print_summary
from data_migrations.files.presync_record import PresyncRecord, PresyncRun, RecordedFile
from data_migrations.files.retry import RETRY_BACKOFF_SECONDS
from data_migrations.files.upload import FileUpload, scanned, stopped_in
from data_migrations.report_page.record import current_run, reported
from data_migrations.run import failure, preflight
from data_migrations.run.errors import DataMigrationError
from data_migrations.run.preflight import PreflightError
from data_migrations.run.report import bulleted, log_to_stderr, size_text
from data_migrations.run.storage_factory import build_storage
from settings import declared
from settings.steps import UploadOptions
from storage.options import ObjectOptions

log = logging.getLogger("cutover.presync")

# What the presync needs; the same checks the cutover's files step declares, without the
# source database, which the presync does not read.
CHECKS = (files_preflight.uploads_readable, files_preflight.storage_ready,
          files_preflight.prune_guarded,
          preflight.work_dir_writable, preflight.reports_dir_writable)
# Record entries are committed at least this often, so a kill loses little work.
RECORD_BATCH = 200
RECORD_SECONDS = 1.0


class PresyncLedger:
    """The presync's ledger: each stored file into the record, committed in small batches;
    a file whose size or modification time moved while it was read is left out."""

    after_failure = "What was stored so far is recorded."

    def __init__(self, record: PresyncRecord, key_prefix: str, object_options: ObjectOptions
                 ) -> None:
        self.record = record
        self.key_prefix = key_prefix
        self.object_options = object_options
        self.pending: list[RecordedFile] = []
        self.recorded: list[RecordedFile] = []
        self.unchanged = 0
        self.changed: list[str] = []  # while being read: not recorded
        self.flushed_at = time.monotonic()

    def add(self, outcome: Outcome) -> None:
        file = outcome.file
        if outcome.status == "presynced":  # recorded already, and still true
            self.unchanged += 1
            return
        if not self.still_as_scanned(outcome) or outcome.stored.crc64 is None:
            self.changed.append(file.relative_path)
            return
        self.pending.append(RecordedFile(
            file.relative_path, self.key_prefix + file.relative_path, outcome.stored.size,
            file.mtime_ns, outcome.stored.crc64, self.object_options))
        if len(self.pending) >= RECORD_BATCH or \
                time.monotonic() - self.flushed_at >= RECORD_SECONDS:
            self.flush()

    @staticmethod
    def still_as_scanned(outcome: Outcome) -> bool:
        """The file is as it was read (size, modification time), so what was stored is the
        file as the record will describe it; a file the app changed or deleted since is
        not."""
        return outcome.status != "vanished" and not changed_since(outcome.file)

    def flush(self) -> None:
        self.record.add(self.pending)
        self.recorded += self.pending
        self.pending = []
        self.flushed_at = time.monotonic()

    def verify(self, listing: Listing) -> int:
        """Every file recorded in this run against a fresh listing of the bucket."""
        self.flush()
        stored = listing()
        wrong = {entry.relative_path: problem for entry in self.recorded
                 if (problem := difference(entry, stored.get(entry.relative_path)))}
        if wrong:
            self.record.forget(wrong)
            problems = list(wrong.values())
            raise DataMigrationError(
                f"{len(problems):,} stored files are not in the bucket as recorded; they are "
                f"taken out of the record (the next run sends them again):\n"
                f"{bulleted(sorted(problems))}")
        return len(self.recorded) + self.unchanged


def presync(options: UploadOptions, storage_settings: StorageSettingsSource,
            retry_backoff: Sequence[float] = RETRY_BACKOFF_SECONDS) -> None:
    """Upload what changed since the last presync and record it (a dry run only shows the
    plan)."""
    target = storage_settings()
    started = time.monotonic()
    scan = scanned(options, target)
    if options.dry_run:
        print_plan(scan, options, target, "the plan of a presync")
        return
    with closing(build_storage(target, options.work_dir)) as storage, \
            presync_record.opened(options, target, create=True,
                                  who="a presync") as record:
        assert record is not None
        log.info(f"Presync record: {record.path} ({len(record.entries):,} files recorded "
                 "before this run)")
        refusal = presync_refusal(record, scan, options)
        if refusal is not None:
            raise DataMigrationError(refusal)
        ledger = PresyncLedger(record, target.key_prefix, target.object_options)
        run = FileUpload(storage, target, ledger, record, options, retry_backoff)
        with stopped_in("the presync", ledger):
            report = run.run(scan, time.monotonic() - started)
        record.add_run(measured_run(report))
    print_summary(report)
    run = current_run()
    if run is not None:
        run.figures["files"] = kinds(report)
    changed = set(ledger.changed)
    left = [f for f in scan.files if f.relative_path in changed and f.source.exists()]
    log.info(f"The next cutover still has to move {len(left):,} files "
             f"({size_text(sum(f.size for f in left))}) that changed while this presync read "
             "them, and whatever changes from now on.")


# The outcomes whose bytes a presync sent.
SENT = ("uploaded", "replaced", "resent")


def measured_run(report: UploadReport) -> PresyncRun:
    """What this presync took, for the freeze prediction's files share."""
    return PresyncRun(len(report.scan.files), sum(report.bytes[s] for s in SENT),
                      report.seconds["scan"], report.seconds["upload"],
                      report.seconds["verify"])


def main(argv: list[str] | None = None) -> int:
    log_to_stderr()
    return failure.command("the presync", "the files recorded so far stay recorded",
                           lambda: checked_presync(argv))


def checked_presync(argv: list[str] | None) -> int:
    """The presync's own preflight, then the presync, with its report and page."""
    with reported("presync") as run:
        cutover = settings.read(
            settings.x_arguments(argv, "python -m data_migrations.commands.presync"))
        run.settings = cutover
        started = time.time()
        problems = [problem for check in CHECKS for problem in check(cutover)]
        run.preflight_seconds = time.time() - started
        if problems:
            raise PreflightError(problems)
        presync(cutover.upload_options(), cutover.storage)
        if not cutover[declared.DRY_RUN]:
            freeze_prediction.announce(freeze_prediction.predict(cutover))
    return 0


if __name__ == "__main__":
    sys.exit(main())
