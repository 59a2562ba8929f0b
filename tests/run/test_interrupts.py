"""Ctrl-C and SIGTERM during the row copy, the file upload and a presync: one line, exit 130
or 143, the state a kill leaves, and a re-run that ends exact. Real processes, sent the
signal as a terminal (Ctrl-C) or a service manager sends it: to the whole process group."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from devtools.postgres_server import PG_CTL, running_server
from devtools.tos_server import Faults
from storage import StorageClient
from tests.commands.test_presync import files_in, ok, presync, record_rows, recorded_so_far
from tests.conftest import ROOT, TosServer, stored, tos_env
from tests.dev_data import DevDatabase
from tests.rows.test_row_copy import child_pids, counts, fill_audit_logs, version
from tests.run.test_run_guard import session_of, wait_for
from tests.runs import cutover_environment

ALEMBIC = [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini")]

# Starts servers or commands in fresh interpreters: not in make test-fast.
pytestmark = pytest.mark.slow
SIGNALS = pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM],
                                  ids=["SIGINT", "SIGTERM"])
AUDIT_ROWS = 200_000


def started(args: list[str], env: dict[str, str], cwd: Path | None = None
            ) -> subprocess.Popen[str]:
    """A command in a process group of its own, as a terminal's foreground job: SIGINT and
    SIGTERM at their default, as a terminal gives them, even when the test run itself
    ignores them (a shell without job control starts its background jobs ignoring SIGINT,
    and a command keeps a signal it was started ignoring)."""
    return subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=signals_at_default)


def signals_at_default() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def interrupted(process: subprocess.Popen[str], signum: int, when: Callable[[], object]
                ) -> str:
    """Send ``signum`` to the process's group once ``when()`` holds; the one line it printed,
    having checked its exit code and that nothing else (a traceback) was printed."""
    wait_for("the awaited moment of the run", lambda: process.poll() is not None or when())
    if process.poll() is not None:
        pytest.fail(f"the run ended before the awaited moment: {process.communicate()}")
    os.killpg(process.pid, signum)
    stdout, stderr = process.communicate(timeout=300)
    output = stdout + stderr
    assert process.returncode == 128 + signum, output
    for dump in ("Traceback", "Error", "KeyboardInterrupt", "Exception ignored"):
        assert dump not in output, output
    lines = [line for line in output.splitlines() if line.startswith("interrupted during")]
    assert len(lines) == 1, output
    assert output.rstrip().endswith(lines[0]), output  # nothing after it
    return lines[0]


@SIGNALS
def test_an_interrupted_row_copy_rolls_back_and_a_rerun_copies_exactly(
    signum: int, tmp_path: Path, pg_url: str, pg_engine: sa.Engine
) -> None:
    dev = audit_heavy_dev(tmp_path)
    env = {**os.environ, "DATABASE_URL": pg_url, "SOURCE_DATABASE_URL": dev.url}
    process = started([*ALEMBIC, "upgrade", "head"], env)
    workers: list[int] = []

    def copying() -> bool:
        workers[:] = child_pids(process.pid)
        return bool(session_of(pg_engine, process,
                               "state = 'active' AND query LIKE 'COPY %audit_logs%'"))

    line = interrupted(process, signum, copying)
    assert line == ("interrupted during 0002 copy_sqlite_rows; nothing of this step was "
                    "committed; run the same command again")
    assert workers, "the copy converts in worker processes"
    wait_for("the worker processes end", lambda: not any(
        Path(f"/proc/{pid}").exists() for pid in workers), seconds=30)
    assert version(pg_engine) == "0001"
    assert set(counts(pg_engine).values()) == {0}

    rerun = subprocess.run([*ALEMBIC, "upgrade", "head"], env=env, capture_output=True,
                           text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert version(pg_engine) == "0004"
    assert counts(pg_engine)["audit_logs"] == AUDIT_ROWS
    with pg_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(DISTINCT id), min(id), max(id) "
                                    "FROM audit_logs")).one() == (AUDIT_ROWS, 1, AUDIT_ROWS)


def audit_heavy_dev(tmp_path: Path) -> DevDatabase:
    """A dev file whose audit_logs take a while to COPY, and the folders a cutover needs."""
    dev = DevDatabase(tmp_path / "meeting_agent.db")
    dev.add_minimal_tree()
    with sqlite3.connect(dev.path) as conn:
        conn.execute("DELETE FROM audit_logs")
    conn.close()
    fill_audit_logs(dev, AUDIT_ROWS)
    (tmp_path / "uploads").mkdir()
    (tmp_path / "work" / "bucket").mkdir(parents=True)  # the local storage provider's
    return dev


def test_a_postgresql_restart_during_the_copy_is_one_line_and_a_rerun_copies_exactly(
    tmp_path: Path
) -> None:
    dev = audit_heavy_dev(tmp_path)
    with running_server() as server, server.database("restarted") as url:
        engine = sa.create_engine(url)
        env = {**os.environ, "DATABASE_URL": url, "SOURCE_DATABASE_URL": dev.url}
        process = started([*ALEMBIC, "upgrade", "0002"], env)
        wait_for("the copy of audit_logs is streaming", lambda: session_of(
            engine, process, "state = 'active' AND query LIKE 'COPY %audit_logs%'"))
        engine.dispose()
        # Its own output files: the new server must not hold this test's pipes open.
        subprocess.run([str(PG_CTL), "restart", "-D", f"{server.socket_dir}/data", "-m", "fast",
                        "-w", "-l", f"{server.socket_dir}/restarted.log"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                       timeout=120)
        stdout, stderr = process.communicate(timeout=120)
        output = stdout + stderr
        assert process.returncode != 0, output
        for dump in ("Traceback", "AdminShutdown", "SystemError", "The above exception"):
            assert dump not in output, output
        failed = [line for line in output.splitlines() if line.startswith("FAILED:")]
        assert failed == ["FAILED: the connection to PostgreSQL was lost during 0002 "
                          "copy_sqlite_rows; nothing of this step was committed; run the same "
                          "command again to resume"], output
        rerun = subprocess.run([*ALEMBIC, "upgrade", "0002"], env=env, capture_output=True,
                               text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        assert version(engine) == "0002"
        assert counts(engine)["audit_logs"] == AUDIT_ROWS
        engine.dispose()


@pytest.fixture
def env(tmp_path: Path, pg_url: str, tos_server: TosServer) -> dict[str, str]:
    """A generated dev file with its uploads, cut over to the local TOS server."""
    return {**cutover_environment(tmp_path, pg_url), **tos_env(tos_server),
            "VERIFY_URLS": "none", "MAX_CONCURRENT": "2"}


@SIGNALS
def test_an_interrupted_file_upload_rolls_back_and_a_rerun_uploads_exactly(
    signum: int, env: dict[str, str], tmp_path: Path, pg_engine: sa.Engine,
    tos_server: TosServer, tos_storage: StorageClient
) -> None:
    tos_server.faults = Faults(latency=0.1)
    process = started([*ALEMBIC, "upgrade", "head"], env, tmp_path)
    line = interrupted(process, signum, lambda: len(list(tos_storage.list())) >= 3)
    assert line == ("interrupted during 0003 upload_files; nothing of this step was "
                    "committed; run the same command again")
    assert version(pg_engine) == "0002"

    tos_server.faults = Faults()
    ok(subprocess.run([*ALEMBIC, "upgrade", "head"], env=env, cwd=tmp_path,
                      capture_output=True, text=True, timeout=300))
    assert version(pg_engine) == "0004"
    files = files_in(Path(env["UPLOADS_DIR"]))
    assert stored(tos_storage) == {key: path.read_bytes() for key, path in files.items()}
    ok(subprocess.run([sys.executable, "-m", "data_migrations.commands.verify"], env=env,
                      cwd=tmp_path, capture_output=True, text=True, timeout=300))


@SIGNALS
def test_an_interrupted_presync_keeps_its_record_and_a_rerun_completes_it(
    signum: int, env: dict[str, str], tmp_path: Path, tos_server: TosServer,
    tos_storage: StorageClient
) -> None:
    uploads, work = Path(env["UPLOADS_DIR"]), Path(env["WORK_DIR"])
    for index in range(150):
        (uploads / "many").mkdir(exist_ok=True)
        (uploads / "many" / f"clip-{index:03d}.mp3").write_bytes(os.urandom(200 + index))
    tos_server.faults = Faults(latency=0.05)
    process = started([sys.executable, "-m", "data_migrations.commands.presync"], env, tmp_path)
    line = interrupted(process, signum, lambda: recorded_so_far(work) >= 10)
    assert line == ("interrupted during the presync; the files recorded so far stay "
                    "recorded; run the same command again")
    files = files_in(uploads)
    recorded = record_rows(work)
    assert 10 <= len(recorded) < len(files)

    tos_server.faults = Faults()
    output = ok(presync(env, tmp_path))
    assert "from the presync (unchanged, not read)" in output
    assert set(record_rows(work)) == set(files)
    assert stored(tos_storage) == {key: path.read_bytes() for key, path in files.items()}

