"""The presync (``make presync``): the files moved before the freeze, only the changes during
it. Real processes, the real SDK against the local TOS server, a real PostgreSQL."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from inotify_simple import INotify, flags

from data_migrations.files.scan import scan_folder
from devtools.tos_server import Faults
from storage import StorageClient, file_crc64
from storage.tos import MiB
from tests.conftest import BUCKET, ROOT, TosServer, stored, tos_env
from tests.runs import cutover_environment, failed_lines, upgrade_head

TABLES = ("users", "hotword_sets", "prompt_templates", "tasks", "audit_logs",
          "generated_artifacts", "speaker_mappings", "transcripts")


@pytest.fixture
def env(tmp_path: Path, pg_url: str, tos_server: TosServer) -> dict[str, str]:
    """A generated dev file with its uploads, cut over to the local TOS server."""
    return {**cutover_environment(tmp_path, pg_url), **tos_env(tos_server),
            "VERIFY_URLS": "none"}


@pytest.fixture
def uploads(tmp_path: Path, env: dict[str, str]) -> Path:
    return Path(env["UPLOADS_DIR"])


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def presync(env: dict[str, str], cwd: Path, *x: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "data_migrations.commands.presync",
                *(arg for option in x for arg in ("-x", option))], env, cwd)


def alembic(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), *args],
               env, cwd)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def files_in(folder: Path) -> dict[str, Path]:
    """The files the cutover uploads (the default UPLOAD_EXCLUDE leaves tmp/ and *.part out)."""
    return {f.relative_path: f.source for f in scan_folder(folder, ("tmp/", "*.part")).files}


def record_rows(work_dir: Path) -> dict[str, tuple[int, int, int]]:
    """The presync record: relative path -> (size, mtime_ns, CRC-64)."""
    (path,) = (work_dir / "presync").glob("*.sqlite")
    with sqlite3.connect(path) as connection:
        return {row[0]: (row[1], row[2], int(row[3])) for row in connection.execute(
            "SELECT relative_path, size, mtime_ns, crc64 FROM files")}


def recorded_so_far(work_dir: Path) -> int:
    """How many files a running presync has recorded (0 before its record exists)."""
    try:
        return len(record_rows(work_dir))
    except (ValueError, sqlite3.OperationalError):  # no record yet, or no table in it yet
        return 0


def end_state(database_url: str, client: StorageClient) -> dict[str, object]:
    """Everything a cutover leaves: the rows of the eight tables (paths rewritten), the
    manifest and the objects."""
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        state: dict[str, object] = {
            table: connection.execute(sa.text(f"SELECT * FROM {table} ORDER BY 1")).all()
            for table in TABLES}
        state["manifest"] = connection.execute(sa.text(
            "SELECT relative_path, object_key, public_url, size, crc64, status "
            "FROM cutover_file_manifest ORDER BY 1")).all()
    engine.dispose()
    state["objects"] = stored(client)
    return state


def summary_count(output: str, label: str) -> int:
    """The count of one row of the file upload summary table."""
    (line,) = [line for line in output.splitlines() if line.startswith(label)]
    return int(line[len(label):].split()[0].replace(",", ""))


@contextmanager
def files_opened(folder: Path) -> Iterator[Callable[[], set[str]]]:
    """The files under ``folder`` that anything opens from now on (inotify IN_OPEN), by
    relative path: proof of which files a run read."""
    inotify = INotify()
    folders = {inotify.add_watch(str(d), flags.OPEN): d
               for d in [folder, *(p for p in folder.rglob("*") if p.is_dir())]}
    seen: set[str] = set()

    def opened() -> set[str]:
        for event in inotify.read(timeout=0):
            if event.name and not event.mask & flags.ISDIR:
                seen.add(str((folders[event.wd] / event.name).relative_to(folder)))
        return seen

    try:
        yield opened
    finally:
        inotify.close()


def rewrite(path: Path, *, keep_mtime: bool = False) -> bytes:
    """New bytes of the same size; the modification time moves on unless ``keep_mtime``."""
    before = path.stat()
    data = bytes(b ^ 0xFF for b in path.read_bytes())
    path.write_bytes(data)
    mtime = before.st_mtime_ns if keep_mtime else before.st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(before.st_atime_ns, mtime))
    return data


def test_presync_then_cutover_ends_as_a_cold_cutover(
    env: dict[str, str], tmp_path: Path, pg_url: str, tos_storage: StorageClient
) -> None:
    ok(upgrade_head(env, tmp_path))
    cold = end_state(pg_url, tos_storage)
    ok(run([sys.executable, "-m", "data_migrations.commands.verify"], env, tmp_path))
    ok(alembic({**env, "PURGE_OBJECTS": "true"}, tmp_path, "downgrade", "base"))
    assert stored(tos_storage) == {}

    files = files_in(Path(env["UPLOADS_DIR"]))
    output = ok(presync(env, tmp_path))
    assert summary_count(output, "uploaded") == len(files)
    assert set(record_rows(Path(env["WORK_DIR"]))) == set(files)
    output = ok(upgrade_head(env, tmp_path))
    assert summary_count(output, "from the presync (unchanged, not read)") == len(files)
    assert summary_count(output, "uploaded") == 0
    assert end_state(pg_url, tos_storage) == cold
    ok(run([sys.executable, "-m", "data_migrations.commands.verify"], env, tmp_path))


def test_the_cutover_reads_only_the_files_changed_since_the_presync(
    env: dict[str, str], tmp_path: Path, uploads: Path, tos_storage: StorageClient
) -> None:
    ok(presync(env, tmp_path))
    changed, *_ = files_in(uploads)
    new_bytes = rewrite(uploads / changed)  # same size, a new modification time
    added = uploads / "audio" / "added after the presync.mp3"
    added.parent.mkdir(exist_ok=True)
    added.write_bytes(b"new recording")
    with files_opened(uploads) as opened:
        output = ok(alembic(env, tmp_path, "upgrade", "0003"))
        assert opened() == {changed, str(added.relative_to(uploads))}
    assert summary_count(output, "re-uploaded (content differed)") == 1
    assert summary_count(output, "uploaded") == 1
    assert summary_count(output, "from the presync (unchanged, not read)") == \
        len(files_in(uploads)) - 2
    assert stored(tos_storage)[changed] == new_bytes


def test_checksum_true_reads_every_file_and_catches_a_change_that_kept_its_time(
    env: dict[str, str], tmp_path: Path, uploads: Path, tos_storage: StorageClient
) -> None:
    ok(presync(env, tmp_path))
    files = files_in(uploads)
    sneaky = next(iter(files))
    new_bytes = rewrite(uploads / sneaky, keep_mtime=True)  # invisible to size and mtime
    with files_opened(uploads) as opened:
        output = ok(alembic(env, tmp_path, "-x", "checksum=true", "upgrade", "0003"))
        assert opened() == set(files)
    assert summary_count(output, "re-uploaded (content differed)") == 1
    assert stored(tos_storage)[sneaky] == new_bytes


def test_the_record_never_stands_for_an_object_the_bucket_lacks(
    env: dict[str, str], tmp_path: Path, uploads: Path, tos_server: TosServer,
    tos_storage: StorageClient
) -> None:
    ok(presync(env, tmp_path))
    lost, replaced, *_ = files_in(uploads)
    tos_server.store.bucket(BUCKET).delete(lost)
    tos_storage.put_file(replaced, tmp_path / "dev.db")  # other bytes under its key
    with files_opened(uploads) as opened:
        output = ok(alembic(env, tmp_path, "upgrade", "0003"))
        assert opened() == {lost, replaced}
    assert summary_count(output, "uploaded") == 1
    assert summary_count(output, "re-uploaded (content differed)") == 1
    in_bucket = stored(tos_storage)
    assert {key: in_bucket[key] for key in (lost, replaced)} == {
        key: (uploads / key).read_bytes() for key in (lost, replaced)}


def test_a_killed_presync_resumes_without_reading_what_it_recorded(
    env: dict[str, str], tmp_path: Path, uploads: Path, tos_server: TosServer,
    tos_storage: StorageClient
) -> None:
    for index in range(150):
        (uploads / "many").mkdir(exist_ok=True)
        (uploads / "many" / f"clip-{index:03d}.mp3").write_bytes(os.urandom(200 + index))
    tos_server.faults = Faults(latency=0.05)
    work = Path(env["WORK_DIR"])
    process = subprocess.Popen([sys.executable, "-m", "data_migrations.commands.presync"],
                               env={**env, "MAX_CONCURRENT": "2"}, cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and recorded_so_far(work) < 10:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert tos_server.wait_idle(timeout=60)
    recorded = record_rows(work)
    files = files_in(uploads)
    assert 10 <= len(recorded) < len(files)
    listed = {info.key: info for info in tos_storage.list()}
    for path, (size, mtime_ns, crc64) in recorded.items():  # what was recorded holds
        assert (listed[path].size, listed[path].crc64) == (size, crc64)
        assert (size, mtime_ns, crc64) == ((uploads / path).stat().st_size,
                                           (uploads / path).stat().st_mtime_ns,
                                           file_crc64(uploads / path))

    tos_server.faults = Faults()
    with files_opened(uploads) as opened:
        output = ok(presync(env, tmp_path))
        assert opened() == set(files) - set(recorded)
    assert summary_count(output, "from the presync (unchanged, not read)") == len(recorded)
    assert set(record_rows(work)) == set(files)
    assert stored(tos_storage) == {key: path.read_bytes() for key, path in files.items()}


def test_prune_deletes_exactly_the_presynced_objects_whose_files_are_gone(
    env: dict[str, str], tmp_path: Path, uploads: Path, tos_storage: StorageClient
) -> None:
    ok(presync(env, tmp_path))
    gone = sorted(files_in(uploads))[:2]
    for relative in gone:
        (uploads / relative).unlink()
    someone_elses = tmp_path / "keep.txt"
    someone_elses.write_bytes(b"not the cutover's")
    tos_storage.put_file("reports/keep.txt", someone_elses)

    output = ok(alembic(env, tmp_path, "upgrade", "0003"))
    assert "2 objects the presync stored have no file in UPLOADS_DIR" in output
    assert all(f"  - {key}" in output for key in gone)
    assert set(gone) <= set(stored(tos_storage))

    ok(alembic(env, tmp_path, "downgrade", "0002"))
    output = ok(alembic({**env, "PRUNE_OBJECTS": "true"}, tmp_path, "upgrade", "0003"))
    assert "Deleted 2 objects the presync stored" in output
    assert set(stored(tos_storage)) == set(files_in(uploads)) | {"reports/keep.txt"}
    assert not set(gone) & set(record_rows(Path(env["WORK_DIR"])))


def test_one_presync_at_a_time_and_no_cutover_during_one(
    env: dict[str, str], tmp_path: Path, pg_engine: sa.Engine
) -> None:
    ok(presync(env, tmp_path))
    (lock_path,) = (Path(env["WORK_DIR"]) / "presync").glob("*.lock")
    with lock_path.open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running presync holds it
        lock.write("a presync (pid 4242)\n")
        lock.flush()
        results = [presync(env, tmp_path), upgrade_head(env, tmp_path)]
    for result in results:
        output = result.stdout + result.stderr
        failures = [line for line in output.splitlines() if line.startswith("FAILED:")]
        assert result.returncode != 0 and len(failures) == 1, output
        assert "is in use by a presync (pid 4242)" in failures[0]
        assert "Traceback" not in output
    assert sa.inspect(pg_engine).get_table_names() == []  # the cutover's preflight stopped it


def test_bad_settings_are_one_line_each_and_nothing_is_written(
    env: dict[str, str], tmp_path: Path
) -> None:
    bad = {**env, "UPLOADS_DIR": str(tmp_path / "no-such-folder"), "STORAGE_BUCKET": "",
           "WORK_DIR": str(tmp_path / "fresh-work")}
    result = presync(bad, tmp_path)
    failures = [line for line in result.stderr.splitlines() if line.startswith("FAILED:")]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert any("UPLOADS_DIR" in line and "no-such-folder" in line for line in failures)
    assert any("STORAGE_BUCKET is not set" in line for line in failures)
    assert not (tmp_path / "fresh-work" / "presync").exists()
    assert env["STORAGE_SECRET_KEY"] not in result.stderr + result.stdout


PART_UPLOAD = re.compile(r'"PUT \S*[?&]partNumber=(\d+)')


def test_a_presync_killed_in_a_multipart_upload_resumes_from_its_stored_parts(
    env: dict[str, str], tmp_path: Path, uploads: Path, tos_server: TosServer,
    tos_storage: StorageClient, caplog: pytest.LogCaptureFixture
) -> None:
    recording = uploads / "audio" / "all hands.wav"
    recording.write_bytes(os.urandom(3 * 5 * MiB + MiB))  # parts 1-3 of 5 MiB, part 4 of 1
    env = {**env, "STORAGE_MULTIPART_THRESHOLD": str(6 * MiB),
           "STORAGE_PART_SIZE": str(5 * MiB), "MAX_CONCURRENT": "1"}
    tos_server.faults = Faults(bandwidth=4 * MiB)  # about a second a part
    bucket = tos_server.store.bucket(BUCKET)
    process = subprocess.Popen([sys.executable, "-m", "data_migrations.commands.presync"], env=env,
                               cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and not any(
            len(upload.parts) >= 2 for upload in bucket.uploads()):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert tos_server.wait_idle(timeout=60)
    (left,) = bucket.uploads()
    kept = set(left.parts)
    assert left.key == "audio/all hands.wav" and 2 <= len(kept) < 4

    tos_server.faults = Faults()
    caplog.set_level(logging.DEBUG, logger="devtools.tos_server")
    output = ok(presync(env, tmp_path))
    sent = {int(match[1]) for record in caplog.records
            if (match := PART_UPLOAD.search(record.getMessage()))}
    assert sent == {1, 2, 3, 4} - kept
    assert "Incomplete multipart uploads left by a killed or failed attempt: 1 resumed" in output
    assert bucket.uploads() == []
    assert stored(tos_storage)["audio/all hands.wav"] == recording.read_bytes()
    assert "audio/all hands.wav" in record_rows(Path(env["WORK_DIR"]))


def test_the_plan_says_how_much_the_presync_has_moved_already(
    env: dict[str, str], tmp_path: Path, uploads: Path
) -> None:
    ok(presync(env, tmp_path))
    changed, *_ = files_in(uploads)
    rewrite(uploads / changed)
    output = ok(alembic(env, tmp_path, "-x", "dry_run=true", "upgrade", "head"))
    assert summary_count(output, "unchanged since the presync") == len(files_in(uploads)) - 1
    assert summary_count(output, "to upload") == 1


def test_files_the_app_deletes_during_a_presync_are_not_recorded_changed_ones_as_read(
    env: dict[str, str], tmp_path: Path, uploads: Path, tos_server: TosServer
) -> None:
    late = uploads / "zz-late"  # scanned, and uploaded last (one thread, in path order)
    late.mkdir()
    deleted, changed = late / "deleted.mp3", late / "changed.mp3"
    for path in (deleted, changed):
        path.write_bytes(b"recorded by the app")
    tos_server.faults = Faults(latency=0.3)
    work = Path(env["WORK_DIR"])
    process = subprocess.Popen([sys.executable, "-m", "data_migrations.commands.presync"],
                               env={**env, "MAX_CONCURRENT": "1"}, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and recorded_so_far(work) < 1:
        time.sleep(0.05)
    deleted.unlink()
    changed.write_bytes(b"written again by the app")
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    assert summary_count(output, "deleted while the run read them (not recorded)") == 1
    assert "The next cutover still has to move 0 files" in output
    recorded = record_rows(work)
    assert "zz-late/deleted.mp3" not in recorded
    # Changed after the scan, before it was read: recorded as it was read, its new bytes.
    now = changed.stat()
    assert recorded["zz-late/changed.mp3"] == (now.st_size, now.st_mtime_ns, file_crc64(changed))
    assert set(recorded) == set(files_in(uploads))


def test_prune_never_deletes_a_refused_file_nor_everything(
    env: dict[str, str], tmp_path: Path, uploads: Path, tos_storage: StorageClient
) -> None:
    ok(presync(env, tmp_path))
    before = set(stored(tos_storage))
    refused = sorted(files_in(uploads))[0]
    (uploads / refused).unlink()
    (uploads / refused).symlink_to("/etc/hostname")  # still there, now refused
    output = ok(presync({**env, "UNSAFE_FILES": "skip"}, tmp_path, "prune=true"))
    assert "objects the presync stored" not in output  # no orphan: nothing listed or deleted
    assert set(stored(tos_storage)) == before

    for path in files_in(uploads).values():  # the app's folder, emptied (a wrong mount?)
        path.unlink()
    result = presync({**env, "UNSAFE_FILES": "skip"}, tmp_path, "prune=true")
    (failure,) = failed_lines(result)
    assert "does not look like the folder the presync read" in failure
    assert "nothing was deleted" in failure
    assert set(stored(tos_storage)) == before


def test_another_uploads_folder_has_a_record_of_its_own(
    env: dict[str, str], tmp_path: Path, tos_storage: StorageClient
) -> None:
    ok(presync(env, tmp_path))
    before = set(stored(tos_storage))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "one.mp3").write_bytes(b"another folder")
    output = ok(presync({**env, "UPLOADS_DIR": str(elsewhere)}, tmp_path, "prune=true"))
    assert "objects the presync stored" not in output
    assert set(stored(tos_storage)) == before | {"one.mp3"}
    assert len(list((Path(env["WORK_DIR"]) / "presync").glob("*.sqlite"))) == 2


def test_a_damaged_record_is_one_line_before_anything_is_written(
    env: dict[str, str], tmp_path: Path, pg_engine: sa.Engine
) -> None:
    ok(presync(env, tmp_path))
    (record,) = (Path(env["WORK_DIR"]) / "presync").glob("*.sqlite")
    record.write_bytes(b"not a database at all" * 100)
    for result in (presync(env, tmp_path), upgrade_head(env, tmp_path)):
        (failure,) = failed_lines(result)
        assert f"the presync record {record} cannot be used" in failure
    assert sa.inspect(pg_engine).get_table_names() == []  # the cutover's preflight found it
