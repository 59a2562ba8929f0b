"""The operations the local TOS server implements, and the choice of one for a request.

The operation is decided from the method, the key, the sub-resource query parameters and
the headers that change a call's meaning (``x-tos-copy-source``). Anything else is
refused with ``501 NotImplemented``: a call the server does not know is never read as
another one.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.utils import formatdate
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from devtools.tos_server.errors import TosError, invalid_argument
from devtools.tos_server.request import RequestBody, TosRequest
from devtools.tos_server.signature import PRESIGN_PARAMS
from devtools.tos_server.store import (
    ObjectMeta,
    ObjectSettings,
    ObjectStore,
    Received,
    Upload,
    common_prefix,
    decode_token,
    encode_token,
    list_page,
    receive_to_file,
)

MAX_KEYS = 1000
CRC_HEADER = "x-tos-hash-crc64ecma"
META_PREFIX = "x-tos-meta-"
OWNER = {"ID": "local-tos", "DisplayName": "local-tos"}
CANNED_ACLS = frozenset({"private", "public-read", "public-read-write", "authenticated-read",
                         "bucket-owner-read", "bucket-owner-full-control",
                         "bucket-owner-entrusted"})
PUBLIC_READ_ACLS = frozenset({"public-read", "public-read-write"})
# Kept with the object and answered on HEAD and GET, as TOS does.
STORED_HEADERS = ("Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language",
                  "Expires", "x-tos-storage-class", "x-tos-server-side-encryption",
                  "x-tos-website-redirect-location")
STORAGE_CLASSES = frozenset({"STANDARD", "IA", "ARCHIVE_FR", "INTELLIGENT_TIERING",
                             "COLD_ARCHIVE", "ARCHIVE", "DEEP_COLD_ARCHIVE"})


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


def not_implemented() -> TosError:
    return TosError(501, "NotImplemented", "This call is not implemented by the local server.")


def _http_date(epoch: float) -> str:
    return formatdate(epoch, usegmt=True)


def _iso_date(epoch: float) -> str:
    # The SDK parses list dates with a fraction: "2024-01-02T03:04:05.000Z".
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# ---------------------------------------------------------------- what a writer sends


def _acl(headers: Message) -> str:
    acl = headers.get("x-tos-acl", "private")
    if acl not in CANNED_ACLS:
        raise invalid_argument(f"Unknown x-tos-acl {acl!r}.")
    return acl


def _object_settings(headers: Message) -> ObjectSettings:
    expires_days = headers.get("x-tos-object-expires", "0")
    if not expires_days.isdigit():
        raise invalid_argument("x-tos-object-expires must be a number of days.")
    storage_class = headers.get("x-tos-storage-class")
    if storage_class is not None and storage_class not in STORAGE_CLASSES:
        raise invalid_argument(f"Unknown x-tos-storage-class {storage_class!r}.")
    return ObjectSettings(
        content_type=headers.get("Content-Type") or "application/octet-stream",
        user_meta={name.lower(): value for name, value in headers.items()
                   if name.lower().startswith(META_PREFIX)},
        attributes={name: headers[name] for name in STORED_HEADERS if name in headers},
        acl=_acl(headers),
        expires_days=int(expires_days),
    )


def _receive(request: TosRequest, body: RequestBody, directory: Path) -> Received:
    """The body, checked against the Content-MD5 and x-tos-content-sha256 it declares."""
    declared_sha256 = request.headers.get("x-tos-content-sha256", "UNSIGNED-PAYLOAD")
    checks_sha256 = declared_sha256 != "UNSIGNED-PAYLOAD"
    received = receive_to_file(body.chunks(), directory, with_sha256=checks_sha256)
    try:
        _check_md5(request.headers.get("Content-MD5"), received)
        if checks_sha256 and received.sha256 != declared_sha256.lower():
            raise TosError(400, "ContentSHA256Mismatch",
                           "The x-tos-content-sha256 does not match the body.")
    except TosError:
        received.path.unlink(missing_ok=True)
        raise
    return received


def _check_md5(declared: str | None, received: Received) -> None:
    if declared is None:
        return
    try:
        digest = base64.b64decode(declared, validate=True)
    except binascii.Error:
        digest = b""
    if len(digest) != 16:
        raise TosError(400, "InvalidDigest", "The Content-MD5 is not a base64 MD5.")
    if digest.hex() != received.etag:
        raise TosError(400, "BadDigest", "The Content-MD5 does not match the body.")


# ---------------------------------------------------------------- what a reader gets


def _object_headers(meta: ObjectMeta) -> dict[str, str]:
    expiration = {}
    if meta.settings.expires_days:
        expires_at = meta.last_modified + meta.settings.expires_days * 86400
        expiration["x-tos-expiration"] = (f'expiry-date="{_http_date(expires_at)}", '
                                          'rule-id="object-expires"')
    return {
        **expiration,
        "Content-Type": meta.settings.content_type,
        "ETag": f'"{meta.etag}"',
        "Last-Modified": _http_date(meta.last_modified),
        CRC_HEADER: str(meta.crc64),
        "x-tos-storage-class": "STANDARD",
        "x-tos-object-type": "Normal",
        "Accept-Ranges": "bytes",
        **meta.settings.attributes,
        **meta.settings.user_meta,
    }


def _check_preconditions(headers: Message, meta: ObjectMeta) -> None:
    etag = f'"{meta.etag}"'
    if_match, if_none_match = headers.get("If-Match"), headers.get("If-None-Match")
    if if_match is not None and if_match not in (etag, meta.etag, "*"):
        raise TosError(412, "PreconditionFailed", "If-Match does not match the object's ETag.")
    if if_none_match is not None and if_none_match in (etag, meta.etag, "*"):
        raise TosError(304, "NotModified", "If-None-Match matches the object's ETag.")


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
    return Reply(200, {"x-tos-storage-class": "STANDARD", "x-tos-bucket-region": store.region})


def delete_bucket(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    store.delete_bucket(request.bucket)
    return Reply(204)


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
        "ETag": f'"{meta.etag}"', "Size": meta.size,
        "StorageClass": meta.settings.attributes.get("x-tos-storage-class", "STANDARD"),
        "HashCrc64ecma": str(meta.crc64), "Type": "Normal", "Owner": OWNER,
    }


def put_object(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    bucket = store.bucket(request.bucket)
    settings = _object_settings(request.headers)
    received = _receive(request, body, bucket.incoming)
    forbid = request.headers.get("x-tos-forbid-overwrite", "").lower() == "true"
    meta = bucket.install(request.key, received, settings, forbid_overwrite=forbid)
    return Reply(200, {"ETag": f'"{meta.etag}"', CRC_HEADER: str(meta.crc64)})


def head_object(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    meta = store.bucket(request.bucket).lookup(request.key)
    _check_preconditions(request.headers, meta)
    return Reply(200, {**_object_headers(meta), "Content-Length": str(meta.size)})


def get_object(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    meta, stream = store.bucket(request.bucket).open(request.key)
    try:
        _check_preconditions(request.headers, meta)
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


def put_object_acl(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    bucket = store.bucket(request.bucket)
    bucket.lookup(request.key)
    data = body.read_all()
    grants: list[dict[str, object]] = []
    if "x-tos-acl" in request.headers or not data:
        acl = _acl(request.headers)
    else:
        try:
            grants = list(json.loads(data)["Grants"])
        except (ValueError, KeyError, TypeError):
            raise invalid_argument("The body must be {\"Owner\": …, \"Grants\": [...]}.") from None
        acl = "private"
    bucket.set_acl(request.key, acl, grants)
    return Reply(200)


def get_object_acl(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    meta = store.bucket(request.bucket).lookup(request.key)
    grants = meta.grants or [{"Grantee": {"Type": "CanonicalUser", **OWNER},
                              "Permission": "FULL_CONTROL"}]
    if meta.settings.acl in PUBLIC_READ_ACLS:
        grants = [*grants, {"Grantee": {"Type": "Group", "Canned": "AllUsers"},
                            "Permission": "READ"}]
    return json_reply(200, {"Owner": OWNER, "Grants": grants})


def create_multipart_upload(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    upload = store.bucket(request.bucket).create_upload(
        request.key, _object_settings(request.headers))
    return json_reply(200, {"Bucket": request.bucket, "Key": request.key,
                            "UploadId": upload.upload_id})


def upload_part(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    bucket = store.bucket(request.bucket)
    upload = bucket.upload(request.query["uploadId"], request.key)
    number_text = request.query.get("partNumber", "")
    if not number_text.isdigit() or not 1 <= int(number_text) <= 10000:
        raise invalid_argument("partNumber must be an integer in [1, 10000].")
    received = _receive(request, body, bucket.incoming)
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


def _count(query: dict[str, str], name: str, default: int, cap: int) -> int:
    text = query.get(name, str(default))
    if not text.isdigit():
        raise invalid_argument(f"{name} must be a non-negative integer.")
    return min(int(text), cap)


def list_parts(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    upload = store.bucket(request.bucket).upload(request.query["uploadId"], request.key)
    max_parts = _count(request.query, "max-parts", MAX_KEYS, MAX_KEYS)
    marker = _count(request.query, "part-number-marker", 0, 10000)
    numbers = [number for number in sorted(upload.parts) if number > marker]
    page, truncated = numbers[:max_parts], len(numbers) > max_parts
    return json_reply(200, {
        "Bucket": request.bucket, "Key": request.key, "UploadId": upload.upload_id,
        "PartNumberMarker": marker, "NextPartNumberMarker": page[-1] if page else marker,
        "MaxParts": max_parts, "IsTruncated": truncated,
        "StorageClass": upload.settings.attributes.get("x-tos-storage-class", "STANDARD"),
        "Owner": OWNER,
        "Parts": [{"PartNumber": part.number, "LastModified": _iso_date(part.last_modified),
                   "ETag": f'"{part.etag}"', "Size": part.size,
                   "HashCrc64ecma": str(part.crc64)}
                  for part in (upload.parts[number] for number in page)],
    })


def list_multipart_uploads(store: ObjectStore, request: TosRequest, body: RequestBody) -> Reply:
    query = request.query
    prefix, key_marker = query.get("prefix", ""), query.get("key-marker", "")
    upload_id_marker = query.get("upload-id-marker", "")
    max_uploads = _count(query, "max-uploads", MAX_KEYS, MAX_KEYS)
    delimiter = query.get("delimiter", "")
    uploads = [upload for upload in _after_markers(store.bucket(request.bucket).uploads(),
                                                   key_marker, upload_id_marker)
               if upload.key.startswith(prefix)]
    page: list[Upload] = []
    common_prefixes: list[str] = []
    truncated = False
    for upload in uploads:
        common = common_prefix(upload.key, prefix, delimiter)
        if common is not None and common in common_prefixes:
            continue
        if len(page) + len(common_prefixes) == max_uploads:
            truncated = True
            break
        if common is None:
            page.append(upload)
        else:
            common_prefixes.append(common)
    result: dict[str, object] = {
        "Bucket": request.bucket, "Prefix": prefix, "Delimiter": delimiter,
        "KeyMarker": key_marker, "UploadIdMarker": upload_id_marker, "MaxUploads": max_uploads,
        "IsTruncated": truncated,
        "CommonPrefixes": [{"Prefix": common} for common in common_prefixes],
        "Uploads": [_listed_upload(upload) for upload in page],
    }
    if truncated and page:
        result["NextKeyMarker"] = page[-1].key
        result["NextUploadIdMarker"] = page[-1].upload_id
    return json_reply(200, result)


def _after_markers(uploads: list[Upload], key_marker: str,
                   upload_id_marker: str) -> list[Upload]:
    """The uploads (in listing order: by key, then by start time) that follow the previous
    page's markers: the marker key's uploads listed after the marker upload, then those of
    later keys. Upload ids are random, so the marker is found by position, not compared."""
    if not key_marker:
        return uploads
    later = [upload for upload in uploads if upload.key > key_marker]
    if not upload_id_marker:
        return later
    same_key = [upload for upload in uploads if upload.key == key_marker]
    ids = [upload.upload_id for upload in same_key]
    if upload_id_marker in ids:
        return same_key[ids.index(upload_id_marker) + 1:] + later
    # The marker upload ended meanwhile: its place is unknown; id order is the best guess.
    return [upload for upload in same_key if upload.upload_id > upload_id_marker] + later


def _listed_upload(upload: Upload) -> dict[str, object]:
    return {"Key": upload.key, "UploadId": upload.upload_id, "Owner": OWNER,
            "StorageClass": upload.settings.attributes.get("x-tos-storage-class", "STANDARD"),
            "Initiated": _iso_date(upload.initiated)}


# ---------------------------------------------------------------- choosing the operation

LIST_V2_PARAMS = frozenset({"list-type", "prefix", "delimiter", "max-keys", "start-after",
                            "continuation-token", "fetch-owner", "encoding-type"})
LIST_UPLOADS_PARAMS = frozenset({"uploads", "prefix", "delimiter", "key-marker",
                                 "upload-id-marker", "max-uploads", "encoding-type"})
LIST_PARTS_PARAMS = frozenset({"uploadId", "max-parts", "part-number-marker", "encoding-type"})
# (method, sub-resource parameters) -> operation on a key
OBJECT_OPERATIONS: dict[tuple[str, frozenset[str]], Handler] = {
    ("PUT", frozenset()): put_object,
    ("GET", frozenset()): get_object,
    ("HEAD", frozenset()): head_object,
    ("DELETE", frozenset()): delete_object,
    ("PUT", frozenset({"acl"})): put_object_acl,
    ("GET", frozenset({"acl"})): get_object_acl,
    ("POST", frozenset({"uploads"})): create_multipart_upload,
    ("PUT", frozenset({"partNumber", "uploadId"})): upload_part,
    ("POST", frozenset({"uploadId"})): complete_multipart_upload,
    ("DELETE", frozenset({"uploadId"})): abort_multipart_upload,
}
BUCKET_OPERATIONS: dict[tuple[str, frozenset[str]], Handler] = {
    ("PUT", frozenset()): create_bucket,
    ("HEAD", frozenset()): head_bucket,
    ("DELETE", frozenset()): delete_bucket,
}
# Headers that turn a plain call into another operation (copy, append, fetch, ...).
OPERATION_HEADERS = ("x-tos-copy-source", "x-tos-rename", "x-tos-symlink-target",
                     "x-tos-fetch-url")


def _parameters(request: TosRequest) -> frozenset[str]:
    """The query parameters that name a sub-resource or an operation's options; the
    pre-signed URL's own and the response-header overrides of a GET are not among them."""
    return frozenset(name for name in request.query
                     if name not in PRESIGN_PARAMS and not name.startswith("response-"))


def route(request: TosRequest) -> Handler:
    """Pick the handler for a request; what is not implemented is refused, never misread."""
    if any(name in request.headers for name in OPERATION_HEADERS):
        raise not_implemented()
    parameters = _parameters(request)
    method = request.method
    if request.key:
        handler = OBJECT_OPERATIONS.get((method, parameters))
        if handler is None and method == "GET" and "uploadId" in parameters \
                and parameters <= LIST_PARTS_PARAMS:
            handler = list_parts
    else:
        handler = BUCKET_OPERATIONS.get((method, parameters))
        if method == "GET" and request.query.get("list-type") == "2" \
                and parameters <= LIST_V2_PARAMS:
            handler = list_objects_v2
        elif method == "GET" and "uploads" in parameters and parameters <= LIST_UPLOADS_PARAMS:
            handler = list_multipart_uploads
    if handler is None:
        raise not_implemented()
    return handler


# The policy action (``tos:<name>``) each operation needs, as TOS's bucket and IAM policies
# name them; a multipart upload's create, parts and completion are PutObject, as on S3.
POLICY_ACTIONS: dict[Handler, str] = {
    create_bucket: "CreateBucket", head_bucket: "HeadBucket", delete_bucket: "DeleteBucket",
    list_objects_v2: "ListBucket", list_multipart_uploads: "ListMultipartUploads",
    put_object: "PutObject", create_multipart_upload: "PutObject", upload_part: "PutObject",
    complete_multipart_upload: "PutObject", get_object: "GetObject", head_object: "GetObject",
    delete_object: "DeleteObject", put_object_acl: "PutObjectAcl",
    get_object_acl: "GetObjectAcl", abort_multipart_upload: "AbortMultipartUpload",
    list_parts: "ListMultipartUploadParts",
}


def allows_anonymous(store: ObjectStore, request: TosRequest,
                     bucket_acls: Mapping[str, str]) -> bool:
    """Whether an unsigned request may go ahead: a read of an object in a public-read
    bucket (a missing key is then answered 404, as TOS does), or of a public-read object
    (a missing key is then refused, so an anonymous caller learns nothing)."""
    if request.method not in ("GET", "HEAD") or not request.key or _parameters(request):
        return False
    if bucket_acls.get(request.bucket) in PUBLIC_READ_ACLS:
        return True
    try:
        meta = store.bucket(request.bucket).lookup(request.key)
    except TosError:
        return False  # an anonymous caller learns nothing about what exists
    return meta.settings.acl in PUBLIC_READ_ACLS
