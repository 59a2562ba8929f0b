"""Object storage for the Meeting Agent: a local folder or Volcengine TOS, one contract.

The TOS client is imported on first use, so that code needing only the contract or the
local folder does not load the tos SDK. This package knows nothing of the settings: they
are parsed in settings/ (``settings.storage.StorageSettings``), and the client they
describe is built in data_migrations/run/storage_factory.py.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from storage.base import (
    FileChanged,
    FileState,
    ObjectInfo,
    PendingUpload,
    PrefixedStorage,
    StorageClient,
    StorageError,
    file_crc64,
    file_state,
)
from storage.local import LocalStorage

if TYPE_CHECKING:
    from storage.tos import TosStorage

_LAZY = {
    "TosStorage": "storage.tos",
}

__all__ = [
    "FileChanged",
    "FileState",
    "LocalStorage",
    "ObjectInfo",
    "PendingUpload",
    "PrefixedStorage",
    "StorageClient",
    "StorageError",
    "TosStorage",
    "file_crc64",
    "file_state",
]


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'storage' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
