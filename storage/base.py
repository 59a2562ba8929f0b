"""The storage contract shared by the local-folder and TOS back ends."""

from __future__ import annotations

import os
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar
from urllib.parse import quote

from storage.crc64 import file_crc64
from storage.options import Correction

__all__ = [
    "FileChanged", "FileState", "ObjectInfo", "PartDone", "PendingUpload", "PrefixedStorage",
    "Retry", "StorageClient", "StorageError", "file_crc64", "file_state", "join_url", "once",
    "preflight_error", "preflight_step",
]

# Preflight probes: objects under PROBE_FOLDER and scratch files in the client's
# scratch_dir, both named PROBE_PREFIX + 32 hex digits + PROBE_SUFFIX; a killed run's are
# recognised by that name and deleted by the next preflight.
PROBE_FOLDER = ".preflight/"
PROBE_PREFIX = "preflight-"
PROBE_SUFFIX = ".txt"
PROBE_NAME = re.compile(re.escape(PROBE_PREFIX) + "[0-9a-f]{32}" + re.escape(PROBE_SUFFIX))

_T = TypeVar("_T")


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    crc64: int | None  # CRC-64/ECMA as TOS reports it (decimal int); compare with file_crc64()
    # From put_file only: bytes of the object that a resumed multipart upload already held
    # (its stored parts, checked against the file) and so were not sent again; size minus
    # this is what went over the network. How the object got there, not what it is: left
    # out of comparisons.
    reused_bytes: int = field(default=0, compare=False)


@dataclass(frozen=True)
class PendingUpload:
    """A multipart upload started and neither completed nor aborted."""

    key: str
    upload_id: str
    # When it was started, as the store's listing says; tells the newest of several uploads
    # of one key (the one worth resuming). None when not known.
    initiated: datetime | None = field(default=None, compare=False)


# Told the length of each part of a multipart upload as the store confirms it, from the
# thread that sent it: the progress of a large file before the whole file is done.
PartDone = Callable[[int], None]


class StorageError(Exception):
    """One readable line saying what failed; never carries a secret key. ``denied``: the
    store refused the call as not allowed to this key (TOS's 403 AccessDenied: the bucket
    or IAM policy lacks the action), which no retry changes."""

    def __init__(self, message: str, *, denied: bool = False) -> None:
        super().__init__(message)
        self.denied = denied


class Retry(Protocol):
    """Runs one storage call, again after a failure that may pass (the data steps give
    theirs, data_migrations.files.retry.retrying); raises a StorageError once it gives up."""

    def __call__(self, action: Callable[[], _T], name: str) -> _T: ...


def once(action: Callable[[], _T], name: str) -> _T:
    """The Retry that tries once."""
    return action()


class FileChanged(StorageError):
    """The file changed while it was read: what was read is not one version of it."""


@dataclass(frozen=True)
class FileState:
    """What tells one version of a file from the next without reading it. The change time
    and the inode catch a writer that puts the modification time back (``touch -r``) or
    replaces the file by a rename; the size and modification time are what a record keeps."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int


def file_state(path: Path) -> FileState:
    """The file's state now (following links, as a read does)."""
    stat = os.stat(path)
    return FileState(stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


def join_url(base_url: str, key: str) -> str:
    """``base_url/`` + the key percent-encoded the way TOS addresses objects."""
    return base_url.rstrip("/") + "/" + quote(key, safe="/~")


class StorageClient(ABC):
    @abstractmethod
    def put_file(self, key: str, path: Path, content_type: str | None = None,
                 on_part: PartDone | None = None,
                 resume: PendingUpload | None = None) -> ObjectInfo:
        """Upload a local file (streamed) and return what the store now holds; a file
        that goes up in parts calls ``on_part`` with each part's length as it is stored.

        ``resume``, an incomplete multipart upload of ``key`` a killed run left, is
        finished instead of starting over: its stored parts that still match the file are
        kept (``ObjectInfo.reused_bytes`` says how many bytes), the others are sent. A back
        end or a file that does not go up in parts ignores it; the caller aborts an upload
        it passed and that is still pending afterwards (aborting one completed here is a
        no-op)."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """The object's size and CRC-64, or None when there is no such object."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A readable stream of the object; the caller closes it."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; removing a missing object is not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with prefix, in key order, across all pages."""

    @abstractmethod
    def public_url(self, key: str) -> str:
        """Base URL + "/" + percent-encoded key."""

    @property
    @abstractmethod
    def scratch_dir(self) -> Path:
        """A folder for this client's own temporary files (never the folder being migrated)."""

    @abstractmethod
    def check_access(self) -> None:
        """The bucket or folder exists and the credentials are accepted."""

    def close(self) -> None:
        """Release connections; a client without any has nothing to do."""
        return None

    def pending_uploads(self, prefix: str = "") -> Iterator[PendingUpload]:
        """The incomplete multipart uploads of keys starting with prefix, across all pages.
        A back end without multipart uploads (the local folder writes whole files and
        renames them into place) has none."""
        return iter(())

    def abort_upload(self, upload: PendingUpload) -> None:
        """Abort an incomplete multipart upload; one already gone is not an error."""
        raise NotImplementedError(f"{type(self).__name__} has no multipart uploads")

    def conform(self, key: str) -> Correction:
        """Bring an object already stored with the right bytes to the client's upload
        options (ACL, storage class, SSE); a store without such options has nothing to do."""
        return "none"

    def preflight(self, retry: Retry = once) -> list[str]:
        """Check the target is usable for every call a run makes; raise StorageError naming
        the step that failed and, for a call the key's policy denies, the policy action.
        Returns what a run will do without, for the operator to read.

        Beyond check_access: the probes a killed preflight left are listed and deleted; the
        calls that could be checked on a key or upload that does not exist are (delete, the
        back end's own in preflight_permissions), before anything is written; then a probe
        object is written, read back, compared and deleted. Each call goes through
        ``retry``.
        """
        self.check_access()
        name = f"{PROBE_PREFIX}{uuid.uuid4().hex}{PROBE_SUFFIX}"
        key = f"{PROBE_FOLDER}{name}"
        with preflight_step("probe cleanup", "tos:ListBucket"):
            leftovers = retry(partial(leftover_probes, self), f"listing of {PROBE_FOLDER}")
        with preflight_step("probe cleanup", "tos:DeleteObject"):
            # The probe's own key first, before it exists: whether the key may delete shows
            # before anything is written.
            for stale in (key, *leftovers):
                retry(partial(self.delete, stale), f"delete of {stale}")
        remove_probe_scratch(self.scratch_dir)
        doing_without = self.preflight_permissions(key, retry)
        probe_round_trip(self, key, retry)
        return doing_without

    def check_without_writing(self, retry: Retry = once) -> None:
        """What can be asked of the target without writing to it (the plan's check):
        check_access (the keys, the bucket, its region), then one page of the listing.
        Writing, and the calls on uploads, are left to ``preflight``."""
        self.check_access()
        with preflight_step("listing", "tos:ListBucket"):
            retry(lambda: next(iter(self.list()), None), "listing of the bucket")

    def preflight_permissions(self, key: str, retry: Retry) -> list[str]:
        """Check, on ``key`` (which does not exist) or an upload of it that does not exist,
        the calls a run makes beyond writing, reading, listing and deleting objects; return
        what a run will do without. A back end without policies has nothing to check."""
        return []


def preflight_error(step: str, reason: str, *, denied: bool = False) -> StorageError:
    return StorageError(f"preflight failed at step '{step}': {reason}", denied=denied)


@contextmanager
def preflight_step(step: str, action: str | None = None) -> Iterator[None]:
    """Re-raise a StorageError from the block as a preflight failure of ``step``; one the
    key's policy denied names ``action``, the policy action it lacks (``tos:PutObject``)."""
    try:
        yield
    except StorageError as error:
        if action is None or not error.denied:
            raise preflight_error(step, str(error)) from error
        raise preflight_error(
            step, f"the storage key may not call {action} ({error}); a run needs it: allow "
            f"{action} to this key in the bucket policy or its IAM policy", denied=True,
        ) from error


def leftover_probes(client: StorageClient) -> list[str]:
    """The probe objects a killed preflight left behind (only names the preflight makes).
    One run at a time (the run lock) means no other preflight's probe is in flight."""
    return [info.key for info in client.list(PROBE_FOLDER)
            if PROBE_NAME.fullmatch(info.key[len(PROBE_FOLDER):])]


def remove_probe_scratch(scratch_dir: Path) -> None:
    """The probe files a killed preflight left in the client's scratch folder."""
    for scratch in scratch_dir.glob(f"{PROBE_PREFIX}*{PROBE_SUFFIX}"):
        if PROBE_NAME.fullmatch(scratch.name):
            scratch.unlink(missing_ok=True)


def probe_round_trip(client: StorageClient, key: str, retry: Retry) -> None:
    """``key`` written, read back, compared and deleted; the object is deleted also when a
    check after the write fails."""
    name = key[len(PROBE_FOLDER):]
    payload = f"storage preflight probe {key}\n".encode()
    scratch_dir = client.scratch_dir
    scratch_dir.mkdir(parents=True, exist_ok=True)
    source = scratch_dir / name
    source.write_bytes(payload)
    written = False
    try:
        with preflight_step("probe write", "tos:PutObject"):
            retry(partial(client.put_file, key, source, "text/plain"), f"upload of {key}")
            written = True
        with preflight_step("probe read", "tos:GetObject"):
            retry(partial(_check_probe, client, key, payload, file_crc64(source)),
                  f"read of {key}")
        with preflight_step("probe delete", "tos:DeleteObject"):
            retry(partial(client.delete, key), f"delete of {key}")
            written = False
            if client.stat(key) is not None:
                raise StorageError(f"{key!r} is still there after delete")
    finally:
        source.unlink(missing_ok=True)
        if written:  # a later check failed: leave nothing behind (a failure here too is
            with suppress(StorageError):  # cleaned up by the next preflight)
                client.delete(key)


def _check_probe(client: StorageClient, key: str, payload: bytes, crc64: int) -> None:
    with client.open(key) as stream:
        if stream.read() != payload:
            raise StorageError(f"{key!r} read back with different content")
    info = client.stat(key)
    if info is None or info.crc64 != crc64:
        raise StorageError(f"{key!r} reports CRC-64 {info and info.crc64}, expected {crc64}")


class PrefixedStorage(StorageClient):
    """Puts every key of ``inner`` under ``prefix`` (STORAGE_KEY_PREFIX), transparently.

    Callers keep using their logical keys; only the stored keys and public URLs carry the
    prefix. Kept as a wrapper so that each back end implements the prefix-free contract once.
    """

    def __init__(self, inner: StorageClient, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix

    def _strip(self, info: ObjectInfo) -> ObjectInfo:
        return replace(info, key=info.key[len(self.prefix):])

    def put_file(self, key: str, path: Path, content_type: str | None = None,
                 on_part: PartDone | None = None,
                 resume: PendingUpload | None = None) -> ObjectInfo:
        inner_resume = None if resume is None else replace(resume, key=self.prefix + resume.key)
        return self._strip(self.inner.put_file(self.prefix + key, path, content_type, on_part,
                                               inner_resume))

    def stat(self, key: str) -> ObjectInfo | None:
        info = self.inner.stat(self.prefix + key)
        return None if info is None else self._strip(info)

    def open(self, key: str) -> BinaryIO:
        return self.inner.open(self.prefix + key)

    def delete(self, key: str) -> None:
        self.inner.delete(self.prefix + key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return (self._strip(info) for info in self.inner.list(self.prefix + prefix))

    def public_url(self, key: str) -> str:
        return self.inner.public_url(self.prefix + key)

    @property
    def scratch_dir(self) -> Path:
        return self.inner.scratch_dir

    def check_access(self) -> None:
        self.inner.check_access()

    def conform(self, key: str) -> Correction:
        return self.inner.conform(self.prefix + key)

    def close(self) -> None:
        self.inner.close()

    def pending_uploads(self, prefix: str = "") -> Iterator[PendingUpload]:
        return (replace(upload, key=upload.key[len(self.prefix):])
                for upload in self.inner.pending_uploads(self.prefix + prefix))

    def abort_upload(self, upload: PendingUpload) -> None:
        self.inner.abort_upload(replace(upload, key=self.prefix + upload.key))

    def preflight_permissions(self, key: str, retry: Retry) -> list[str]:
        return self.inner.preflight_permissions(self.prefix + key, retry)
