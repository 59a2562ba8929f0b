"""An explicit STORAGE_* setting that says otherwise than the app's YAML (STORAGE_CONFIG)
stops the run in one line naming both values and where each came from, unless
STORAGE_CONFIG_OVERRIDES names it; the end-to-end case runs the presync with a .env file
copied from .env.example against the local TOS server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values

from data_migrations.files.plan_storage import where_from
from settings import ConfigError, read
from storage import StorageClient
from tests.conftest import ACCESS_KEY, BUCKET, REGION, ROOT, SECRET_KEY, TosServer, stored
from tests.runs import one_failure

APP_YAML = """app:
  name: meeting-agent
storage:
  provider: tos
  bucket: {bucket}
  region: cn-beijing
  endpoint: tos-cn-beijing.volces.com
  access_key: AKLT-in-the-file
  secret_key: {secret}
"""
FILE_SECRET = "secret-written-in-the-yaml-0123"


def app_yaml(folder: Path, bucket: str = "meeting-agent-prod", secret: str = FILE_SECRET
             ) -> Path:
    path = folder / "config" / "production.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(APP_YAML.format(bucket=bucket, secret=secret))
    return path


def refusal(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        read(environ=environ, load_env_file=False).storage()
    return str(caught.value)


def test_a_bucket_other_than_the_apps_is_refused_naming_both_and_where(tmp_path: Path) -> None:
    path = app_yaml(tmp_path)
    message = refusal({"STORAGE_CONFIG": str(path), "STORAGE_BUCKET": "meeting-agent"})
    assert message == (
        f"STORAGE_BUCKET is 'meeting-agent' in the environment but 'meeting-agent-prod' in "
        f"STORAGE_CONFIG {path} line 5 (storage.bucket); nothing was written. Remove "
        "STORAGE_BUCKET from the environment to use the app's value, or, if the "
        "environment's is meant, set STORAGE_CONFIG_OVERRIDES=STORAGE_BUCKET")


def test_a_key_other_than_the_apps_is_refused_without_showing_either(tmp_path: Path) -> None:
    path = app_yaml(tmp_path)
    message = refusal({"STORAGE_CONFIG": str(path), "STORAGE_SECRET_KEY": "typed-by-hand-42"})
    assert message.startswith(f"STORAGE_SECRET_KEY in the environment is not the one in "
                              f"STORAGE_CONFIG {path} line 9 (storage.secret_key) (not shown: "
                              "a secret); nothing was written.")
    assert FILE_SECRET not in message and "typed-by-hand-42" not in message


def test_the_same_value_written_differently_agrees(tmp_path: Path) -> None:
    path = app_yaml(tmp_path)
    storage = read(environ={"STORAGE_CONFIG": str(path), "STORAGE_BUCKET": "meeting-agent-prod",
                            "STORAGE_ENDPOINT": "https://tos-cn-beijing.volces.com/"},
                   load_env_file=False).storage()
    assert (storage.bucket, storage.endpoint) == ("meeting-agent-prod",
                                                  "https://tos-cn-beijing.volces.com")


def test_an_override_the_operator_names_wins(tmp_path: Path) -> None:
    path = app_yaml(tmp_path)
    storage = read(environ={"STORAGE_CONFIG": str(path), "STORAGE_BUCKET": "staging",
                            "STORAGE_CONFIG_OVERRIDES": "storage_bucket"},
                   load_env_file=False).storage()
    assert (storage.bucket, storage.region) == ("staging", "cn-beijing")
    # Only the one named: another disagreement still stops the run.
    assert refusal({"STORAGE_CONFIG": str(path), "STORAGE_BUCKET": "staging",
                    "STORAGE_REGION": "cn-shanghai",
                    "STORAGE_CONFIG_OVERRIDES": "STORAGE_BUCKET"}).startswith(
        "STORAGE_REGION is 'cn-shanghai' in the environment but 'cn-beijing' in ")


def test_an_override_of_a_setting_the_file_does_not_give_is_refused(tmp_path: Path) -> None:
    path = app_yaml(tmp_path)
    message = refusal({"STORAGE_CONFIG": str(path), "STORAGE_CONFIG_OVERRIDES": "STORAGE_BUKET"})
    assert message.startswith("STORAGE_CONFIG_OVERRIDES names STORAGE_BUKET, which the app's "
                              "configuration does not give (it gives ")


@pytest.mark.slow
def test_an_env_file_copied_from_the_example_never_sends_the_files_to_its_bucket(
    tmp_path: Path, tos_server: TosServer, tos_storage: StorageClient
) -> None:
    """The example's bucket settings kept in .env.prod, and the app's YAML added: the run
    stops naming .env.prod and the YAML's key, and nothing reaches either bucket."""
    path = app_yaml(tmp_path, bucket="meeting-agent-prod", secret="${STORAGE_SECRET_KEY}")
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "a.mp3").write_bytes(b"ID3")
    (tmp_path / ".env.prod").write_text(
        f"STORAGE_PROVIDER=tos\nSTORAGE_BUCKET={BUCKET}\nSTORAGE_REGION={REGION}\n"
        "STORAGE_ENDPOINT=http://tos-cn-beijing.volces.com\n"
        f"STORAGE_ACCESS_KEY={ACCESS_KEY}\nSTORAGE_SECRET_KEY={SECRET_KEY}\n"
        f"STORAGE_PROXY=http://127.0.0.1:{tos_server.port}\n"
        f"STORAGE_CONFIG={path.relative_to(tmp_path)}\nUPLOADS_DIR=./uploads\n")
    result = subprocess.run([sys.executable, "-m", "data_migrations.commands.presync"],
                            env={"ENV": "prod", "PATH": "/usr/bin:/bin"}, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    failure = one_failure(result)
    assert failure.startswith(
        f"FAILED: STORAGE_BUCKET is '{BUCKET}' in .env.prod but 'meeting-agent-prod' in "
        "STORAGE_CONFIG config/production.yaml line 5 (storage.bucket); nothing was written.")
    assert SECRET_KEY not in result.stderr + result.stdout
    assert stored(tos_storage) == {}


def test_the_plan_names_where_each_storage_value_came_from(tmp_path: Path) -> None:
    path = app_yaml(tmp_path)
    cutover = read(environ={"STORAGE_CONFIG": str(path), "STORAGE_REGION": "cn-beijing"},
                   load_env_file=False)
    assert where_from(cutover, cutover.storage()) == (
        f"STORAGE_BUCKET 'meeting-agent-prod' (STORAGE_CONFIG {path} line 5 (storage.bucket)); "
        "STORAGE_REGION 'cn-beijing' (the environment); STORAGE_ENDPOINT "
        f"https://tos-cn-beijing.volces.com (STORAGE_CONFIG {path} line 7 (storage.endpoint)); "
        "STORAGE_PUBLIC_BASE_URL https://meeting-agent-prod.tos-cn-beijing.volces.com (derived)")


def test_the_example_env_file_takes_the_bucket_settings_from_the_apps_yaml() -> None:
    """A .env.prod copied from .env.example sets no bucket setting that the app's YAML
    would have to agree with: only which provider and which YAML."""
    example = dotenv_values(ROOT / ".env.example")
    assert {name for name in example if name.startswith("STORAGE_")} == {
        "STORAGE_PROVIDER", "STORAGE_CONFIG"}
    assert example["STORAGE_PROVIDER"] == "tos"
