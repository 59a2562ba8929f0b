"""Prune deletes only what it can prove is gone: after a presync, a folder that no longer
looks like the recorded one, or a deletion beyond PRUNE_MAX_DELETE, stops the presync and
the cutover in one line with nothing deleted, and the cutover before anything is written.
Real processes, the real SDK against the local TOS server, a real PostgreSQL."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from inotify_simple import INotify, flags

import settings
from data_migrations.files import preflight
from devtools.tos_server import Faults
from storage import StorageClient
from tests.commands.test_presync import files_in, ok, presync, record_rows, run
from tests.conftest import ROOT, TosServer, stored, tos_env
from tests.run.test_preflight import DAC
from tests.runs import cutover_environment, failed_lines, one_failure, upgrade_head


@pytest.fixture
def env(tmp_path: Path, pg_url: str, tos_server: TosServer) -> dict[str, str]:
    """A generated dev file with its uploads, cut over to the local TOS server."""
    return {**cutover_environment(tmp_path, pg_url), **tos_env(tos_server),
            "VERIFY_URLS": "none"}


@pytest.fixture
def uploads(env: dict[str, str]) -> Path:
    return Path(env["UPLOADS_DIR"])


def replace_folder(uploads: Path, files: dict[str, bytes]) -> None:
    """UPLOADS_DIR now holds ``files`` only: the app's folder moved away, something else
    mounted at its path."""
    uploads.rename(uploads.with_name("uploads-moved-away"))
    for relative, data in files.items():
        (uploads / relative).parent.mkdir(parents=True, exist_ok=True)
        (uploads / relative).write_bytes(data)


def another_apps_files(recorded: list[str]) -> dict[str, bytes]:
    """Five files of another app, two of them at paths the record holds."""
    return {recorded[0]: b"another app's bytes", recorded[1]: b"and more of them",
            "report.pdf": b"%PDF", "index.html": b"<html>", "data/export.csv": b"a,b"}


@pytest.mark.parametrize("folder", ["a stray .DS_Store only", "another app's five files"])
def test_a_folder_that_no_longer_looks_like_the_recorded_one_is_never_pruned(
    folder: str, env: dict[str, str], tmp_path: Path, uploads: Path,
    tos_storage: StorageClient, pg_engine: sa.Engine
) -> None:
    ok(presync(env, tmp_path))
    objects = stored(tos_storage)
    recorded = sorted(record_rows(Path(env["WORK_DIR"])))
    assert len(recorded) == len(objects) > 10
    replace_folder(uploads, {".DS_Store": b"\0\0\0\1Bud1"} if folder.startswith("a stray")
                   else another_apps_files(recorded))

    for result in (presync(env, tmp_path, "prune=true"),
                   upgrade_head({**env, "PRUNE_OBJECTS": "true"}, tmp_path)):
        failure = one_failure(result)
        assert f"FAILED: -x prune=true refused: UPLOADS_DIR {uploads} does not look like the " \
               "folder the presync read" in failure
        assert "more than half" in failure and "nothing was deleted" in failure
        assert stored(tos_storage) == objects  # nothing deleted, nothing uploaded
    assert sa.inspect(pg_engine).get_table_names() == []  # the cutover wrote nothing
    assert sorted(record_rows(Path(env["WORK_DIR"]))) == recorded


def test_prune_deletes_at_most_prune_max_delete_of_the_recorded_objects(
    env: dict[str, str], tmp_path: Path, uploads: Path, tos_storage: StorageClient,
    pg_engine: sa.Engine
) -> None:
    ok(presync(env, tmp_path))
    objects = stored(tos_storage)
    files = sorted(files_in(uploads))
    gone = files[:len(files) // 5]  # a fifth of the folder: more than the default 10%
    for relative in gone:
        (uploads / relative).unlink()

    for result in (presync(env, tmp_path, "prune=true"),
                   upgrade_head({**env, "PRUNE_OBJECTS": "true"}, tmp_path)):
        failure = one_failure(result)
        assert f"FAILED: -x prune=true would delete {len(gone)} of the {len(objects)} objects" \
               in failure
        allowed = -(-len(objects) // 10)
        assert f"more than PRUNE_MAX_DELETE allows (10%, {allowed} objects); nothing was " \
               f"deleted" in failure and f"-x prune_max_delete={len(gone)}" in failure
        assert stored(tos_storage) == objects
    assert sa.inspect(pg_engine).get_table_names() == []

    failure = one_failure(presync(env, tmp_path, "prune=true",
                                  f"prune_max_delete={len(gone) - 1}"))
    assert f"more than PRUNE_MAX_DELETE allows ({len(gone) - 1})" in failure
    assert stored(tos_storage) == objects

    output = ok(presync(env, tmp_path, "prune=true", f"prune_max_delete={len(gone)}"))
    assert f"Deleted {len(gone)} objects the presync stored" in output
    assert set(stored(tos_storage)) == set(objects) - set(gone)


def test_a_presync_record_replaced_by_a_folder_is_one_line_before_anything_is_written(
    env: dict[str, str], tmp_path: Path, tos_storage: StorageClient, pg_engine: sa.Engine
) -> None:
    ok(presync(env, tmp_path))
    objects = stored(tos_storage)
    (record,) = (Path(env["WORK_DIR"]) / "presync").glob("*.sqlite")
    record.unlink()
    record.mkdir()
    for result in (upgrade_head(env, tmp_path), presync(env, tmp_path)):
        failure = one_failure(result)
        assert f"the presync record {record} is not a file" in failure
    assert sa.inspect(pg_engine).get_table_names() == []
    assert stored(tos_storage) == objects


def test_a_cutover_without_a_presync_leaves_no_lock_file(
    env: dict[str, str], tmp_path: Path
) -> None:
    ok(upgrade_head(env, tmp_path))
    work = Path(env["WORK_DIR"])
    assert work.is_dir()
    assert not (work / "presync").exists()


@pytest.mark.parametrize("refused", ["a link to a folder outside UPLOADS_DIR",
                                     "a folder that cannot be read"])
def test_files_under_a_refused_folder_are_never_pruned(
    refused: str, env: dict[str, str], tmp_path: Path, uploads: Path, tos_storage: StorageClient
) -> None:
    """The scan cannot see into a refused folder: its files may all still exist, so none
    of their objects is an orphan. A file deleted beside it, in a folder whose name only
    starts alike, still is."""
    beside = uploads / "audio-extra" / "gone.wav"
    beside.parent.mkdir()
    beside.write_bytes(b"RIFF....WAVE")
    ok(presync(env, tmp_path))
    objects = stored(tos_storage)
    assert sum(key.startswith("audio/") for key in objects) > 1
    beside.unlink()
    command = [sys.executable, "-m", "data_migrations.commands.presync"]
    if refused.startswith("a link"):
        elsewhere = tmp_path / "audio-elsewhere"
        (uploads / "audio").rename(elsewhere)
        (uploads / "audio").symlink_to(elsewhere)
    else:  # root reads any folder: this run goes without the capabilities that let it
        tmp_path.chmod(0o755)
        (uploads / "audio").chmod(0o000)
        command = ["setpriv", f"--inh-caps={DAC}", f"--bounding-set={DAC}", *command]
    try:
        output = ok(run([*command, "-x", "prune=true", "-x", "unsafe_files=skip",
                         "-x", "prune_max_delete=100%"], env, tmp_path))
    finally:
        (uploads / "audio").chmod(0o755)
    assert "Deleted 1 objects the presync stored whose files are gone" in output, output
    assert set(stored(tos_storage)) == set(objects) - {"audio-extra/gone.wav"}


def test_the_prune_check_rides_out_a_burst_of_errors_on_the_bucket_listing(
    env: dict[str, str], tmp_path: Path, uploads: Path, tos_server: TosServer
) -> None:
    ok(presync(env, tmp_path))
    files = sorted(files_in(uploads))
    gone = files[:len(files) // 5]  # more than PRUNE_MAX_DELETE's 10%: the check refuses
    for relative in gone:
        (uploads / relative).unlink()
    # More 503s than the SDK's own four attempts at a request: the helper tries again.
    tos_server.faults = Faults(error_burst=6, methods=frozenset({"GET"}))

    problems = preflight.prune_guarded(settings.read(
        environ={**env, "PRUNE_OBJECTS": "true"}, load_env_file=False))

    assert len(problems) == 1, problems  # the refusal, not a listing given up on
    assert problems[0].startswith(f"-x prune=true would delete {len(gone)} of the ")
    assert tos_server.faults.errors == 6


def test_a_bucket_that_cannot_be_listed_stops_a_pruning_cutover_before_anything_is_written(
    env: dict[str, str], tmp_path: Path, tos_server: TosServer, tos_storage: StorageClient,
    pg_engine: sa.Engine
) -> None:
    ok(presync(env, tmp_path))
    objects = stored(tos_storage)
    tos_server.faults = Faults(error_rate=1.0, methods=frozenset({"GET"}))
    try:
        result = upgrade_head({**env, "PRUNE_OBJECTS": "true"}, tmp_path)
    finally:
        tos_server.faults = Faults()

    assert result.returncode != 0
    failures = failed_lines(result)
    # storage_ready's own line names its probe; the prune check's names its listing.
    (pruning,) = [line for line in failures if line.startswith("FAILED: -x prune=true")]
    assert pruning.startswith("FAILED: -x prune=true could not be checked: listing of the "
                              "bucket (after 6 attempts): "), pruning
    assert pruning.endswith("Run again once the store answers, or without -x prune=true to "
                            "upload without deleting")
    assert sa.inspect(pg_engine).get_table_names() == []
    assert stored(tos_storage) == objects


def test_the_pruning_preflight_scans_the_folder_and_reads_the_record_once(
    env: dict[str, str], tmp_path: Path, uploads: Path
) -> None:
    """The checks revision 0003 declares, run as the chain's preflight runs them (one
    Settings): UPLOADS_DIR is listed once and the presync record opened once, however many
    checks need them (inotify IN_OPEN)."""
    ok(presync(env, tmp_path))
    record = next((Path(env["WORK_DIR"]) / "presync").glob("*.sqlite"))
    script = ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini")))
    checks = script.get_revision("0003").module.PREFLIGHT
    cutover = settings.read(environ={**env, "PRUNE_OBJECTS": "true"}, load_env_file=False)
    inotify = INotify()
    folder_watch = inotify.add_watch(str(uploads), flags.OPEN)
    record_watch = inotify.add_watch(str(record.parent), flags.OPEN)
    try:
        problems = [problem for check in checks for problem in check(cutover)]
        events = inotify.read(timeout=0)
    finally:
        inotify.close()
    assert problems == []
    assert sum(1 for e in events if e.wd == folder_watch and not e.name) == 1
    assert sum(1 for e in events if e.wd == record_watch and e.name == record.name) == 1
