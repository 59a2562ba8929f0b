"""CRC-64 as TOS reports it in ``x-tos-hash-crc64ecma``.

TOS uses CRC-64/XZ: the ECMA-182 polynomial, reflected, init and xor-out all ones
(``"123456789"`` -> ``0x995DC9BBDF1939FA``). The value is chainable: the CRC of
``a + b`` is ``update(b, update(a))``. ``crcmod`` (a dependency of the ``tos`` SDK, and
what the SDK itself uses) computes it in C.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import crcmod

_POLY = 0x142F0E1EBA9EA3693  # crcmod notation: the x^64 term included
_MASK = 0xFFFFFFFFFFFFFFFF
CHUNK_SIZE = 1024 * 1024

crc64_update: Callable[[bytes, int], int] = crcmod.mkCrcFun(
    _POLY, initCrc=0, rev=True, xorOut=_MASK
)
"""Extend a finished CRC-64 (0 for none) with more bytes: ``crc64_update(data, crc)``."""


def file_crc64(path: Path, chunk_size: int = CHUNK_SIZE) -> int:
    """CRC-64 of a file, read in chunks so that large files are never held in memory."""
    crc = 0
    with path.open("rb") as stream:
        while chunk := stream.read(chunk_size):
            crc = crc64_update(chunk, crc)
    return crc
