"""The predicted freeze window: what make plan and make presync end with, and what make
migrate's report keeps beside the window it measured. Real processes, a real PostgreSQL,
the real SDK against the local TOS server. The figures are times, so only their shape and
how they move with their inputs are checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import settings
from data_migrations.commands.freeze_prediction import predict
from storage import StorageClient
from tests.conftest import ROOT, TosServer, stored, tos_env
from tests.runs import cutover_environment, failed_lines

SHAPE = {"rows_seconds", "files_seconds", "paths_seconds", "total_seconds", "basis"}


@pytest.fixture
def env(tmp_path: Path, pg_url: str, tos_server: TosServer) -> dict[str, str]:
    return {**cutover_environment(tmp_path, pg_url), **tos_env(tos_server),
            "VERIFY_URLS": "none"}


def run(env: dict[str, str], cwd: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0 and not failed_lines(result), result.stderr
    return result.stderr


def plan(env: dict[str, str], cwd: Path) -> str:
    return run(env, cwd, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "-x",
               "dry_run=true", "upgrade", "head")


def presync(env: dict[str, str], cwd: Path) -> str:
    return run(env, cwd, "-m", "data_migrations.commands.presync")


def predicted_in(env: dict[str, str], kind: str) -> dict[str, Any]:
    """The predicted_freeze of the one ``kind`` report in REPORTS_DIR."""
    (report,) = Path(env["REPORTS_DIR"]).glob(f"{kind}-*.json")
    prediction = json.loads(report.read_text(encoding="utf-8"))["predicted_freeze"]
    assert set(prediction) == SHAPE
    seconds = [prediction[key] for key in sorted(SHAPE - {"basis"})]
    assert all(isinstance(value, float) and value >= 0 for value in seconds)
    parts = prediction["rows_seconds"] + prediction["files_seconds"] + prediction[
        "paths_seconds"]
    assert prediction["total_seconds"] == pytest.approx(parts)
    assert isinstance(prediction["basis"], str) and "\n" not in prediction["basis"]
    return prediction


def predicted_now(env: dict[str, str]) -> dict[str, Any]:
    return predict(settings.read(load_env_file=False, environ=env)).as_json()


def test_plan_presync_and_migrate_report_the_predicted_freeze(
    env: dict[str, str], tmp_path: Path
) -> None:
    output = plan(env, tmp_path)
    assert announced(output)
    planned = predicted_in(env, "plan")
    assert planned["rows_seconds"] > 0 and planned["paths_seconds"] > 0
    assert "make plan" in planned["basis"]  # the rows at the rate the plan's copy took
    assert "no presync" in planned["basis"]

    assert announced(presync(env, tmp_path))
    presynced = predicted_in(env, "presync")
    assert "measured by the presync" in presynced["basis"]
    assert "files 0 of" in presynced["basis"]  # nothing left to send

    # Nothing changed since the presync: the migrate's prediction, made before its first
    # step, is the presync's.
    assert announced(run(env, tmp_path, "-m", "alembic", "-c", str(ROOT / "alembic.ini"),
                         "upgrade", "head"), "now (this run)")
    assert predicted_in(env, "cutover") == presynced


def announced(output: str, when: str = "now") -> bool:
    """One line with the window, then a table of the three steps and the window."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith(f"Predicted freeze window for a cutover started {when}:"))
    header, _, *rows = lines[start + 1:start + 7]
    return header.split() == ["step", "predicted", "from"] and [
        row.split()[0] for row in rows] == ["rows", "files", "paths", "freeze"]


def rewrite(path: Path, size: int) -> None:
    """New bytes, so the presync record no longer stands for the file."""
    path.write_bytes(os.urandom(size))


def test_the_files_share_grows_with_what_changes_after_the_presync(
    env: dict[str, str], tmp_path: Path
) -> None:
    presync(env, tmp_path)
    uploads = Path(env["UPLOADS_DIR"])
    first, second = sorted(p for p in uploads.rglob("*") if p.is_file())[:2]
    before = predicted_now(env)
    rewrite(first, 256 * 1024)
    one = predicted_now(env)
    rewrite(second, 4 * 1024 * 1024)
    two = predicted_now(env)
    assert before["files_seconds"] < one["files_seconds"] < two["files_seconds"]
    assert before["rows_seconds"] == one["rows_seconds"] == two["rows_seconds"]
    assert "2 of" in two["basis"]


def test_the_prediction_writes_nothing_to_the_target_or_the_bucket(
    env: dict[str, str], tmp_path: Path, tos_storage: StorageClient
) -> None:
    presync(env, tmp_path)
    (Path(env["UPLOADS_DIR"]) / "added after the presync.wav").write_bytes(b"x" * 4096)
    record = next((Path(env["WORK_DIR"]) / "presync").glob("*.sqlite"))
    engine = sa.create_engine(env["DATABASE_URL"])
    with engine.connect() as connection:
        tables = sa.inspect(connection).get_table_names()
    bucket, recorded = stored(tos_storage), record.read_bytes()

    predicted_now(env)

    with engine.connect() as connection:
        assert sa.inspect(connection).get_table_names() == tables == []
    engine.dispose()
    assert stored(tos_storage) == bucket
    assert record.read_bytes() == recorded


def test_a_plan_whose_report_cannot_be_written_stops_before_it_starts(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    env["REPORTS_DIR"] = str(tmp_path / "a-file" / "reports")
    result = subprocess.run([sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"),
                             "-x", "dry_run=true", "upgrade", "head"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert failed_lines(result) == [f"FAILED: REPORTS_DIR {tmp_path / 'a-file' / 'reports'} "
                                    "is not writable (Not a directory)"]
    assert not (Path(env["WORK_DIR"]) / "freeze-rates.json").exists()
