"""CRC-64 as TOS reports it in ``x-tos-hash-crc64ecma``.

TOS uses CRC-64/XZ: the ECMA-182 polynomial, reflected, init and xor-out all ones
(``"123456789"`` -> ``0x995DC9BBDF1939FA``). The value is chainable: the CRC of
``a + b`` is ``update(b, update(a))``. ``crcmod`` (a dependency of the ``tos`` SDK, and
what the SDK itself uses) computes it in C.

``crc64_combine`` gives the CRC of ``a + b`` from the two CRCs and ``len(b)`` alone, so
that parts checked one by one (in any order, on any thread) add up to the whole object's
CRC without reading any byte twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import crcmod

_POLY = 0x142F0E1EBA9EA3693  # crcmod notation: the x^64 term included
_MASK = 0xFFFFFFFFFFFFFFFF
_REFLECTED_POLY = 0xC96C5795D7870F42  # the same polynomial, bit-reversed, without x^64
_TOP_BIT = 1 << 63  # x^0 in the reflected representation
CHUNK_SIZE = 1024 * 1024

crc64_update: Callable[[bytes, int], int] = crcmod.mkCrcFun(
    _POLY, initCrc=0, rev=True, xorOut=_MASK
)
"""Extend a finished CRC-64 (0 for none) with more bytes: ``crc64_update(data, crc)``."""


def file_chunks(path: Path, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
    """A file, or ``length`` bytes of it from ``offset``, in chunks, so that large files
    are never held in memory."""
    remaining = math.inf if length is None else length
    with path.open("rb") as stream:
        stream.seek(offset)
        while remaining > 0 and (chunk := stream.read(int(min(CHUNK_SIZE, remaining)))):
            yield chunk
            remaining -= len(chunk)


def file_crc64(path: Path, offset: int = 0, length: int | None = None) -> int:
    """CRC-64 of a file, or of ``length`` bytes of it from ``offset``."""
    crc = 0
    for chunk in file_chunks(path, offset, length):
        crc = crc64_update(chunk, crc)
    return crc


def _multiply(a: int, b: int) -> int:
    """``a * b`` modulo the polynomial, both in the reflected representation (zlib's
    ``multmodp``)."""
    product, bit = 0, _TOP_BIT
    while True:
        if a & bit:
            product ^= b
            if not a & (bit - 1):
                return product
        bit >>= 1
        b = (b >> 1) ^ _REFLECTED_POLY if b & 1 else b >> 1


def _powers_of_x() -> list[int]:
    """``x^(2^k)`` modulo the polynomial for k = 0..63: squaring steps for ``_x_to_the``."""
    powers = [_TOP_BIT >> 1]  # x^1
    for _ in range(63):
        powers.append(_multiply(powers[-1], powers[-1]))
    return powers


_X_POWERS = _powers_of_x()


def _x_to_the_8n(byte_count: int) -> int:
    """``x^(8 * byte_count)`` modulo the polynomial, by squaring (zlib's ``x2nmodp``)."""
    power, k = _TOP_BIT, 3  # x^0; 2^3 bits per byte
    while byte_count:
        if byte_count & 1:
            power = _multiply(_X_POWERS[k % 64], power)
        byte_count >>= 1
        k += 1
    return power


def crc64_combine(crc_a: int, crc_b: int, length_b: int) -> int:
    """The CRC-64 of ``a + b`` from ``crc64(a)``, ``crc64(b)`` and ``len(b)``.

    As in zlib's ``crc32_combine``: shifting a's CRC past len(b) zero bytes and adding b's
    is exact because the init and xor-out values are equal and so cancel out.
    """
    return _multiply(_x_to_the_8n(length_b), crc_a) ^ crc_b
