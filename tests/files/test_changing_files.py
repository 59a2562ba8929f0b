"""Files the app changes while they are uploaded: what is stored is what a file held, and a
later change is never silent. An app writer is a real process rewriting files in place
(same size, new bytes, new modification time) every 20 ms, during the cutover's files step
and during a presync, against the local TOS server through the real SDK."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
import tos

from devtools.tos_server import Faults
from storage import FileChanged, PendingUpload, StorageClient
from storage.crc64 import crc64_update
from storage.tos import MiB
from tests.commands.test_presync import files_in, presync, record_rows, run, summary_count
from tests.conftest import BUCKET, TosFactory, TosServer, fetch, stored, tos_env, version
from tests.files.test_upload import part_stored, wait_for
from tests.runs import cutover_environment, failed_lines, upgrade_head

# The app: rewrites files in place, one chunk every PERIOD seconds, round robin, with new
# random bytes, until it is stopped; it says "writing" once its first chunk is written.
# Told "commanded", it instead writes, for each line "k n1 n2 ..." read, the byte k over the
# chunks n1, n2, ... (from 1) of the one file, and says "done".
WRITER = textwrap.dedent("""
    import os, sys, time
    PERIOD = 0.02
    chunk, mode, paths = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    def write(path, offset, data):
        with open(path, "r+b") as stream:
            stream.seek(offset)
            stream.write(data)
    if mode == "commanded":
        print("writing", flush=True)
        size = os.path.getsize(paths[0])
        for line in sys.stdin:
            version, *chunks = map(int, line.split())
            for number in chunks:
                offset = (number - 1) * chunk
                write(paths[0], offset, bytes([version]) * min(chunk, size - offset))
            print("done", flush=True)
    places = [(path, offset) for path in paths
              for offset in range(0, os.path.getsize(path), chunk)]
    while True:
        for path, offset in places:
            write(path, offset, os.urandom(min(chunk, os.path.getsize(path) - offset)))
            if (path, offset) == places[0]:
                print("writing", flush=True)
            time.sleep(PERIOD)
""")
PART = 5 * MiB
LARGE = 40 * MiB


@contextmanager
def app_writing(paths: list[Path], chunk: int = MiB, mode: str = "continuous"
                ) -> Iterator[subprocess.Popen]:
    """The app writer, rewriting ``paths`` in place until the block ends (``commanded``:
    writing what it is told on its stdin)."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(chunk), mode,
                               *map(str, paths)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "writing\n"
        yield writer
    finally:
        writer.kill()
        writer.wait()


def command(writer: subprocess.Popen, version: int, chunks: range) -> None:
    """Have the commanded writer write the byte ``version`` over ``chunks``; wait for it."""
    assert writer.stdin is not None and writer.stdout is not None
    writer.stdin.write(f"{version} {' '.join(map(str, chunks))}\n")
    writer.stdin.flush()
    assert writer.stdout.readline() == "done\n"


@pytest.fixture
def env(tmp_path: Path, pg_url: str, tos_server: TosServer) -> dict[str, str]:
    """A generated dev file with its uploads, cut over to the local TOS server, whose
    answers take a little while, as a real store's do."""
    tos_server.faults = Faults(latency=0.02)
    return {**cutover_environment(tmp_path, pg_url), **tos_env(tos_server),
            "VERIFY_URLS": "none"}


@pytest.fixture
def uploads(env: dict[str, str]) -> Path:
    return Path(env["UPLOADS_DIR"])


def verify(env: dict[str, str], cwd: Path, *x: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "data_migrations.commands.verify",
                *(arg for option in x for arg in ("-x", option))], env, cwd)


def check_row(output: str, kind: str) -> str:
    """The result of the verify check ``kind`` (its first row)."""
    return next(line for line in output.splitlines() if line.split()[:1] == [kind])


def test_the_files_step_names_the_files_the_app_changes_and_a_rerun_once_frozen_is_exact(
    env: dict[str, str], tmp_path: Path, uploads: Path, pg_engine: sa.Engine,
    tos_storage: StorageClient
) -> None:
    files = files_in(uploads)
    written = sorted(files)[:4]
    with app_writing([files[name] for name in written]):
        result = upgrade_head(env, tmp_path)
    assert result.returncode != 0, result.stderr
    (failed,) = failed_lines(result)
    assert "changing while read" in failed and "freeze it" in failed
    named = {name for name in files if name in failed}
    assert named and named <= set(written), failed
    assert version(pg_engine) == "0002"

    # The app frozen, the same command resumes and ends exact.
    result = upgrade_head(env, tmp_path)
    assert result.returncode == 0 and not failed_lines(result), result.stderr
    objects = stored(tos_storage)
    assert objects == {name: path.read_bytes() for name, path in files.items()}
    rows = fetch(pg_engine, "SELECT relative_path, size, mtime_ns, status "
                            "FROM cutover_file_manifest")
    assert {row[0]: row[1:] for row in rows} == {
        name: (path.stat().st_size, path.stat().st_mtime_ns, "verified")
        for name, path in files.items()}
    result = verify(env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " pass " in check_row(result.stdout, "disk")


def test_a_presync_leaves_out_the_files_the_app_keeps_writing_and_stores_no_torn_object(
    env: dict[str, str], tmp_path: Path, uploads: Path, tos_server: TosServer,
    tos_storage: StorageClient
) -> None:
    big = uploads / "audio" / "big.wav"  # a recording the app keeps writing, part by part
    big.parent.mkdir(exist_ok=True)
    big.write_bytes(os.urandom(LARGE))
    files = files_in(uploads)
    small = sorted(name for name in files if name != "audio/big.wav")[:3]
    env = {**env, "STORAGE_MULTIPART_THRESHOLD": str(PART), "STORAGE_PART_SIZE": str(PART)}
    # Each attempt at the recording lasts well beyond the longest pause between the app's
    # writes to it (the three small files' turns, 80 ms).
    tos_server.faults = Faults(latency=0.1)
    with app_writing([big, *(files[name] for name in small)], chunk=PART):
        result = presync(env, tmp_path)
    assert result.returncode == 0 and not failed_lines(result), result.stderr
    assert summary_count(result.stderr, "changing while read (left out, not recorded)") >= 1
    assert "audio/big.wav" in result.stderr.partition("Changing each time they were read")[2]
    recorded = record_rows(Path(env["WORK_DIR"]))
    objects = stored(tos_storage)
    assert "audio/big.wav" not in recorded and "audio/big.wav" not in objects
    assert set(recorded) >= set(files) - {"audio/big.wav", *small}
    # The record vouches only for what it describes: a file as recorded is its object.
    for name, (size, mtime_ns, _) in recorded.items():
        now = files[name].stat()
        if (now.st_size, now.st_mtime_ns) == (size, mtime_ns):
            assert objects[name] == files[name].read_bytes(), name


def test_a_recording_rewritten_during_its_multipart_upload_is_never_stored_torn(
    env: dict[str, str], tmp_path: Path, uploads: Path, tos_server: TosServer,
    tos_storage: StorageClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app writes a new version of the recording part by part during its upload, each
    part where the upload is not reading: parts 2-8 while part 1 goes up alone, then part 1
    once it is stored. Every part then matches its CRC-64, but the parts, taken together,
    are neither version: the issue's torn object, if the upload were completed."""
    key = "audio/all hands.wav"
    recording = uploads / key
    recording.parent.mkdir(exist_ok=True)
    original = os.urandom(LARGE)
    recording.write_bytes(original)
    whole = {crc64_update(original, 0), crc64_update(bytes([1]) * LARGE, 0)}
    bucket = tos_server.store.bucket(BUCKET)
    held: list[int] = []  # the CRC-64 of every object the bucket ever held at the key
    install = bucket.install

    def observed(stored_key: str, *args: object, **kwargs: object) -> object:
        meta = install(stored_key, *args, **kwargs)
        if stored_key == key:
            held.append(meta.crc64)
        return meta

    monkeypatch.setattr(bucket, "install", observed)
    tos_server.faults = Faults(bandwidth=4 * MiB)  # about a second a part: a real window
    env = {**env, "STORAGE_MULTIPART_THRESHOLD": str(PART), "STORAGE_PART_SIZE": str(PART),
           "MAX_CONCURRENT": "1"}
    parts = LARGE // PART
    with app_writing([recording], chunk=PART, mode="commanded") as writer:
        process = subprocess.Popen([sys.executable, "-m", "data_migrations.commands.presync"],
                                   env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        wait_for(lambda: any(upload.key == key for upload in bucket.uploads()), process)
        command(writer, 1, range(2, parts + 1))  # while part 1 goes up alone
        wait_for(lambda: part_stored(tos_server, key), process)
        command(writer, 1, range(1, 2))  # while parts 2-8 go up
        _, errors = process.communicate(timeout=600)
    assert process.returncode == 0 and "FAILED" not in errors, errors
    assert held, "the recording was never stored"
    assert set(held) <= whole, "an object was assembled from different versions"
    # Sent again whole once the app was done: its last version, recorded.
    assert stored(tos_storage)[key] == bytes([1]) * LARGE
    assert key in record_rows(Path(env["WORK_DIR"]))


def test_verify_lists_a_file_changed_since_its_upload_and_fails(
    env: dict[str, str], tmp_path: Path, uploads: Path
) -> None:
    assert upgrade_head(env, tmp_path).returncode == 0
    result = verify(env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " pass " in check_row(result.stdout, "disk")

    first, second = sorted(files_in(uploads).items())[:2]
    stat = first[1].stat()
    first[1].write_bytes(bytes(b ^ 0xFF for b in first[1].read_bytes()))  # the app, after
    result = verify(env, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert " FAIL " in check_row(result.stdout, "disk") and first[0] in result.stdout
    notes = result.stdout.partition("files changed in UPLOADS_DIR since their upload")[2]
    assert f"  {first[0]}: modified since its upload" in notes and second[0] not in notes

    # Same size, the old modification time put back: only the bytes tell.
    os.utime(first[1], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert verify(env, tmp_path).returncode == 0
    result = verify(env, tmp_path, "checksum=true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"  {first[0]}: other bytes than uploaded (CRC-64)" in result.stdout


def rewrite_once(path: Path, told: list[int]) -> Callable[[int], None]:
    """A part callback that, the first time it is told of a stored part, rewrites the
    file's first MiB in place as the app would (new bytes, the modification time moved on)."""

    def rewrite(length: int) -> None:
        if not told:
            before = path.stat()
            with path.open("r+b") as stream:
                stream.write(bytes(MiB))
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
            told.append(length)

    return rewrite


def test_a_multipart_upload_is_not_completed_when_its_file_changes_between_parts(
    make_tos_storage: TosFactory, tmp_path: Path, raw_client: tos.TosClientV2
) -> None:
    storage = make_tos_storage()  # 5 MiB parts: three for 12 MiB, the first alone
    path = tmp_path / "recording.wav"
    path.write_bytes(os.urandom(12 * MiB))

    rewritten: list[int] = []  # told once part 1 is stored, before the others are read
    with pytest.raises(FileChanged, match="changed while its parts were read"):
        storage.put_file("audio/recording.wav", path, on_part=rewrite_once(path, rewritten))
    assert rewritten
    assert storage.stat("audio/recording.wav") is None
    assert raw_client.list_multipart_uploads(BUCKET).uploads == []


def test_a_resumed_upload_is_not_completed_when_its_file_changes_after_its_parts_are_checked(
    make_tos_storage: TosFactory, tmp_path: Path, raw_client: tos.TosClientV2
) -> None:
    """A killed run's parts 1-2 are kept (their MD5 matches the file's bytes now); the app
    then rewrites part 1 before part 3 is sent: the parts are not one version any more."""
    storage = make_tos_storage()  # 5 MiB parts: three for 12 MiB
    path = tmp_path / "recording.wav"
    data = os.urandom(12 * MiB)
    path.write_bytes(data)
    key = "audio/recording.wav"
    upload_id = raw_client.create_multipart_upload(BUCKET, key).upload_id
    for number in (1, 2):
        raw_client.upload_part(BUCKET, key, upload_id, number,
                               content=data[(number - 1) * PART:number * PART])

    rewritten: list[int] = []  # told of the kept parts first
    with pytest.raises(FileChanged, match="changed while its parts were read"):
        storage.put_file(key, path, on_part=rewrite_once(path, rewritten),
                         resume=PendingUpload(key, upload_id))
    assert rewritten
    assert storage.stat(key) is None
    assert raw_client.list_multipart_uploads(BUCKET).uploads == []
