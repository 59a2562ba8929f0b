"""The local TOS server itself: wire details the SDK relies on, listing, multipart, CLI."""

from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import Message
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
import tos
from tos.auth import Auth
from tos.http import Request as SdkRequest
from tos.models2 import UploadedPart

from devtools.tos_server import Faults, TosServer
from devtools.tos_server.errors import TosError
from devtools.tos_server.operations import parse_range
from devtools.tos_server.request import RequestBody, TosRequest
from devtools.tos_server.signature import verify_signature
from devtools.tos_server.store import list_page
from storage.base import ObjectInfo, file_crc64
from storage.crc64 import crc64_update
from storage.tos import TosStorage
from tests.conftest import ACCESS_KEY, BUCKET, SECRET_KEY, TosFactory

# Starts servers or commands in fresh interpreters: not in make test-fast.
pytestmark = pytest.mark.slow

MakeFile = Callable[..., Path]
MiB = 1024 * 1024


def put(client: tos.TosClientV2, key: str, data: bytes = b"x") -> None:
    client.put_object(BUCKET, key, content=data)


# ---------------------------------------------------------------- reads


def test_range_reads(raw_client: tos.TosClientV2) -> None:
    put(raw_client, "r.txt", b"0123456789")

    middle = raw_client.get_object(BUCKET, "r.txt", range_start=2, range_end=5)
    clipped = raw_client.get_object(BUCKET, "r.txt", range_start=8, range_end=100)

    assert (middle.read(), middle.content_range) == (b"2345", "bytes 2-5/10")
    assert (clipped.read(), clipped.content_range) == (b"89", "bytes 8-9/10")
    with pytest.raises(tos.exceptions.TosServerError) as caught:
        raw_client.get_object(BUCKET, "r.txt", range_start=10, range_end=12)
    assert (caught.value.status_code, caught.value.code) == (416, "InvalidRange")


@pytest.mark.parametrize(("header", "expected"), [
    (None, None), ("bytes=0-0", (0, 0)), ("bytes=5-", (5, 9)), ("bytes=-3", (7, 9)),
    ("bytes=-30", (0, 9)), ("bytes=3-100", (3, 9)),
])
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 10) == expected


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=4-2", "bytes=-0", "bytes=-", "lines=1-2"])
def test_parse_range_refuses(header: str) -> None:
    with pytest.raises(TosError) as caught:
        parse_range(header, 10)
    assert caught.value.status == 416


def test_head_errors_have_an_empty_body_and_the_ec_header(raw_client: tos.TosClientV2) -> None:
    with pytest.raises(tos.exceptions.TosServerError) as caught:
        raw_client.head_object(BUCKET, "missing")

    assert caught.value.status_code == 404
    assert caught.value.header["Content-Length"] == "0"
    assert caught.value.header["x-tos-ec"] == "0017-00000003"


def test_get_errors_carry_the_tos_json_body(raw_client: tos.TosClientV2) -> None:
    with pytest.raises(tos.exceptions.TosServerError) as caught:
        raw_client.get_object(BUCKET, "missing")

    error = caught.value
    assert (error.status_code, error.code, error.ec) == (404, "NoSuchKey", "0017-00000003")
    assert error.request_id  # x-tos-request-id is on every answer


# ---------------------------------------------------------------- writes


def test_chunked_upload_bodies_are_decoded(raw_client: tos.TosClientV2) -> None:
    # The SDK sends generators with Transfer-Encoding: chunked.
    def pieces() -> Iterator[bytes]:
        yield b"hello, "
        yield b""  # an empty piece must not end the body early
        yield b"chunked " * 10_000
        yield b"world"

    raw_client.put_object(BUCKET, "chunked.txt", content=pieces())

    expected = b"hello, " + b"chunked " * 10_000 + b"world"
    assert raw_client.get_object(BUCKET, "chunked.txt").read() == expected


def test_user_metadata_and_content_type_round_trip(raw_client: tos.TosClientV2) -> None:
    raw_client.put_object(BUCKET, "m.json", content=b"{}", content_type="application/json",
                          meta={"meeting-id": "42", "title": "周会 notes"})

    head = raw_client.head_object(BUCKET, "m.json")

    assert head.content_type == "application/json"
    assert head.meta == {"meeting-id": "42", "title": "周会 notes"}
    assert head.content_length == 2


# ---------------------------------------------------------------- HTTP behaviour


def chunked_request(*sizes: int) -> tuple[io.BytesIO, Message, bytes]:
    """A chunked body followed by the start of the next request on the same connection."""
    payload = b"".join(bytes([65 + index]) * size for index, size in enumerate(sizes))
    wire = b"".join(f"{size:x};ext=1\r\n".encode() + bytes([65 + index]) * size + b"\r\n"
                    for index, size in enumerate(sizes))
    headers = Message()
    headers["Transfer-Encoding"] = "chunked"
    return io.BytesIO(wire + b"0\r\nX-Trailer: 1\r\n\r\nNEXT REQUEST"), headers, payload


def test_chunked_bodies_are_decoded_with_extensions_and_trailers() -> None:
    rfile, headers, payload = chunked_request(3, 2 * MiB + 5, 1)

    body = b"".join(RequestBody(rfile, headers).chunks())

    assert body == payload
    assert rfile.read() == b"NEXT REQUEST"


def test_drain_resumes_a_chunked_body_abandoned_mid_chunk() -> None:
    rfile, headers, _ = chunked_request(MiB + 500, 7)
    body = RequestBody(rfile, headers)

    first_piece = next(body.chunks())  # a handler that failed after its first read
    body.drain()

    assert first_piece == b"A" * MiB
    assert rfile.read() == b"NEXT REQUEST"


def raw_connection(server: TosServer) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)


def test_error_answers_drain_the_body_and_keep_the_connection(tos_server: TosServer) -> None:
    connection = raw_connection(tos_server)
    body = b"z" * 200_000
    headers = {"Host": f"{BUCKET}.fake", "Expect": "100-continue"}

    connection.request("PUT", f"http://{BUCKET}.fake/key", body=body, headers=headers)
    first = connection.getresponse()
    first_body = json.loads(first.read())
    socket_after_first = connection.sock
    connection.request("GET", f"http://{BUCKET}.fake/key", headers={"Host": f"{BUCKET}.fake"})
    second = connection.getresponse()
    second_body = json.loads(second.read())

    assert (first.status, first_body["Code"]) == (403, "AccessDenied")
    assert (second.status, second_body["Code"]) == (403, "AccessDenied")
    assert connection.sock is socket_after_first  # the same keep-alive connection
    connection.close()


def test_connect_is_refused(tos_server: TosServer) -> None:
    connection = raw_connection(tos_server)

    connection.request("CONNECT", "tos-cn-beijing.volces.com:443")
    response = connection.getresponse()

    assert response.status == 405
    assert json.loads(response.read())["Code"] == "MethodNotAllowed"
    connection.close()


def test_wait_idle_returns_once_the_request_in_flight_is_answered(
        tos_server: TosServer, raw_client: tos.TosClientV2) -> None:
    gate, events = threading.Event(), []

    def body() -> Iterator[bytes]:  # sent chunked: the server reads it as it comes
        yield b"first half, "
        gate.wait()
        yield b"second half"

    def idle_then_state() -> tuple[bool, list[str]]:
        idle = tos_server.wait_idle(timeout=60)
        events.append("idle")
        return idle, tos_server.store.bucket(BUCKET).sorted_keys()

    assert tos_server.wait_idle(timeout=0)  # nothing sent yet
    with ThreadPoolExecutor(max_workers=2) as pool:
        upload = pool.submit(raw_client.put_object, BUCKET, "slow.txt", content=body())
        try:
            deadline = time.monotonic() + 60
            while tos_server.wait_idle(timeout=0):  # until the server reads the body
                assert not upload.done() and time.monotonic() < deadline
                time.sleep(0.01)
            waiter = pool.submit(idle_then_state)
            events.append("rest of the body sent")
        finally:
            gate.set()
        upload.result()
        idle, keys = waiter.result()

    assert events == ["rest of the body sent", "idle"]
    assert (idle, keys) == (True, ["slow.txt"])  # stored before wait_idle returned
    assert raw_client.get_object(BUCKET, "slow.txt").read() == b"first half, second half"


def test_parallel_clients(tos_storage: TosStorage, make_file: MakeFile) -> None:
    sources = {f"p/{number:03d}": make_file(size=50_000 + number) for number in range(64)}

    def round_trip(key: str) -> tuple[ObjectInfo, ObjectInfo | None, bytes]:
        info = tos_storage.put_file(key, sources[key])
        with tos_storage.open(key) as stream:
            return info, tos_storage.stat(key), stream.read()

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = dict(zip(sources, pool.map(round_trip, sources), strict=True))

    for key, (info, stat, data) in results.items():
        expected = ObjectInfo(key, sources[key].stat().st_size, file_crc64(sources[key]))
        assert info == stat == expected
        assert data == sources[key].read_bytes()
    assert len(list(tos_storage.list("p/"))) == 64


def test_objects_survive_a_restart(tmp_path: Path, make_file: MakeFile,
                                   make_tos_storage: TosFactory,
                                   tos_server: TosServer) -> None:
    source = make_file(b"persisted")
    make_tos_storage().put_file("keep/me.txt", source)
    tos_server.stop()

    with TosServer(tmp_path / "tos-root", access_key=ACCESS_KEY, secret_key=SECRET_KEY) as again:
        storage = make_tos_storage(proxy=("127.0.0.1", again.port))
        assert storage.stat("keep/me.txt") == ObjectInfo("keep/me.txt", 9, file_crc64(source))


# ---------------------------------------------------------------- listing


def list_all(client: tos.TosClientV2, **options: object) -> tuple[list[str], list[str], int]:
    """Keys and common prefixes over every page, plus the number of pages."""
    keys: list[str] = []
    prefixes: list[str] = []
    token, pages = None, 0
    while True:
        page = client.list_objects_type2(BUCKET, continuation_token=token, list_only_once=True,
                                         **options)
        pages += 1
        keys += [listed.key for listed in page.contents]
        prefixes += [common.prefix for common in page.common_prefixes]
        if not page.is_truncated:
            return keys, prefixes, pages
        token = page.next_continuation_token


def test_listing_with_a_delimiter_pages_over_common_prefixes(
        raw_client: tos.TosClientV2) -> None:
    for key in ["a/1", "a/2", "b/1", "b/2/x", "c", "d/x/y", "e"]:
        put(raw_client, key)

    assert list_all(raw_client, delimiter="/", max_keys=2) == (
        ["c", "e"], ["a/", "b/", "d/"], 3)
    assert list_all(raw_client, prefix="b/", delimiter="/", max_keys=1) == (
        ["b/1"], ["b/2/"], 2)
    assert list_all(raw_client, start_after="b/2/x", max_keys=1000) == (
        ["c", "d/x/y", "e"], [], 1)


def test_list_page_reports_truncation_only_when_more_remain() -> None:
    keys = ["a", "b", "c"]

    assert list_page(keys, "", "", "", 3).next_marker is None
    assert list_page(keys, "", "", "", 2).next_marker == "b"
    assert list_page(keys, "", "", "b", 2).keys == ["c"]


# ---------------------------------------------------------------- multipart


def upload_parts(client: tos.TosClientV2, key: str, sizes: list[int]) -> tuple[str, list]:
    upload_id = client.create_multipart_upload(BUCKET, key).upload_id
    parts = [
        UploadedPart(number, client.upload_part(BUCKET, key, upload_id, number,
                                                content=bytes([number]) * size).etag)
        for number, size in enumerate(sizes, start=1)
    ]
    return upload_id, parts


def test_multipart_parts_are_joined_in_part_number_order(raw_client: tos.TosClientV2) -> None:
    upload_id, parts = upload_parts(raw_client, "mp", [5 * MiB, 5 * MiB, 100])

    listed = raw_client.list_parts(BUCKET, "mp", upload_id).parts
    # The SDK's upload_file completes parts in finishing order; the server sorts them.
    done = raw_client.complete_multipart_upload(BUCKET, "mp", upload_id, parts=parts[::-1])
    data = raw_client.get_object(BUCKET, "mp").read()

    assert [(part.part_number, part.size) for part in listed] == [
        (1, 5 * MiB), (2, 5 * MiB), (3, 100)]
    assert data == b"\x01" * 5 * MiB + b"\x02" * 5 * MiB + b"\x03" * 100
    assert done.hash_crc64_ecma == crc64_update(data, 0)


def test_multipart_refuses_small_middle_parts(raw_client: tos.TosClientV2) -> None:
    upload_id, parts = upload_parts(raw_client, "mp", [100, 100])

    with pytest.raises(tos.exceptions.TosServerError) as caught:
        raw_client.complete_multipart_upload(BUCKET, "mp", upload_id, parts=parts)

    assert (caught.value.status_code, caught.value.code) == (400, "EntityTooSmall")


def test_multipart_refuses_a_wrong_etag(raw_client: tos.TosClientV2) -> None:
    upload_id, _ = upload_parts(raw_client, "mp", [100])

    with pytest.raises(tos.exceptions.TosServerError) as caught:
        raw_client.complete_multipart_upload(BUCKET, "mp", upload_id,
                                             parts=[UploadedPart(1, '"0000"')])

    assert (caught.value.status_code, caught.value.code) == (400, "InvalidPart")


def test_aborted_uploads_are_gone(raw_client: tos.TosClientV2) -> None:
    upload_id, _ = upload_parts(raw_client, "mp", [100])

    raw_client.abort_multipart_upload(BUCKET, "mp", upload_id)

    with pytest.raises(tos.exceptions.TosServerError) as caught:
        raw_client.list_parts(BUCKET, "mp", upload_id)
    assert (caught.value.status_code, caught.value.code) == (404, "NoSuchUpload")


# ---------------------------------------------------------------- signatures and buckets


def sdk_signed(method: str, key: str, params: dict[str, str], secret_key: str) -> TosRequest:
    """A request signed by the SDK's own signer, as the server would parse it."""
    headers = {"Content-Type": "text/plain", "x-tos-meta-who": "me",
               "x-tos-content-sha256": "UNSIGNED-PAYLOAD"}
    request = SdkRequest(method, "unused", "/" + key, f"{BUCKET}.fake", params=params,
                         headers=headers)
    Auth(ACCESS_KEY, secret_key, "cn-beijing").sign_request(request)
    message = Message()
    for name, value in request.headers.items():
        message[name] = value
    pairs = parse_qsl(urlencode(params), keep_blank_values=True)
    return TosRequest(method, BUCKET, key, dict(pairs), pairs, message)


def test_signatures_match_the_sdk_signer() -> None:
    params = {"uploadId": "u+1 x/=", "partNumber": "3", "uploads": ""}
    good = sdk_signed("PUT", "会议/a b#%+.txt", params, SECRET_KEY)
    bad = sdk_signed("PUT", "会议/a b#%+.txt", params, "another-secret")
    moved = TosRequest("PUT", BUCKET, "elsewhere.txt", good.query, good.query_pairs,
                       good.headers)

    verify_signature(good, {ACCESS_KEY: SECRET_KEY})
    for request in (bad, moved):
        with pytest.raises(TosError) as caught:
            verify_signature(request, {ACCESS_KEY: SECRET_KEY})
        assert (caught.value.status, caught.value.code) == (403, "SignatureDoesNotMatch")


def test_buckets_can_be_created(raw_client: tos.TosClientV2) -> None:
    raw_client.create_bucket("second-bucket")
    raw_client.head_bucket("second-bucket")

    with pytest.raises(tos.exceptions.TosServerError) as caught:
        raw_client.create_bucket("second-bucket")
    assert caught.value.status_code == 409


# ---------------------------------------------------------------- faults and CRC


def test_fault_draws_are_reproducible_and_respect_methods() -> None:
    first, second = Faults(error_rate=0.3, drop_rate=0.2, seed=4), Faults(
        error_rate=0.3, drop_rate=0.2, seed=4)
    draws = [first.draw("GET") for _ in range(1000)]
    writes_only = Faults(error_rate=1.0, methods=frozenset({"PUT"}))

    assert draws == [second.draw("GET") for _ in range(1000)]
    assert 150 < draws.count("drop") < 250
    assert 250 < draws.count("error") < 350
    assert (writes_only.draw("GET"), writes_only.draw("PUT")) == (None, "error")


def test_pure_python_crc64_matches_the_sdk() -> None:
    data = os.urandom(100_000)
    sdk = tos.utils.Crc64()
    sdk.update(data)

    assert crc64_update(b"123456789", 0) == 0x995DC9BBDF1939FA
    assert crc64_update(data, 0) == sdk.crc
    assert crc64_update(data[40_000:], crc64_update(data[:40_000], 0)) == sdk.crc


# ---------------------------------------------------------------- command line


def test_command_line_server(tmp_path: Path, make_file: MakeFile) -> None:
    repo_root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "devtools.tos_server", "--root", str(tmp_path / "cli"),
               "--port", "0", "--bucket", BUCKET]
    env = {**os.environ, "PYTHONPATH": str(repo_root), "STORAGE_ACCESS_KEY": ACCESS_KEY,
           "STORAGE_SECRET_KEY": SECRET_KEY}
    with subprocess.Popen(command, cwd=repo_root, env=env, stdout=subprocess.PIPE,
                          text=True) as process:
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            port = int(banner.split("http://127.0.0.1:")[1].split()[0])
            storage = TosStorage(bucket=BUCKET, endpoint="http://tos-cn-beijing.volces.com",
                                 region="cn-beijing", access_key=ACCESS_KEY,
                                 secret_key=SECRET_KEY, public_base_url="https://x",
                                 work_dir=tmp_path / "work", proxy=("127.0.0.1", port))
            storage.preflight()
            info = storage.put_file("cli.txt", make_file(b"via the CLI"))
        finally:
            process.terminate()
    assert info == ObjectInfo("cli.txt", 11, crc64_update(b"via the CLI", 0))
    assert banner.startswith("local TOS server listening on http://127.0.0.1:")
