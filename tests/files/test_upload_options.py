"""How the objects are written (STORAGE_ACL, STORAGE_CLASS, STORAGE_SSE), temporary STS
credentials, and the bucket settings read from the app's YAML configuration
(STORAGE_CONFIG): against the local TOS server through the real ``tos`` SDK."""

from __future__ import annotations

import http.client
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
import tos
from alembic import command

from data_migrations.commands.adopt_dev import alembic_config
from devtools.tos_server import TosServer
from settings import ConfigError
from settings.app_config import read_storage_block
from storage.tos import MiB, canned_acl
from tests.conftest import ACCESS_KEY, BUCKET, REGION, SECRET_KEY, fetch, tos_env
from tests.dev_data import DevDatabase
from tests.files.test_upload import assert_one_clear_failure, cli, summary, write

SMALL = ("audio/周会 #1.mp3", "notes/minutes.txt")
LARGE = "audio/all-hands.wav"  # above the multipart threshold set below: goes up in parts
STS_TOKEN = "sts-token-7f3a9c"


@pytest.fixture(autouse=True)
def cutover(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tos_server: TosServer) -> Path:
    """A dev database, an uploads folder with small files and one large one, and the
    storage settings of the local TOS server; returns the uploads folder."""
    monkeypatch.setenv("SOURCE_DATABASE_URL", DevDatabase(tmp_path / "meeting_agent.db").url)
    for name, value in {**tos_env(tos_server), "STORAGE_MULTIPART_THRESHOLD": str(5 * MiB),
                        "STORAGE_PART_SIZE": str(5 * MiB)}.items():
        monkeypatch.setenv(name, value)
    uploads = tmp_path / "uploads"
    for name in SMALL:
        write(uploads, name)
    write(uploads, LARGE, os.urandom(6 * MiB))
    return uploads


def keys() -> list[str]:
    return [*SMALL, LARGE]


def manifest_options(engine: sa.Engine) -> set[tuple]:
    return set(fetch(engine, "SELECT acl, storage_class, sse, status "
                             "FROM cutover_file_manifest"))


def acls(raw_client: tos.TosClientV2) -> dict[str, str]:
    return {key: canned_acl(raw_client.get_object_acl(BUCKET, key)) for key in keys()}


def upload_again(pg_url: str, monkeypatch: pytest.MonkeyPatch, **settings: str) -> None:
    """Take 0003 back (the objects stay) and run it again with other settings."""
    config = alembic_config(pg_url)
    command.downgrade(config, "0002")
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    command.upgrade(config, "0003")


def test_objects_carry_the_acl_and_a_rerun_with_another_acl_corrects_them(
    pg_url: str, pg_engine: sa.Engine, raw_client: tos.TosClientV2,
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("STORAGE_ACL", "public-read")
    command.upgrade(alembic_config(pg_url), "0003")
    assert acls(raw_client) == dict.fromkeys(keys(), "public-read")
    assert manifest_options(pg_engine) == {("public-read", None, None, "verified")}
    capfd.readouterr()

    upload_again(pg_url, monkeypatch, STORAGE_ACL="private")

    assert acls(raw_client) == dict.fromkeys(keys(), "private")
    assert manifest_options(pg_engine) == {("private", None, None, "verified")}
    counts = summary(capfd.readouterr().err)
    assert counts["already in the bucket, ACL corrected"] == len(keys())
    assert counts["uploaded"] == counts["skipped (already in the bucket)"] == 0


def test_storage_class_and_sse_reach_the_server_on_single_and_multipart_uploads(
    pg_url: str, pg_engine: sa.Engine, raw_client: tos.TosClientV2,
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("STORAGE_CLASS", "ia")
    monkeypatch.setenv("STORAGE_SSE", "aes256")
    command.upgrade(alembic_config(pg_url), "0003")
    for key in keys():
        head = raw_client.head_object(BUCKET, key)
        assert (head.storage_class.value, head.header.get("x-tos-server-side-encryption")) \
            == ("IA", "AES256"), key
    assert manifest_options(pg_engine) == {(None, "IA", "AES256", "verified")}
    capfd.readouterr()

    # Another class cannot be set in place: the objects are sent again.
    upload_again(pg_url, monkeypatch, STORAGE_CLASS="ARCHIVE_FR")
    assert {raw_client.head_object(BUCKET, key).storage_class.value for key in keys()} \
        == {"ARCHIVE_FR"}
    counts = summary(capfd.readouterr().err)
    assert counts["re-uploaded (storage class or encryption differed)"] == len(keys())


class RecordingProxy(ThreadingHTTPServer):
    """An HTTP proxy in front of the local TOS server that keeps the headers of every
    request it forwards: what reached the server, as the SDK sent it."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream_port = upstream_port
        self.seen: list[dict[str, str]] = []


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RecordingProxy

    def forward(self) -> None:
        self.server.seen.append({"request": f"{self.command} {self.path}",
                                 **{name.lower(): value for name, value in self.headers.items()}})
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=30)
        upstream.request(self.command, self.path, body=body, headers=dict(self.headers))
        reply = upstream.getresponse()
        data = reply.read()
        self.send_response(reply.status)
        for name, value in reply.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", reply.getheader("Content-Length", "0")
                         if self.command == "HEAD" else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def recording_proxy(tos_server: TosServer) -> Iterator[RecordingProxy]:
    proxy = RecordingProxy(tos_server.port)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield proxy
    proxy.shutdown()
    proxy.server_close()


def test_an_sts_token_is_sent_with_every_request_and_never_printed(
    cutover: Path, tmp_path: Path, pg_url: str, recording_proxy: RecordingProxy
) -> None:
    """The preflight probe carries the upload options too: a bucket policy refusing them
    fails the preflight, before anything is written."""
    env = {**os.environ, "DATABASE_URL": pg_url, "STORAGE_SECURITY_TOKEN": STS_TOKEN,
           "STORAGE_ACL": "public-read", "STORAGE_CLASS": "IA", "STORAGE_SSE": "AES256",
           "STORAGE_PROXY": f"http://127.0.0.1:{recording_proxy.server_port}",
           "REPORTS_DIR": str(tmp_path / "reports")}
    run = subprocess.run(cli("upgrade", "0003"), env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert len(recording_proxy.seen) > len(keys())
    assert {seen.get("x-tos-security-token") for seen in recording_proxy.seen} == {STS_TOKEN}
    probe_writes = [seen for seen in recording_proxy.seen  # the object, not its ACL check
                    if seen["request"].startswith("PUT ") and "/.preflight/" in seen["request"]
                    and "?acl" not in seen["request"]]
    assert probe_writes, recording_proxy.seen
    assert {(seen.get("x-tos-acl"), seen.get("x-tos-storage-class"),
             seen.get("x-tos-server-side-encryption")) for seen in probe_writes} \
        == {("public-read", "IA", "AES256")}
    sql = subprocess.run(cli("upgrade", "0002:0003", "--sql"), env=env, capture_output=True,
                         text=True, timeout=120)
    refused = subprocess.run(cli("downgrade", "0002", "-x", "purge_objects=true"),
                             env={**env, "STORAGE_SECRET_KEY": "wrong-secret"},
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    reports = "".join(path.read_text() for path in (tmp_path / "reports").iterdir())
    for output in (run.stdout + run.stderr, sql.stdout + sql.stderr,
                   refused.stdout + refused.stderr, reports):
        assert STS_TOKEN not in output and SECRET_KEY not in output


def app_config(folder: Path, storage_block: str) -> Path:
    path = folder / "config" / "production.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text("app:\n  name: meeting-agent\n" + storage_block)
    return path


def test_the_apps_config_gives_the_bucket_settings_and_the_overrides_named_win(
    tmp_path: Path, pg_url: str, pg_engine: sa.Engine, raw_client: tos.TosClientV2,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    config = app_config(tmp_path, f"""storage:
  provider: tos
  bucket: another-bucket
  region: {REGION}
  endpoint: tos-cn-beijing.volces.com
  access_key: ${{APP_TOS_AK}}
  secret_key: "${{APP_TOS_SK}}"
  local_path: ./uploads   # the app's own setting: not read
""")
    for name in ("STORAGE_PROVIDER", "STORAGE_REGION", "STORAGE_ENDPOINT",
                 "STORAGE_ACCESS_KEY", "STORAGE_SECRET_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("APP_TOS_AK", ACCESS_KEY)
    monkeypatch.setenv("APP_TOS_SK", SECRET_KEY)
    monkeypatch.setenv("STORAGE_CONFIG", str(config))
    # Explicit: the bucket (the file names another one, which the server does not have)
    # and an http endpoint, which the proxy in front of the local server needs.
    monkeypatch.setenv("STORAGE_BUCKET", BUCKET)
    monkeypatch.setenv("STORAGE_ENDPOINT", "http://tos-cn-beijing.volces.com")
    monkeypatch.setenv("STORAGE_CONFIG_OVERRIDES", "STORAGE_BUCKET,STORAGE_ENDPOINT")

    command.upgrade(alembic_config(pg_url), "0003")

    assert {o.key for o in raw_client.list_objects_type2(BUCKET).contents} == set(keys())
    assert fetch(pg_engine, "SELECT count(*) FROM cutover_file_manifest "
                            "WHERE status = 'verified'") == [(len(keys()),)]


BAD_STORAGE_CONFIG = "storage:\n  bucket: meeting-agent\n  secret_key: ${CUTOVER_UNSET_VAR}\n"


@pytest.mark.parametrize(("settings", "config", "message"), [
    ({"STORAGE_ACL": "public"}, None, "STORAGE_ACL must be one of private, public-read or unset"),
    ({"STORAGE_CLASS": "GLACIER"}, None, "STORAGE_CLASS must be one of STANDARD, IA"),
    ({"STORAGE_SSE": "KMS"}, None, "STORAGE_SSE must be one of AES256 or unset"),
    ({"STORAGE_CONFIG": "config/missing.yaml"}, None,
     "STORAGE_CONFIG config/missing.yaml does not exist"),
    ({}, "database:\n  url: postgresql://db/meetings\n",
     "STORAGE_CONFIG config/production.yaml has no storage: block at its top level"),
    ({}, BAD_STORAGE_CONFIG,
     "STORAGE_CONFIG config/production.yaml line 5 (storage.secret_key) uses "
     "${CUTOVER_UNSET_VAR}, which is not set in the environment"),
    ({"STORAGE_ENDPOINT": ""}, "storage:\n  endpoint: ftp://tos.example.com\n",
     "STORAGE_CONFIG config/production.yaml line 4 (storage.endpoint): STORAGE_ENDPOINT must"),
    ({}, "storage:\n  bucket: [meeting-agent\n",
     "STORAGE_CONFIG config/production.yaml line 5 is not valid YAML"),
], ids=["acl", "class", "sse", "config-missing", "no-storage-block", "unset-var",
        "bad-endpoint-in-file", "malformed-yaml"])
def test_bad_upload_settings_are_one_failed_line_before_anything_is_written(
    settings: dict[str, str], config: str | None, message: str, tmp_path: Path,
    pg_url: str, pg_engine: sa.Engine, raw_client: tos.TosClientV2
) -> None:
    env = {**os.environ, "DATABASE_URL": pg_url, "STORAGE_SECURITY_TOKEN": STS_TOKEN,
           **settings}
    if config is not None:
        app_config(tmp_path, config)
        env["STORAGE_CONFIG"] = "config/production.yaml"
    env.pop("CUTOVER_UNSET_VAR", None)
    run = subprocess.run(cli("upgrade", "head"), env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    output = run.stdout + run.stderr
    assert_one_clear_failure(run.returncode, output, message)
    assert STS_TOKEN not in output
    assert sa.inspect(pg_engine).get_table_names() == []
    assert raw_client.list_objects_type2(BUCKET).contents == []


def test_a_malformed_app_config_is_named_without_quoting_its_lines(tmp_path: Path) -> None:
    # The YAML library's own message quotes the offending line, which may hold a key; the
    # FAILED line gives the problem and the line number only.
    path = app_config(tmp_path, "storage:\n  secret_key: 'abc-secret\n  bucket: b\n")
    with pytest.raises(ConfigError) as failure:
        read_storage_block(path, {})
    assert str(failure.value).startswith(f"STORAGE_CONFIG {path} line ")
    assert "abc-secret" not in str(failure.value)
