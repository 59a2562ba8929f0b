"""The local TOS server behaves as TOS does, or refuses: each behaviour through the real SDK."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import tos
from tos.enum import ACLType, HttpMethodType, StorageClassType
from tos.models2 import GenericInput, Grant, Grantee, Owner, UploadedPart

from devtools.tos_server import TosServer
from tests.conftest import ACCESS_KEY, BUCKET, ENDPOINT, REGION, SECRET_KEY

# Starts servers or commands in fresh interpreters: not in make test-fast.
pytestmark = pytest.mark.slow

HOST = f"{BUCKET}.{ENDPOINT.split('://', 1)[1]}"
ORIGINAL = b"the original bytes"


def refused(call: Callable[[], object], status: int, code: str) -> None:
    with pytest.raises(tos.exceptions.TosServerError) as caught:
        call()
    assert (caught.value.status_code, caught.value.code) == (status, code)


def fetch(server: TosServer, path: str, method: str = "GET") -> tuple[int, bytes]:
    """A plain HTTP request through the server's port, as a browser would send it."""
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", method=method,
                                     headers={"Host": HOST})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


UNIMPLEMENTED: dict[str, Callable[[tos.TosClientV2], object]] = {
    "delete_object_tagging": lambda c: c.delete_object_tagging(BUCKET, "k"),
    "put_object_tagging": lambda c: c.put_object_tagging(BUCKET, "k", [tos.models2.Tag("a", "b")]),
    "copy_object": lambda c: c.copy_object(BUCKET, "k", BUCKET, "other"),
    "append_object": lambda c: c.append_object(BUCKET, "k", 0, content=b"more"),
    "rename_object": lambda c: c.rename_object(BUCKET, "k", "renamed"),
    "put_symlink": lambda c: c.put_symlink(BUCKET, "k", "target"),
    "get_file_status (?stat)": lambda c: c.get_file_status(BUCKET, "k"),
    "put_bucket_versioning": lambda c: c._req(bucket=BUCKET, method="PUT", data="{}",
                                              params={"versioning": ""}),
    "delete_multi_objects": lambda c: c.delete_multi_objects(
        BUCKET, [tos.models2.ObjectTobeDeleted("k")]),
    "list_objects (v1)": lambda c: c.list_objects(BUCKET),
}


@pytest.mark.parametrize("name", list(UNIMPLEMENTED))
def test_unimplemented_calls_are_refused_and_change_nothing(
        raw_client: tos.TosClientV2, name: str) -> None:
    raw_client.put_object(BUCKET, "k", content=ORIGINAL)
    before = raw_client.head_object(BUCKET, "k").etag

    refused(lambda: UNIMPLEMENTED[name](raw_client), 501, "NotImplemented")

    assert raw_client.head_object(BUCKET, "k").etag == before
    assert raw_client.get_object(BUCKET, "k").read() == ORIGINAL
    keys = [listed.key for listed in raw_client.list_objects_type2(BUCKET).contents]
    assert keys == ["k"]


def test_object_acl_is_set_on_put_and_changed_later(raw_client: tos.TosClientV2,
                                                    tos_server: TosServer) -> None:
    raw_client.put_object(BUCKET, "public.txt", content=b"hi", acl=ACLType.ACL_Public_Read)
    raw_client.put_object(BUCKET, "private.txt", content=b"no")

    assert fetch(tos_server, "/public.txt") == (200, b"hi")
    assert fetch(tos_server, "/private.txt")[0] == 403
    raw_client.put_object_acl(BUCKET, "public.txt", acl=ACLType.ACL_Private)
    assert fetch(tos_server, "/public.txt")[0] == 403
    grants = raw_client.get_object_acl(BUCKET, "public.txt").grants
    assert [grant.permission.value for grant in grants] == ["FULL_CONTROL"]


def test_object_acl_grants_are_stored(raw_client: tos.TosClientV2) -> None:
    raw_client.put_object(BUCKET, "g.txt", content=b"x")
    grant = Grant(Grantee(id="123", display_name="someone", type=tos.enum.GranteeType.Grantee_User),
                  permission=tos.enum.PermissionType.Permission_Read)

    raw_client.put_object_acl(BUCKET, "g.txt", owner=Owner("local-tos", "local-tos"),
                              grants=[grant])

    grants = raw_client.get_object_acl(BUCKET, "g.txt").grants
    assert [(grant.grantee.id, grant.permission.value) for grant in grants] == [("123", "READ")]


def test_multipart_upload_takes_its_acl_at_creation(raw_client: tos.TosClientV2,
                                                    tos_server: TosServer) -> None:
    upload = raw_client.create_multipart_upload(BUCKET, "mp.txt", acl=ACLType.ACL_Public_Read)
    etag = raw_client.upload_part(BUCKET, "mp.txt", upload.upload_id, 1, content=b"parts").etag
    raw_client.complete_multipart_upload(BUCKET, "mp.txt", upload.upload_id,
                                         parts=[UploadedPart(1, etag)])

    assert fetch(tos_server, "/mp.txt") == (200, b"parts")


def test_anonymous_head_of_a_public_read_object(raw_client: tos.TosClientV2,
                                                tos_server: TosServer) -> None:
    raw_client.put_object(BUCKET, "h.txt", content=b"12345", acl=ACLType.ACL_Public_Read)

    assert fetch(tos_server, "/h.txt", "HEAD")[0] == 200
    assert fetch(tos_server, "/missing.txt", "HEAD")[0] == 403
    assert fetch(tos_server, "/h.txt", "DELETE")[0] == 403


def test_pre_signed_urls_read_until_they_expire(raw_client: tos.TosClientV2,
                                                tos_server: TosServer) -> None:
    raw_client.put_object(BUCKET, "会议/a b.txt", content=b"signed")
    url = raw_client.pre_signed_url(HttpMethodType.Http_Method_Get, BUCKET,
                                    "会议/a b.txt").signed_url
    path = url.split(HOST, 1)[1]
    expired = path.replace("X-Tos-Date=", "X-Tos-Date=2001")  # an old, malformed date
    tampered = path.replace("a%20b", "c")

    assert fetch(tos_server, path) == (200, b"signed")
    assert fetch(tos_server, expired)[0] == 403
    assert fetch(tos_server, tampered)[0] == 403


def test_pre_signed_url_expiry_is_enforced(raw_client: tos.TosClientV2,
                                           tos_server: TosServer) -> None:
    raw_client.put_object(BUCKET, "e.txt", content=b"soon gone")
    url = raw_client.pre_signed_url(HttpMethodType.Http_Method_Get, BUCKET, "e.txt",
                                    expires=60).signed_url
    valid = url.split(HOST, 1)[1]
    date = valid.split("X-Tos-Date=", 1)[1][:16]
    old = (datetime.strptime(date, "%Y%m%dT%H%M%SZ") - timedelta(seconds=120)).strftime(
        "%Y%m%dT%H%M%SZ")

    assert fetch(tos_server, valid)[0] == 200
    assert fetch(tos_server, valid.replace(date, old))[0] == 403  # expired before signature


def test_storage_class_sse_and_standard_headers_are_kept(raw_client: tos.TosClientV2) -> None:
    raw_client.put_object(
        BUCKET, "kept.txt", content=b"x", storage_class=StorageClassType.Storage_Class_Ia,
        server_side_encryption="AES256", cache_control="no-cache",
        content_disposition="attachment; filename=minutes.txt", content_encoding="identity",
        content_language="zh-CN", expires=datetime(2030, 1, 2, tzinfo=UTC))

    head = raw_client.head_object(BUCKET, "kept.txt")
    got = raw_client.get_object(BUCKET, "kept.txt")
    listed = raw_client.list_objects_type2(BUCKET).contents[0]

    for answer in (head, got):
        assert answer.storage_class == StorageClassType.Storage_Class_Ia
        assert answer.header["x-tos-server-side-encryption"] == "AES256"
        assert (answer.cache_control, answer.content_disposition, answer.content_encoding,
                answer.content_language) == ("no-cache", "attachment; filename=minutes.txt",
                                             "identity", "zh-CN")
        assert answer.expires.year == 2030
    assert listed.storage_class == StorageClassType.Storage_Class_Ia


def test_content_md5_is_verified(raw_client: tos.TosClientV2) -> None:
    good = base64.b64encode(hashlib.md5(b"body").digest()).decode()
    other = base64.b64encode(hashlib.md5(b"other").digest()).decode()

    raw_client.put_object(BUCKET, "md5.txt", content=b"body", content_md5=good)
    refused(lambda: raw_client.put_object(BUCKET, "md5.txt", content=b"evil", content_md5=other),
            400, "BadDigest")
    refused(lambda: raw_client.put_object(BUCKET, "md5.txt", content=b"evil",
                                          content_md5="not-md5"), 400, "InvalidDigest")
    assert raw_client.get_object(BUCKET, "md5.txt").read() == b"body"


def test_content_sha256_is_verified(raw_client: tos.TosClientV2) -> None:
    def put(data: bytes, declared: str) -> object:
        # put_object has no option for it: the SDK's own request path, with the header signed.
        return raw_client._req(bucket=BUCKET, key="sha.txt", method="PUT", data=data,
                               headers={"x-tos-content-sha256": declared})

    put(b"body", hashlib.sha256(b"body").hexdigest())
    refused(lambda: put(b"evil", hashlib.sha256(b"other").hexdigest()),
            400, "ContentSHA256Mismatch")
    assert raw_client.get_object(BUCKET, "sha.txt").read() == b"body"


def test_if_match_and_if_none_match(raw_client: tos.TosClientV2) -> None:
    etag = raw_client.put_object(BUCKET, "c.txt", content=b"v1").etag

    assert raw_client.get_object(BUCKET, "c.txt", if_match=etag).read() == b"v1"
    refused(lambda: raw_client.get_object(BUCKET, "c.txt", if_match='"0000"'),
            412, "PreconditionFailed")
    refused(lambda: raw_client.head_object(BUCKET, "c.txt", if_match='"0000"'),
            412, "")  # a HEAD answer has no body to carry the code
    refused(lambda: raw_client.get_object(BUCKET, "c.txt", if_none_match=etag), 304, "")


def test_forbid_overwrite_keeps_the_first_object(raw_client: tos.TosClientV2) -> None:
    raw_client.put_object(BUCKET, "once.txt", content=b"first", forbid_overwrite=True)

    refused(lambda: raw_client.put_object(BUCKET, "once.txt", content=b"second",
                                          forbid_overwrite=True), 409, "ObjectAlreadyExists")
    assert raw_client.get_object(BUCKET, "once.txt").read() == b"first"


def test_a_request_dated_16_minutes_ago_is_too_skewed(raw_client: tos.TosClientV2) -> None:
    old = GenericInput(request_date=datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=16))
    recent = GenericInput(request_date=datetime.now(UTC).replace(tzinfo=None)
                          - timedelta(minutes=14))

    raw_client.put_object(BUCKET, "t.txt", content=b"ok", generic_input=recent)
    refused(lambda: raw_client.put_object(BUCKET, "t.txt", content=b"late", generic_input=old),
            403, "RequestTimeTooSkewed")
    assert raw_client.get_object(BUCKET, "t.txt").read() == b"ok"


def test_every_answer_carries_x_tos_id_2(raw_client: tos.TosClientV2) -> None:
    assert raw_client.put_object(BUCKET, "id.txt", content=b"x").id2
    with pytest.raises(tos.exceptions.TosServerError) as caught:
        raw_client.get_object(BUCKET, "missing")
    assert caught.value.id2


def start_upload(client: tos.TosClientV2, key: str, parts: int) -> str:
    upload_id = client.create_multipart_upload(BUCKET, key).upload_id
    for number in range(1, parts + 1):
        client.upload_part(BUCKET, key, upload_id, number, content=bytes([number]) * 10)
    return upload_id


def test_list_parts_pages_and_names_the_owner(raw_client: tos.TosClientV2) -> None:
    upload_id = start_upload(raw_client, "p", 5)

    first = raw_client.list_parts(BUCKET, "p", upload_id, max_parts=2)
    second = raw_client.list_parts(BUCKET, "p", upload_id, max_parts=2,
                                   part_number_marker=first.next_part_number_marker)
    last = raw_client.list_parts(BUCKET, "p", upload_id, max_parts=2,
                                 part_number_marker=second.next_part_number_marker)

    pages = [[part.part_number for part in page.parts] for page in (first, second, last)]
    assert pages == [[1, 2], [3, 4], [5]]
    assert [page.is_truncated for page in (first, second, last)] == [True, True, False]
    assert first.owner.id == "local-tos"


def test_list_multipart_uploads_by_prefix_and_page(raw_client: tos.TosClientV2) -> None:
    ids = {key: start_upload(raw_client, key, 0) for key in ["a/1", "a/2", "a/3", "b/1"]}

    first = raw_client.list_multipart_uploads(BUCKET, prefix="a/", max_uploads=2)
    rest = raw_client.list_multipart_uploads(BUCKET, prefix="a/", max_uploads=2,
                                             key_marker=first.next_key_marker,
                                             upload_id_marker=first.next_upload_id_marker)

    assert [upload.key for upload in first.uploads] == ["a/1", "a/2"]
    assert first.is_truncated and not rest.is_truncated
    assert [(upload.key, upload.upload_id) for upload in rest.uploads] == [("a/3", ids["a/3"])]


def test_uploads_in_progress_survive_a_restart(tmp_path: Path, tos_server: TosServer) -> None:
    def client(server: TosServer) -> tos.TosClientV2:
        return tos.TosClientV2(ACCESS_KEY, SECRET_KEY, ENDPOINT, REGION, dns_cache_time=0,
                               proxy_host="127.0.0.1", proxy_port=server.port,
                               max_retry_count=0)

    before = client(tos_server)
    upload_id = before.create_multipart_upload(BUCKET, "resume").upload_id
    first = before.upload_part(BUCKET, "resume", upload_id, 1, content=b"a" * 5 * 1024 * 1024)
    before.close()
    tos_server.stop()

    with TosServer(tmp_path / "tos-root", access_key=ACCESS_KEY, secret_key=SECRET_KEY) as again:
        after = client(again)
        listed = after.list_multipart_uploads(BUCKET).uploads
        parts = after.list_parts(BUCKET, "resume", upload_id).parts
        second = after.upload_part(BUCKET, "resume", upload_id, 2, content=b"b")
        after.complete_multipart_upload(BUCKET, "resume", upload_id, parts=[
            UploadedPart(1, first.etag), UploadedPart(2, second.etag)])
        data = after.get_object(BUCKET, "resume").read()
        after.close()

    assert [upload.upload_id for upload in listed] == [upload_id]
    assert [part.part_number for part in parts] == [1]
    assert data == b"a" * 5 * 1024 * 1024 + b"b"


def test_a_bandwidth_capped_connection_still_moves_every_byte(
        raw_client: tos.TosClientV2, tos_server: TosServer) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    tos_server.faults.bandwidth = 8 * 1024 * 1024

    raw_client.put_object(BUCKET, "capped.bin", content=data)
    back = raw_client.get_object(BUCKET, "capped.bin").read()

    assert back == data


def test_the_server_imports_nothing_of_the_cutover() -> None:
    # Its CRC-64 of a completed multipart object must check the client's combine code,
    # not share it.
    probe = ("import sys, devtools.tos_server.__main__; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('storage', 'data_migrations', 'models', 'settings')))")
    loaded = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                            text=True, cwd=Path(__file__).resolve().parents[2]).stdout.strip()

    assert loaded == "[]"
