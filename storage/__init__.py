"""Object storage for the Meeting Agent: a local folder or Volcengine TOS, one contract.

The TOS client and the settings are imported on first use, so that the local TOS server
(``python -m storage.tos_server``) runs with the standard library alone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from storage.base import ObjectInfo, PrefixedStorage, StorageClient, StorageError, file_crc64
from storage.local import LocalStorage

if TYPE_CHECKING:
    from storage.settings import StorageConfigError, StorageSettings, build_storage
    from storage.tos import TosStorage

_LAZY = {
    "TosStorage": "storage.tos",
    "StorageConfigError": "storage.settings",
    "StorageSettings": "storage.settings",
    "build_storage": "storage.settings",
}

__all__ = [
    "LocalStorage",
    "ObjectInfo",
    "PrefixedStorage",
    "StorageClient",
    "StorageConfigError",
    "StorageError",
    "StorageSettings",
    "TosStorage",
    "build_storage",
    "file_crc64",
]


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'storage' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
