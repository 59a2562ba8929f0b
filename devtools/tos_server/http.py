"""HTTP handling of the local TOS server: operations, dispatch, replies, the server.

The official ``tos`` SDK talks to it unchanged through its HTTP-proxy mode: give the client
an ``http://`` endpoint on any fake host (e.g. ``http://tos-cn-beijing.volces.com``) and
``proxy_host=127.0.0.1, proxy_port=<port>``. Requests then arrive in absolute form with
``Host: <bucket>.<fake host>``, so one server serves many buckets and the signature covers
the same Host as in production. Only what the SDK parses is answered: JSON bodies (never
XML), ``x-tos-hash-crc64ecma`` on writes and reads, ``x-tos-ec`` on errors.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import BinaryIO
from urllib.parse import quote

from devtools.tos_server.errors import TosError, invalid_argument, status_error
from devtools.tos_server.faults import FaultOutcome, Faults
from devtools.tos_server.request import COPY_CHUNK, RequestBody, TosRequest, parse_request
from devtools.tos_server.signature import verify_signature
from devtools.tos_server.store import (
    ObjectMeta,
    ObjectStore,
    decode_token,
    encode_token,
    list_page,
    receive_to_file,
)

log = logging.getLogger("devtools.tos_server")

MAX_KEYS = 1000
CRC_HEADER = "x-tos-hash-crc64ecma"
META_PREFIX = "x-tos-meta-"
OWNER = {"ID": "local-tos", "DisplayName": "local-tos"}


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: BinaryIO | None = None  # sent after the headers, ``length`` bytes of it
    length: int = 0


def json_reply(status: int, data: object, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"Content-Type": "application/json", **(headers or {})},
                 json.dumps(data).encode())


def error_reply(error: TosError, request_id: str, resource: str) -> Reply:
    headers = {"x-tos-ec": error.ec} if error.ec else {}
    return json_reply(error.status, {
        "Code": error.code, "Message": error.message, "EC": error.ec,
        "RequestId": request_id, "HostId": "local-tos", "Resource": resource,
    }, headers)


def _http_date(epoch: float) -> str:
    return formatdate(epoch, usegmt=True)


def _iso_date(epoch: float) -> str:
    # The SDK parses list dates with a fraction: "2024-01-02T03:04:05.000Z".
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _user_meta(headers: Message) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()
            if name.lower().startswith(META_PREFIX)}


def _content_type(headers: Message) -> str:
    return headers.get("Content-Type") or "application/octet-stream"


def _object_headers(meta: ObjectMeta) -> dict[str, str]:
    return {
        "Content-Type": meta.content_type,
        "ETag": f'"{meta.etag}"',
        "Last-Modified": _http_date(meta.last_modified),
        CRC_HEADER: str(meta.crc64),
        "x-tos-storage-class": "STANDARD",
        "Accept-Ranges": "bytes",
        **meta.user_meta,
    }


def parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """An inclusive (start, end) for a ``Range: bytes=...`` header, None for a full read."""
    if not value:
        return None
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", value.strip())
    if not match or not (match[1] or match[2]):
        raise TosError(416, "InvalidRange", f"Unsupported range {value!r}.")
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    else:  # suffix range: the last N bytes
        start, end = max(size - int(match[2]), 0), size - 1
    if start > end or start >= size:
        raise TosError(416, "InvalidRange", "The requested range is not satisfiable.")
    return start, end


Handler = Callable[[ObjectStore, TosRequest, RequestBody], Reply]


def create_bucket(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    store.create_bucket(request.bucket)
    return Reply(200, {"Location": f"/{request.bucket}"})


def head_bucket(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    store.bucket(request.bucket)
    return Reply(200, {"x-tos-storage-class": "STANDARD"})


def list_objects_v2(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    bucket = store.bucket(request.bucket)
    query = request.query
    prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
    max_keys_text = query.get("max-keys", str(MAX_KEYS))
    if not max_keys_text.isdigit():
        raise invalid_argument("max-keys must be a non-negative integer.")
    max_keys = min(int(max_keys_text), MAX_KEYS)
    token = query.get("continuation-token")
    marker = decode_token(token) if token else query.get("start-after", "")
    page = list_page(bucket.sorted_keys(), prefix, delimiter, marker, max_keys)
    result: dict[str, object] = {
        "Name": bucket.name, "Prefix": prefix, "MaxKeys": max_keys, "Delimiter": delimiter,
        "KeyCount": len(page.keys) + len(page.common_prefixes),
        "IsTruncated": page.next_marker is not None,
        "CommonPrefixes": [{"Prefix": common} for common in page.common_prefixes],
        "Contents": [_listed(meta) for meta in bucket.metas(page.keys)],
    }
    if token:
        result["ContinuationToken"] = token
    if page.next_marker is not None:
        result["NextContinuationToken"] = encode_token(page.next_marker)
    return json_reply(200, result)


def _listed(meta: ObjectMeta) -> dict[str, object]:
    return {
        "Key": meta.key, "LastModified": _iso_date(meta.last_modified),
        "ETag": f'"{meta.etag}"', "Size": meta.size, "StorageClass": "STANDARD",
        "HashCrc64ecma": str(meta.crc64), "Type": "Normal", "Owner": OWNER,
    }


def put_object(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    bucket = store.bucket(request.bucket)
    received = receive_to_file(body.chunks(), bucket.incoming)
    meta = bucket.install(request.key, received, _content_type(request.headers),
                          _user_meta(request.headers))
    return Reply(200, {"ETag": f'"{meta.etag}"', CRC_HEADER: str(meta.crc64)})


def head_object(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    meta = store.bucket(request.bucket).lookup(request.key)
    return Reply(200, {**_object_headers(meta), "Content-Length": str(meta.size)})


def get_object(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    meta, stream = store.bucket(request.bucket).open(request.key)
    try:
        byte_range = parse_range(request.headers.get("Range"), meta.size)
    except TosError:
        stream.close()
        raise
    headers = _object_headers(meta)
    if byte_range is None:
        return Reply(200, headers, stream=stream, length=meta.size)
    start, end = byte_range
    stream.seek(start)
    headers["Content-Range"] = f"bytes {start}-{end}/{meta.size}"
    return Reply(206, headers, stream=stream, length=end - start + 1)


def delete_object(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    store.bucket(request.bucket).delete(request.key)
    return Reply(204)


def create_multipart_upload(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    upload = store.bucket(request.bucket).create_upload(
        request.key, _content_type(request.headers), _user_meta(request.headers)
    )
    return json_reply(200, {"Bucket": request.bucket, "Key": request.key,
                            "UploadId": upload.upload_id})


def upload_part(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    bucket = store.bucket(request.bucket)
    upload = bucket.upload(request.query["uploadId"], request.key)
    number_text = request.query.get("partNumber", "")
    if not number_text.isdigit() or not 1 <= int(number_text) <= 10000:
        raise invalid_argument("partNumber must be an integer in [1, 10000].")
    received = receive_to_file(body.chunks(), bucket.incoming)
    part = bucket.add_part(upload, int(number_text), received)
    return Reply(200, {"ETag": f'"{part.etag}"', CRC_HEADER: str(part.crc64)})


def complete_multipart_upload(store: ObjectStore, request: TosRequest,
                              body: RequestBody) -> Reply:
    bucket = store.bucket(request.bucket)
    upload = bucket.upload(request.query["uploadId"], request.key)
    try:
        listed = json.loads(body.read_all())["Parts"]
        requested = [(int(part["PartNumber"]), str(part["ETag"])) for part in listed]
    except (ValueError, KeyError, TypeError):
        raise invalid_argument("The body must be {\"Parts\": [{PartNumber, ETag}, ...]}.") from None
    meta = bucket.complete(upload, requested)
    return json_reply(
        200,
        {"Bucket": request.bucket, "Key": request.key, "ETag": f'"{meta.etag}"',
         "Location": f"/{request.bucket}/{quote(request.key, safe='/~')}"},
        {CRC_HEADER: str(meta.crc64)},
    )


def abort_multipart_upload(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    bucket = store.bucket(request.bucket)
    bucket.abort(bucket.upload(request.query["uploadId"], request.key))
    return Reply(204)


def list_parts(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    # All parts on one page: an upload here never comes near the 1000-part page size.
    upload = store.bucket(request.bucket).upload(request.query["uploadId"], request.key)
    parts = [upload.parts[number] for number in sorted(upload.parts)]
    return json_reply(200, {
        "Bucket": request.bucket, "Key": request.key, "UploadId": upload.upload_id,
        "PartNumberMarker": 0, "NextPartNumberMarker": parts[-1].number if parts else 0,
        "MaxParts": MAX_KEYS, "IsTruncated": False, "StorageClass": "STANDARD",
        "Parts": [{"PartNumber": part.number, "LastModified": _iso_date(part.last_modified),
                   "ETag": f'"{part.etag}"', "Size": part.size,
                   "HashCrc64ecma": str(part.crc64)} for part in parts],
    })


def route(request: TosRequest) -> Handler:
    """Pick the handler for a request from its method, key and query parameters."""
    query = request.query
    if not request.key:
        bucket_calls: dict[str, Handler] = {"PUT": create_bucket, "HEAD": head_bucket}
        if request.method == "GET" and query.get("list-type") == "2":
            return list_objects_v2
        handler = bucket_calls.get(request.method)
    elif "uploadId" in query:
        handler = {
            "PUT": upload_part, "POST": complete_multipart_upload,
            "DELETE": abort_multipart_upload, "GET": list_parts,
        }.get(request.method)
    elif "uploads" in query:
        handler = create_multipart_upload if request.method == "POST" else None
    else:
        handler = {
            "PUT": put_object, "HEAD": head_object, "GET": get_object, "DELETE": delete_object,
        }.get(request.method)
    if handler is None:
        raise TosError(501, "NotImplemented", "This call is not implemented by the local server.")
    return handler



class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    # A reply's headers and body are two writes; with Nagle's algorithm the body would wait
    # for the client's (delayed) ACK of the headers.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_CONNECT(self) -> None:
        # The SDK only proxies http:// endpoints; a tunnel would bypass the fake TOS host.
        self.close_connection = True
        self._send(error_reply(TosError(405, "MethodNotAllowed", "CONNECT is refused."),
                   uuid.uuid4().hex, self.path))

    def do_GET(self) -> None:
        self._dispatch()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def _dispatch(self) -> None:
        faults = self.server.owner.faults
        if faults.latency > 0:
            time.sleep(faults.latency)
        outcome = faults.draw(self.command)
        if outcome == "drop":
            self.close_connection = True  # the socket closes with no answer at all
            return
        try:
            self._serve(faults, outcome)
        except OSError:  # the client went away (reset, broken pipe, closed mid-body)
            self.close_connection = True

    def _serve(self, faults: Faults, outcome: FaultOutcome) -> None:
        request_id = uuid.uuid4().hex
        try:
            body = RequestBody(self.rfile, self.headers)
        except TosError as error:  # unusable framing: answer, then drop the connection
            self.close_connection = True
            self._send(error_reply(error, request_id, self.path))
            return
        reply = self._answer(self.server.owner, body, request_id, outcome)
        body.drain()  # a keep-alive connection must not see leftover body as a request
        if faults.corrupt_crc and CRC_HEADER in reply.headers:
            reply.headers[CRC_HEADER] = str(int(reply.headers[CRC_HEADER]) ^ 1)
        reply.headers["x-tos-request-id"] = request_id
        self._send(reply)

    def _answer(self, owner: TosServer, body: RequestBody, request_id: str,
                outcome: FaultOutcome) -> Reply:
        try:
            if outcome == "error":
                raise status_error(owner.faults.error_status)
            request = parse_request(self.command, self.path, self.headers)
            verify_signature(request, owner.credentials)
            return route(request)(owner.store, request, body)
        except TosError as error:
            return error_reply(error, request_id, self.path)
        except ConnectionError:
            raise  # the client went away mid-body; nothing to answer
        except Exception:
            log.exception("local TOS server failed on %s %s", self.command, self.path)
            return error_reply(TosError(500, "InternalError", "Internal error."), request_id,
                               self.path)

    def _send(self, reply: Reply) -> None:
        head_only = self.command == "HEAD"
        if head_only and reply.status >= 300:
            reply.body = b""  # a HEAD error advertising a body breaks the SDK's parser
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if "Content-Length" not in reply.headers:
            length = reply.length if reply.stream else len(reply.body)
            self.send_header("Content-Length", str(length))
        self.end_headers()
        try:
            if not head_only:
                self.wfile.write(reply.body)
                if reply.stream:
                    self._copy_stream(reply.stream, reply.length)
        finally:
            if reply.stream:
                reply.stream.close()

    def _copy_stream(self, stream: BinaryIO, length: int) -> None:
        while length > 0:
            chunk = stream.read(min(length, COPY_CHUNK))
            if not chunk:
                break
            self.wfile.write(chunk)
            length -= len(chunk)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many parallel clients connect at once

    def __init__(self, address: tuple[str, int], owner: TosServer) -> None:
        self.owner = owner
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:  # type: ignore[no-untyped-def]
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End idle keep-alive connections, whose threads would otherwise outlive stop()."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)


class TosServer:
    """The local TOS server, for use from Python.

    ``with TosServer(root, access_key="AK", secret_key="SK", buckets=["b"]) as server:``
    listens on ``server.port`` (port 0 picks a free one). ``server.faults`` can be changed
    at any time; the next request sees the change.
    """

    def __init__(self, root: Path, *, access_key: str, secret_key: str,
                 buckets: Iterable[str] = (), host: str = "127.0.0.1", port: int = 0,
                 faults: Faults | None = None) -> None:
        self.store = ObjectStore(root)
        for name in buckets:
            self.store.ensure_bucket(name)
        self.credentials = {access_key: secret_key}
        self.faults = faults or Faults()
        self._address = (host, port)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self._address[0]}:{self.port}"

    def start(self) -> TosServer:
        """Start serving in a background thread; returns once the socket listens."""
        self._httpd = _HTTPServer(self._address, self)
        # A short poll interval keeps stop() quick (the default waits up to 0.5 s).
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        name=f"tos-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None or self._thread is None:
            return
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> TosServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


