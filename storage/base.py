"""The storage contract shared by the local-folder and TOS back ends."""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from storage.crc64 import file_crc64
from storage.options import Correction

__all__ = [
    "ObjectInfo", "PrefixedStorage", "StorageClient", "StorageError", "file_crc64", "join_url",
    "preflight_error", "preflight_step",
]


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    crc64: int | None  # CRC-64/ECMA as TOS reports it (decimal int); compare with file_crc64()


class StorageError(Exception):
    """One readable line saying what failed; never carries a secret key."""


def join_url(base_url: str, key: str) -> str:
    """``base_url/`` + the key percent-encoded the way TOS addresses objects."""
    return base_url.rstrip("/") + "/" + quote(key, safe="/~")


class StorageClient(ABC):
    @abstractmethod
    def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo:
        """Upload a local file (streamed) and return what the store now holds."""

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

    def conform(self, key: str) -> Correction:
        """Bring an object already stored with the right bytes to the client's upload
        options (ACL, storage class, SSE); a store without such options has nothing to do."""
        return "none"

    def preflight(self) -> None:
        """Check the target is usable; raise StorageError naming the step that failed.

        Beyond check_access, a probe object is written, read back, compared and deleted,
        so that permissions missing for one of those calls show up before a migration.
        """
        self.check_access()
        probe_round_trip(self, self.scratch_dir)


def preflight_error(step: str, reason: str) -> StorageError:
    return StorageError(f"preflight failed at step '{step}': {reason}")


@contextmanager
def preflight_step(step: str) -> Iterator[None]:
    """Re-raise a StorageError from the block as a preflight failure of ``step``."""
    try:
        yield
    except StorageError as error:
        raise preflight_error(step, str(error)) from error


def probe_round_trip(client: StorageClient, scratch_dir: Path) -> None:
    name = f"preflight-{uuid.uuid4().hex}.txt"
    key = f".preflight/{name}"
    payload = f"storage preflight probe {key}\n".encode()
    scratch_dir.mkdir(parents=True, exist_ok=True)
    source = scratch_dir / name
    source.write_bytes(payload)
    try:
        with preflight_step("probe write"):
            client.put_file(key, source, "text/plain")
        with preflight_step("probe read"):
            _check_probe(client, key, payload, file_crc64(source))
        with preflight_step("probe delete"):
            client.delete(key)
            if client.stat(key) is not None:
                raise StorageError(f"{key!r} is still there after delete")
    finally:
        source.unlink(missing_ok=True)


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
        return ObjectInfo(info.key[len(self.prefix):], info.size, info.crc64)

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo:
        return self._strip(self.inner.put_file(self.prefix + key, path, content_type))

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
