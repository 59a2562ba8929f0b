"""Where a run records what it stored, and the check of every record against the bucket.

A run's files end as ``Outcome``s in a ``Ledger``: the manifest (``ManifestLedger``, the
cutover's files step) or the presync record (data_migrations/commands/presync.py). At the
end every recorded file is checked against a fresh listing of the bucket (size and CRC-64).
The dry run fills the manifest as the upload would (``plan_manifest``) and is rolled back.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from threading import Lock
from typing import Protocol

import sqlalchemy as sa

from data_migrations.files.scan import FolderScan, LocalFile
from data_migrations.run.errors import DataMigrationError
from data_migrations.run.report import bulleted
from settings.storage import StorageSettings
from storage import ObjectInfo, StorageClient, file_state

log = logging.getLogger("cutover.files")

MANIFEST_BATCH = 1000
CHANGING_SHOWN = 5  # files named in the failure for files changed while read

# Outcomes whose bytes were sent in this run.
SENT = ("uploaded", "replaced", "resent")


def manifest_table(name: str) -> sa.TableClause:
    """The columns of the manifest that revision 0003 creates, for reading and writing."""
    return sa.table(name, *(sa.column(c) for c in (
        "relative_path", "object_key", "public_url", "size", "mtime_ns", "crc64", "status",
        "acl", "storage_class", "sse")))


class ResumedUploads:
    """The multipart uploads a killed run left that this run finished: how many, and the
    bytes their stored parts spared sending again (counted from the upload threads)."""

    def __init__(self) -> None:
        self._lock = Lock()
        self.count = 0
        self.reused_bytes = 0

    def add(self, reused_bytes: int) -> None:
        with self._lock:
            self.count += 1
            self.reused_bytes += reused_bytes


@dataclass(frozen=True)
class Outcome:
    """What became of a file. ``file`` is the file as it was read: its size and
    modification time are those of the bytes stored (the scan's for a file not read).
    ``status`` is one of STATUS_ROWS'."""

    file: LocalFile
    status: str
    stored: ObjectInfo


@dataclass
class UploadReport:
    scan: FolderScan
    files: Counter[str] = field(default_factory=Counter)
    bytes: Counter[str] = field(default_factory=Counter)
    replaced: list[str] = field(default_factory=list)
    changing: list[str] = field(default_factory=list)  # kept changing while read: left out
    verified: int = 0
    aborted: int = 0  # incomplete multipart uploads of these files, left by failed attempts
    resumed: ResumedUploads = field(default_factory=ResumedUploads)
    orphans: list[str] = field(default_factory=list)  # presync objects whose files are gone
    pruned: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


# The bucket's objects by key, listed when called.
Listing = Callable[[], dict[str, ObjectInfo]]


class Ledger(Protocol):
    """Where a run writes what it stored: the manifest (the cutover's files step) or the
    presync record (data_migrations/commands/presync.py)."""

    after_failure: str  # what a stopped run leaves of it, for the failure message

    def add(self, outcome: Outcome) -> None:
        """Note one file's outcome (written in batches)."""

    def flush(self) -> None:
        """Write what is noted."""

    def verify(self, listing: Listing) -> int:
        """Check every file written against a fresh ``listing()`` of the bucket; return how
        many passed, or raise DataMigrationError naming the differences."""


# The storage settings, asked for only when the step needs storage: the TOS settings are
# required only then.
StorageSettingsSource = Callable[[], StorageSettings]


class ManifestLedger:
    """The cutover's ledger: manifest rows in batches, then every row checked against its
    file, which must not have changed since it was read, and against the bucket, and marked
    'verified'. The app is frozen for the cutover: a file that changed while the step ran
    fails it, naming the file."""

    after_failure = "Nothing was recorded (the manifest is rolled back)."

    def __init__(self, connection: sa.Connection, manifest: sa.TableClause,
                 storage: StorageClient, settings: StorageSettings) -> None:
        self.connection = connection
        self.manifest = manifest
        self.storage = storage
        self.key_prefix = settings.key_prefix
        self.object_options = settings.object_options
        self.batch: list[dict[str, object]] = []
        self.files: list[LocalFile] = []  # each as it was read (or scanned)
        self.changing: list[str] = []  # changing each time it was read: no row

    def add(self, outcome: Outcome) -> None:
        key = outcome.file.relative_path
        if outcome.status == "vanished":
            raise DataMigrationError(
                f"{key} was deleted from UPLOADS_DIR while the files step ran: the app must be "
                "stopped for the cutover. Nothing was recorded (the manifest is rolled back); "
                "stop the app and run the upgrade again.")
        if outcome.status == "changing":
            self.changing.append(key)
            return
        self.files.append(outcome.file)
        self.batch.append({
            "relative_path": key, "object_key": self.key_prefix + key,
            "public_url": self.storage.public_url(key), "size": outcome.stored.size,
            "mtime_ns": outcome.file.mtime_ns, "crc64": outcome.stored.crc64,
            "status": "uploaded" if outcome.status in SENT else "skipped",
            **self.object_options.manifest_values()})
        if len(self.batch) >= MANIFEST_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            self.connection.execute(sa.insert(self.manifest), self.batch)
            self.batch.clear()

    def verify(self, listing: Listing) -> int:
        """Check every manifest row against its file and a fresh listing of the bucket; any
        difference fails the step."""
        self.flush()
        changed = self.changing + [f.relative_path for f in self.files if changed_since(f)]
        if changed:
            raise DataMigrationError(changing_message(changed))
        columns = self.manifest.c
        rows = self.connection.execute(
            sa.select(columns.relative_path, columns.size, columns.crc64)).all()
        log.info(f"Verifying {len(rows):,} files against a listing of the bucket (size and "
                 "CRC-64).")
        stored = listing()
        problems = [problem for row in rows
                    if (problem := difference(row, stored.get(row.relative_path)))]
        if problems:
            raise DataMigrationError(
                f"verification failed for {len(problems):,} of {len(rows):,} files; nothing "
                f"was recorded:\n{bulleted(sorted(problems))}\nRun the upgrade again: "
                "missing or different objects are uploaded again.")
        self.connection.execute(sa.update(self.manifest).values(status="verified"))
        return len(rows)


def changed_since(file: LocalFile) -> bool:
    """The file is no longer as it was read (size, modification time), or is gone."""
    try:
        now = file_state(file.source)
    except FileNotFoundError:
        return True
    return (now.size, now.mtime_ns) != (file.size, file.mtime_ns)


def changing_message(paths: list[str]) -> str:
    """The cutover's failure for files the app changed while the files step ran."""
    shown = sorted(paths)
    more = f" and {len(shown) - CHANGING_SHOWN:,} more" if len(shown) > CHANGING_SHOWN else ""
    return (f"{len(shown):,} files in UPLOADS_DIR changed while the files step read or stored "
            f"them (changing while read): {', '.join(shown[:CHANGING_SHOWN])}{more}. The app "
            "still writes to UPLOADS_DIR: freeze it (stop every writer to the folder), then "
            "run the upgrade again; it resumes, skipping the files already stored. Nothing "
            "was recorded (the manifest is rolled back).")


class Stored(Protocol):
    """A file as a manifest row or the presync record says it was stored."""

    @property
    def relative_path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def crc64(self) -> int | Decimal: ...


def difference(row: Stored, stored: ObjectInfo | None) -> str | None:
    """How the bucket's object differs from what was recorded of it, if it does."""
    if stored is None:
        return f"{row.relative_path}: not in the bucket"
    if (stored.size, stored.crc64) != (row.size, int(row.crc64)):
        return (f"{row.relative_path}: the bucket holds {stored.size:,} bytes with CRC-64 "
                f"{stored.crc64}, the upload stored {row.size:,} bytes with CRC-64 "
                f"{row.crc64}")
    return None


def plan_manifest(connection: sa.Connection, manifest: sa.TableClause, scan: FolderScan,
                  storage: StorageClient, settings: StorageSettings) -> None:
    """Fill the manifest as the upload would (the dry run is rolled back), so that the
    path rewrite's dry run checks the stored paths against the files to be uploaded.
    Nothing is read from the files and nothing is sent to the storage."""
    rows = [{"relative_path": f.relative_path, "object_key": settings.key_prefix + f.relative_path,
             "public_url": storage.public_url(f.relative_path), "size": f.size,
             "mtime_ns": f.mtime_ns, "crc64": 0,
             "status": "verified", **settings.object_options.manifest_values()}
            for f in scan.files]
    for start in range(0, len(rows), MANIFEST_BATCH):
        connection.execute(sa.insert(manifest), rows[start:start + MANIFEST_BATCH])
