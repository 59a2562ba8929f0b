"""A presync uploads nothing unless it can record what it stores, in the record of the
folder it reads: another folder at UPLOADS_DIR, a record it may not write and an empty
record are each one FAILED line with nothing uploaded. Real processes, the real SDK
against the local TOS server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from storage import StorageClient
from tests.commands.test_presync import ok, presync, record_rows, run
from tests.conftest import TosServer, stored, tos_env
from tests.files.test_prune_guard import another_apps_files, replace_folder
from tests.run.test_preflight import DAC
from tests.runs import cutover_environment, one_failure

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path, pg_url: str, tos_server: TosServer) -> dict[str, str]:
    return {**cutover_environment(tmp_path, pg_url), **tos_env(tos_server),
            "VERIFY_URLS": "none"}


def the_record(env: dict[str, str]) -> Path:
    (record,) = (Path(env["WORK_DIR"]) / "presync").glob("*.sqlite")
    return record


def test_another_folder_at_uploads_dir_is_refused_with_nothing_uploaded(
    env: dict[str, str], tmp_path: Path, tos_storage: StorageClient
) -> None:
    uploads = Path(env["UPLOADS_DIR"])
    ok(presync(env, tmp_path))
    objects, recorded = stored(tos_storage), record_rows(Path(env["WORK_DIR"]))
    replace_folder(uploads, another_apps_files(sorted(recorded)))

    failure = one_failure(presync(env, tmp_path))
    assert failure.startswith(f"FAILED: the presync refused: UPLOADS_DIR {uploads} does not "
                              "look like the folder the presync read: of the "
                              f"{len(recorded):,} files its record {the_record(env)} holds, ")
    assert "nothing was uploaded" in failure
    assert failure.endswith("run with -x uploads_dir_changed=true")
    assert stored(tos_storage) == objects
    assert record_rows(Path(env["WORK_DIR"])) == recorded

    # The operator says the folder is the app's after all: the same setting as prune's.
    ok(presync(env, tmp_path, "uploads_dir_changed=true"))
    assert set(stored(tos_storage)) == set(objects) | {"report.pdf", "index.html",
                                                       "data/export.csv"}


def test_a_record_the_presync_may_not_write_is_refused_before_anything_is_uploaded(
    env: dict[str, str], tmp_path: Path, tos_storage: StorageClient
) -> None:
    ok(presync(env, tmp_path))
    objects = stored(tos_storage)
    (Path(env["UPLOADS_DIR"]) / "new-since.mp3").write_bytes(b"to upload")
    record = the_record(env)
    record.chmod(0o444)
    tmp_path.chmod(0o755)  # root writes anything: this run goes without that capability
    command = ["setpriv", f"--inh-caps={DAC}", f"--bounding-set={DAC}", sys.executable, "-m",
               "data_migrations.commands.presync"]
    try:
        failure = one_failure(run(command, env, tmp_path))
    finally:
        record.chmod(0o644)
    assert failure == (f"FAILED: the presync record {record} cannot be used (attempt to write "
                       "a readonly database); fix its folder, or move the file out of "
                       "WORK_DIR and run the presync again (the cutover then reads every file)")
    assert stored(tos_storage) == objects


def test_an_empty_record_is_refused_as_a_damaged_one(
    env: dict[str, str], tmp_path: Path, tos_storage: StorageClient
) -> None:
    ok(presync(env, tmp_path))
    objects = stored(tos_storage)
    (Path(env["UPLOADS_DIR"]) / "new-since.mp3").write_bytes(b"to upload")
    record = the_record(env)
    record.write_bytes(b"")

    failure = one_failure(presync(env, tmp_path))
    assert failure.startswith(f"FAILED: the presync record {record} cannot be used (the file "
                              "is empty: it is no record); ")
    assert stored(tos_storage) == objects
    assert record.stat().st_size == 0


def test_the_same_setting_lets_prune_go_ahead_within_prune_max_delete(
    env: dict[str, str], tmp_path: Path, tos_storage: StorageClient
) -> None:
    uploads = Path(env["UPLOADS_DIR"])
    ok(presync(env, tmp_path))
    recorded = sorted(record_rows(Path(env["WORK_DIR"])))
    replace_folder(uploads, another_apps_files(recorded))

    refused = one_failure(presync(env, tmp_path, "prune=true", "uploads_dir_changed=true"))
    assert refused.startswith("FAILED: -x prune=true would delete ")  # PRUNE_MAX_DELETE holds
    output = ok(presync(env, tmp_path, "prune=true", "uploads_dir_changed=true",
                        "prune_max_delete=100%"))
    assert f"Deleted {len(recorded) - 2} objects the presync stored" in output, output
    assert set(stored(tos_storage)) == set(another_apps_files(recorded))
