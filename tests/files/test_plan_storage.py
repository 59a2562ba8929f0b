"""``make plan`` (alembic -x dry_run=true upgrade head) asks the storage what it can without
writing: it shows the bucket, region, endpoint and public base URL it will use, and a wrong
key, a missing bucket or a wrong region is one FAILED line, with nothing written to the
bucket. Real processes, the real SDK against the local TOS server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devtools.tos_server import TosServer
from tests.conftest import BUCKET, ENDPOINT, PUBLIC_BASE_URL, REGION, ROOT, tos_env
from tests.runs import cutover_environment, failed_lines, one_failure

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path, pg_url: str, tos_server: TosServer) -> dict[str, str]:
    return {**cutover_environment(tmp_path, pg_url), **tos_env(tos_server)}


def plan(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"),
                           "-x", "dry_run=true", "upgrade", "head"], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def store_files(server: TosServer) -> dict[str, int]:
    """Every file the local TOS server keeps on disk, with its size: objects, uploads and
    their metadata alike."""
    root = server.store.root
    return {str(path.relative_to(root)): path.stat().st_size
            for path in root.rglob("*") if path.is_file()}


def test_the_plan_shows_the_storage_it_will_use_and_checks_it_without_writing(
    env: dict[str, str], tmp_path: Path, tos_server: TosServer
) -> None:
    before = store_files(tos_server)
    result = plan(env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert failed_lines(result) == []
    output = result.stderr
    assert (f"Storage of this run: STORAGE_BUCKET '{BUCKET}' (the environment); STORAGE_REGION "
            f"'{REGION}' (the environment); STORAGE_ENDPOINT {ENDPOINT} (the environment); "
            f"STORAGE_PUBLIC_BASE_URL {PUBLIC_BASE_URL} (the environment)") in output
    assert ("Storage checked without writing: the keys are accepted, the bucket exists in "
            "that region, its listing works. Left to make presync and make migrate, which "
            "write: the probe object") in output
    assert f"The public base URL {PUBLIC_BASE_URL} does not answer from here" in output
    assert store_files(tos_server) == before


@pytest.mark.parametrize(("setting", "value", "expected"), [
    ("STORAGE_SECRET_KEY", "not-the-secret-key-0123456789",
     "FAILED: preflight failed at step 'credentials': the access key or secret key was "
     "refused"),
    ("STORAGE_BUCKET", "no-such-bucket",
     "FAILED: preflight failed at step 'bucket': the bucket does not exist (bucket "
     "'no-such-bucket'"),
    ("STORAGE_REGION", "cn-shanghai",
     f"FAILED: preflight failed at step 'region': bucket '{BUCKET}' is in region "
     f"'{REGION}', not STORAGE_REGION 'cn-shanghai' (endpoint {ENDPOINT})"),
], ids=["wrong-keys", "missing-bucket", "wrong-region"])
def test_wrong_storage_settings_are_one_failed_line_of_the_plan_with_nothing_written(
    setting: str, value: str, expected: str, env: dict[str, str], tmp_path: Path,
    tos_server: TosServer
) -> None:
    before = store_files(tos_server)
    result = plan({**env, setting: value}, tmp_path)
    failure = one_failure(result)
    assert failure.startswith(expected), failure
    assert "not-the-secret-key" not in result.stdout + result.stderr
    assert store_files(tos_server) == before


def test_a_presync_finds_a_wrong_region_before_it_uploads(
    env: dict[str, str], tmp_path: Path, tos_server: TosServer
) -> None:
    before = store_files(tos_server)
    result = subprocess.run([sys.executable, "-m", "data_migrations.commands.presync"],
                            env={**env, "STORAGE_REGION": "cn-shanghai"}, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert one_failure(result).startswith("FAILED: preflight failed at step 'region': ")
    assert store_files(tos_server) == before
