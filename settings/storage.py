"""The storage part of the settings: where the objects go and how they get there.

Each value is parsed by its declaration (settings/declared.py); what is checked here is
what holds between them: the TOS settings are required only for the ``tos`` provider, the
proxy needs an http endpoint, and the public base URL is derived when it is not given.
``build_storage`` (data_migrations/run/storage_factory.py) makes the client these settings
describe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from settings.errors import ConfigError
from storage.options import ObjectOptions

Provider = Literal["local", "tos"]
TOS_REQUIRED = ("STORAGE_BUCKET", "STORAGE_REGION", "STORAGE_ENDPOINT", "STORAGE_ACCESS_KEY",
                "STORAGE_SECRET_KEY")


@dataclass(frozen=True)
class StorageSettings:
    provider: Provider
    local_root: Path
    bucket: str
    region: str
    endpoint: str  # with scheme, e.g. https://tos-cn-beijing.volces.com
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    key_prefix: str  # "" or "folder/" form
    public_base_url: str  # no trailing "/"
    proxy: tuple[str, int] | None = field(repr=False)
    max_concurrent: int
    multipart_threshold: int  # bytes; larger files go in parts
    part_size: int
    rate_limit: int | None = None  # bytes per second, all uploads of a run; None: unlimited
    acl: str | None = None  # None: the bucket's default
    storage_class: str | None = None  # None: the bucket's default
    sse: str | None = None  # "AES256" (SSE-TOS) or None
    security_token: str = field(default="", repr=False)  # STS; "" for a permanent key pair

    @property
    def object_options(self) -> ObjectOptions:
        return ObjectOptions(self.acl, self.storage_class, self.sse)

    def location(self) -> str:
        """Where the objects go, for people and for telling targets apart: never a
        credential."""
        where = (f"folder {self.local_root.resolve()}" if self.provider == "local"
                 else f"bucket {self.bucket!r} at {self.endpoint}")
        return where + (f", keys under {self.key_prefix}" if self.key_prefix else "")

    @classmethod
    def from_values(cls, values: dict[str, object]) -> StorageSettings:
        """From the parsed values of the ``STORAGE_*`` settings and ``MAX_CONCURRENT``."""
        provider = values["STORAGE_PROVIDER"]
        if provider == "tos":
            for name in TOS_REQUIRED:
                if not values[name]:
                    raise ConfigError(f"{name} is not set (needed when STORAGE_PROVIDER=tos)")
        endpoint = str(values["STORAGE_ENDPOINT"])
        if values["STORAGE_PROXY"] and provider == "tos" and not endpoint.startswith("http://"):
            # The SDK sets only an http proxy: an https endpoint would silently bypass it.
            raise ConfigError("STORAGE_PROXY needs an http:// STORAGE_ENDPOINT (the tos "
                              "SDK does not proxy https)")
        local_root = Path(values["STORAGE_LOCAL_ROOT"])
        bucket = str(values["STORAGE_BUCKET"])
        return cls(
            provider=provider,
            local_root=local_root,
            bucket=bucket,
            region=str(values["STORAGE_REGION"]),
            endpoint=endpoint,
            access_key=str(values["STORAGE_ACCESS_KEY"]),
            secret_key=str(values["STORAGE_SECRET_KEY"]),
            key_prefix=str(values["STORAGE_KEY_PREFIX"]),
            public_base_url=str(values["STORAGE_PUBLIC_BASE_URL"])
            or _derived_base_url(provider, local_root, bucket, endpoint),
            proxy=values["STORAGE_PROXY"],
            max_concurrent=int(values["MAX_CONCURRENT"]),
            multipart_threshold=int(values["STORAGE_MULTIPART_THRESHOLD"]),
            part_size=int(values["STORAGE_PART_SIZE"]),
            rate_limit=values["STORAGE_RATE_LIMIT"],
            acl=values["STORAGE_ACL"],
            storage_class=values["STORAGE_CLASS"],
            sse=values["STORAGE_SSE"],
            security_token=str(values["STORAGE_SECURITY_TOKEN"]),
        )


def _derived_base_url(provider: str, local_root: Path, bucket: str, endpoint: str) -> str:
    if provider == "local":
        return local_root.resolve().as_uri()
    return f"https://{bucket}.{urlsplit(endpoint).netloc}"
