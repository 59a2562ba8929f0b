"""The preflight of the whole chain: every problem a pending step would meet is one FAILED:
line before anything is written, with real alembic processes against the real PostgreSQL,
real SQLite files and the local TOS server.

Tests run as root, which ignores permission bits; the runs that meet an unreadable or
unwritable path are started without the capabilities that let root do so
(CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so the kernel refuses them as it would an
operator's account.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from data_migrations.files.preflight import LISTED
from devtools.tos_server import TosServer
from tests.conftest import ROOT, tos_env
from tests.runs import cutover_environment, failed_lines, upgrade_head

ALEMBIC = (sys.executable, "-m", "alembic")
DAC = "-dac_override,-dac_read_search"
# Root without the capabilities that bypass permission bits.
ALEMBIC_WITHOUT_OVERRIDE = ("setpriv", f"--inh-caps={DAC}", f"--bounding-set={DAC}", *ALEMBIC)


def untouched(engine: sa.Engine) -> bool:
    """No table at all: no revision applied, no alembic_version created."""
    return sa.inspect(engine).get_table_names() == []


def alembic(env: dict[str, str], cwd: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ALEMBIC, "-c", str(ROOT / "alembic.ini"), *arguments], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture
def env(tmp_path: Path, pg_url: str) -> dict[str, str]:
    return cutover_environment(tmp_path, pg_url)


def test_an_unset_storage_secret_stops_before_anything_is_written(
        env: dict[str, str], tmp_path: Path, tos_server: TosServer, pg_engine: sa.Engine) -> None:
    env.update(tos_env(tos_server))
    del env["STORAGE_SECRET_KEY"]
    assert failed_lines(upgrade_head(env, tmp_path)) == [
        "FAILED: STORAGE_SECRET_KEY is not set (needed when STORAGE_PROVIDER=tos)"]
    assert untouched(pg_engine)


def test_a_wrong_bucket_stops_before_anything_is_written(
        env: dict[str, str], tmp_path: Path, tos_server: TosServer, pg_engine: sa.Engine) -> None:
    env.update(tos_env(tos_server), STORAGE_BUCKET="no-such-bucket")
    [line] = failed_lines(upgrade_head(env, tmp_path))
    assert line.startswith("FAILED: preflight failed at step 'bucket': "), line
    assert "no-such-bucket" in line
    assert untouched(pg_engine)


def test_a_missing_uploads_folder_stops_the_plan_and_the_upgrade(
        env: dict[str, str], tmp_path: Path, pg_engine: sa.Engine) -> None:
    env["UPLOADS_DIR"] = str(tmp_path / "nowhere")
    expected = [f"FAILED: UPLOADS_DIR {tmp_path / 'nowhere'} is not an existing folder (set "
                "UPLOADS_DIR to the app's uploads folder)"]
    assert failed_lines(upgrade_head(env, tmp_path)) == expected
    assert failed_lines(alembic(env, tmp_path, "-x", "dry_run=true", "upgrade", "head")) \
        == expected
    assert untouched(pg_engine)


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_a_damaged_source_file_is_named(damage: str, env: dict[str, str], tmp_path: Path,
                                        pg_engine: sa.Engine) -> None:
    source = tmp_path / "dev.db"
    data = source.read_bytes()
    if damage == "truncated":
        source.write_bytes(data[: len(data) // 2])
    else:  # the header and the first pages are garbage
        source.write_bytes(b"\x13" * 8192 + data[8192:])
    [line] = failed_lines(upgrade_head(env, tmp_path))
    assert line.startswith(f"FAILED: SOURCE_DATABASE_URL names {source}, which is not an "
                           "intact SQLite file ("), line
    assert untouched(pg_engine)


def test_every_unreadable_or_unwritable_path_is_one_line(
        env: dict[str, str], tmp_path: Path, pg_engine: sa.Engine) -> None:
    """Several problems at once, each its own line in chain order (0002's checks, then
    0003's), met by a process without root's permission override."""
    tmp_path.chmod(0o755)
    uploads = tmp_path / "uploads"
    closed = sorted(p for p in uploads.iterdir() if p.is_dir())[0]
    work, reports = tmp_path / "work", tmp_path / "reports"
    work.mkdir()
    reports.mkdir()
    for path, mode in ((closed, 0o000), (tmp_path / "dev.db", 0o000), (work, 0o555),
                       (reports, 0o555)):
        path.chmod(mode)
    try:
        lines = failed_lines(upgrade_head(env, tmp_path, ALEMBIC_WITHOUT_OVERRIDE))
    finally:
        for path in (closed, tmp_path / "dev.db", work, reports):
            path.chmod(0o755)
    assert lines == [
        f"FAILED: SOURCE_DATABASE_URL names {tmp_path / 'dev.db'}, which cannot be read "
        "(Permission denied)",
        f"FAILED: WORK_DIR {work} is not writable (Permission denied)",
        f"FAILED: REPORTS_DIR {reports} is not writable (Permission denied)",
        f"FAILED: UPLOADS_DIR {uploads}: {closed.name}/: folder cannot be read "
        "(Permission denied)",
    ]
    assert untouched(pg_engine)


def test_a_folder_path_through_a_file_is_not_writable(
        env: dict[str, str], tmp_path: Path, pg_engine: sa.Engine) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    env.update(WORK_DIR=str(tmp_path / "a-file" / "work"),
               REPORTS_DIR=str(tmp_path / "a-file" / "reports"))
    assert failed_lines(upgrade_head(env, tmp_path)) == [
        f"FAILED: WORK_DIR {tmp_path / 'a-file' / 'work'} is not writable (Not a directory)",
        f"FAILED: REPORTS_DIR {tmp_path / 'a-file' / 'reports'} is not writable "
        "(Not a directory)"]
    assert untouched(pg_engine)


def test_only_the_pending_steps_are_checked_and_a_good_setup_migrates(
        env: dict[str, str], tmp_path: Path, pg_engine: sa.Engine) -> None:
    """Up to 0002 the storage is not needed; from there the rest needs it."""
    storage = {"STORAGE_PROVIDER": "tos"}  # and none of the TOS settings
    first = alembic({**env, **storage}, tmp_path, "upgrade", "0002")
    assert first.returncode == 0, first.stdout + first.stderr
    assert failed_lines(upgrade_head({**env, **storage}, tmp_path)) == [
        "FAILED: STORAGE_BUCKET is not set (needed when STORAGE_PROVIDER=tos)"]
    with pg_engine.connect() as connection:
        assert connection.execute(sa.text("SELECT version_num FROM alembic_version")
                                  ).scalar_one() == "0002"
    rest = upgrade_head(env, tmp_path)
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert "Preflight of 0003, 0004: checking" in rest.stderr
    assert "Preflight passed." in rest.stderr


def test_sql_runs_no_preflight_and_needs_no_database(env: dict[str, str],
                                                    tmp_path: Path) -> None:
    env["UPLOADS_DIR"] = str(tmp_path / "nowhere")
    del env["DATABASE_URL"]
    result = alembic(env, tmp_path, "upgrade", "head", "--sql")
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE users" in result.stdout
    assert "Preflight" not in result.stderr


def test_an_unreadable_file_in_the_uploads_is_listed_not_a_traceback(
        env: dict[str, str], tmp_path: Path, pg_engine: sa.Engine) -> None:
    """With unsafe_files=skip the scan leaves an unreadable file out and lists it, as it
    does a refused link."""
    tmp_path.chmod(0o755)
    uploads = tmp_path / "uploads"
    closed = sorted(p for p in uploads.rglob("*") if p.is_file())[0]
    closed.chmod(0o000)
    for folder in (tmp_path / "work", tmp_path / "reports", tmp_path / "bucket"):
        folder.mkdir(exist_ok=True)
    env["UPLOAD_EXCLUDE"] = ""
    try:
        refused = upgrade_head({**env, "UNSAFE_FILES": "fail"}, tmp_path,
                               ALEMBIC_WITHOUT_OVERRIDE)
        skipped = upgrade_head({**env, "UNSAFE_FILES": "skip",
                                "MISSING_FILES": "keep"}, tmp_path, ALEMBIC_WITHOUT_OVERRIDE)
    finally:
        closed.chmod(0o644)
    relative = closed.relative_to(uploads).as_posix()
    assert failed_lines(refused) == [
        f"FAILED: UPLOADS_DIR {uploads}: {relative}: file cannot be read (Permission denied)"]
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert f"  - {relative}: file cannot be read (Permission denied)" in skipped.stderr
    assert os.path.isfile(tmp_path / "dev.db")


def test_many_refused_entries_are_capped(env: dict[str, str], tmp_path: Path,
                                         pg_engine: sa.Engine) -> None:
    uploads = tmp_path / "uploads" / "pipes"
    uploads.mkdir()
    for number in range(25):
        os.mkfifo(uploads / f"{number:02d}.pipe")
    lines = failed_lines(upgrade_head(env, tmp_path))
    root = tmp_path / "uploads"
    assert lines[:LISTED] == [
        f"FAILED: UPLOADS_DIR {root}: pipes/{number:02d}.pipe: not a regular file (FIFO, "
        "socket or device)" for number in range(LISTED)]
    assert lines[LISTED:] == [f"FAILED: UPLOADS_DIR {root}: ... and {25 - LISTED} more "
                              "entries that cannot be uploaded"]
    assert untouched(pg_engine)


def test_the_plan_checks_the_storage_settings_and_the_storage_without_writing(
        env: dict[str, str], tmp_path: Path, tos_server: TosServer, pg_engine: sa.Engine) -> None:
    """More in tests/files/test_plan_storage.py."""
    env.update(tos_env(tos_server), STORAGE_BUCKET="no-such-bucket")
    assert failed_lines(alembic(env, tmp_path, "-x", "dry_run=true", "upgrade", "head"))[0] \
        .startswith("FAILED: preflight failed at step 'bucket': the bucket does not exist")
    del env["STORAGE_REGION"]
    assert failed_lines(alembic(env, tmp_path, "-x", "dry_run=true", "upgrade", "head")) == [
        "FAILED: STORAGE_REGION is not set (needed when STORAGE_PROVIDER=tos)"]
    assert untouched(pg_engine)


def test_write_probes_a_killed_run_left_are_removed(
        env: dict[str, str], tmp_path: Path) -> None:
    leftovers = [tmp_path / folder / ".preflight-k1ll3d" for folder in ("work", "reports")]
    for leftover in leftovers:
        leftover.parent.mkdir()
        leftover.write_bytes(b"")
    result = upgrade_head(env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not any(leftover.exists() for leftover in leftovers)


def test_a_malformed_rate_limit_is_one_line_naming_it(
        env: dict[str, str], tmp_path: Path, tos_server: TosServer, pg_engine: sa.Engine) -> None:
    env.update({**tos_env(tos_server), "STORAGE_RATE_LIMIT": "fast"})
    assert failed_lines(upgrade_head(env, tmp_path)) == [
        "FAILED: STORAGE_RATE_LIMIT must be a rate in bytes per second such as 20MB, 512KB or "
        "16MiB, got 'fast'"]
    assert untouched(pg_engine)


@pytest.mark.parametrize("where", ["closed", "under /proc"])
def test_a_work_dir_that_takes_no_files_is_one_line_naming_it(
        where: str, env: dict[str, str], tmp_path: Path, tos_server: TosServer,
        pg_engine: sa.Engine) -> None:
    """The storage probe's scratch file goes to WORK_DIR too: it adds no raw second line."""
    env.update(tos_env(tos_server))
    tmp_path.chmod(0o755)
    work = tmp_path / "work" if where == "closed" else Path("/proc/cutover-work")
    reason = "Permission denied" if where == "closed" else "No such file or directory"
    if where == "closed":
        work.mkdir()
        work.chmod(0o555)
    try:
        env["WORK_DIR"] = str(work)
        lines = failed_lines(upgrade_head(env, tmp_path, ALEMBIC_WITHOUT_OVERRIDE))
    finally:
        if where == "closed":
            work.chmod(0o755)
    assert lines == [f"FAILED: WORK_DIR {work} is not writable ({reason})"]
    assert untouched(pg_engine)
