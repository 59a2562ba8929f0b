"""The path-rewrite revision (0004) and the whole cutover chain, on a real PostgreSQL and
the local TOS server through the real ``tos`` SDK."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.util import CommandError

from data_migrations.commands.adopt_dev import alembic_config
from devtools.postgres_server import PASSWORD
from devtools.sample import UPLOADS_ALIAS, generate_dev_database
from devtools.tos_server import TosServer
from storage import TosStorage
from tests.conftest import PUBLIC_BASE_URL, ROOT, tos_env
from tests.dev_data import TASK_1, TASK_2, DevDatabase

PATH_COLUMNS = {"tasks": "audio_path", "transcripts": "raw_result_path",
                "generated_artifacts": "file_path", "hotword_sets": "file_path"}


@pytest.fixture
def cutover_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                tos_server: TosServer) -> dict[str, str]:
    """A sample dev database with its uploads folder, and settings for a full cutover."""
    generate_dev_database(tmp_path / "meeting_agent.db", rows=400,
                          uploads_dir=tmp_path / "uploads")
    env = {"SOURCE_DATABASE_URL": f"sqlite:///{tmp_path / 'meeting_agent.db'}",
           "UPLOADS_PATH_ALIASES": UPLOADS_ALIAS, **tos_env(tos_server)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def path_values(engine: sa.Engine) -> dict[tuple[str, str], str | None]:
    """Every file-path value in the target, by (table, key)."""
    with engine.connect() as conn:
        return {(table, str(key)): value for table, column in PATH_COLUMNS.items()
                for key, value in conn.execute(sa.text(f"SELECT id, {column} FROM {table}"))}


def source_path_values(env: dict[str, str]) -> dict[tuple[str, str], str | None]:
    engine = sa.create_engine(env["SOURCE_DATABASE_URL"])
    try:
        return path_values(engine)
    finally:
        engine.dispose()


def test_every_path_form_becomes_a_url_that_fetches_the_original_file(
    cutover_env: dict[str, str], pg_url: str, pg_engine: sa.Engine, tmp_path: Path,
    make_tos_storage: type[TosStorage],
) -> None:
    command.upgrade(alembic_config(pg_url), "head")

    before = source_path_values(cutover_env)
    after = path_values(pg_engine)
    forms = {"uploads/", "./uploads/", "uploads\\", UPLOADS_ALIAS}
    seen = {f for v in before.values() if v for f in forms if v.startswith(f)}
    assert seen == forms
    storage = make_tos_storage()
    for place, original in before.items():
        if original is None:
            assert after[place] is None
            continue
        url = after[place]
        assert url.startswith(PUBLIC_BASE_URL + "/"), (place, url)
        key = unquote(url[len(PUBLIC_BASE_URL) + 1:])
        relative = original.replace("\\", "/").removeprefix(UPLOADS_ALIAS + "/")
        relative = relative.removeprefix("./").removeprefix("uploads/")
        with storage.open(key) as stream:
            assert stream.read() == (tmp_path / "uploads" / relative).read_bytes(), place


def test_downgrade_restores_every_original_string_and_upgrade_works_again(
    cutover_env: dict[str, str], pg_url: str, pg_engine: sa.Engine
) -> None:
    config = alembic_config(pg_url)
    command.upgrade(config, "head")
    rewritten = path_values(pg_engine)
    command.downgrade(config, "0003")
    assert path_values(pg_engine) == source_path_values(cutover_env)
    assert sa.inspect(pg_engine).has_table("cutover_path_rewrites") is False
    command.upgrade(config, "head")
    assert path_values(pg_engine) == rewritten


@pytest.fixture
def odd_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              tos_server: TosServer) -> DevDatabase:
    """Paths of every kind the rewrite must handle, and one file really there."""
    dev = DevDatabase(tmp_path / "meeting_agent.db")
    dev.add("users", id=1)
    dev.add("tasks", id=TASK_1, user_id=1, audio_path="uploads/audio/here.mp3")
    dev.add("tasks", id=TASK_2, user_id=1, audio_path="uploads/audio/gone.mp3")
    dev.add("generated_artifacts", id=1, task_id=TASK_1, file_path="/etc/passwd")
    dev.add("generated_artifacts", id=2, task_id=TASK_1, file_path="exports/loose.md")
    dev.add("generated_artifacts", id=3, task_id=TASK_1, file_path="uploads/../secret.txt")
    dev.add("generated_artifacts", id=4, task_id=TASK_1, file_path="https://x.example/a.md")
    dev.add("generated_artifacts", id=5, task_id=TASK_1, file_path="")
    (tmp_path / "uploads" / "audio").mkdir(parents=True)
    (tmp_path / "uploads" / "audio" / "here.mp3").write_bytes(b"ID3 audio")
    monkeypatch.setenv("SOURCE_DATABASE_URL", dev.url)
    for name, value in tos_env(tos_server).items():
        monkeypatch.setenv(name, value)
    return dev


EXPECTED_FINDINGS = [
    ("tasks", TASK_2, "audio_path", "file 'audio/gone.mp3' is not among the uploaded files"),
    ("generated_artifacts", "1", "file_path", "outside the uploads folder"),
    ("generated_artifacts", "2", "file_path", "cannot be resolved"),
    ("generated_artifacts", "3", "file_path", "outside the uploads folder"),
]


def test_paths_that_cannot_be_rewritten_stop_the_revision_by_default(
    odd_paths: DevDatabase, pg_url: str, pg_engine: sa.Engine
) -> None:
    with pytest.raises(CommandError) as failure:
        command.upgrade(alembic_config(pg_url), "head")
    message = str(failure.value)
    assert "4 stored paths cannot be rewritten; nothing was changed" in message
    for table, key, column, reason in EXPECTED_FINDINGS:
        line = next(line for line in message.splitlines()
                    if line.startswith(f"  - {table} key={key} column {column}:"))
        assert reason in line
    assert pg_engine.connect().execute(sa.text(
        "SELECT version_num FROM alembic_version")).scalar_one() == "0003"
    assert path_values(pg_engine)[("tasks", TASK_1)] == "uploads/audio/here.mp3"


def test_keep_leaves_them_as_they_are_and_rewrites_the_rest(
    odd_paths: DevDatabase, pg_url: str, pg_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("MISSING_FILES", "keep")
    command.upgrade(alembic_config(pg_url), "head")
    values = path_values(pg_engine)
    assert values[("tasks", TASK_1)] == f"{PUBLIC_BASE_URL}/audio/here.mp3"
    assert values[("tasks", TASK_2)] == "uploads/audio/gone.mp3"
    assert [values[("generated_artifacts", str(i))] for i in range(1, 6)] == [
        "/etc/passwd", "exports/loose.md", "uploads/../secret.txt", "https://x.example/a.md", ""]
    err = capfd.readouterr().err
    assert "4 stored paths are left as they are (missing_files=keep)" in err
    assert "rewritten: 1; left as they are: 4" in err


def test_offline_sql_shows_the_statements_a_dba_reviews(cutover_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head",
         "--sql"], env={**os.environ, **cutover_env}, capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 0, result.stderr
    sql = result.stdout
    for table, column in PATH_COLUMNS.items():
        assert (f'UPDATE "{table}" AS t SET "{column}" = m.public_url FROM '
                f'"cutover_file_manifest" AS m WHERE m.relative_path = '
                f'pg_temp.uploads_relative_path(t."{column}")') in sql
        assert f"""SELECT '{table}', '{column}', t."id"::text, t."{column}" """ in sql
    assert f"= '{UPLOADS_ALIAS}' || '/'" in sql
    assert cutover_env["STORAGE_SECRET_KEY"] not in sql + result.stderr


def final_state(engine: sa.Engine) -> tuple:
    with engine.connect() as conn:
        counts = tuple(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                       for t in ("users", "tasks", "audit_logs", "cutover_file_manifest"))
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    return counts, version, path_values(engine)


@pytest.mark.parametrize("step", ["0001 -> 0002", "0002 -> 0003", "0003 -> 0004"])
def test_a_cutover_killed_in_any_step_ends_like_an_uninterrupted_one(
    cutover_env: dict[str, str], postgres_server: object, pg_url: str, pg_engine: sa.Engine,
    step: str
) -> None:
    env = {**os.environ, **cutover_env, "DATABASE_URL": pg_url}
    upgrade = [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"),
               "upgrade", "head"]
    process = subprocess.Popen(upgrade, env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:
        if f"Running upgrade {step}" in line:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    rerun = subprocess.run(upgrade, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    interrupted = final_state(pg_engine)

    command.downgrade(alembic_config(pg_url), "base")
    command.upgrade(alembic_config(pg_url), "head")
    assert final_state(pg_engine) == interrupted


def run_verify(env: dict[str, str], url: str) -> subprocess.CompletedProcess:
    # The public base URL here is a CDN name that is never resolved: the URLs are not
    # fetched (tests/commands/test_verify_urls.py fetches them from the local TOS server).
    return subprocess.run([sys.executable, "-m", "data_migrations.commands.verify", "-x",
                           "urls=none"],
                          env={**os.environ, **env, "DATABASE_URL": url},
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("key_prefix", ["", "meeting-agent/prod"])
def test_verify_checks_a_whole_cutover_and_catches_a_missing_object(
    cutover_env: dict[str, str], pg_url: str, make_tos_storage: type[TosStorage],
    monkeypatch: pytest.MonkeyPatch, key_prefix: str
) -> None:
    cutover_env = {**cutover_env, "STORAGE_KEY_PREFIX": key_prefix}
    monkeypatch.setenv("STORAGE_KEY_PREFIX", key_prefix)
    command.upgrade(alembic_config(pg_url), "head")
    passed = run_verify(cutover_env, pg_url)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    lines = passed.stdout.splitlines()
    assert any(line.split()[:3] == ["rows", "tasks", "pass"] for line in lines)
    assert any(line.split()[:3] == ["urls", "tasks.audio_path", "pass"] for line in lines)
    assert any(line.split()[:2] == ["files", "objects"] and "pass" in line for line in lines)

    storage = make_tos_storage()
    victim = next(info.key for info in storage.list() if "/audio/" in f"/{info.key}")
    assert victim.startswith(key_prefix)
    storage.delete(victim)
    failed = run_verify(cutover_env, pg_url)
    assert failed.returncode == 1
    relative = victim.removeprefix(key_prefix).lstrip("/")
    assert f"{relative}: not in the bucket" in failed.stdout
    assert cutover_env["STORAGE_SECRET_KEY"] not in failed.stdout + failed.stderr


def test_plan_runs_the_whole_chain_and_changes_nothing(
    cutover_env: dict[str, str], pg_url: str, pg_engine: sa.Engine,
    make_tos_storage: type[TosStorage], capfd: pytest.CaptureFixture
) -> None:
    config = alembic_config(pg_url)
    config.cmd_opts = type("Options", (), {"x": ["dry_run=true"]})()
    command.upgrade(config, "head")
    err = capfd.readouterr().err
    assert "Row copy plan (dry run, rolled back)" in err
    assert "File upload plan (dry run, nothing uploaded)" in err
    planned = err[err.index("Path rewrite plan (dry run, rolled back)"):]
    assert "Dry run: every change was rolled back" in err
    assert fetch_tables(pg_engine) == set()
    assert list(make_tos_storage().list()) == []

    command.upgrade(alembic_config(pg_url), "head")
    done = capfd.readouterr().err
    real = done[done.index("Path rewrite:"):]
    assert planned.splitlines()[1:7] == real.splitlines()[1:7]  # the same columns and counts


def fetch_tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_plan_lists_the_paths_that_cannot_be_rewritten(
    odd_paths: DevDatabase, pg_url: str, pg_engine: sa.Engine, capfd: pytest.CaptureFixture
) -> None:
    config = alembic_config(pg_url)
    config.cmd_opts = type("Options", (), {"x": ["dry_run=true"]})()
    command.upgrade(config, "head")
    err = capfd.readouterr().err
    assert "4 stored paths cannot be rewritten (missing_files=fail would stop the cutover)" in err
    assert "tasks key=" + TASK_2 + " column audio_path: file 'audio/gone.mp3'" in err
    assert fetch_tables(pg_engine) == set()


def test_no_secret_in_any_output_report_or_work_file(
    cutover_env: dict[str, str], pg_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, **cutover_env, "DATABASE_URL": pg_url}
    alembic_cli = [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini")]
    outputs = [subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
               for args in ([*alembic_cli, "-x", "dry_run=true", "upgrade", "head"],
                            [*alembic_cli, "upgrade", "head", "--sql"],
                            [*alembic_cli, "upgrade", "head"],
                            [sys.executable, "-m", "data_migrations.commands.verify", "-x",
                             "urls=none"],  # a CDN name never resolved: not fetched
                            [*alembic_cli, "downgrade", "base"])]
    assert [o.returncode for o in outputs] == [0, 0, 0, 0, 0], [o.stderr for o in outputs]
    secrets = (cutover_env["STORAGE_SECRET_KEY"], PASSWORD)
    written = [p.read_text(errors="replace") for p in tmp_path.rglob("*")
               if p.is_file() and p.suffix in (".json", ".jsonl", ".sql", ".txt", ".log")]
    assert list((tmp_path / "reports").glob("cutover-*.json"))
    for text in [o.stdout + o.stderr for o in outputs] + written:
        for secret in secrets:
            assert secret not in text
