"""CRC-64 as TOS reports it in ``x-tos-hash-crc64ecma``.

TOS uses CRC-64/XZ: the ECMA-182 polynomial, reflected, init and xor-out all ones
(``"123456789"`` -> ``0x995DC9BBDF1939FA``). The value is chainable: the CRC of
``a + b`` is ``update(b, update(a))``.

The ``crcmod`` C extension (a dependency of the ``tos`` SDK, and what the SDK itself uses)
does the work when it is installed. The pure-Python table is the fallback that keeps the
local TOS server runnable with the standard library alone; it is ~100x slower.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

_POLY = 0x142F0E1EBA9EA3693  # crcmod notation: the x^64 term included
_POLY_REFLECTED = 0xC96C5795D7870F42
_MASK = 0xFFFFFFFFFFFFFFFF
CHUNK_SIZE = 1024 * 1024


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY_REFLECTED if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc64_update_pure(data: bytes, crc: int = 0) -> int:
    """Extend ``crc`` (a finished CRC-64, 0 for none) with ``data``; pure Python."""
    crc ^= _MASK
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _MASK


def _load_fast_update() -> Callable[[bytes, int], int]:
    try:
        import crcmod
    except ImportError:
        return crc64_update_pure
    return crcmod.mkCrcFun(_POLY, initCrc=0, rev=True, xorOut=_MASK)


crc64_update: Callable[[bytes, int], int] = _load_fast_update()
"""Extend a finished CRC-64 (0 for none) with more bytes: ``crc64_update(data, crc)``."""


def file_crc64(path: Path, chunk_size: int = CHUNK_SIZE) -> int:
    """CRC-64 of a file, read in chunks so that large files are never held in memory."""
    crc = 0
    with path.open("rb") as stream:
        while chunk := stream.read(chunk_size):
            crc = crc64_update(chunk, crc)
    return crc
