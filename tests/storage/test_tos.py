"""TosStorage against the local server: credentials, missing bucket, CRC, faults, retries."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tos
from tos.utils import RateLimiter, TokenBucketResult

from devtools.tos_server import Faults, TosServer
from storage.base import ObjectInfo, PrefixedStorage, StorageError, file_crc64
from storage.tos import MiB, TosStorage
from tests.conftest import BUCKET, SECRET_KEY, TosFactory

MakeFile = Callable[..., Path]


def test_wrong_secret_key_fails_preflight_at_credentials(make_tos_storage: TosFactory) -> None:
    wrong_secret = "not-the-right-secret-0123456789"
    storage = make_tos_storage(secret_key=wrong_secret)

    with pytest.raises(StorageError) as caught:
        storage.preflight()

    message = str(caught.value)
    assert "step 'credentials'" in message
    assert "403" in message
    assert wrong_secret not in message
    assert SECRET_KEY not in message


def test_wrong_secret_key_fails_uploads_without_leaking_it(make_tos_storage: TosFactory,
                                                           make_file: MakeFile) -> None:
    wrong_secret = "not-the-right-secret-0123456789"
    storage = make_tos_storage(secret_key=wrong_secret)

    with pytest.raises(StorageError) as caught:
        storage.put_file("minutes.txt", make_file(b"text"))

    message = str(caught.value)
    assert "'minutes.txt'" in message
    assert "SignatureDoesNotMatch" in message
    assert wrong_secret not in message
    assert wrong_secret not in repr(caught.value.__cause__)


def test_unknown_access_key_fails_preflight_at_credentials(make_tos_storage: TosFactory) -> None:
    storage = make_tos_storage(access_key="AKLT-nobody")

    with pytest.raises(StorageError, match=r"step 'credentials': the access key .*HTTP 403"):
        storage.preflight()


def test_missing_bucket_fails_preflight_at_bucket(make_tos_storage: TosFactory) -> None:
    storage = make_tos_storage(bucket="no-such-bucket")

    with pytest.raises(StorageError,
                       match=r"step 'bucket': the bucket does not exist .bucket 'no-such-bucket'"):
        storage.preflight()


def test_stat_in_a_missing_bucket_raises_instead_of_saying_missing(
        make_tos_storage: TosFactory) -> None:
    storage = make_tos_storage(bucket="no-such-bucket")

    with pytest.raises(StorageError, match=r"stat of 'a.txt' in bucket 'no-such-bucket'"):
        storage.stat("a.txt")


def test_unreachable_endpoint_fails_preflight_at_connect(make_tos_storage: TosFactory,
                                                         tos_server: TosServer) -> None:
    port = tos_server.port
    tos_server.stop()
    storage = make_tos_storage(proxy=("127.0.0.1", port), max_retry_count=0)

    with pytest.raises(StorageError, match="step 'connect'"):
        storage.preflight()


def test_content_type_comes_from_the_file_extension(tos_storage: TosStorage,
                                                    raw_client: tos.TosClientV2,
                                                    make_file: MakeFile) -> None:
    tos_storage.put_file("talk", make_file(b"ID3", name="talk.mp3"))
    tos_storage.put_file("notes", make_file(b"{}", name="notes.unknownext"))
    tos_storage.put_file("forced", make_file(b"x", name="f.mp3"), content_type="text/plain")

    assert raw_client.head_object("meeting-agent", "talk").content_type == "audio/mpeg"
    assert raw_client.head_object("meeting-agent", "notes").content_type == \
        "application/octet-stream"
    assert raw_client.head_object("meeting-agent", "forced").content_type == "text/plain"


def test_large_files_go_up_in_parts(tos_storage: TosStorage, raw_client: tos.TosClientV2,
                                    make_file: MakeFile) -> None:
    tos_storage.put_file("small.bin", make_file(size=6 * 1024 * 1024))
    tos_storage.put_file("large.bin", make_file(size=11 * 1024 * 1024))

    # Multipart ETags end with the part count; single PUTs have a plain MD5.
    assert "-" not in raw_client.head_object("meeting-agent", "small.bin").etag
    assert raw_client.head_object("meeting-agent", "large.bin").etag.endswith("-3")


def test_part_size_below_the_tos_minimum_is_refused(make_tos_storage: TosFactory) -> None:
    with pytest.raises(ValueError, match="part_size"):
        make_tos_storage(part_size=1024 * 1024)


def test_missing_source_file_is_reported(tos_storage: TosStorage, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"'k'.*is not a file"):
        tos_storage.put_file("k", tmp_path / "nope.bin")


# ---------------------------------------------------------------- CRC checks


def test_crc_mismatch_on_upload_is_detected(tos_storage: TosStorage, tos_server: TosServer,
                                            make_file: MakeFile) -> None:
    tos_server.faults.corrupt_crc = True

    with pytest.raises(StorageError, match=r"upload of 'a.bin'.*CRC"):
        tos_storage.put_file("a.bin", make_file(size=1000))


def test_crc_mismatch_on_multipart_upload_is_detected(tos_storage: TosStorage,
                                                      tos_server: TosServer,
                                                      make_file: MakeFile) -> None:
    tos_server.faults.corrupt_crc = True

    with pytest.raises(StorageError, match=r"upload of 'big.bin'.*CRC"):
        tos_storage.put_file("big.bin", make_file(size=7 * 1024 * 1024))


def test_crc_mismatch_on_download_is_detected(tos_storage: TosStorage, tos_server: TosServer,
                                              make_file: MakeFile) -> None:
    tos_storage.put_file("a.bin", make_file(size=1000))
    tos_server.faults.corrupt_crc = True

    with pytest.raises(StorageError, match=r"download of 'a.bin'.*crc"), \
            tos_storage.open("a.bin") as stream:
        stream.read()


# ---------------------------------------------------------------- faults and retries


def test_latency_is_survived(tos_storage: TosStorage, tos_server: TosServer,
                             make_file: MakeFile) -> None:
    source = make_file(size=2000)
    tos_server.faults.latency = 0.1
    started = time.monotonic()

    tos_storage.put_file("slow.bin", source)
    info = tos_storage.stat("slow.bin")

    assert time.monotonic() - started >= 0.2  # two requests, each delayed
    assert info == ObjectInfo("slow.bin", 2000, file_crc64(source))


def test_a_stalled_server_becomes_a_timeout_error(make_tos_storage: TosFactory,
                                                  tos_server: TosServer) -> None:
    storage = make_tos_storage(socket_timeout=0.3, max_retry_count=0)
    tos_server.faults.latency = 1.0

    with pytest.raises(StorageError, match=r"stat of 'k'.*timeout"):
        storage.stat("k")


def test_a_share_of_5xx_answers_is_retried(make_tos_storage: TosFactory, tos_server: TosServer,
                                           make_file: MakeFile) -> None:
    storage = make_tos_storage(max_retry_count=6)
    tos_server.faults = Faults(error_rate=0.3, seed=3)
    sources = {f"k{number}": make_file(size=100 + number) for number in range(5)}

    for key, source in sources.items():
        storage.put_file(key, source)
    big = make_file(size=11 * 1024 * 1024)
    storage.put_file("big", big)

    assert tos_server.faults.errors >= 3  # the faults really happened
    tos_server.faults = Faults()
    for key, source in sources.items():
        assert storage.stat(key) == ObjectInfo(key, source.stat().st_size, file_crc64(source))
    assert storage.stat("big") == ObjectInfo("big", big.stat().st_size, file_crc64(big))


def test_reads_and_listing_survive_5xx(make_tos_storage: TosFactory, tos_server: TosServer,
                                       make_file: MakeFile) -> None:
    storage = make_tos_storage(max_retry_count=6)
    for number in range(12):
        storage.put_file(f"r/{number:02d}", make_file(b"x" * number))
    tos_server.faults = Faults(error_rate=0.4, seed=3)

    keys = [info.key for info in storage.list("r/")]
    with storage.open("r/05") as stream:
        data = stream.read()

    assert keys == [f"r/{number:02d}" for number in range(12)]
    assert data == b"xxxxx"
    assert tos_server.faults.errors >= 1


def test_persistent_5xx_becomes_a_clear_error(make_tos_storage: TosFactory,
                                              tos_server: TosServer,
                                              make_file: MakeFile) -> None:
    storage = make_tos_storage(max_retry_count=2)
    tos_server.faults = Faults(error_rate=1.0)

    with pytest.raises(StorageError) as caught:
        storage.put_file("rec/a.wav", make_file(b"data"))

    assert str(caught.value) == ("upload of 'rec/a.wav' in bucket 'meeting-agent' failed: "
                                 "HTTP 503 ServiceUnavailable: Service Unavailable "
                                 "(injected fault)")
    assert tos_server.faults.errors == 3  # the first try and two retries


def test_dropped_connections_are_retried(make_tos_storage: TosFactory, tos_server: TosServer,
                                         make_file: MakeFile) -> None:
    storage = make_tos_storage(max_retry_count=6)
    tos_server.faults = Faults(drop_rate=0.4, seed=11)
    sources = {f"d{number}": make_file(size=100_000 + number) for number in range(6)}

    for key, source in sources.items():
        storage.put_file(key, source)
    infos = {key: storage.stat(key) for key in sources}

    assert tos_server.faults.drops >= 3
    for key, source in sources.items():
        assert infos[key] == ObjectInfo(key, source.stat().st_size, file_crc64(source))


def test_persistently_dropped_connections_are_reported(make_tos_storage: TosFactory,
                                                       tos_server: TosServer) -> None:
    storage = make_tos_storage(max_retry_count=1)
    tos_server.faults = Faults(drop_rate=1.0)

    with pytest.raises(StorageError, match=r"stat of 'k'.*http request timeout"):
        storage.stat("k")
    assert tos_server.faults.drops == 2


def test_a_failed_multipart_upload_is_aborted(make_tos_storage: TosFactory,
                                              tos_server: TosServer, tmp_path: Path,
                                              make_file: MakeFile) -> None:
    storage = make_tos_storage(max_retry_count=0)
    # Part uploads (PUT) fail; creating (POST) and aborting (DELETE) the upload work.
    tos_server.faults = Faults(error_rate=1.0, methods=frozenset({"PUT"}))

    with pytest.raises(StorageError, match=r"upload of 'big'.*503"):
        storage.put_file("big", make_file(size=11 * 1024 * 1024))

    assert tos_server.faults.errors == 1
    assert list((tmp_path / "tos-root" / "meeting-agent" / "uploads").iterdir()) == []
    assert storage.stat("big") is None


def test_a_part_failing_while_others_are_in_flight_aborts_the_upload(
        make_tos_storage: TosFactory, tos_server: TosServer, tmp_path: Path,
        make_file: MakeFile) -> None:
    storage = make_tos_storage(max_retry_count=0)
    # Seed 0 draws pass for the first part (sent alone), then two of the three parts sent
    # together fail, whichever order they arrive in.
    tos_server.faults = Faults(error_rate=0.5, seed=0, methods=frozenset({"PUT"}))

    with pytest.raises(StorageError, match=r"upload of 'big'.*503"):
        storage.put_file("big", make_file(size=16 * 1024 * 1024 + 1))  # four 5 MiB parts

    assert tos_server.faults.errors == 2
    assert list((tmp_path / "tos-root" / "meeting-agent" / "uploads").iterdir()) == []
    assert storage.stat("big") is None


def test_pending_uploads_are_listed_across_pages_and_aborted(
        make_tos_storage: TosFactory, raw_client: tos.TosClientV2) -> None:
    storage = make_tos_storage(list_page_size=2)  # three pages for five uploads
    keys = ["a/1.wav", "a/1.wav", "a/2.wav", "a/3.wav", "b/4.wav"]
    ids = [raw_client.create_multipart_upload(BUCKET, key).upload_id for key in keys]

    assert sorted((u.key, u.upload_id) for u in storage.pending_uploads("a/")) == sorted(
        zip(keys[:4], ids[:4], strict=True))
    prefixed = PrefixedStorage(storage, "a/")
    assert sorted(u.key for u in prefixed.pending_uploads()) == ["1.wav", "1.wav", "2.wav",
                                                                 "3.wav"]

    first = next(u for u in prefixed.pending_uploads() if u.upload_id == ids[0])
    prefixed.abort_upload(first)
    prefixed.abort_upload(first)  # already gone: not an error
    assert sorted(u.upload_id for u in storage.pending_uploads()) == sorted(ids[1:])


def test_a_leftover_probe_is_deleted_by_the_next_preflight(
        tos_storage: TosStorage, make_file: MakeFile) -> None:
    leftover = ".preflight/preflight-" + "0" * 32 + ".txt"
    tos_storage.put_file(leftover, make_file(b"probe of a killed run"))
    tos_storage.put_file(".preflight/readme.txt", make_file(b"someone else's"))
    scratch = tos_storage.scratch_dir / ("preflight-" + "1" * 32 + ".txt")
    scratch.parent.mkdir(parents=True, exist_ok=True)
    scratch.write_bytes(b"scratch of a killed run")

    tos_storage.preflight()

    assert [info.key for info in tos_storage.list(".preflight/")] == [".preflight/readme.txt"]
    assert not scratch.exists()


def test_each_part_is_reported_as_it_is_stored_before_the_object_exists(
        tos_storage: TosStorage, make_file: MakeFile) -> None:
    source = make_file(size=13 * MiB)  # parts of 5, 5 and 3 MiB
    reported: list[tuple[int, ObjectInfo | None]] = []
    lock = threading.Lock()

    def on_part(size: int) -> None:
        # The object exists only once the upload is completed.
        with lock:
            reported.append((size, tos_storage.stat("big.bin")))

    stored = tos_storage.put_file("big.bin", source, on_part=on_part)

    assert sorted(size for size, _ in reported) == [3 * MiB, 5 * MiB, 5 * MiB]
    running = list(itertools.accumulate(size for size, _ in reported))
    assert running == sorted(set(running)) and running[-1] == stored.size == 13 * MiB
    assert [seen for _, seen in reported] == [None, None, None]


def test_one_rate_limiter_meters_every_body_of_every_upload(
        make_tos_storage: TosFactory, make_file: MakeFile,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Single PUTs and the parts of multipart uploads, on several threads at once, all draw
    from the client's one token bucket: what it metered is every byte sent."""
    storage = make_tos_storage(rate_limit=10**9)  # metered, without slowing the test
    limiter = storage.rate_limiter
    assert isinstance(limiter, RateLimiter)
    metered: list[int] = []
    acquire = limiter.acquire

    def metering(want: int) -> TokenBucketResult:
        result = acquire(want)
        if result.ok:
            metered.append(want)
        return result

    monkeypatch.setattr(limiter, "acquire", metering)
    sources = {"small.txt": make_file(size=300 * 1024), "big-1.bin": make_file(size=12 * MiB),
               "big-2.bin": make_file(size=11 * MiB)}
    with ThreadPoolExecutor(max_workers=3) as pool:
        stored = list(pool.map(lambda key: storage.put_file(key, sources[key]), sources))

    sent = sum(path.stat().st_size for path in sources.values())
    assert sum(metered) == sent
    assert {info.key: info.size for info in storage.list()} == {
        key: path.stat().st_size for key, path in sources.items()}
    assert [info.size for info in stored] == [path.stat().st_size for path in sources.values()]
