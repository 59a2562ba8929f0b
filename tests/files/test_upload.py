"""The file-upload revision (0003) on a real PostgreSQL, against a local folder and the
local TOS server through the real ``tos`` SDK."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
import tos
from alembic import command
from alembic.config import Config
from alembic.util import CommandError

from data_migrations.commands.adopt_dev import alembic_config
from data_migrations.files import retry
from data_migrations.files import upload as file_upload
from data_migrations.files.scan import Exclusions
from devtools.postgres_server import PASSWORD
from devtools.tos_server import Faults, TosServer
from storage import StorageClient, file_crc64
from storage.tos import MiB
from tests.conftest import (
    ACCESS_KEY,
    BUCKET,
    ENDPOINT,
    PUBLIC_BASE_URL,
    ROOT,
    SECRET_KEY,
    fetch,
    stored,
    tos_env,
    version,
)
from tests.dev_data import DevDatabase

SPECIAL_NAMES = ("audio/周会 #1.mp3", "audio/50% off+more.wav", "notes/a b/c&d=e.txt",
                 "top.txt", "empty.txt")


@pytest.fixture(autouse=True)
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cutover is on: a dev database (empty: the rows are 0002's business)."""
    monkeypatch.setenv("SOURCE_DATABASE_URL", DevDatabase(tmp_path / "meeting_agent.db").url)


QUICK_RETRIES = (0.05, 0.1)  # three attempts, close together


def upgrade_config(pg_url: str, retry_backoff: tuple[float, ...] = QUICK_RETRIES) -> Config:
    """The in-process Alembic config, with revision 0003's retry schedule given."""
    config = alembic_config(pg_url)
    config.attributes[retry.RETRY_BACKOFF_ATTRIBUTE] = retry_backoff
    return config


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    folder = tmp_path / "uploads"  # the default UPLOADS_DIR, relative to the cwd
    folder.mkdir()
    return folder


def write(folder: Path, relative: str, data: bytes | None = None) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(relative.encode() * 3 if data is None else data)
    return path


@pytest.fixture(params=["local", "tos"])
def bucket(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> StorageClient:
    """The storage settings in the environment, and a client (no prefix) to look inside."""
    client: StorageClient = request.getfixturevalue(f"{request.param}_storage")
    if request.param == "local":
        env = {"STORAGE_PROVIDER": "local", "STORAGE_LOCAL_ROOT": str(client.root),  # type: ignore[attr-defined]
               "STORAGE_PUBLIC_BASE_URL": PUBLIC_BASE_URL}
    else:
        env = tos_env(request.getfixturevalue("tos_server"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return client


only_tos = pytest.mark.parametrize("bucket", ["tos"], indirect=True)
only_local = pytest.mark.parametrize("bucket", ["local"], indirect=True)


def manifest(engine: sa.Engine) -> dict[str, tuple]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT relative_path, object_key, public_url, size, crc64, status "
            "FROM cutover_file_manifest"))
        return {r[0]: tuple(r[1:]) for r in rows}


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry of a folder with its size and times: proof that nothing was written."""
    return {str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def summary(output: str, title: str = "File upload (") -> dict[str, int]:
    """The counts of the last summary (or plan) table in the output, by row label."""
    lines = output[output.rindex(title):].splitlines()[3:]
    counts = {}
    for line in lines:
        row = re.match(r"(\S.*?)\s{2,}([\d,]+)\s", line + " ")
        if row is None:
            break
        counts[row[1]] = int(row[2].replace(",", ""))
    return counts


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), *args]


def run_watching(args: list[str], env: dict[str, str], trigger: str,
                 action: Callable[[subprocess.Popen], None]) -> tuple[int, str]:
    """Run the alembic command line; call ``action`` once when a line contains ``trigger``.
    Returns the exit code and the whole output."""
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    lines, fired = [], False
    for line in process.stdout:
        lines.append(line)
        if not fired and trigger in line:
            fired = True
            action(process)
    assert fired, "".join(lines)
    return process.wait(timeout=60), "".join(lines)


def test_every_file_is_uploaded_under_its_key_and_recorded(
    bucket: StorageClient, uploads: Path, pg_url: str, pg_engine: sa.Engine,
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("STORAGE_KEY_PREFIX", "meetings")
    files = {name: write(uploads, name) for name in SPECIAL_NAMES}
    files["empty.txt"].write_bytes(b"")
    before = snapshot(uploads)

    command.upgrade(upgrade_config(pg_url), "0003")

    assert version(pg_engine) == "0003"
    assert stored(bucket) == {f"meetings/{n}": p.read_bytes() for n, p in files.items()}
    assert manifest(pg_engine) == {
        name: (f"meetings/{name}", f"{PUBLIC_BASE_URL}/meetings/{quote(name)}",
               path.stat().st_size, file_crc64(path), "verified")
        for name, path in files.items()}
    assert snapshot(uploads) == before
    counts = summary(capfd.readouterr().err)
    assert counts["uploaded"] == counts["verified in the bucket"] == len(files)
    assert counts["skipped (already in the bucket)"] == counts["excluded"] == 0


@only_tos
def test_content_type_follows_the_extension(
    bucket: StorageClient, uploads: Path, pg_url: str, raw_client: tos.TosClientV2
) -> None:
    write(uploads, "audio/周会 #1.mp3")
    write(uploads, "minutes.docx")
    command.upgrade(upgrade_config(pg_url), "0003")
    assert raw_client.head_object(BUCKET, "audio/周会 #1.mp3").content_type == "audio/mpeg"
    assert raw_client.head_object(BUCKET, "minutes.docx").content_type.endswith(
        "wordprocessingml.document")


@only_tos
def test_a_large_file_goes_up_in_parts(
    bucket: StorageClient, uploads: Path, pg_url: str, pg_engine: sa.Engine,
    raw_client: tos.TosClientV2, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_MULTIPART_THRESHOLD", str(6 * MiB))
    monkeypatch.setenv("STORAGE_PART_SIZE", str(5 * MiB))
    large = write(uploads, "recordings/all-hands.wav", os.urandom(11 * MiB))
    command.upgrade(upgrade_config(pg_url), "0003")
    assert raw_client.head_object(BUCKET, "recordings/all-hands.wav").etag.endswith("-3")
    assert stored(bucket)["recordings/all-hands.wav"] == large.read_bytes()
    assert manifest(pg_engine)["recordings/all-hands.wav"][3] == file_crc64(large)


@only_tos
def test_the_progress_counts_each_part_of_a_large_file_as_it_is_stored(
    bucket: StorageClient, uploads: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bytes the progress line shows for the files still uploading grow part by part,
    while the object is not complete yet."""
    monkeypatch.setenv("STORAGE_MULTIPART_THRESHOLD", str(6 * MiB))
    monkeypatch.setenv("STORAGE_PART_SIZE", str(5 * MiB))
    large = write(uploads, "recordings/all-hands.wav", os.urandom(11 * MiB))
    shown: list[tuple[int, bool]] = []  # (bytes in flight, the object exists)
    stored_part = file_upload.PartsStored.stored

    def watched(parts: file_upload.PartsStored, name: str, size: int) -> None:
        stored_part(parts, name, size)
        shown.append((parts.total(), bucket.stat(name) is not None))

    monkeypatch.setattr(file_upload.PartsStored, "stored", watched)
    command.upgrade(upgrade_config(pg_url), "0003")

    totals = [total for total, _ in shown]
    # The first part goes up alone, the other two together.
    assert len(totals) == 3 and totals[0] == 5 * MiB and totals == sorted(totals)
    assert totals[-1] == large.stat().st_size
    assert not any(exists for _, exists in shown)
    assert stored(bucket)["recordings/all-hands.wav"] == large.read_bytes()


@only_local
def test_exclusions_are_left_out_and_counted(
    bucket: StorageClient, uploads: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture
) -> None:
    for name in ("keep.mp3", "tmp/a.wav", "audio/tmp/b.wav", "audio/c.mp3.part", "x.log"):
        write(uploads, name)
    command.upgrade(upgrade_config(pg_url), "0003")
    assert set(stored(bucket)) == {"keep.mp3", "x.log"}
    assert summary(capfd.readouterr().err)["excluded"] == 3

    command.downgrade(alembic_config(pg_url), "0002")
    monkeypatch.setenv("UPLOAD_EXCLUDE", "*.log")  # added to tmp/ and *.part
    command.upgrade(upgrade_config(pg_url), "0003")
    assert set(stored(bucket)) == {"keep.mp3", "x.log"}  # x.log stayed from the first run
    assert summary(capfd.readouterr().err)["excluded"] == 4

    command.downgrade(alembic_config(pg_url), "0002")
    monkeypatch.setenv("UPLOAD_EXCLUDE", "none")
    command.upgrade(upgrade_config(pg_url), "0003")
    assert set(stored(bucket)) == {"keep.mp3", "x.log", "tmp/a.wav", "audio/tmp/b.wav",
                                   "audio/c.mp3.part"}
    assert summary(capfd.readouterr().err)["excluded"] == 0


def test_exclusion_patterns() -> None:
    rules = Exclusions(["tmp/", "*.part", "cache/*.bin"])
    assert rules.folder("tmp") and rules.folder("audio/tmp") and not rules.folder("tmpx")
    assert rules.file("a/b.part") and not rules.file("a/b.party")
    assert rules.file("cache/x.bin") and not rules.file("audio/cache/x.bin")


@only_local
def test_links_leading_outside_are_refused_and_never_read(
    bucket: StorageClient, uploads: Path, tmp_path: Path, pg_url: str, pg_engine: sa.Engine,
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    outside = tmp_path / "outside"
    write(outside, "secret.txt", b"not for the bucket")
    write(uploads, "audio/ok.mp3")
    (uploads / "audio" / "escape.mp3").symlink_to("../../outside/secret.txt")
    (uploads / "dotdot.txt").symlink_to(uploads / "audio" / ".." / ".." / "outside" / "secret.txt")
    (uploads / "folder").symlink_to(outside)
    (uploads / "alias.mp3").symlink_to("audio/ok.mp3")  # inside: followed
    (uploads / "loop").symlink_to(".")
    os.mkfifo(uploads / "pipe")

    with pytest.raises(CommandError) as failure:
        command.upgrade(upgrade_config(pg_url), "0003")
    lines = str(failure.value).split("\nFAILED: ")  # the preflight's: one line each
    names = ("audio/escape.mp3", "dotdot.txt", "folder", "loop", "pipe")
    assert [line.partition(": ")[0] for line in lines] == [
        f"UPLOADS_DIR {uploads.resolve()}"] * len(names)
    assert sorted(line.split(": ")[1] for line in lines) == sorted(names)
    assert "symbolic link to ../../outside/secret.txt, outside UPLOADS_DIR" in lines[0] + \
        "".join(lines[1:])
    assert sa.inspect(pg_engine).get_table_names() == [] and stored(bucket) == {}

    monkeypatch.setenv("UNSAFE_FILES", "skip")
    command.upgrade(upgrade_config(pg_url), "0003")
    assert stored(bucket) == {"audio/ok.mp3": b"audio/ok.mp3" * 3,
                              "alias.mp3": b"audio/ok.mp3" * 3}
    assert "  - audio/escape.mp3: symbolic link to ../../outside/secret.txt, outside" in (
        capfd.readouterr().err)


def tos_subprocess_env(server: TosServer, pg_url: str) -> dict[str, str]:
    return {**os.environ, **tos_env(server), "DATABASE_URL": pg_url}


@only_tos
def test_a_killed_upload_resumes_and_skips_what_is_there(
    bucket: StorageClient, tos_server: TosServer, uploads: Path, pg_url: str,
    pg_engine: sa.Engine, capfd: pytest.CaptureFixture
) -> None:
    files = {f"audio/{i:03d}.mp3": write(uploads, f"audio/{i:03d}.mp3") for i in range(60)}
    tos_server.faults = Faults(latency=0.1)
    env = {**tos_subprocess_env(tos_server, pg_url), "MAX_CONCURRENT": "2"}
    code, output = run_watching(cli("upgrade", "0003"), env, "uploading:",
                                lambda process: process.kill())
    assert code == -9, output
    tos_server.faults = Faults()
    # A PUT the server had received whole is stored although its client is gone.
    assert tos_server.wait_idle(timeout=60)
    present = set(stored(bucket))
    assert 0 < len(present) < len(files)
    assert version(pg_engine) == "0002"
    assert fetch(pg_engine, "SELECT to_regclass('cutover_file_manifest')") == [(None,)]

    command.upgrade(upgrade_config(pg_url), "0003")
    assert stored(bucket) == {name: path.read_bytes() for name, path in files.items()}
    assert {row[4] for row in manifest(pg_engine).values()} == {"verified"}
    assert len(manifest(pg_engine)) == len(files)
    counts = summary(capfd.readouterr().err)
    assert counts["skipped (already in the bucket)"] == len(present)
    assert counts["uploaded"] == len(files) - len(present)


def test_an_object_with_other_content_is_uploaded_again(
    bucket: StorageClient, uploads: Path, pg_url: str, pg_engine: sa.Engine,
    capfd: pytest.CaptureFixture, make_file: Callable[..., Path]
) -> None:
    same = write(uploads, "same.mp3")
    changed = write(uploads, "audio/changed.mp3")
    bucket.put_file("same.mp3", same)
    bucket.put_file("audio/changed.mp3", make_file(b"an older recording"))

    command.upgrade(upgrade_config(pg_url), "0003")

    assert stored(bucket) == {"same.mp3": same.read_bytes(),
                              "audio/changed.mp3": changed.read_bytes()}
    assert manifest(pg_engine)["same.mp3"][4] == "verified"
    err = capfd.readouterr().err
    counts = summary(err)
    assert counts["re-uploaded (content differed)"] == counts["skipped (already in the bucket)"] \
        == 1
    assert "Re-uploaded because the bucket held other content:\n  - audio/changed.mp3" in err


@only_tos
def test_errors_and_dropped_connections_are_survived(
    bucket: StorageClient, tos_server: TosServer, uploads: Path, pg_url: str,
    pg_engine: sa.Engine
) -> None:
    files = {f"f{i:02d}.txt": write(uploads, f"f{i:02d}.txt") for i in range(30)}

    def misbehave(_: subprocess.Popen) -> None:  # from the first upload to the last check
        tos_server.faults = Faults(error_rate=0.3, drop_rate=0.2, seed=7)

    code, output = run_watching(cli("upgrade", "0003"), tos_subprocess_env(tos_server, pg_url),
                                "objects already stored; uploading", misbehave)
    faults, tos_server.faults = tos_server.faults, Faults()
    assert code == 0, output
    assert faults.errors > 10 and faults.drops > 5
    assert stored(bucket) == {name: path.read_bytes() for name, path in files.items()}
    assert {row[4] for row in manifest(pg_engine).values()} == {"verified"}
    assert len(manifest(pg_engine)) == len(files)


def assert_one_clear_failure(code: int, output: str, message: str) -> None:
    assert code != 0, output
    assert "Traceback" not in output
    failures = [line for line in output.splitlines() if line.startswith("FAILED:")]
    assert len(failures) == 1, output
    assert message in failures[0], output
    assert SECRET_KEY not in output and PASSWORD not in output


class OnLog(logging.Handler):
    """Calls ``action`` once, in the logging thread, when a ``cutover.files`` line contains
    ``trigger``: a fault injected at a known point of an in-process run."""

    def __init__(self, trigger: str, action: Callable[[], None]) -> None:
        super().__init__()
        self.trigger, self.action, self.fired = trigger, action, False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.fired and self.trigger in record.getMessage():
            self.fired = True
            self.action()


@contextmanager
def on_log(trigger: str, action: Callable[[], None]) -> Iterator[OnLog]:
    handler = OnLog(trigger, action)
    logger = logging.getLogger("cutover.files")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


UPLOADING = "objects already stored; uploading"


@only_tos
def test_storage_failing_every_request_is_one_clear_line(
    bucket: StorageClient, tos_server: TosServer, uploads: Path, pg_url: str,
    pg_engine: sa.Engine
) -> None:
    for i in range(5):
        write(uploads, f"f{i}.txt")

    def fail_everything() -> None:
        tos_server.faults = Faults(error_rate=1.0)

    with on_log(UPLOADING, fail_everything) as hook, pytest.raises(CommandError) as failure:
        command.upgrade(upgrade_config(pg_url), "0003")
    tos_server.faults = Faults()
    assert hook.fired
    assert str(failure.value).startswith("file upload stopped: f")
    assert f"(after {len(QUICK_RETRIES) + 1} attempts)" in str(failure.value)
    assert "HTTP 503" in str(failure.value)
    assert version(pg_engine) == "0002"


@only_tos
def test_a_store_that_stays_down_stops_the_step_with_one_line(
    bucket: StorageClient, tos_server: TosServer, uploads: Path, pg_url: str,
    pg_engine: sa.Engine
) -> None:
    for i in range(3):
        write(uploads, f"f{i}.txt")
    with on_log(UPLOADING, tos_server.stop) as hook, pytest.raises(CommandError) as failure:
        command.upgrade(upgrade_config(pg_url), "0003")
    assert hook.fired
    first_line = str(failure.value).splitlines()[0]
    assert re.fullmatch(r"file upload stopped: f\d\.txt \(after 3 attempts\): upload of "
                        r"'f\d\.txt' in bucket 'meeting-agent' failed: .+", first_line)
    assert "Connection refused" in first_line or "Max retries exceeded" in first_line
    assert "nothing was recorded" in str(failure.value).lower()
    assert version(pg_engine) == "0002"
    assert fetch(pg_engine, "SELECT to_regclass('cutover_file_manifest')") == [(None,)]


@only_tos
def test_settings_and_credentials_problems_are_one_clear_line(
    bucket: StorageClient, tos_server: TosServer, uploads: Path, pg_url: str
) -> None:
    write(uploads, "a.txt")
    env = tos_subprocess_env(tos_server, pg_url)
    missing = subprocess.run(cli("upgrade", "0003"), env={**env, "STORAGE_BUCKET": ""},
                             capture_output=True, text=True, timeout=60)
    assert_one_clear_failure(missing.returncode, missing.stdout + missing.stderr,
                             "STORAGE_BUCKET is not set")
    wrong = subprocess.run(cli("upgrade", "0003"),
                           env={**env, "STORAGE_SECRET_KEY": SECRET_KEY[::-1]},
                           capture_output=True, text=True, timeout=60)
    assert_one_clear_failure(wrong.returncode, wrong.stdout + wrong.stderr,
                             "preflight failed at step 'credentials'")
    assert SECRET_KEY[::-1] not in wrong.stdout + wrong.stderr


@only_tos
def test_an_object_lost_before_verification_fails_the_upgrade(
    bucket: StorageClient, tos_server: TosServer, uploads: Path, pg_url: str,
    pg_engine: sa.Engine
) -> None:
    for i in range(12):
        write(uploads, f"f{i:02d}.txt")
    tos_server.faults = Faults(latency=0.1)
    env = {**tos_subprocess_env(tos_server, pg_url), "MAX_CONCURRENT": "1"}

    def lose_the_last_object(_: subprocess.Popen) -> None:
        # Straight from the server's store, at once: the listing that verifies waits out
        # its 0.1 s latency first, so it no longer sees the object.
        tos_server.store.bucket(BUCKET).delete("f11.txt")

    code, output = run_watching(cli("upgrade", "0003"), env, "Verifying 12 files",
                                lose_the_last_object)
    assert_one_clear_failure(code, output, "verification failed for 1 of 12 files")
    assert "  - f11.txt: not in the bucket" in output
    assert version(pg_engine) == "0002"


def test_downgrade_keeps_the_objects_unless_purged(
    bucket: StorageClient, uploads: Path, pg_url: str, pg_engine: sa.Engine,
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture,
    make_file: Callable[..., Path]
) -> None:
    monkeypatch.setenv("STORAGE_KEY_PREFIX", "meetings")
    for name in SPECIAL_NAMES:
        write(uploads, name)
    config = upgrade_config(pg_url)
    command.upgrade(config, "0003")
    command.downgrade(config, "0002")
    assert f"the {len(SPECIAL_NAMES)} uploaded objects stay in the bucket" in (
        capfd.readouterr().err)
    assert len(stored(bucket)) == len(SPECIAL_NAMES)
    assert fetch(pg_engine, "SELECT to_regclass('cutover_file_manifest')") == [(None,)]

    command.upgrade(config, "0003")
    bucket.put_file("meetings/other.txt", make_file(b"not from the uploads folder"))
    monkeypatch.setenv("STORAGE_KEY_PREFIX", "changed-since")  # the manifest's keys count
    monkeypatch.setenv("PURGE_OBJECTS", "true")
    command.downgrade(config, "0002")
    assert set(stored(bucket)) == {"meetings/other.txt"}
    assert version(pg_engine) == "0002"


def test_dry_run_uploads_nothing_and_writes_nothing_to_the_storage(
    bucket: StorageClient, uploads: Path, pg_url: str, pg_engine: sa.Engine,
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    """The plan asks TOS only what it can without writing (tests/files/test_plan_storage.py);
    the local provider's folder is not even looked at."""
    write(uploads, "big.wav", b"x" * 5000)
    write(uploads, "small.txt")
    write(uploads, "tmp/skip.wav")
    monkeypatch.setenv("STORAGE_LOCAL_ROOT", str(uploads.parent / "no-such-folder"))
    monkeypatch.setenv("DRY_RUN", "true")
    command.upgrade(upgrade_config(pg_url), "0003")
    monkeypatch.delenv("STORAGE_LOCAL_ROOT")
    assert list(bucket.list()) == []
    err = capfd.readouterr().err
    assert "File upload plan (dry run, nothing uploaded)" in err
    plan = summary(err, "File upload plan")
    assert (plan["to upload"], plan["excluded"], plan["refused (not read)"]) == (2, 1, 0)
    assert "Largest files:\n     4.9 KiB  big.wav" in err
    assert fetch(pg_engine, "SELECT to_regclass('alembic_version')") == [(None,)]
    assert not (uploads.parent / "no-such-folder").exists()


def test_offline_sql_describes_the_upload_without_secrets(
    uploads: Path, tos_server: TosServer
) -> None:
    write(uploads, "a.mp3")
    write(uploads, "b.part")
    env = {**os.environ, **tos_env(tos_server)}
    upgrade = subprocess.run(cli("upgrade", "0003", "--sql"), env=env, capture_output=True,
                             text=True, timeout=60)
    assert upgrade.returncode == 0, upgrade.stderr
    assert f"-- 0003 uploads the files under {uploads}\n" in upgrade.stdout
    assert (f"-- to bucket '{BUCKET}' at {ENDPOINT} through the proxy "
            f"127.0.0.1:{tos_server.port} (STORAGE_PROXY)\n") in upgrade.stdout
    assert "--   1 files, 15 B; excluded 1 (tmp/, *.part); refused 0" in upgrade.stdout
    assert "cutover_file_manifest (" not in upgrade.stdout
    downgrade = subprocess.run(cli("downgrade", "head:0002", "--sql"), env=env,
                               capture_output=True, text=True, timeout=60)
    assert "DROP TABLE IF EXISTS cutover_file_manifest;" in downgrade.stdout
    for result in (upgrade, downgrade):
        assert SECRET_KEY not in result.stdout + result.stderr


def test_without_a_source_nothing_is_read(
    pg_url: str, pg_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture
) -> None:
    monkeypatch.delenv("SOURCE_DATABASE_URL")
    monkeypatch.setenv("STORAGE_PROVIDER", "not-a-provider")  # never read
    command.upgrade(upgrade_config(pg_url), "0003")
    assert "0003: SOURCE_DATABASE_URL is not set: no files to upload." in capfd.readouterr().err
    assert version(pg_engine) == "0003"
    assert fetch(pg_engine, "SELECT to_regclass('cutover_file_manifest')") == [(None,)]


def test_a_missing_uploads_folder_is_named(
    bucket: StorageClient, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPLOADS_DIR", "/srv/nowhere/uploads")
    with pytest.raises(CommandError, match="UPLOADS_DIR /srv/nowhere/uploads is not an "
                                           "existing folder"):
        command.upgrade(upgrade_config(pg_url), "0003")


@only_local
def test_manifest_is_as_the_path_rewrite_expects_and_check_stays_clean(
    bucket: StorageClient, uploads: Path, pg_url: str, pg_engine: sa.Engine
) -> None:
    write(uploads, "a.mp3")
    config = upgrade_config(pg_url)
    command.upgrade(config, "head")
    command.check(config)  # raises when the models and the database disagree
    assert fetch(pg_engine, """
        SELECT column_name, data_type, numeric_precision, is_nullable, column_default
        FROM information_schema.columns WHERE table_name = 'cutover_file_manifest'
        ORDER BY ordinal_position""") == [
        ("relative_path", "text", None, "NO", None),
        ("object_key", "text", None, "NO", None),
        ("public_url", "text", None, "NO", None),
        ("size", "bigint", 64, "NO", None),
        ("mtime_ns", "bigint", 64, "NO", None),
        ("crc64", "numeric", 20, "NO", None),
        ("status", "text", None, "NO", None),
        ("acl", "text", None, "YES", None),
        ("storage_class", "text", None, "YES", None),
        ("sse", "text", None, "YES", None),
        ("uploaded_at", "timestamp with time zone", None, "NO", "now()")]
    assert fetch(pg_engine, "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON "
                            "a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE "
                            "i.indrelid = 'cutover_file_manifest'::regclass "
                            "AND i.indisprimary") == [("relative_path",)]


LARGE = "recordings/all-hands.wav"


def multipart_env(server: TosServer, pg_url: str) -> dict[str, str]:
    """A subprocess's settings with 5 MiB parts: a 12 MiB file goes up in three."""
    return {**tos_subprocess_env(server, pg_url), "STORAGE_MULTIPART_THRESHOLD": str(5 * MiB),
            "STORAGE_PART_SIZE": str(5 * MiB), "MAX_CONCURRENT": "2"}


def wait_for(condition: Callable[[], bool], process: subprocess.Popen) -> None:
    """Poll until ``condition()`` holds; fail if the process ends first."""
    while not condition():
        assert process.poll() is None, "the run ended before the awaited moment"
        time.sleep(0.02)


def part_stored(server: TosServer, key: str) -> bool:
    """A multipart upload of ``key`` is in progress and holds at least one part."""
    return any(upload.key == key and upload.parts
               for upload in server.store.bucket(BUCKET).uploads())


def pending_keys(client: tos.TosClientV2) -> list[str]:
    return sorted(upload.key for upload in client.list_multipart_uploads(BUCKET).uploads)


@only_tos
def test_a_multipart_upload_killed_midway_is_resumed_by_the_next_run(
    bucket: StorageClient, tos_server: TosServer, raw_client: tos.TosClientV2, uploads: Path,
    pg_url: str, pg_engine: sa.Engine, capfd: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    large = write(uploads, LARGE, os.urandom(12 * MiB))
    write(uploads, "notes/a.txt")
    # Someone else's uploads, under a key of no file here: never aborted.
    for key in ("recordings/other.wav", "elsewhere/b.bin"):
        raw_client.create_multipart_upload(BUCKET, key)
    tos_server.faults = Faults(latency=0.3)

    def kill_midway(process: subprocess.Popen) -> None:
        wait_for(lambda: part_stored(tos_server, LARGE), process)
        process.send_signal(signal.SIGKILL)

    code, output = run_watching(cli("upgrade", "0003"), multipart_env(tos_server, pg_url),
                                UPLOADING, kill_midway)
    tos_server.faults = Faults()
    assert code == -signal.SIGKILL, output
    assert tos_server.wait_idle(timeout=60)
    assert pending_keys(raw_client) == ["elsewhere/b.bin", LARGE, "recordings/other.wav"]
    assert version(pg_engine) == "0002"

    # A file small enough for one PUT resumes nothing: its leftover upload is aborted.
    raw_client.create_multipart_upload(BUCKET, "notes/a.txt")
    monkeypatch.setenv("STORAGE_MULTIPART_THRESHOLD", str(5 * MiB))  # as the killed run
    monkeypatch.setenv("STORAGE_PART_SIZE", str(5 * MiB))

    command.upgrade(upgrade_config(pg_url), "0003")
    err = capfd.readouterr().err
    assert "Incomplete multipart uploads left by a killed or failed attempt: 1 resumed" in err
    assert " stored parts kept), 1 aborted" in err
    assert pending_keys(raw_client) == ["elsewhere/b.bin", "recordings/other.wav"]
    assert stored(bucket)[LARGE] == large.read_bytes()
    assert {row[4] for row in manifest(pg_engine).values()} == {"verified"}


@only_tos
def test_a_probe_left_by_a_killed_preflight_is_deleted_by_the_next_one(
    bucket: StorageClient, tos_server: TosServer, uploads: Path, pg_url: str,
    pg_engine: sa.Engine, tmp_path: Path, make_file: Callable[..., Path]
) -> None:
    write(uploads, "a.txt")
    bucket.put_file(".preflight/notes.txt", make_file(b"not a probe"))  # not named as one
    work = tmp_path / "work"

    def probes() -> list[str]:
        return [key for key in tos_server.store.bucket(BUCKET).sorted_keys()
                if key.startswith(".preflight/preflight-")]

    def kill_during_the_probe(process: subprocess.Popen) -> None:
        wait_for(lambda: bool(probes()), process)  # written; read back and delete to come
        process.send_signal(signal.SIGKILL)

    tos_server.faults = Faults(latency=0.3)
    code, output = run_watching(cli("upgrade", "0003"), tos_subprocess_env(tos_server, pg_url),
                                "Preflight of", kill_during_the_probe)
    tos_server.faults = Faults()
    assert code == -signal.SIGKILL, output
    assert tos_server.wait_idle(timeout=60)
    assert len(probes()) == 1
    assert [p.name for p in work.glob("preflight-*.txt")] == [probes()[0].rpartition("/")[2]]

    command.upgrade(upgrade_config(pg_url), "0003")
    assert probes() == [] and list(work.glob("preflight-*")) == []
    assert ".preflight/notes.txt" in stored(bucket)
    assert version(pg_engine) == "0003"


@only_tos
def test_a_store_down_for_a_few_seconds_is_ridden_out(
    bucket: StorageClient, tos_server: TosServer, raw_client: tos.TosClientV2, uploads: Path,
    pg_url: str, pg_engine: sa.Engine, tmp_path: Path
) -> None:
    files = {LARGE: write(uploads, LARGE, os.urandom(12 * MiB))}
    files.update({f"notes/{i}.txt": write(uploads, f"notes/{i}.txt") for i in range(10)})
    port = tos_server.port
    restarted: list[TosServer] = []

    def outage(process: subprocess.Popen) -> None:
        # Mid-upload: a part of the large file is in, the others are on their way.
        wait_for(lambda: part_stored(tos_server, LARGE), process)
        tos_server.stop()
        time.sleep(12)  # the outage; the server keeps its multipart state on disk
        restarted.append(TosServer(tmp_path / "tos-root", access_key=ACCESS_KEY,
                                   secret_key=SECRET_KEY, port=port).start())

    tos_server.faults = Faults(latency=0.2)
    try:
        code, output = run_watching(cli("upgrade", "0003"), multipart_env(tos_server, pg_url),
                                    UPLOADING, outage)
        assert restarted and code == 0, output
        assert stored(bucket) == {name: path.read_bytes() for name, path in files.items()}
        assert {row[4] for row in manifest(pg_engine).values()} == {"verified"}
        assert pending_keys(raw_client) == []
    finally:
        for server in restarted:
            server.stop()
