"""A multipart upload a killed process left is finished from its stored parts: real kills
(SIGKILL of a child process mid-upload), the real SDK, the local TOS server, whose request
log tells which parts were sent again."""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
import tos

from devtools.tos_server import TosServer
from storage.base import ObjectInfo, PendingUpload, PrefixedStorage, StorageClient, file_crc64
from storage.tos import MiB, TosStorage
from tests.conftest import BUCKET, ROOT, TosFactory
from tests.storage.killed_upload import MULTIPART_THRESHOLD, PART_SIZE

# Starts servers or commands in fresh interpreters: not in make test-fast.
pytestmark = pytest.mark.slow

MakeFile = Callable[..., Path]

FOUR_PARTS = 3 * PART_SIZE + 1 * MiB  # parts 1-3 of 5 MiB, part 4 of 1 MiB
PART_UPLOAD = re.compile(r'"PUT \S*[?&]partNumber=(\d+)')


def killed_upload(server: TosServer, work_dir: Path, key: str, source: Path,
                  parts_before_kill: int) -> None:
    """Upload ``source`` as ``key`` in a child process that SIGKILLs itself once
    ``parts_before_kill`` parts are stored; returns once the server has answered every
    request the child sent."""
    child = subprocess.run(
        [sys.executable, "-m", "tests.storage.killed_upload", str(server.port), str(work_dir),
         key, str(source), str(parts_before_kill)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert server.wait_idle(timeout=60)


def stored_part_numbers(raw_client: tos.TosClientV2, upload: PendingUpload) -> list[int]:
    listed = raw_client.list_parts(BUCKET, upload.key, upload.upload_id)
    return [part.part_number for part in listed.parts]


def parts_sent(caplog: pytest.LogCaptureFixture) -> list[int]:
    """The part numbers the server received since the log was last cleared, in order."""
    return sorted(int(match.group(1)) for record in caplog.records
                  if (match := PART_UPLOAD.search(record.getMessage())))


def the_pending_upload(storage: StorageClient) -> PendingUpload:
    [upload] = storage.pending_uploads()
    return upload


def downloaded(storage: StorageClient, key: str) -> bytes:
    with storage.open(key) as stream:
        return stream.read()


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The local TOS server's request log (one DEBUG line per request)."""
    caplog.set_level(logging.DEBUG, logger="devtools.tos_server")
    return caplog


@pytest.fixture
def resuming_storage(make_tos_storage: TosFactory) -> TosStorage:
    # One part per listing page: the stored parts are read across pages.
    return make_tos_storage(part_size=PART_SIZE, multipart_threshold=MULTIPART_THRESHOLD,
                            list_page_size=1)


@pytest.mark.parametrize("prefix", ["", "media/"])
def test_a_killed_upload_resumes_sending_only_the_missing_parts(
        resuming_storage: TosStorage, tos_server: TosServer, raw_client: tos.TosClientV2,
        server_log: pytest.LogCaptureFixture, make_file: MakeFile, tmp_path: Path,
        prefix: str) -> None:
    source = make_file(size=FOUR_PARTS)
    killed_upload(tos_server, tmp_path / "work", prefix + "talk.wav", source,
                  parts_before_kill=2)
    storage = PrefixedStorage(resuming_storage, prefix) if prefix else resuming_storage
    pending = the_pending_upload(storage)
    assert pending.key == "talk.wav"
    assert isinstance(pending.initiated, datetime)
    assert stored_part_numbers(raw_client, the_pending_upload(resuming_storage)) == [1, 2]
    progress: list[int] = []

    server_log.clear()
    stored = storage.put_file("talk.wav", source, on_part=progress.append, resume=pending)

    assert parts_sent(server_log) == [3, 4]
    assert stored.reused_bytes == 2 * PART_SIZE
    assert stored == ObjectInfo("talk.wav", FOUR_PARTS, file_crc64(source))
    assert storage.stat("talk.wav") == stored
    assert downloaded(storage, "talk.wav") == source.read_bytes()
    assert sum(progress) == FOUR_PARTS  # reused parts count as progress too
    assert list(storage.pending_uploads()) == []


def test_a_stored_part_whose_bytes_changed_since_the_kill_is_sent_again(
        resuming_storage: TosStorage, tos_server: TosServer,
        server_log: pytest.LogCaptureFixture, make_file: MakeFile, tmp_path: Path) -> None:
    source = make_file(size=FOUR_PARTS)
    killed_upload(tos_server, tmp_path / "work", "talk.wav", source, parts_before_kill=3)
    data = bytearray(source.read_bytes())
    data[PART_SIZE + 100] ^= 0xFF  # part 2: same size, one byte different
    source.write_bytes(data)

    server_log.clear()
    stored = resuming_storage.put_file("talk.wav", source,
                                       resume=the_pending_upload(resuming_storage))

    assert parts_sent(server_log) == [2, 4]
    assert stored.reused_bytes == 2 * PART_SIZE  # parts 1 and 3
    assert resuming_storage.stat("talk.wav") == ObjectInfo("talk.wav", FOUR_PARTS,
                                                           file_crc64(source))
    assert downloaded(resuming_storage, "talk.wav") == bytes(data)


def test_an_upload_gone_since_the_kill_is_started_afresh(
        resuming_storage: TosStorage, tos_server: TosServer,
        server_log: pytest.LogCaptureFixture, make_file: MakeFile, tmp_path: Path) -> None:
    source = make_file(size=FOUR_PARTS)
    killed_upload(tos_server, tmp_path / "work", "talk.wav", source, parts_before_kill=2)
    gone = the_pending_upload(resuming_storage)
    resuming_storage.abort_upload(gone)

    server_log.clear()
    stored = resuming_storage.put_file("talk.wav", source, resume=gone)

    assert parts_sent(server_log) == [1, 2, 3, 4]
    assert stored.reused_bytes == 0
    assert resuming_storage.stat("talk.wav") == ObjectInfo("talk.wav", FOUR_PARTS,
                                                           file_crc64(source))
    assert list(resuming_storage.pending_uploads()) == []


def test_a_file_now_below_the_threshold_ignores_the_pending_upload(
        resuming_storage: TosStorage, tos_server: TosServer, make_file: MakeFile,
        tmp_path: Path) -> None:
    source = make_file(size=FOUR_PARTS)
    killed_upload(tos_server, tmp_path / "work", "talk.wav", source, parts_before_kill=2)
    pending = the_pending_upload(resuming_storage)
    source.write_bytes(b"cut down to a few bytes")

    stored = resuming_storage.put_file("talk.wav", source, resume=pending)

    assert stored == ObjectInfo("talk.wav", source.stat().st_size, file_crc64(source))
    assert stored.reused_bytes == 0
    assert downloaded(resuming_storage, "talk.wav") == b"cut down to a few bytes"
    # Left for the caller, which aborts the leftovers it did not use.
    assert list(resuming_storage.pending_uploads()) == [pending]


def test_an_upload_of_another_key_is_not_resumed(resuming_storage: TosStorage,
                                                 make_file: MakeFile) -> None:
    with pytest.raises(ValueError, match=r"'other\.wav' as 'talk\.wav'"):
        resuming_storage.put_file("talk.wav", make_file(size=FOUR_PARTS),
                                  resume=PendingUpload("other.wav", "some-id"))
