"""How the objects are written beyond their bytes: the upload settings STORAGE_ACL,
STORAGE_CLASS and STORAGE_SSE, as the storage clients and the manifest take them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# What an object already in the bucket with the right bytes still needs: nothing, its ACL
# set in place, or to be sent again (a storage class or encryption is fixed at write time).
Correction = Literal["none", "acl", "resend"]


@dataclass(frozen=True)
class ObjectOptions:
    acl: str | None = None  # a canned ACL; None: the bucket's default
    storage_class: str | None = None  # a StorageClassType name; None: the bucket's default
    sse: str | None = None  # "AES256" (SSE-TOS); None: none asked for

    def manifest_values(self) -> dict[str, str | None]:
        return {"acl": self.acl, "storage_class": self.storage_class, "sse": self.sse}


BUCKET_DEFAULTS = ObjectOptions()  # nothing asked: the bucket's defaults apply
