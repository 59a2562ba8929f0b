"""make verify fetches the rewritten URLs as the app does: a whole cutover to the local TOS
server through the real SDK, then ``python -m data_migrations.commands.verify`` fetching the URLs
over real HTTP with no credentials, as the app and a browser would."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import tos
from alembic import command
from tos.enum import ACLType

from data_migrations.commands.adopt_dev import alembic_config
from data_migrations.files.url_fetch import PUBLIC_403_CAUSE, Target, fetch_all
from devtools.sample import UPLOADS_ALIAS, generate_dev_database
from devtools.tos_server import TosServer
from devtools.tos_server.__main__ import parse_args
from tests.conftest import ACCESS_KEY, BUCKET, ENDPOINT, REGION, SECRET_KEY, tos_env

# Starts servers or commands in fresh interpreters: not in make test-fast.
pytestmark = pytest.mark.slow

PRIVATE_CAUSE = ("the objects are private: upload with STORAGE_ACL=public-read, or have the "
                 "app sign URLs")
MISSING_CAUSE = "no object at that URL: check STORAGE_PUBLIC_BASE_URL"


@contextmanager
def local_tos(root: Path, **options: object) -> Iterator[TosServer]:
    """The local TOS server with 127.0.0.1 bound to the bucket, as a custom domain: the
    public base URL http://127.0.0.1:<port> then reaches it with no proxy."""
    with TosServer(root, access_key=ACCESS_KEY, secret_key=SECRET_KEY, buckets=[BUCKET],
                   domains={"127.0.0.1": BUCKET}, **options) as server:  # type: ignore[arg-type]
        yield server


def cut_over(tmp_path: Path, pg_url: str, server: TosServer, public_base_url: str,
             monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The whole cutover to the local TOS server; the settings verify needs."""
    generate_dev_database(tmp_path / "meeting_agent.db", rows=60,
                          uploads_dir=tmp_path / "uploads")
    env = {"SOURCE_DATABASE_URL": f"sqlite:///{tmp_path / 'meeting_agent.db'}",
           "UPLOADS_PATH_ALIASES": UPLOADS_ALIAS, **tos_env(server),
           "STORAGE_PUBLIC_BASE_URL": public_base_url}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    command.upgrade(alembic_config(pg_url), "head")
    return {**env, "DATABASE_URL": pg_url}


def verify(env: dict[str, str], *x_args: str) -> subprocess.CompletedProcess:
    options = [arg for x in x_args for arg in ("-x", x)]
    return subprocess.run([sys.executable, "-m", "data_migrations.commands.verify", *options],
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=300)


def fetch_rows(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("fetch ")]


def object_keys(server: TosServer) -> list[str]:
    return server.store.bucket(BUCKET).sorted_keys()


def sdk_client(server: TosServer) -> tos.TosClientV2:
    return tos.TosClientV2(ACCESS_KEY, SECRET_KEY, ENDPOINT, REGION, proxy_host="127.0.0.1",
                           proxy_port=server.port, max_retry_count=0)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_private_objects_fail_with_the_403_cause_and_public_read_ones_pass(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with local_tos(tmp_path / "tos") as server:
        env = cut_over(tmp_path, pg_url, server, f"http://127.0.0.1:{server.port}",
                       monkeypatch)
        private = verify(env)
        assert private.returncode == 1, private.stdout + private.stderr
        [row] = fetch_rows(private.stdout)
        assert row.split()[1:4] == ["403", "Forbidden", "FAIL"]
        assert PRIVATE_CAUSE in row
        assert f"http://127.0.0.1:{server.port}/" in row  # the first URLs are named
        assert SECRET_KEY not in private.stdout + private.stderr

        # The files and paths steps again with STORAGE_ACL=public-read: the objects already
        # in the bucket are corrected, not sent again.
        command.downgrade(alembic_config(pg_url), "0002")
        monkeypatch.setenv("STORAGE_ACL", "public-read")
        command.upgrade(alembic_config(pg_url), "head")
        public = verify(env)
        assert public.returncode == 0, public.stdout + public.stderr
        [row] = fetch_rows(public.stdout)
        assert row.split()[2] == "pass"
        assert "each answers 2xx with its object's size" in row

        client = sdk_client(server)  # another object at one of the URLs
        replaced = object_keys(server)[0]
        client.put_object(BUCKET, replaced, content=b"another object",
                          acl=ACLType.ACL_Public_Read)
        client.close()
        replaced_object = verify(env)
        assert replaced_object.returncode == 1
        [row] = fetch_rows(replaced_object.stdout)
        assert row.split()[1:4] == ["wrong", "size", "FAIL"]
        assert "1 URL (http://127.0.0.1:" in row


def test_urls_none_skips_the_fetch_and_sample_fetches_that_many(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with local_tos(tmp_path / "tos") as server:
        env = cut_over(tmp_path, pg_url, server, f"http://127.0.0.1:{server.port}",
                       monkeypatch)
        skipped = verify(env, "urls=none")
        assert skipped.returncode == 0, skipped.stdout + skipped.stderr
        assert fetch_rows(skipped.stdout) == []
        assert "Fetching" not in skipped.stderr

        sampled = verify(env, "urls=sample:2")  # every object is private: each fetched fails
        assert sampled.returncode == 1
        [row] = fetch_rows(sampled.stdout)
        assert "2 URLs (" in row and PRIVATE_CAUSE in row
        assert "Fetching 2 of " in sampled.stderr

        by_environment = verify({**env, "VERIFY_URLS": "sample:1"})
        assert "1 URL (" in fetch_rows(by_environment.stdout)[0]


def test_a_wrong_public_base_url_path_is_named_as_a_404(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with local_tos(tmp_path / "tos", bucket_acls={BUCKET: "public-read"}) as server:
        env = cut_over(tmp_path, pg_url, server, f"http://127.0.0.1:{server.port}/media",
                       monkeypatch)
        result = verify(env)
        assert result.returncode == 1, result.stdout + result.stderr
        [row] = fetch_rows(result.stdout)
        assert row.split()[1:4] == ["404", "Not", "Found"]
        assert MISSING_CAUSE in row
        assert f"http://127.0.0.1:{server.port}/media/" in row


def test_a_403_over_public_read_objects_names_the_base_url_not_the_acl(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Objects written public-read in a private bucket, and a base URL with a wrong path:
    TOS answers 403 for a key it does not have, as S3 does. Verify names the base URL;
    with the right base URL the same objects pass."""
    monkeypatch.setenv("STORAGE_ACL", "public-read")
    with local_tos(tmp_path / "tos") as server:
        base = f"http://127.0.0.1:{server.port}"
        env = cut_over(tmp_path, pg_url, server, f"{base}/media", monkeypatch)
        result = verify(env)
        assert result.returncode == 1, result.stdout + result.stderr
        [row] = fetch_rows(result.stdout)
        assert row.split()[1:4] == ["403", "Forbidden", "FAIL"]
        assert PUBLIC_403_CAUSE in row and PRIVATE_CAUSE not in row
        assert "check STORAGE_PUBLIC_BASE_URL" in row
        assert f"{base}/media/" in row

        monkeypatch.setenv("STORAGE_PUBLIC_BASE_URL", base)  # files and paths again
        command.downgrade(alembic_config(pg_url), "0002")
        command.upgrade(alembic_config(pg_url), "head")
        right = verify({**env, "STORAGE_PUBLIC_BASE_URL": base})
        assert right.returncode == 0, right.stdout + right.stderr


def test_a_host_that_refuses_connections_is_named_with_the_error(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = closed_port()
    with local_tos(tmp_path / "tos") as server:
        env = cut_over(tmp_path, pg_url, server, f"http://127.0.0.1:{port}", monkeypatch)
        result = verify(env)
    assert result.returncode == 1, result.stdout + result.stderr
    [row] = fetch_rows(result.stdout)
    assert f"cannot reach 127.0.0.1:{port}" in row
    assert "Connection refused" in row
    assert "Traceback" not in result.stderr


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no CA store trusts, and its key."""
    certificate, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(certificate)],
                   check=True, capture_output=True)
    return certificate, key


def test_https_urls_fail_on_an_unknown_ca_and_pass_with_requests_ca_bundle(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    certificate, key = self_signed_certificate(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certificate, key)
    https_port = closed_port()
    with local_tos(tmp_path / "tos") as server:  # the upload, over the SDK's proxy mode
        env = cut_over(tmp_path, pg_url, server, f"https://127.0.0.1:{https_port}",
                       monkeypatch)
        with local_tos(tmp_path / "tos", port=https_port, tls=tls,
                       bucket_acls={BUCKET: "public-read"}):  # the same objects, over https
            env = {name: value for name, value in {**os.environ, **env}.items()
                   if name not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
            untrusted = verify(env)
            trusted = verify({**env, "REQUESTS_CA_BUNDLE": str(certificate)})
    assert untrusted.returncode == 1
    [row] = fetch_rows(untrusted.stdout)
    assert f"cannot reach 127.0.0.1:{https_port}" in row
    assert "TLS failed: certificate verify failed" in row
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    assert fetch_rows(trusted.stdout)[0].split()[2] == "pass"


class _NoHeadHandler(BaseHTTPRequestHandler):
    """A server that refuses HEAD, as some CDNs do, and answers a ranged GET."""

    BODY = b"0123456789"

    def do_HEAD(self) -> None:
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        assert self.headers["Range"] == "bytes=0-0"
        self.send_response(206)
        self.send_header("Content-Range", f"bytes 0-0/{len(self.BODY)}")
        self.send_header("Content-Length", "1")
        self.end_headers()
        self.wfile.write(self.BODY[:1])

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_where_head_is_refused_a_one_byte_ranged_get_gives_the_size() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _NoHeadHandler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{httpd.server_address[1]}/a.mp3"
        right = fetch_all([Target(url, 10)], max_concurrent=2)
        wrong = fetch_all([Target(url, 11), Target(url + "?again", 11)], max_concurrent=2)
        httpd.shutdown()
    assert right == []
    [failure] = wrong
    assert (failure.failure.subject, failure.count) == ("wrong size", 2)


def test_a_malformed_urls_setting_is_one_failed_line(pg_url: str) -> None:
    result = verify({"DATABASE_URL": pg_url}, "urls=some")
    assert result.returncode == 2
    assert result.stderr.strip() == ("FAILED: urls must be all, none or sample:N (N at least "
                                     "1), got 'some'")


# ------------------------------------------------------------- the server's anonymous reads


def anonymous(server: TosServer, path: str, host: str, method: str = "GET"
              ) -> requests.Response:
    """A request with no signature, as a browser sends it, to the server's port."""
    return requests.request(method, f"http://127.0.0.1:{server.port}{path}",
                            headers={"Host": host}, timeout=5)


def test_a_public_read_bucket_serves_every_object_virtual_host_style_and_by_custom_domain(
    tmp_path: Path
) -> None:
    with TosServer(tmp_path / "tos", access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                   buckets=[BUCKET, "private-one"], bucket_acls={BUCKET: "public-read"},
                   domains={"cdn.local": BUCKET, "private.local": "private-one"}) as server:
        client = sdk_client(server)
        client.put_object(BUCKET, "会议/a b.txt", content=b"public bytes")
        client.put_object("private-one", "x.txt", content=b"private bytes")
        client.close()
        virtual_host = anonymous(server, "/%E4%BC%9A%E8%AE%AE/a%20b.txt",
                                 f"{BUCKET}.tos-cn-beijing.volces.com")
        custom_domain = anonymous(server, "/%E4%BC%9A%E8%AE%AE/a%20b.txt", "cdn.local")
        missing = anonymous(server, "/none.txt", "cdn.local", "HEAD")
        private = anonymous(server, "/x.txt", "private.local")
        private_missing = anonymous(server, "/none.txt", "private.local")
    assert (virtual_host.status_code, virtual_host.content) == (200, b"public bytes")
    assert (custom_domain.status_code, custom_domain.content) == (200, b"public bytes")
    assert missing.status_code == 404  # a public-read bucket tells what is missing, as TOS
    assert private.status_code == 403
    assert json.loads(private.content)["Code"] == "AccessDenied"
    assert private.headers["Content-Type"] == "application/json"
    assert private_missing.status_code == 403  # a private bucket tells nothing


def test_a_public_read_object_in_a_private_bucket_is_served_through_its_custom_domain(
    tmp_path: Path
) -> None:
    with TosServer(tmp_path / "tos", access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                   buckets=[BUCKET], domains={"127.0.0.1": BUCKET}) as server:
        client = sdk_client(server)
        client.put_object(BUCKET, "open.txt", content=b"open", acl=ACLType.ACL_Public_Read)
        client.put_object(BUCKET, "closed.txt", content=b"closed")
        client.close()
        base = f"http://127.0.0.1:{server.port}"
        opened = requests.get(f"{base}/open.txt", timeout=5)
        closed = requests.head(f"{base}/closed.txt", timeout=5)
    assert (opened.status_code, opened.content) == (200, b"open")
    assert closed.status_code == 403


def test_the_command_line_takes_bucket_acls_and_custom_domains(tmp_path: Path) -> None:
    args = parse_args(["--root", str(tmp_path), "--access-key", "AK", "--secret-key", "SK",
                       "--bucket-acl", "demo=public-read", "--domain", "cdn.local=demo"])
    assert (dict(args.bucket_acl), dict(args.domain)) == ({"demo": "public-read"},
                                                         {"cdn.local": "demo"})
    with pytest.raises(SystemExit):
        parse_args(["--root", str(tmp_path), "--access-key", "AK", "--secret-key", "SK",
                    "--bucket-acl", "demo=public"])
