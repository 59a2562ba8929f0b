"""Buckets, objects and multipart uploads on disk, and ListObjectsV2 paging.

Objects live under ``<root>/<bucket>/objects`` (data + a JSON side file per key, named by
the key's SHA-256 so that any key maps to a safe file name). Bodies are streamed to a
temporary file while their CRC-64 (the SDK's own ``tos.utils.Crc64``) and MD5 are
computed, so large objects never sit in memory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

from tos.utils import Crc64

from devtools.tos_server.errors import (
    TosError,
    invalid_argument,
    no_such_bucket,
    no_such_key,
    no_such_upload,
)
from devtools.tos_server.request import BUCKET_NAME, COPY_CHUNK

MIN_PART_SIZE = 5 * 1024 * 1024  # TOS refuses smaller parts except the last one


@dataclass(frozen=True)
class Received:
    """A body stored in a temporary file, with the CRC-64 and ETag (MD5 for a plain body)
    TOS answers for it."""

    path: Path
    size: int
    crc64: int
    etag: str
    sha256: str = ""  # hex, when asked for


def receive_to_file(chunks: Iterable[bytes], directory: Path, *,
                    with_sha256: bool = False) -> Received:
    """Stream chunks to a new file in directory, computing CRC-64 and MD5 (and SHA-256
    when the writer declared one) on the way."""
    fd, name = tempfile.mkstemp(dir=directory, suffix=".tmp")
    path = Path(name)
    crc, md5, size = Crc64(), hashlib.md5(), 0
    sha256 = hashlib.sha256() if with_sha256 else None
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                crc.update(chunk)
                md5.update(chunk)
                if sha256:
                    sha256.update(chunk)
                size += len(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Received(path, size, crc.crc, md5.hexdigest(), sha256.hexdigest() if sha256 else "")


def join_files(sources: Iterable[Path], directory: Path) -> tuple[Path, int]:
    """The sources one after another in a new file in directory, and the CRC-64 of the
    bytes written. It is computed from the joined bytes themselves, not combined from the
    parts' CRCs, so that the client's combining code is checked rather than shared."""
    fd, name = tempfile.mkstemp(dir=directory, suffix=".tmp")
    path = Path(name)
    crc = Crc64()
    try:
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                with source.open("rb") as stream:
                    while chunk := stream.read(COPY_CHUNK):
                        crc.update(chunk)
                        out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, crc.crc


@dataclass
class ObjectSettings:
    """What a writer chooses for an object besides its bytes: kept and answered back."""

    content_type: str = "application/octet-stream"
    user_meta: dict[str, str] = field(default_factory=dict)  # x-tos-meta-* headers
    attributes: dict[str, str] = field(default_factory=dict)  # standard, class, SSE headers
    acl: str = "private"
    expires_days: int = 0  # x-tos-object-expires: answered as x-tos-expiration, not enforced


@dataclass
class ObjectMeta:
    key: str
    size: int
    crc64: int
    etag: str  # without quotes
    last_modified: float  # epoch seconds
    settings: ObjectSettings
    grants: list[dict[str, object]] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict) -> ObjectMeta:
        return cls(**{**data, "settings": ObjectSettings(**data["settings"])})


@dataclass
class Part:
    number: int
    size: int
    crc64: int
    etag: str
    last_modified: float


@dataclass
class Upload:
    """A multipart upload in progress; ``upload.json`` and one JSON file per part in its
    folder keep it across a restart."""

    upload_id: str
    key: str
    settings: ObjectSettings
    initiated: float
    folder: Path
    parts: dict[int, Part] = field(default_factory=dict)

    def save(self) -> None:
        record = {"upload_id": self.upload_id, "key": self.key, "initiated": self.initiated,
                  "settings": asdict(self.settings)}
        _write_json(self.folder / "upload.json", record)

    @classmethod
    def load(cls, folder: Path) -> Upload:
        record = json.loads((folder / "upload.json").read_text())
        upload = cls(record["upload_id"], record["key"], ObjectSettings(**record["settings"]),
                     record["initiated"], folder)
        for part_file in folder.glob("*.json"):
            if part_file.name != "upload.json" and part_file.with_suffix(".part").exists():
                part = Part(**json.loads(part_file.read_text()))
                upload.parts[part.number] = part
        return upload


def _write_json(path: Path, data: object) -> None:
    """Write atomically: a restart never finds half a record."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)


class Bucket:
    """One bucket's objects and multipart uploads, on disk under ``folder``."""

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.folder = folder
        self._objects_dir = folder / "objects"
        self._uploads_dir = folder / "uploads"
        self.incoming = folder / "incoming"  # temp files; same file system for os.replace
        shutil.rmtree(self.incoming, ignore_errors=True)
        for directory in (self._objects_dir, self._uploads_dir, self.incoming):
            directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._objects = self._load_objects()
        self._uploads = {upload.upload_id: upload for upload in self._load_uploads()}

    def _load_objects(self) -> dict[str, ObjectMeta]:
        objects = {}
        for meta_file in self._objects_dir.glob("*.json"):
            meta = ObjectMeta.from_json(json.loads(meta_file.read_text()))
            if self._data_path(meta.key).exists():
                objects[meta.key] = meta
        return objects

    def _load_uploads(self) -> list[Upload]:
        return [Upload.load(folder) for folder in self._uploads_dir.iterdir()
                if (folder / "upload.json").exists()]

    def _data_path(self, key: str) -> Path:
        return self._objects_dir / (hashlib.sha256(key.encode()).hexdigest() + ".data")

    def is_empty(self) -> bool:
        with self._lock:
            return not self._objects and not self._uploads

    # objects

    def install(self, key: str, body: Received, settings: ObjectSettings, *,
                forbid_overwrite: bool = False) -> ObjectMeta:
        """Make a received body the object at key (replacing any previous one, unless
        ``forbid_overwrite``)."""
        meta = ObjectMeta(key, body.size, body.crc64, body.etag, time.time(), settings)
        data_path = self._data_path(key)
        meta_tmp = self.incoming / f"{uuid.uuid4().hex}.json"
        meta_tmp.write_text(json.dumps(asdict(meta)))
        with self._lock:
            if forbid_overwrite and key in self._objects:
                body.path.unlink(missing_ok=True)
                meta_tmp.unlink()
                raise TosError(409, "ObjectAlreadyExists", "The object already exists.")
            os.replace(body.path, data_path)
            os.replace(meta_tmp, data_path.with_suffix(".json"))
            self._objects[key] = meta
        return meta

    def set_acl(self, key: str, acl: str, grants: list[dict[str, object]]) -> None:
        with self._lock:
            meta = self._objects.get(key)
            if meta is None:
                raise no_such_key()
            meta.settings.acl, meta.grants = acl, grants
            _write_json(self._data_path(key).with_suffix(".json"), asdict(meta))

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

    def create_upload(self, key: str, settings: ObjectSettings) -> Upload:
        upload_id = uuid.uuid4().hex
        folder = self._uploads_dir / upload_id
        folder.mkdir()
        upload = Upload(upload_id, key, settings, time.time(), folder)
        upload.save()
        with self._lock:
            self._uploads[upload_id] = upload
        return upload

    def upload(self, upload_id: str, key: str) -> Upload:
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None or upload.key != key:
            raise no_such_upload()
        return upload

    def uploads(self) -> list[Upload]:
        """Uploads in progress, in key order, then by start time."""
        with self._lock:
            return sorted(self._uploads.values(),
                          key=lambda upload: (upload.key, upload.initiated, upload.upload_id))

    def add_part(self, upload: Upload, number: int, body: Received) -> Part:
        part = Part(number, body.size, body.crc64, body.etag, time.time())
        with self._lock:
            if upload.upload_id not in self._uploads:  # aborted meanwhile
                body.path.unlink(missing_ok=True)
                raise no_such_upload()
            os.replace(body.path, upload.folder / f"{number}.part")
            _write_json(upload.folder / f"{number}.json", asdict(part))
            upload.parts[number] = part
        return part

    def complete(self, upload: Upload, requested: list[tuple[int, str]]) -> ObjectMeta:
        parts = _check_completion(upload, requested)
        joined, crc = join_files((upload.folder / f"{part.number}.part" for part in parts),
                                 self.incoming)
        # Multipart ETags are the MD5 of the parts' MD5s plus the part count, as in S3/TOS.
        digests = b"".join(bytes.fromhex(part.etag) for part in parts)
        etag = f"{hashlib.md5(digests).hexdigest()}-{len(parts)}"
        body = Received(joined, sum(part.size for part in parts), crc, etag)
        meta = self.install(upload.key, body, upload.settings)
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

    def __init__(self, root: Path, region: str = "cn-beijing") -> None:
        self.root = root
        self.region = region  # where every bucket is: answered on HeadBucket, as TOS does
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

    def delete_bucket(self, name: str) -> None:
        bucket = self.bucket(name)
        if not bucket.is_empty():
            raise TosError(409, "BucketNotEmpty", "The bucket you tried to delete is not empty.")
        with self._lock:
            self._buckets.pop(name, None)
        shutil.rmtree(bucket.folder, ignore_errors=True)

    def bucket(self, name: str) -> Bucket:
        with self._lock:
            bucket = self._buckets.get(name)
        if bucket is None:
            raise no_such_bucket()
        return bucket



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
        common = common_prefix(key, prefix, delimiter)
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


def common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
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


