"""A storage key whose policy lacks an action: the whole cutover (``alembic upgrade head`` in a
subprocess, real PostgreSQL, the local TOS server through the real SDK) either stops in one
FAILED line naming the action before anything is written, or runs to an exact end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import tos

from data_migrations.files.scan import scan_folder
from devtools.tos_server import Faults, TosServer
from storage import StorageClient
from tests.conftest import BUCKET, ROOT, fetch, stored, tos_env, version
from tests.runs import cutover_environment, failed_lines, upgrade_head

# What a run does when its key lacks the action: "refused" before anything is written, or
# "runs" to an exact end without it.
REFUSED, RUNS = "refused", "runs"
CASES = [
    ("PutObject", None, REFUSED),
    ("GetObject", None, REFUSED),
    ("ListBucket", None, REFUSED),
    ("DeleteObject", None, REFUSED),
    ("AbortMultipartUpload", None, REFUSED),
    ("ListMultipartUploadParts", None, REFUSED),
    ("ListMultipartUploads", None, RUNS),
    ("PutObjectAcl", "public-read", REFUSED),
    ("GetObjectAcl", "public-read", REFUSED),
    ("PutObjectAcl", None, RUNS),  # no STORAGE_ACL: no ACL is ever set
    ("HeadBucket", None, REFUSED),
]


@pytest.fixture
def env(tmp_path: Path, pg_url: str, tos_server: TosServer) -> dict[str, str]:
    return {**cutover_environment(tmp_path, pg_url), **tos_env(tos_server),
            "VERIFY_URLS": "none"}


def uploaded_contents(folder: Path) -> dict[str, bytes]:
    """What the cutover uploads (the default UPLOAD_EXCLUDE leaves tmp/ and *.part out)."""
    return {f.relative_path: f.source.read_bytes()
            for f in scan_folder(folder, ("tmp/", "*.part")).files}


def nothing_written(engine: sa.Engine, server: TosServer) -> bool:
    """No table (not even alembic_version), no object, no multipart upload."""
    bucket = server.store.bucket(BUCKET)
    return sa.inspect(engine).get_table_names() == [] and bucket.sorted_keys() == [] \
        and bucket.uploads() == []


@pytest.mark.parametrize(("action", "acl", "outcome"), CASES,
                         ids=[f"{a}-{acl or 'no-acl'}" for a, acl, _ in CASES])
def test_a_key_denied_one_action_stops_in_one_line_or_runs_exactly(
    action: str, acl: str | None, outcome: str, env: dict[str, str], tmp_path: Path,
    tos_server: TosServer, tos_storage: StorageClient, pg_engine: sa.Engine
) -> None:
    if acl:
        env["STORAGE_ACL"] = acl
    tos_server.faults = Faults(denied=frozenset({action}))
    result = upgrade_head(env, tmp_path)
    if outcome == REFUSED:
        [line] = failed_lines(result)
        assert f"may not call tos:{action} (" in line, line
        assert nothing_written(pg_engine, tos_server)
        return
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Traceback" not in output, output
    tos_server.faults = Faults()
    assert version(pg_engine) == "0004"
    files = uploaded_contents(Path(env["UPLOADS_DIR"]))
    assert stored(tos_storage) == files
    assert fetch(pg_engine, "SELECT relative_path, status FROM cutover_file_manifest "
                 "ORDER BY 1") == [(name, "verified") for name in sorted(files)]
    if action == "ListMultipartUploads":
        assert output.count("may not call tos:ListMultipartUploads") == 2, output  # both say
        assert "resumed or aborted" in output


def test_without_list_multipart_uploads_a_killed_runs_upload_is_left_alone(
    env: dict[str, str], tmp_path: Path, tos_server: TosServer, tos_storage: StorageClient,
    raw_client: tos.TosClientV2, pg_engine: sa.Engine
) -> None:
    """A killed run's incomplete upload of a file's key, holding other bytes: a key that
    cannot list it uploads the file afresh, exactly, and leaves the upload to the lifecycle
    rule, as the log line says."""
    files = uploaded_contents(Path(env["UPLOADS_DIR"]))
    key = sorted(files)[0]
    upload_id = raw_client.create_multipart_upload(BUCKET, key).upload_id
    raw_client.upload_part(BUCKET, key, upload_id, 1, content=b"bytes of another file")
    tos_server.faults = Faults(denied=frozenset({"ListMultipartUploads"}))

    result = upgrade_head(env, tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Traceback" not in output, output
    assert "none is resumed or aborted" in output
    tos_server.faults = Faults()
    assert stored(tos_storage) == files
    assert [upload.upload_id for upload in tos_server.store.bucket(BUCKET).uploads()] \
        == [upload_id]
    assert version(pg_engine) == "0004"


def test_a_listing_denied_mid_run_is_one_line_and_a_rerun_resumes(
    env: dict[str, str], tmp_path: Path, tos_server: TosServer, tos_storage: StorageClient,
    pg_engine: sa.Engine
) -> None:
    """The key loses tos:ListBucket after the preflight: the files step stops in one line
    naming the step, the listing and that a re-run resumes; the rows step stays committed."""
    tos_server.faults = Faults(latency=0.2)  # the denial is in place before 0003 lists
    process = subprocess.Popen(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.rstrip().endswith("Preflight passed."):
            tos_server.faults = Faults(latency=0.2, denied=frozenset({"ListBucket"}))
    output = "".join(lines)
    assert process.wait(timeout=60) != 0, output
    assert "Traceback" not in output, output
    [line] = [line for line in lines if line.startswith("FAILED:")]
    assert line.startswith("FAILED: the files step stopped: listing of the bucket (after 1 "
                           "attempt): listing of '' in bucket 'meeting-agent' failed: HTTP 403 "
                           "AccessDenied"), line
    assert line.rstrip().endswith(
        "Nothing was recorded (the manifest is rolled back). A re-run resumes: the objects "
        "already uploaded stay in the bucket and are skipped."), line
    assert version(pg_engine) == "0002"

    tos_server.faults = Faults()
    rerun = upgrade_head(env, tmp_path)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert version(pg_engine) == "0004"
    assert stored(tos_storage) == uploaded_contents(Path(env["UPLOADS_DIR"]))
