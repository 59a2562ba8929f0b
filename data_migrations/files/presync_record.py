"""What the presync uploaded: one SQLite file per folder and target under ``WORK_DIR/presync/``.

Each file the presync stored is recorded with its relative path, object key, size,
modification time (ns), CRC-64 and the upload options it was written with, committed as
soon as the object is confirmed, so a killed presync leaves a record that is valid as far
as it goes. The files step of the cutover takes a file from the record without reading it
only when its size and modification time are what the record says AND the bucket's
listing shows the recorded key with the recorded size and CRC-64: the record never makes
the cutover skip a file whose object is not in the bucket as recorded.

A record belongs to one uploads folder and one target (provider, endpoint, bucket or
folder, key prefix): the file is named after both, so a presync to a test bucket is never
taken for one to the production bucket, and a run pointed at another folder starts a
record of its own instead of finding every recorded file gone. An exclusive ``flock`` on a
lock file next to it keeps two presyncs, or a presync and the cutover's files step, from
using one record at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from data_migrations.run.errors import DataMigrationError
from settings.steps import UploadOptions
from settings.storage import StorageSettings
from storage.options import ObjectOptions

FOLDER = "presync"
SCHEMA = """
CREATE TABLE IF NOT EXISTS target (description TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    relative_path TEXT PRIMARY KEY,
    object_key TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    crc64 TEXT NOT NULL,  -- unsigned 64-bit: beyond SQLite's INTEGER
    acl TEXT,
    storage_class TEXT,
    sse TEXT,
    sent_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
-- What each presync measured, for the freeze prediction (data_migrations/files/freeze_estimate.py).
CREATE TABLE IF NOT EXISTS runs (
    files INTEGER NOT NULL,  -- in the folder
    sent_bytes INTEGER NOT NULL,
    scan_seconds REAL NOT NULL,
    upload_seconds REAL NOT NULL,  -- the bucket's listing, then the files sent
    verify_seconds REAL NOT NULL,
    finished_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
"""


@dataclass(frozen=True)
class RecordedFile:
    relative_path: str
    object_key: str
    size: int
    mtime_ns: int
    crc64: int
    options: ObjectOptions


@dataclass(frozen=True)
class PresyncRun:
    """What one presync measured: the folder's files, the bytes it sent, its phases."""

    files: int
    sent_bytes: int
    scan_seconds: float
    upload_seconds: float
    verify_seconds: float


def target_description(options: UploadOptions, settings: StorageSettings) -> str:
    """The folder and target a record belongs to, for people and for naming its file:
    never a credential."""
    return f"{options.uploads_dir.resolve()} to {settings.location()}"


def record_path(options: UploadOptions, settings: StorageSettings) -> Path:
    digest = hashlib.sha256(target_description(options, settings).encode()).hexdigest()[:16]
    return options.work_dir / FOLDER / f"{digest}.sqlite"


class PresyncRecord:
    """The record of one folder and target, open and locked; ``entries`` as of opening."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._connection = connection
        self.entries: dict[str, RecordedFile] = {
            row[0]: RecordedFile(row[0], row[1], row[2], row[3], int(row[4]),
                                 ObjectOptions(row[5], row[6], row[7]))
            for row in connection.execute(
                "SELECT relative_path, object_key, size, mtime_ns, crc64, acl, "
                "storage_class, sse FROM files")}

    def add(self, files: Iterable[RecordedFile]) -> None:
        """Record files whose objects are stored, and commit: they survive a kill."""
        with self._transaction():
            self._connection.executemany(
                "INSERT OR REPLACE INTO files (relative_path, object_key, size, mtime_ns, "
                "crc64, acl, storage_class, sse) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(f.relative_path, f.object_key, f.size, f.mtime_ns, str(f.crc64),
                  f.options.acl, f.options.storage_class, f.options.sse) for f in files])

    def forget(self, relative_paths: Iterable[str]) -> None:
        """Drop files from the record (their objects were deleted), and commit."""
        with self._transaction():
            self._connection.executemany("DELETE FROM files WHERE relative_path = ?",
                                         [(path,) for path in relative_paths])

    def add_run(self, run: PresyncRun) -> None:
        with self._transaction():
            self._connection.execute(
                "INSERT INTO runs (files, sent_bytes, scan_seconds, upload_seconds, "
                "verify_seconds) VALUES (?, ?, ?, ?, ?)",
                (run.files, run.sent_bytes, run.scan_seconds, run.upload_seconds,
                 run.verify_seconds))

    def measured_run(self) -> PresyncRun | None:
        """The last presync that sent bytes (its upload rate means something), else the
        last one; None before any (or in a record older than the runs table)."""
        with unusable(self.path):
            if self._connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                        "AND name = 'runs'").fetchone() is None:
                return None
            row = self._connection.execute(
                "SELECT files, sent_bytes, scan_seconds, upload_seconds, verify_seconds "
                "FROM runs ORDER BY sent_bytes > 0 DESC, rowid DESC LIMIT 1").fetchone()
        return None if row is None else PresyncRun(*row)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with unusable(self.path):
            self._connection.execute("BEGIN")
            try:
                yield
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")


@contextmanager
def unusable(path: Path) -> Iterator[None]:
    """A record that cannot be read or written (damaged, a disk full, no permission) as
    one line naming it."""
    try:
        yield
    except (sqlite3.Error, OSError, ValueError) as error:
        raise DataMigrationError(
            f"the presync record {path} cannot be used ({error}); fix its folder, or move the "
            "file out of WORK_DIR and run the presync again (the cutover then reads every "
            "file)") from None


@contextmanager
def opened(options: UploadOptions, settings: StorageSettings, *, create: bool,
           who: str) -> Iterator[PresyncRecord | None]:
    """The record of the folder and target, locked for the block; None when there is
    none and ``create`` is false (the lock is taken all the same, so that no presync
    starts one meanwhile, and its file removed again: no presync, no lock file). ``who``
    names the holder for a run that finds it locked."""
    path = record_path(options, settings)
    with unusable(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_suffix(".lock")
    with _locked(lock_path, who):
        if path.exists() and not path.is_file():
            raise DataMigrationError(
                f"the presync record {path} is not a file (a folder?); move it out of "
                "WORK_DIR (the cutover then reads every file) and run the presync again")
        if not create and not path.exists():
            try:
                yield None
            finally:
                lock_path.unlink(missing_ok=True)
                with suppress(OSError):  # holds other records: it stays
                    path.parent.rmdir()
            return
        with unusable(path):
            _refuse_empty(path)
            connection = sqlite3.connect(path, isolation_level=None)
        with closing(connection):
            with unusable(path):
                if create:
                    connection.executescript(SCHEMA)
                _check_target(connection, path, target_description(options, settings), create)
                if create:
                    _check_writable(connection, path)
                record = PresyncRecord(path, connection)
            yield record


def _refuse_empty(path: Path) -> None:
    """SQLite takes an empty file for an empty database: a record truncated to nothing
    (a disk that filled, a copy that failed) would pass for a presync that stored
    nothing, and the next run would send the whole folder again without a word."""
    if path.is_file() and path.stat().st_size == 0:
        raise sqlite3.DatabaseError("the file is empty: it is no record")


def _check_writable(connection: sqlite3.Connection, path: Path) -> None:
    """The record and its folder take writes (a write rolled back, and a scratch file):
    a presync that cannot record what it stored must refuse before it uploads anything,
    not after."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.execute("UPDATE target SET description = description")
    finally:
        connection.execute("ROLLBACK")
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.stem}-"):
        pass


def _check_target(connection: sqlite3.Connection, path: Path, description: str,
                  create: bool) -> None:
    """The record names the folder and target it belongs to; a new record is given them."""
    stored = connection.execute("SELECT description FROM target").fetchone()
    if stored is None and create:
        connection.execute("INSERT INTO target (description) VALUES (?)", (description,))
    elif stored is None or stored[0] != description:
        raise DataMigrationError(f"the presync record {path} belongs to "
                                 f"{stored[0] if stored else 'no target'}, not {description}; "
                                 "move it out of WORK_DIR")


@contextmanager
def _locked(lock_path: Path, who: str) -> Iterator[None]:
    """An exclusive lock on ``lock_path`` for the block, or one line naming the holder."""
    with _lock_file(lock_path) as lock:
        lock.truncate(0)
        lock.write(f"{who} (pid {os.getpid()})\n")
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)


@contextmanager
def _lock_file(lock_path: Path) -> Iterator[TextIO]:
    """The lock file, open and locked. A run that found no record removes the file while
    it holds the lock; one that opened it before then locks a file no longer there, so it
    opens the path again until what it locked is what the path names."""
    while True:
        with unusable(lock_path.with_suffix(".sqlite")):
            lock = lock_path.open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            lock.close()
            raise DataMigrationError(
                f"the presync record {lock_path.with_suffix('.sqlite')} is in use by {holder}; "
                "wait for it to finish (one presync or files step at a time)") from None
        if _same_file(lock, lock_path):
            break
        lock.close()
    with lock:
        yield lock


def _same_file(lock: TextIO, lock_path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(lock.fileno()), lock_path.stat())
    except FileNotFoundError:
        return False
