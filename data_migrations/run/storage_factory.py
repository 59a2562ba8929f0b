"""The storage client the settings describe (the settings themselves live in settings/)."""

from __future__ import annotations

from pathlib import Path

from settings.storage import StorageSettings
from storage.base import PrefixedStorage, StorageClient
from storage.local import LocalStorage
from storage.tos import DEFAULT_PART_CONCURRENCY, TosStorage


def build_storage(settings: StorageSettings, work_dir: Path) -> StorageClient:
    """The client the settings describe; ``work_dir`` takes its scratch files (the
    preflight probe), never the folder being migrated."""
    client: StorageClient
    if settings.provider == "local":
        client = LocalStorage(settings.local_root, settings.public_base_url)
    else:
        client = TosStorage(
            bucket=settings.bucket,
            endpoint=settings.endpoint,
            region=settings.region,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            security_token=settings.security_token,
            options=settings.object_options,
            public_base_url=settings.public_base_url,
            work_dir=work_dir,
            proxy=settings.proxy,
            multipart_threshold=settings.multipart_threshold,
            part_size=settings.part_size,
            rate_limit=settings.rate_limit,
            # MAX_CONCURRENT bounds the parts in flight too; past a few parts one upload
            # gains no speed, only memory for socket buffers and server load.
            part_concurrency=min(settings.max_concurrent, DEFAULT_PART_CONCURRENCY),
        )
    return PrefixedStorage(client, settings.key_prefix) if settings.key_prefix else client
