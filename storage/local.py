"""Objects as files under a root folder: the development stand-in for TOS."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from storage.base import (
    ObjectInfo,
    PartDone,
    PendingUpload,
    StorageClient,
    StorageError,
    file_crc64,
    join_url,
    preflight_error,
)
from storage.crc64 import CHUNK_SIZE, crc64_update

INCOMING = ".incoming"  # uploads in progress; a reserved first key segment


class LocalStorage(StorageClient):
    """Keys map to paths under ``root`` (``a/b.mp3`` -> ``root/a/b.mp3``).

    A key that cannot be a relative path inside root (``..``, empty segments, a leading
    ``/``) is refused rather than escaping the root. Writes go to a temporary file first and
    are renamed into place, so a reader never sees half a file.
    """

    def __init__(self, root: Path, public_base_url: str) -> None:
        self.root = root
        self.public_base_url = public_base_url

    @property
    def scratch_dir(self) -> Path:
        return self.root / INCOMING

    def _path(self, key: str) -> Path:
        segments = key.split("/")
        if (
            not key
            or "\0" in key
            or segments[0] == INCOMING
            or any(segment in ("", ".", "..") for segment in segments)
        ):
            raise StorageError(f"key {key!r} cannot be stored as a file under {self.root}")
        path = self.root.joinpath(*segments)
        # A symlinked folder could still lead outside the root.
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise StorageError(f"key {key!r} leads outside {self.root}")
        return path

    def put_file(self, key: str, path: Path, content_type: str | None = None,
                 on_part: PartDone | None = None,
                 resume: PendingUpload | None = None) -> ObjectInfo:
        # A folder takes whole files: there are no parts to report, and no multipart
        # upload to resume.
        target = self._path(key)
        try:
            self.scratch_dir.mkdir(parents=True, exist_ok=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            size, crc = self._copy_into_place(path, target)
        except OSError as error:
            raise StorageError(f"cannot store {key!r} from {path}: {error.strerror}") from error
        return ObjectInfo(key, size, crc)

    def _copy_into_place(self, source: Path, target: Path) -> tuple[int, int]:
        fd, temp_name = tempfile.mkstemp(dir=self.scratch_dir)
        size, crc = 0, 0
        try:
            with source.open("rb") as reader, os.fdopen(fd, "wb") as writer:
                while chunk := reader.read(CHUNK_SIZE):
                    writer.write(chunk)
                    crc = crc64_update(chunk, crc)
                    size += len(chunk)
            os.replace(temp_name, target)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        return size, crc

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            return ObjectInfo(key, path.stat().st_size, file_crc64(path))
        except FileNotFoundError:  # deleted meanwhile
            return None

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            raise StorageError(f"cannot open {key!r}: no such object") from None
        except OSError as error:
            raise StorageError(f"cannot open {key!r}: {error.strerror}") from error

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            raise StorageError(f"cannot delete {key!r}: {error.strerror}") from error
        self._prune_empty_folders(path.parent)

    def _prune_empty_folders(self, folder: Path) -> None:
        # Object stores have no folders: one left empty would still shape later listings.
        while folder != self.root:
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone): stop climbing
                return
            folder = folder.parent

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for key in sorted(self._keys_under(prefix)):
            info = self.stat(key)
            if info is not None:  # skip a file deleted while listing
                yield info

    def _keys_under(self, prefix: str) -> Iterator[str]:
        """Keys starting with prefix, walking only the folder the prefix points into."""
        folder = prefix.rpartition("/")[0]
        try:
            start = self._path(folder) if folder else self.root
        except StorageError:  # no valid key starts with this prefix
            return
        for directory, subdirs, files in os.walk(start):
            if Path(directory) == self.root and INCOMING in subdirs:
                subdirs.remove(INCOMING)
            relative = Path(directory).relative_to(self.root)
            for name in files:
                key = (relative / name).as_posix()
                if key.startswith(prefix):
                    yield key

    def public_url(self, key: str) -> str:
        return join_url(self.public_base_url, key)

    def check_access(self) -> None:
        if not self.root.is_dir():
            raise preflight_error("folder", f"STORAGE_LOCAL_ROOT {self.root} is not an existing "
                                  "folder (create it, or set STORAGE_LOCAL_ROOT to the local "
                                  "bucket folder)")
