"""Storage settings from the environment, and the client they describe."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from storage.base import PrefixedStorage, StorageClient
from storage.local import LocalStorage
from storage.tos import (
    DEFAULT_MULTIPART_THRESHOLD,
    DEFAULT_PART_CONCURRENCY,
    DEFAULT_PART_SIZE,
    MIN_PART_SIZE,
    TosStorage,
)

Provider = Literal["local", "tos"]
DEFAULT_LOCAL_ROOT = "./work/bucket"
DEFAULT_MAX_CONCURRENT = 10
TOS_REQUIRED = ("STORAGE_BUCKET", "STORAGE_REGION", "STORAGE_ENDPOINT", "STORAGE_ACCESS_KEY",
                "STORAGE_SECRET_KEY")
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")  # TOS bucket naming rules


class StorageConfigError(ValueError):
    """A missing or malformed setting; the message is one line naming the variable."""


@dataclass(frozen=True)
class StorageSettings:
    provider: Provider
    local_root: Path
    bucket: str
    region: str
    endpoint: str  # with scheme, e.g. https://tos-cn-beijing.volces.com
    access_key: str
    secret_key: str = field(repr=False)
    key_prefix: str  # "" or "folder/" form
    public_base_url: str  # no trailing "/"
    proxy: tuple[str, int] | None
    max_concurrent: int
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD  # bytes; larger files go in parts
    part_size: int = DEFAULT_PART_SIZE

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StorageSettings:
        def get(name: str) -> str:
            return env.get(name, "").strip()

        provider = _provider(get("STORAGE_PROVIDER"))
        if provider == "tos":
            for name in TOS_REQUIRED:
                if not get(name):
                    raise StorageConfigError(f"{name} is not set (needed when "
                                             "STORAGE_PROVIDER=tos)")
        local_root = Path(get("STORAGE_LOCAL_ROOT") or DEFAULT_LOCAL_ROOT)
        bucket = _bucket(get("STORAGE_BUCKET"))
        endpoint = _endpoint(get("STORAGE_ENDPOINT"))
        proxy = _proxy(get("STORAGE_PROXY"))
        if proxy and provider == "tos" and not endpoint.startswith("http://"):
            # The SDK sets only an http proxy: an https endpoint would silently bypass it.
            raise StorageConfigError("STORAGE_PROXY needs an http:// STORAGE_ENDPOINT (the tos "
                                     "SDK does not proxy https)")
        return cls(
            provider=provider,
            local_root=local_root,
            bucket=bucket,
            region=get("STORAGE_REGION"),
            endpoint=endpoint,
            access_key=get("STORAGE_ACCESS_KEY"),
            secret_key=get("STORAGE_SECRET_KEY"),
            key_prefix=_key_prefix(get("STORAGE_KEY_PREFIX")),
            public_base_url=_public_base_url(get("STORAGE_PUBLIC_BASE_URL"), provider,
                                             local_root, bucket, endpoint),
            proxy=proxy,
            max_concurrent=_positive_int("MAX_CONCURRENT", get("MAX_CONCURRENT"),
                                         DEFAULT_MAX_CONCURRENT),
            multipart_threshold=_positive_int("STORAGE_MULTIPART_THRESHOLD",
                                              get("STORAGE_MULTIPART_THRESHOLD"),
                                              DEFAULT_MULTIPART_THRESHOLD),
            part_size=_part_size(get("STORAGE_PART_SIZE")),
        )


def _provider(value: str) -> Provider:
    provider = value.lower() or "local"
    if provider == "local":
        return "local"
    if provider == "tos":
        return "tos"
    raise StorageConfigError(f"STORAGE_PROVIDER must be 'local' or 'tos', got {value!r}")


def _bucket(value: str) -> str:
    if value and not BUCKET_NAME.fullmatch(value):
        raise StorageConfigError(
            f"STORAGE_BUCKET must be 3-63 lowercase letters, digits or '-' (not at either "
            f"end), got {value!r}"
        )
    return value


def _endpoint(value: str) -> str:
    """A bare host (as the TOS console shows it) means https://host."""
    if not value:
        return ""
    url = value if "://" in value else f"https://{value}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
        raise StorageConfigError(
            f"STORAGE_ENDPOINT must look like https://tos-cn-beijing.volces.com, got {value!r}"
        )
    return f"{parts.scheme}://{parts.netloc}"


def _key_prefix(value: str) -> str:
    """'meetings', '/meetings/' and 'meetings/' all mean keys under 'meetings/'."""
    folder = value.strip("/")
    return f"{folder}/" if folder else ""


def _public_base_url(value: str, provider: Provider, local_root: Path, bucket: str,
                     endpoint: str) -> str:
    if value:
        if urlsplit(value).scheme not in ("http", "https", "file"):
            raise StorageConfigError(
                f"STORAGE_PUBLIC_BASE_URL must start with http://, https:// or file://, "
                f"got {value!r}"
            )
        return value.rstrip("/")
    if provider == "local":
        return local_root.resolve().as_uri()
    return f"https://{bucket}.{urlsplit(endpoint).netloc}"


def _proxy(value: str) -> tuple[str, int] | None:
    if not value:
        return None
    # The value is not echoed: a proxy URL may carry a password.
    error = StorageConfigError("STORAGE_PROXY must look like http://host:port")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise error from None
    if parts.scheme != "http" or not parts.hostname or port is None or parts.username \
            or parts.path.strip("/"):
        raise error
    return parts.hostname, port


def _positive_int(name: str, value: str, default: int) -> int:
    if not value:
        return default
    if not value.isdigit() or int(value) == 0:
        raise StorageConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _part_size(value: str) -> int:
    size = _positive_int("STORAGE_PART_SIZE", value, DEFAULT_PART_SIZE)
    if size < MIN_PART_SIZE:
        raise StorageConfigError(f"STORAGE_PART_SIZE must be at least {MIN_PART_SIZE} bytes "
                                 f"(the TOS minimum), got {value!r}")
    return size


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
            public_base_url=settings.public_base_url,
            work_dir=work_dir,
            proxy=settings.proxy,
            multipart_threshold=settings.multipart_threshold,
            part_size=settings.part_size,
            # MAX_CONCURRENT bounds the parts in flight too; past a few parts one upload
            # gains no speed, only memory for socket buffers and server load.
            part_concurrency=min(settings.max_concurrent, DEFAULT_PART_CONCURRENCY),
        )
    return PrefixedStorage(client, settings.key_prefix) if settings.key_prefix else client
