"""The storage contract shared by the local-folder and TOS back ends."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from storage.crc64 import file_crc64

__all__ = ["ObjectInfo", "PrefixedStorage", "StorageClient", "StorageError", "file_crc64"]


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

    @abstractmethod
    def preflight(self) -> None:
        """Check the target is usable; raise StorageError naming the step that failed."""


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

    def preflight(self) -> None:
        self.inner.preflight()
