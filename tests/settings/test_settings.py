"""The settings: declared once, read from ``.env.<ENV>`` alone, documented as declared."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

import settings
from devtools.sample import UPLOADS_ALIAS, generate_dev_database
from settings import DECLARED, ConfigError
from tests.conftest import ROOT

# A valid value, other than the default, for every setting but ENV (which names the file).
WRITTEN = {
    "DATABASE_URL": "postgresql://cutover:pw@db.internal:5433/meetings",
    "SOURCE_DATABASE_URL": "sqlite:///./dev/meeting_agent.db",
    "BAD_ROWS": "reject",
    "ORPHANS": "set_null",
    "ROW_COPY_WORKERS": "7",
    "UPLOADS_DIR": "./app/uploads",
    "UPLOAD_EXCLUDE": "*.tmp,cache/",
    "UNSAFE_FILES": "skip",
    "UPLOADS_PATH_ALIASES": "/home/dev/uploads,C:\\app\\uploads",
    "MISSING_FILES": "keep",
    "STORAGE_PROVIDER": "tos",
    "STORAGE_BUCKET": "meeting-agent",
    "STORAGE_REGION": "cn-shanghai",
    "STORAGE_ENDPOINT": "http://tos.internal:8080",
    "STORAGE_ACCESS_KEY": "AKLT-from-file",
    "STORAGE_SECRET_KEY": "secret-from-file",
    "STORAGE_KEY_PREFIX": "meeting-agent/prod",
    "STORAGE_PUBLIC_BASE_URL": "https://cdn.example.com/media",
    "STORAGE_PROXY": "http://10.0.0.5:3128",
    "STORAGE_LOCAL_ROOT": "./elsewhere/bucket",
    "MAX_CONCURRENT": "3",
    "STORAGE_MULTIPART_THRESHOLD": "10485760",
    "STORAGE_PART_SIZE": "6291456",
    "STORAGE_RATE_LIMIT": "20MB",
    "STORAGE_ACL": "public-read",
    "STORAGE_CLASS": "ia",
    "STORAGE_SSE": "AES256",
    "STORAGE_SECURITY_TOKEN": "sts-token-from-file",
    "STORAGE_CONFIG": "./app/production.yaml",
    "DRY_RUN": "true",
    "FORCE": "true",
    "PURGE_OBJECTS": "true",
    "CHECKSUM_EVERY_FILE": "true",
    "PRUNE_OBJECTS": "true",
    "PRUNE_MAX_DELETE": "25%",
    "WORK_DIR": "./elsewhere/work",
    "VERIFY_URLS": "sample:50",
    "REPORTS_DIR": "./elsewhere/reports",
    "REPORT_LANGUAGE": "zh",
    "LOCK_TIMEOUT": "10s",
    "LOCK_RETRIES": "0",
    "LOCK_RETRY_BACKOFF": "2s",
    "DROP_APP_DATA": "true",
    "UPLOADS_DIR_CHANGED": "true",
    "STORAGE_CONFIG_OVERRIDES": "STORAGE_BUCKET,STORAGE_REGION",
    "LEAVE_DEV_ROWS": "true",
}


def write_env_file(folder: Path, name: str, values: dict[str, str]) -> None:
    (folder / f".env.{name}").write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def test_every_setting_but_env_has_an_example() -> None:
    assert set(WRITTEN) == {s.name for s in DECLARED} - {"ENV"}


@pytest.mark.parametrize("setting", [s for s in DECLARED if s.name != "ENV"],
                         ids=lambda s: s.name)
def test_each_setting_is_read_from_the_env_file_alone(
    setting: settings.Setting, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_env_file(tmp_path, "staging", WRITTEN)
    monkeypatch.setenv("ENV", "staging")
    read = settings.read()
    expected = setting.parse(setting.label, WRITTEN[setting.name])
    assert read[setting] == expected
    assert expected != setting.parse(setting.label, setting.default)


def test_the_steps_get_their_settings_from_the_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_env_file(tmp_path, "staging", WRITTEN)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "production.yaml").write_text(
        "storage:\n  bucket: from-the-app-config\n  region: cn-guangzhou\n")
    monkeypatch.setenv("ENV", "staging")
    read = settings.read()
    assert read.copy_options().workers == 7 and read.copy_options().bad_rows == "reject"
    assert read.upload_options().work_dir == Path("elsewhere/work")
    assert read.path_options().aliases == ("/home/dev/uploads", "C:\\app\\uploads")
    storage = read.storage()
    assert (storage.bucket, storage.region, storage.proxy, storage.part_size) == (
        "meeting-agent", "cn-shanghai", ("10.0.0.5", 3128), 6291456)
    assert (storage.acl, storage.storage_class, storage.sse) == ("public-read", "IA", "AES256")
    assert storage.security_token == "sts-token-from-file"
    assert "sts-token-from-file" not in repr(read) + repr(storage)
    assert "secret-from-file" not in repr(read) + repr(storage)
    assert "AKLT-from-file" not in repr(read) + repr(storage)


def test_the_environment_wins_over_the_file_and_x_over_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_env_file(tmp_path, "staging", {"BAD_ROWS": "reject", "ORPHANS": "set_null"})
    monkeypatch.setenv("ENV", "staging")
    monkeypatch.setenv("BAD_ROWS", "fail")
    read = settings.read()
    assert (read.copy_options().bad_rows, read.copy_options().orphans) == ("fail", "set_null")
    assert settings.read({"bad_rows": "reject"}).copy_options().bad_rows == "reject"


def test_a_bad_value_names_the_setting_as_it_was_given(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    with pytest.raises(ConfigError, match="orphans must be one of reject, set_null, got 'x'"):
        settings.read({"orphans": "x"})
    monkeypatch.setenv("VERIFY_URLS", "sample:-1")
    with pytest.raises(ConfigError, match=r"^VERIFY_URLS must be all, none or sample:N"):
        settings.read()
    with pytest.raises(ConfigError, match=r"^urls must be all, none or sample:N"):
        settings.read({"urls": "sample:0"})


def documented_settings_table() -> dict[str, tuple[str, str | None]]:
    """The settings table of docs/configuration.md: variable -> (default, -x name)."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    table: dict[str, tuple[str, str | None]] = {}
    for row in rows:
        names_cell, default_cell, x_cell = (c.strip() for c in row.strip("|").split(" | ")[:3])
        names = re.findall(r"`([A-Z_0-9]+)`", names_cell)
        defaults = default_cell.split(", ") if len(names) > 1 else [default_cell]
        if len(defaults) != len(names):
            defaults = [default_cell] * len(names)
        x_names = re.findall(r"`([a-z_]+)`", x_cell) or [None] * len(names)
        for name, default, x_name in zip(names, defaults, x_names, strict=True):
            table[name] = (default, x_name)
    return table


def test_the_configuration_page_lists_exactly_the_declared_settings() -> None:
    documented = documented_settings_table()
    declared = {s.name: (s.documented_default, s.x) for s in DECLARED}
    assert documented == declared


def test_reports_and_work_dir_from_the_env_file_alone_end_to_end(
    tmp_path: Path, pg_url: str
) -> None:
    """An upgrade with nothing in the process environment but ENV: the files go where the
    .env file says, and nowhere else."""
    generate_dev_database(tmp_path / "dev.db", rows=60, uploads_dir=tmp_path / "uploads")
    (tmp_path / "bucket").mkdir()
    write_env_file(tmp_path, "prod", {
        "DATABASE_URL": pg_url, "SOURCE_DATABASE_URL": "sqlite:///./dev.db",
        "UPLOADS_DIR": "./uploads", "UPLOADS_PATH_ALIASES": UPLOADS_ALIAS,
        "STORAGE_PROVIDER": "local", "STORAGE_LOCAL_ROOT": "./bucket",
        "WORK_DIR": "./elsewhere/work", "REPORTS_DIR": "./elsewhere/reports"})
    declared = {s.name for s in DECLARED}
    environ = {k: v for k, v in os.environ.items() if k not in declared}
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
        env={**environ, "ENV": "prod"}, cwd=tmp_path, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    reports = list((tmp_path / "elsewhere" / "reports").glob("cutover-*.json"))
    assert len(reports) == 1
    assert json.loads(reports[0].read_text())
    assert list((tmp_path / "elsewhere" / "work" / "backups").iterdir())
    assert not (tmp_path / "reports").exists() and not (tmp_path / "work").exists()
    engine = sa.create_engine(pg_url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM users")).scalar_one() > 0
    engine.dispose()
