"""CRC-64 helpers: ranges of a file, and combining the CRCs of consecutive pieces."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from storage.crc64 import CHUNK_SIZE, crc64_combine, crc64_update, file_crc64

MakeFile = Callable[..., Path]


def crc(data: bytes) -> int:
    return crc64_update(data, 0)


@pytest.mark.parametrize(("offset", "length"), [
    (0, None), (0, 0), (1, 10), (CHUNK_SIZE - 3, 7), (CHUNK_SIZE + 5, CHUNK_SIZE),
    (2 * CHUNK_SIZE, None), (3 * CHUNK_SIZE - 10, 1000),  # past the end: what is there
])
def test_file_crc64_of_a_range(make_file: MakeFile, offset: int, length: int | None) -> None:
    data = os.urandom(3 * CHUNK_SIZE)
    end = None if length is None else offset + length

    assert file_crc64(make_file(data), offset, length) == crc(data[offset:end])


@pytest.mark.parametrize("sizes", [(0, 0), (5, 0), (0, 5), (1, 1), (1000, 3),
                                   (7, 5 * 1024 * 1024 + 1)])
def test_combining_two_crcs_gives_the_crc_of_both_pieces(sizes: tuple[int, int]) -> None:
    first, second = os.urandom(sizes[0]), os.urandom(sizes[1])

    assert crc64_combine(crc(first), crc(second), len(second)) == crc(first + second)


def test_parts_combine_into_the_whole_in_order() -> None:
    rng = random.Random(7)
    parts = [rng.randbytes(rng.randrange(1, 50_000)) for _ in range(20)]
    combined = 0
    for part in parts:
        combined = crc64_combine(combined, crc(part), len(part))

    assert combined == crc(b"".join(parts))
