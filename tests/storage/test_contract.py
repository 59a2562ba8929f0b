"""The StorageClient contract, run against LocalStorage and TosStorage alike."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from storage.base import ObjectInfo, StorageClient, StorageError, file_crc64
from tests.conftest import PUBLIC_BASE_URL

MakeFile = Callable[..., Path]


def read_all(storage: StorageClient, key: str) -> bytes:
    with storage.open(key) as stream:
        return stream.read()


def test_put_stat_open_delete(storage: StorageClient, make_file: MakeFile) -> None:
    source = make_file(b"meeting minutes\n" * 100)

    info = storage.put_file("minutes/2024-05-01.txt", source)

    expected = ObjectInfo("minutes/2024-05-01.txt", 1600, file_crc64(source))
    assert info == expected
    assert storage.stat("minutes/2024-05-01.txt") == expected
    assert read_all(storage, "minutes/2024-05-01.txt") == source.read_bytes()
    storage.delete("minutes/2024-05-01.txt")
    assert storage.stat("minutes/2024-05-01.txt") is None
    storage.delete("minutes/2024-05-01.txt")  # deleting a missing object is not an error


def test_put_replaces_an_existing_object(storage: StorageClient, make_file: MakeFile) -> None:
    storage.put_file("a.txt", make_file(b"first version"))
    second = make_file(b"second")

    storage.put_file("a.txt", second)

    assert storage.stat("a.txt") == ObjectInfo("a.txt", 6, file_crc64(second))
    assert read_all(storage, "a.txt") == b"second"


def test_stat_of_a_missing_key_is_none(storage: StorageClient) -> None:
    assert storage.stat("no/such/key.mp3") is None


def test_open_of_a_missing_key_raises(storage: StorageClient) -> None:
    with pytest.raises(StorageError, match=r"no/such/key.mp3"):
        storage.open("no/such/key.mp3")


def test_list_returns_every_page_in_key_order(storage: StorageClient,
                                              make_file: MakeFile) -> None:
    # 12 objects under the prefix: more than the 5-key pages the TOS client is set to use.
    expected = []
    for number in [7, 3, 11, 0, 5, 9, 1, 10, 2, 8, 4, 6]:
        key = f"rec/{number:02d}.wav"
        source = make_file(size=number * 10)
        storage.put_file(key, source)
        expected.append(ObjectInfo(key, number * 10, file_crc64(source)))
    storage.put_file("recap.txt", make_file(b"not under rec/"))
    storage.put_file("other/x.txt", make_file(b"elsewhere"))

    listed = list(storage.list("rec/"))

    assert listed == sorted(expected, key=lambda info: info.key)
    assert [info.key for info in storage.list("rec")] == [info.key for info in listed] + [
        "recap.txt"]
    assert len(list(storage.list())) == 14
    assert list(storage.list("nothing-here/")) == []


SPECIAL_KEYS = {
    # key -> how it must appear after the public base URL
    "with space.txt": "with%20space.txt",
    "会议/录音 1.mp3": "%E4%BC%9A%E8%AE%AE/%E5%BD%95%E9%9F%B3%201.mp3",
    "tag#1.txt": "tag%231.txt",
    "100%.txt": "100%25.txt",
    "100%20.txt": "100%2520.txt",
    "a+b=c&d.txt": "a%2Bb%3Dc%26d.txt",
    "emoji 😀.png": "emoji%20%F0%9F%98%80.png",
    "tilde~ok/x?y.txt": "tilde~ok/x%3Fy.txt",
}


@pytest.mark.parametrize("key", list(SPECIAL_KEYS))
def test_special_character_keys_round_trip(storage: StorageClient, make_file: MakeFile,
                                           key: str) -> None:
    source = make_file(key.encode() * 3)

    storage.put_file(key, source)

    assert storage.stat(key) == ObjectInfo(key, source.stat().st_size, file_crc64(source))
    assert read_all(storage, key) == source.read_bytes()
    assert [info.key for info in storage.list()] == [key]
    assert storage.public_url(key) == f"{PUBLIC_BASE_URL}/{SPECIAL_KEYS[key]}"
    storage.delete(key)
    assert list(storage.list()) == []


def test_empty_file(storage: StorageClient, make_file: MakeFile) -> None:
    info = storage.put_file("empty.txt", make_file(b""))

    assert info == ObjectInfo("empty.txt", 0, 0)
    assert storage.stat("empty.txt") == ObjectInfo("empty.txt", 0, 0)
    assert read_all(storage, "empty.txt") == b""


def test_large_file_above_the_multipart_threshold(storage: StorageClient,
                                                  make_file: MakeFile) -> None:
    # 12 MiB + 1 byte: three 5 MiB-or-less parts on TOS (threshold 6 MiB in the fixture).
    source = make_file(size=12 * 1024 * 1024 + 1)
    crc = file_crc64(source)

    info = storage.put_file("recordings/long.wav", source)

    assert info == ObjectInfo("recordings/long.wav", source.stat().st_size, crc)
    assert storage.stat("recordings/long.wav") == info
    with storage.open("recordings/long.wav") as stream:
        digest = hashlib.file_digest(stream, "sha256").hexdigest()
    assert digest == hashlib.sha256(source.read_bytes()).hexdigest()


def test_open_reads_in_pieces(storage: StorageClient, make_file: MakeFile) -> None:
    source = make_file(size=300_000)
    storage.put_file("piece.bin", source)

    with storage.open("piece.bin") as stream:
        pieces = [stream.read(70_000) for _ in range(5)]

    assert [len(piece) for piece in pieces] == [70_000, 70_000, 70_000, 70_000, 20_000]
    assert b"".join(pieces) == source.read_bytes()


def test_preflight_passes_and_leaves_nothing_behind(storage: StorageClient) -> None:
    storage.preflight()

    assert list(storage.list()) == []


def test_file_crc64_matches_the_tos_definition(make_file: MakeFile) -> None:
    # CRC-64/XZ check value, as documented for TOS's x-tos-hash-crc64ecma.
    assert file_crc64(make_file(b"123456789")) == 0x995DC9BBDF1939FA
