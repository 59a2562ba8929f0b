"""A local TOS server for tests and demos, built on the standard library alone.

The official ``tos`` SDK talks to it unchanged through its HTTP-proxy mode: give the client
an ``http://`` endpoint on any fake host (e.g. ``http://tos-cn-beijing.volces.com``) and
``proxy_host=127.0.0.1, proxy_port=<port>``. Requests then arrive in absolute form with
``Host: <bucket>.<fake host>``, so one server serves many buckets and the signature covers
the same Host as in production. Only what the SDK parses is answered: JSON bodies (never
XML), ``x-tos-hash-crc64ecma`` on writes and reads, ``x-tos-ec`` on errors.

Objects live on disk under ``<root>/<bucket>/objects`` (data + a JSON side file per key,
named by the key's SHA-256 so that any key maps to a safe file name). Request bodies are
streamed to a temporary file while their CRC-64 and MD5 are computed, so large objects
never sit in memory.

Faults (latency, error answers, dropped connections, a corrupted CRC header) are set at
start and can be changed at runtime through ``TosServer.faults``.

Command line::

    python -m storage.tos_server --root DIR --port 9000 --access-key AK --secret-key SK
        [--bucket NAME ...] [--latency-ms 20] [--error-rate 0.1] [--drop-rate 0.1]
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import os
import random
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from storage.crc64 import crc64_combine, crc64_update

log = logging.getLogger(__name__)

MIN_PART_SIZE = 5 * 1024 * 1024  # TOS refuses smaller parts except the last one
MAX_KEYS = 1000
MAX_JSON_BODY = 10 * 1024 * 1024
COPY_CHUNK = 1024 * 1024
CRC_HEADER = "x-tos-hash-crc64ecma"
META_PREFIX = "x-tos-meta-"
OWNER = {"ID": "local-tos", "DisplayName": "local-tos"}
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


# --------------------------------------------------------------------------- errors


class TosError(Exception):
    """An error answer: HTTP status plus the TOS error code and, where TOS has one, its EC."""

    def __init__(self, status: int, code: str, message: str, ec: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.ec = ec


def no_such_bucket() -> TosError:
    return TosError(404, "NoSuchBucket", "The specified bucket does not exist.", "0006-00000001")


def no_such_key() -> TosError:
    return TosError(404, "NoSuchKey", "The specified key does not exist.", "0017-00000003")


def no_such_upload() -> TosError:
    return TosError(404, "NoSuchUpload", "The specified multipart upload does not exist.")


def invalid_argument(message: str) -> TosError:
    return TosError(400, "InvalidArgument", message)


def status_error(status: int) -> TosError:
    """A generic error for an HTTP status, e.g. 503 -> ServiceUnavailable (fault injection)."""
    phrase = HTTPStatus(status).phrase
    return TosError(status, phrase.replace(" ", ""), f"{phrase} (injected fault)")


# --------------------------------------------------------------------------- faults

FaultOutcome = Literal["drop", "error"] | None


@dataclass
class Faults:
    """Misbehaviour to inject; assign fields (or a new Faults) at runtime to change it.

    ``error_rate`` and ``drop_rate`` are shares of requests in [0, 1]; a seeded random
    draw per request keeps a sequential test reproducible.
    """

    latency: float = 0.0  # seconds slept before answering each request
    error_rate: float = 0.0  # share of requests answered with error_status
    error_status: int = 503
    drop_rate: float = 0.0  # share of requests whose connection is closed without answer
    corrupt_crc: bool = False  # answer a wrong x-tos-hash-crc64ecma everywhere
    methods: frozenset[str] = frozenset()  # HTTP methods errors and drops hit; empty: all
    seed: int = 0
    drops: int = field(default=0, init=False)  # how many were injected, for tests to check
    errors: int = field(default=0, init=False)
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _lock: threading.Lock = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw(self, method: str) -> FaultOutcome:
        if self.methods and method not in self.methods:
            return None
        with self._lock:
            roll = self._rng.random()
            if roll < self.drop_rate:
                self.drops += 1
                return "drop"
            if roll < self.drop_rate + self.error_rate:
                self.errors += 1
                return "error"
        return None


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class TosRequest:
    method: str
    bucket: str
    key: str  # unquoted; "" for bucket-level calls
    query: dict[str, str]
    query_pairs: list[tuple[str, str]]  # as sent, for the canonical request
    headers: Message


def parse_request(method: str, target: str, headers: Message) -> TosRequest:
    """Split a request line target (absolute form via the proxy, or origin form)."""
    parts = urlsplit(target)
    host = headers.get("Host") or parts.netloc
    bucket = host.split(":", 1)[0].split(".", 1)[0]
    if not BUCKET_NAME.fullmatch(bucket):
        raise TosError(400, "InvalidBucketName", f"Invalid bucket name in Host {host!r}.")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    return TosRequest(method, bucket, unquote(parts.path[1:]), dict(pairs), pairs, headers)


class RequestBody:
    """The request body as a stream of chunks, whatever its framing.

    Chunked bodies (the SDK sends generators and empty parts that way) are decoded here.
    ``drain`` consumes what a handler left, so that a keep-alive connection stays in step.
    """

    def __init__(self, rfile: BinaryIO, headers: Message) -> None:
        self._rfile = rfile
        self._chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        length = headers.get("Content-Length") or "0"
        if not self._chunked and not length.isdigit():
            raise TosError(400, "InvalidArgument", "Bad Content-Length.")
        self._remaining = 0 if self._chunked else int(length)  # of the body, or current chunk
        self._in_chunk = False
        self._done = False

    def chunks(self) -> Iterator[bytes]:
        read = self._chunked_pieces if self._chunked else self._sized_pieces
        yield from read()
        self._done = True

    def read_all(self, limit: int = MAX_JSON_BODY) -> bytes:
        data = bytearray()
        for chunk in self.chunks():
            data += chunk
            if len(data) > limit:
                raise TosError(400, "EntityTooLarge", "Request body too large.")
        return bytes(data)

    def drain(self) -> None:
        if not self._done:
            for _ in self.chunks():
                pass

    def _sized_pieces(self) -> Iterator[bytes]:
        while self._remaining > 0:
            chunk = self._rfile.read(min(self._remaining, COPY_CHUNK))
            if not chunk:
                raise ConnectionError("client closed the connection mid-body")
            self._remaining -= len(chunk)
            yield chunk

    def _chunked_pieces(self) -> Iterator[bytes]:
        # Written to resume where an abandoned reader stopped, so that drain() works too.
        while True:
            if self._remaining == 0:
                if self._in_chunk:
                    self._rfile.readline(8)  # the CRLF closing the previous chunk
                    self._in_chunk = False
                size = self._read_chunk_size()
                if size == 0:
                    while self._rfile.readline(1024).strip():  # optional trailer headers
                        pass
                    return
                self._remaining, self._in_chunk = size, True
            yield from self._sized_pieces()

    def _read_chunk_size(self) -> int:
        size_line = self._rfile.readline(1024).split(b";", 1)[0].strip()
        try:
            return int(size_line, 16)
        except ValueError:
            raise ConnectionError(f"bad chunk size line {size_line!r}") from None


# --------------------------------------------------------------------------- signature


@dataclass(frozen=True)
class Authorization:
    access_key: str
    date: str  # YYYYMMDD
    region: str
    signed_headers: list[str]
    signature: str


AUTH_PATTERN = re.compile(
    r"TOS4-HMAC-SHA256 Credential=(?P<ak>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/tos/request,"
    r"\s*SignedHeaders=(?P<headers>[^,]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)


def parse_authorization(value: str | None) -> Authorization:
    match = AUTH_PATTERN.fullmatch((value or "").strip())
    if not match:
        raise TosError(403, "AccessDenied", "Missing or malformed Authorization header.")
    return Authorization(
        match["ak"], match["date"], match["region"], match["headers"].split(";"),
        match["signature"],
    )


def canonical_request(request: TosRequest, signed_headers: list[str]) -> str:
    """The SDK's canonical request (auth.py ``_canonical_request``), rebuilt server side."""
    query = "&".join(
        f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}"
        for name, value in sorted(request.query_pairs)
    )
    header_lines = "".join(f"{name}:{request.headers.get(name, '')}\n" for name in signed_headers)
    return "\n".join([
        request.method,
        quote("/" + request.key, safe="/~"),
        query,
        header_lines,
        ";".join(signed_headers),
        request.headers.get("x-tos-content-sha256", "UNSIGNED-PAYLOAD"),
    ])


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def compute_signature(secret_key: str, auth: Authorization, request: TosRequest) -> str:
    request_date = request.headers.get("x-tos-date", "")
    scope = f"{auth.date}/{auth.region}/tos/request"
    digest = hashlib.sha256(canonical_request(request, auth.signed_headers).encode()).hexdigest()
    string_to_sign = "\n".join(["TOS4-HMAC-SHA256", request_date, scope, digest])
    key = secret_key.encode()
    for part in (auth.date, auth.region, "tos", "request"):
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def verify_signature(request: TosRequest, credentials: Mapping[str, str]) -> None:
    auth = parse_authorization(request.headers.get("Authorization"))
    secret_key = credentials.get(auth.access_key)
    if secret_key is None:
        raise TosError(403, "InvalidAccessKeyId", "The access key ID does not exist.")
    expected = compute_signature(secret_key, auth, request)
    if not hmac.compare_digest(expected, auth.signature):
        raise TosError(
            403, "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )


# --------------------------------------------------------------------------- storage


@dataclass(frozen=True)
class Received:
    """A body stored in a temporary file, with the CRC-64 and ETag (MD5 for a plain body)
    TOS answers for it."""

    path: Path
    size: int
    crc64: int
    etag: str


def receive_to_file(chunks: Iterable[bytes], directory: Path) -> Received:
    """Stream chunks to a new file in directory, computing CRC-64 and MD5 on the way."""
    fd, name = tempfile.mkstemp(dir=directory, suffix=".tmp")
    path = Path(name)
    crc, md5, size = 0, hashlib.md5(), 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                crc = crc64_update(chunk, crc)
                md5.update(chunk)
                size += len(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Received(path, size, crc, md5.hexdigest())


def join_files(sources: Iterable[Path], directory: Path) -> Path:
    """The sources one after another in a new file in directory; no checksum is computed
    (the parts' CRCs combine into the whole's), so this is a plain copy."""
    fd, name = tempfile.mkstemp(dir=directory, suffix=".tmp")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                with source.open("rb") as stream:
                    shutil.copyfileobj(stream, out, COPY_CHUNK)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


@dataclass
class ObjectMeta:
    key: str
    size: int
    crc64: int
    etag: str  # without quotes
    content_type: str
    last_modified: float  # epoch seconds
    user_meta: dict[str, str]


@dataclass
class Part:
    number: int
    size: int
    crc64: int
    etag: str
    last_modified: float


@dataclass
class Upload:
    upload_id: str
    key: str
    content_type: str
    user_meta: dict[str, str]
    folder: Path
    parts: dict[int, Part] = field(default_factory=dict)


class Bucket:
    """One bucket's objects and multipart uploads, on disk under ``folder``."""

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self._objects_dir = folder / "objects"
        self._uploads_dir = folder / "uploads"
        self.incoming = folder / "incoming"  # temp files; same file system for os.replace
        # Multipart uploads are kept in memory only: one left over from a previous run is gone.
        shutil.rmtree(self._uploads_dir, ignore_errors=True)
        shutil.rmtree(self.incoming, ignore_errors=True)
        for directory in (self._objects_dir, self._uploads_dir, self.incoming):
            directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._objects = self._load_objects()
        self._uploads: dict[str, Upload] = {}

    def _load_objects(self) -> dict[str, ObjectMeta]:
        objects = {}
        for meta_file in self._objects_dir.glob("*.json"):
            meta = ObjectMeta(**json.loads(meta_file.read_text()))
            if self._data_path(meta.key).exists():
                objects[meta.key] = meta
        return objects

    def _data_path(self, key: str) -> Path:
        return self._objects_dir / (hashlib.sha256(key.encode()).hexdigest() + ".data")

    # objects

    def install(self, key: str, body: Received, content_type: str,
                user_meta: dict[str, str]) -> ObjectMeta:
        """Make a received body the object at key (replacing any previous one)."""
        meta = ObjectMeta(key, body.size, body.crc64, body.etag, content_type, time.time(),
                          user_meta)
        data_path = self._data_path(key)
        meta_tmp = self.incoming / f"{uuid.uuid4().hex}.json"
        meta_tmp.write_text(json.dumps(asdict(meta)))
        with self._lock:
            os.replace(body.path, data_path)
            os.replace(meta_tmp, data_path.with_suffix(".json"))
            self._objects[key] = meta
        return meta

    def lookup(self, key: str) -> ObjectMeta:
        with self._lock:
            meta = self._objects.get(key)
        if meta is None:
            raise no_such_key()
        return meta

    def open(self, key: str) -> tuple[ObjectMeta, BinaryIO]:
        # Under the lock, so that the metadata and the data file belong to the same write.
        with self._lock:
            meta = self._objects.get(key)
            if meta is None:
                raise no_such_key()
            return meta, self._data_path(key).open("rb")

    def delete(self, key: str) -> None:
        with self._lock:
            if self._objects.pop(key, None) is None:
                return
            data_path = self._data_path(key)
            data_path.unlink(missing_ok=True)
            data_path.with_suffix(".json").unlink(missing_ok=True)

    def sorted_keys(self) -> list[str]:
        with self._lock:
            return sorted(self._objects)

    def metas(self, keys: Iterable[str]) -> list[ObjectMeta]:
        with self._lock:
            return [self._objects[key] for key in keys if key in self._objects]

    # multipart uploads

    def create_upload(self, key: str, content_type: str, user_meta: dict[str, str]) -> Upload:
        upload_id = uuid.uuid4().hex
        folder = self._uploads_dir / upload_id
        folder.mkdir()
        upload = Upload(upload_id, key, content_type, user_meta, folder)
        with self._lock:
            self._uploads[upload_id] = upload
        return upload

    def upload(self, upload_id: str, key: str) -> Upload:
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None or upload.key != key:
            raise no_such_upload()
        return upload

    def add_part(self, upload: Upload, number: int, body: Received) -> Part:
        part = Part(number, body.size, body.crc64, body.etag, time.time())
        with self._lock:
            if upload.upload_id not in self._uploads:  # aborted meanwhile
                body.path.unlink(missing_ok=True)
                raise no_such_upload()
            os.replace(body.path, upload.folder / f"{number}.part")
            upload.parts[number] = part
        return part

    def complete(self, upload: Upload, requested: list[tuple[int, str]]) -> ObjectMeta:
        parts = _check_completion(upload, requested)
        joined = join_files((upload.folder / f"{part.number}.part" for part in parts),
                            self.incoming)
        crc = 0
        for part in parts:
            crc = crc64_combine(crc, part.crc64, part.size)
        # Multipart ETags are the MD5 of the parts' MD5s plus the part count, as in S3/TOS.
        digests = b"".join(bytes.fromhex(part.etag) for part in parts)
        etag = f"{hashlib.md5(digests).hexdigest()}-{len(parts)}"
        body = Received(joined, sum(part.size for part in parts), crc, etag)
        meta = self.install(upload.key, body, upload.content_type, upload.user_meta)
        self.abort(upload)
        return meta

    def abort(self, upload: Upload) -> None:
        with self._lock:
            self._uploads.pop(upload.upload_id, None)
        shutil.rmtree(upload.folder, ignore_errors=True)


def _check_completion(upload: Upload, requested: list[tuple[int, str]]) -> list[Part]:
    """The parts to join, in part-number order; the SDK sends them in completion order."""
    if not requested:
        raise invalid_argument("You must specify at least one part.")
    parts = []
    for number, etag in sorted(requested):
        part = upload.parts.get(number)
        if part is None or part.etag != etag.strip('"'):
            raise TosError(400, "InvalidPart", f"Part {number} was not uploaded or its ETag "
                           "does not match.")
        parts.append(part)
    if len({part.number for part in parts}) != len(parts):
        raise TosError(400, "InvalidPartOrder", "Part numbers must be unique.")
    for part in parts[:-1]:
        if part.size < MIN_PART_SIZE:
            raise TosError(400, "EntityTooSmall", f"Part {part.number} is smaller than 5 MiB.")
    return parts


class ObjectStore:
    """All buckets under a root folder (one sub-folder per bucket)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._buckets = {
            folder.name: Bucket(folder.name, folder)
            for folder in root.iterdir()
            if folder.is_dir() and BUCKET_NAME.fullmatch(folder.name)
        }

    def create_bucket(self, name: str) -> None:
        with self._lock:
            if name in self._buckets:
                raise TosError(409, "BucketAlreadyOwnedByYou", "The bucket already exists.")
            self._buckets[name] = Bucket(name, self.root / name)

    def ensure_bucket(self, name: str) -> None:
        with self._lock:
            if name not in self._buckets:
                self._buckets[name] = Bucket(name, self.root / name)

    def bucket(self, name: str) -> Bucket:
        with self._lock:
            bucket = self._buckets.get(name)
        if bucket is None:
            raise no_such_bucket()
        return bucket


# --------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class ListPage:
    keys: list[str]
    common_prefixes: list[str]
    next_marker: str | None  # the last entry returned when the listing is truncated


def list_page(sorted_keys: list[str], prefix: str, delimiter: str, marker: str,
              max_keys: int) -> ListPage:
    """One page of a ListObjectsV2 listing; ``marker`` is the last entry already returned.

    A common prefix counts as one entry. Keys rolled into a common prefix that is at or
    before the marker were already returned as that prefix, so they are skipped.
    """
    start = bisect_right(sorted_keys, marker) if marker else bisect_left(sorted_keys, prefix)
    keys: list[str] = []
    prefixes: list[str] = []
    last = ""
    for key in sorted_keys[start:]:
        if not key.startswith(prefix):
            if key > prefix:
                break  # sorted: past every key with this prefix
            continue
        common = _common_prefix(key, prefix, delimiter)
        if common is not None and (common <= marker or (prefixes and prefixes[-1] == common)):
            continue
        if len(keys) + len(prefixes) == max_keys:
            return ListPage(keys, prefixes, last)
        if common is None:
            keys.append(key)
            last = key
        else:
            prefixes.append(common)
            last = common
    return ListPage(keys, prefixes, None)


def _common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    if not delimiter:
        return None
    position = key.find(delimiter, len(prefix))
    return None if position < 0 else key[: position + len(delimiter)]


def encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(marker.encode()).decode()


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise invalid_argument("The continuation token is not valid.") from None


# --------------------------------------------------------------------------- handlers


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


# --------------------------------------------------------------------------- HTTP layer


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


# --------------------------------------------------------------------------- command line


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m storage.tos_server",
        description="Local TOS server; point the SDK at it with proxy_host/proxy_port.",
    )
    parser.add_argument("--root", type=Path, required=True, help="folder holding the buckets")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    parser.add_argument("--access-key", default=os.environ.get("STORAGE_ACCESS_KEY"),
                        help="default: $STORAGE_ACCESS_KEY")
    parser.add_argument("--secret-key", default=os.environ.get("STORAGE_SECRET_KEY"),
                        help="default: $STORAGE_SECRET_KEY (keeps it out of the process list)")
    parser.add_argument("--bucket", action="append", default=[], help="create if missing")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--error-rate", type=_rate, default=0.0)
    parser.add_argument("--error-status", type=int, default=503)
    parser.add_argument("--drop-rate", type=_rate, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    if not args.access_key or not args.secret_key:
        parser.error("--access-key and --secret-key (or STORAGE_ACCESS_KEY and "
                     "STORAGE_SECRET_KEY) are required")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(message)s")
    faults = Faults(latency=args.latency_ms / 1000, error_rate=args.error_rate,
                    error_status=args.error_status, drop_rate=args.drop_rate, seed=args.seed)
    server = TosServer(args.root, access_key=args.access_key, secret_key=args.secret_key,
                       buckets=args.bucket, host=args.host, port=args.port, faults=faults)
    server.start()
    print(f"local TOS server listening on {server.url} (root {args.root}); use it as the "
          "SDK's HTTP proxy with an http:// endpoint", flush=True)
    try:
        threading.Event().wait()  # serve until Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
