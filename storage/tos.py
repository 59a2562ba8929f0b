"""Volcengine TOS through the official ``tos`` SDK (TosClientV2), used unchanged."""

from __future__ import annotations

import io
import logging
import mimetypes
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, NoReturn

import tos
from tos.enum import ACLType, CannedType, PermissionType, StorageClassType
from tos.exceptions import TosError, TosServerError
from tos.models2 import GetObjectACLOutput, GetObjectOutput
from tos.utils import RateLimiter

from storage.base import (
    FileChanged,
    ObjectInfo,
    PartDone,
    PendingUpload,
    StorageClient,
    StorageError,
    file_state,
    join_url,
)
from storage.crc64 import crc64_update, file_crc64
from storage.options import BUCKET_DEFAULTS, Correction, ObjectOptions
from storage.tos_checks import TosChecks
from storage.tos_errors import NO_SUCH_BUCKET_EC, describe, is_denied, is_no_such_upload
from storage.tos_multipart import TosMultipart

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # TOS refuses smaller parts, except the last one
# Above this a file goes up in parts, on parallel connections (a single connection is
# often capped well below the link), and a killed run resumes it from its stored parts.
DEFAULT_MULTIPART_THRESHOLD = 16 * MiB
DEFAULT_PART_SIZE = 16 * MiB
DEFAULT_PART_CONCURRENCY = 8
CRC_HEADER = "x-tos-hash-crc64ecma"
SSE_HEADER = "x-tos-server-side-encryption"
# The SDK's token bucket refuses a read larger than the bucket holds, forever: the bucket
# holds at least the largest read of a request body (the SDK's 64 KiB chunks; requests
# reads 16 KiB at a time) whatever the rate.
MIN_RATE_LIMIT_BURST = 1 * MiB


def rate_limiter(bytes_per_second: int | None) -> RateLimiter | None:
    """The SDK's token bucket for ``bytes_per_second``, one second's worth deep; None for
    no limit."""
    if bytes_per_second is None:
        return None
    return RateLimiter(bytes_per_second, max(bytes_per_second, MIN_RATE_LIMIT_BURST))


def _quiet_sdk_logger() -> None:
    # The SDK logs request URLs (object keys) and bodies at INFO; none of that belongs in the
    # application's logs. A NullHandler stops the "last resort" handler from printing it.
    logger = logging.getLogger("tos")
    if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False


def _ca_bundle_from_env() -> str | None:
    # The session ignores the environment (see TosStorage.__init__); the CA bundle that
    # requests would have taken from it is read once here, so that it still applies.
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


class TosStorage(TosMultipart, TosChecks, StorageClient):
    """A bucket on TOS.

    Files up to ``multipart_threshold`` go up in one PUT; larger ones as a multipart
    upload of ``part_size`` parts, ``part_concurrency`` parts at a time across all files,
    aborted if any part fails, so no half upload lingers. An upload a killed run left
    (``put_file(resume=...)``) is finished from the parts it holds: the bucket's part
    listing is the checkpoint, so nothing is written locally. Every body's CRC-64 (each PUT,
    each part, the completed object, each full download) is checked here against the
    ``x-tos-hash-crc64ecma`` TOS answers. Every object, in one PUT or in parts, is written
    with ``options`` (ACL, storage class, SSE). Given ``rate_limit`` (bytes per second),
    every body sent — all PUTs and parts, on every thread — draws from one SDK token bucket,
    so the client as a whole stays under it. The SDK retries transient failures (5xx, dropped
    connections) up to ``max_retry_count`` times; what still fails becomes a StorageError
    naming the key.
    """

    def __init__(
        self,
        *,
        bucket: str,
        endpoint: str,
        region: str,
        access_key: str,
        secret_key: str,
        public_base_url: str,
        work_dir: Path,
        security_token: str = "",
        options: ObjectOptions = BUCKET_DEFAULTS,
        proxy: tuple[str, int] | None = None,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        part_size: int = DEFAULT_PART_SIZE,
        part_concurrency: int = DEFAULT_PART_CONCURRENCY,
        rate_limit: int | None = None,
        list_page_size: int = 1000,
        max_retry_count: int = 3,
        socket_timeout: float = 30.0,
        connection_timeout: float = 10.0,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (TOS minimum)")
        _quiet_sdk_logger()
        self.bucket = bucket
        self.endpoint = endpoint
        self.region = region
        self.public_base_url = public_base_url
        self.work_dir = work_dir
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.list_page_size = list_page_size
        self.rate_limiter = rate_limiter(rate_limit)
        self.options = options
        # Only kept to scrub them from error messages.
        self._secrets = [secret for secret in (secret_key, security_token) if secret]
        self._client = tos.TosClientV2(
            access_key,
            secret_key,
            endpoint,
            region,
            # Temporary (STS) credentials: sent as x-tos-security-token with each request.
            security_token=security_token or None,
            max_retry_count=max_retry_count,
            socket_timeout=socket_timeout,
            connection_time=connection_timeout,
            # >0 patches urllib3's connection creation process-wide and starts a thread.
            dns_cache_time=0,
            proxy_host=proxy[0] if proxy else None,
            proxy_port=proxy[1] if proxy else None,
            ca_crt=_ca_bundle_from_env(),
            # The SDK's own check rebuilds a CRC-64 table in pure Python on every request
            # (~0.6 ms of CPU under the GIL); the same check is done here with the table
            # built once (storage.crc64).
            enable_crc=False,
        )
        # With trust_env, requests re-reads the proxy variables, NO_PROXY, ~/.netrc and the
        # CA bundle variables on every request (~0.4 ms of CPU). The proxy is configured
        # explicitly (STORAGE_PROXY) and an HTTP(S)_PROXY meant for other traffic must not
        # re-route the cutover's uploads; TOS requests are signed, so .netrc has no use.
        self._client.session.trust_env = False
        # Parts of all multipart uploads share these threads: a bound on parts in flight,
        # however many large files are uploaded at once.
        self._part_pool = ThreadPoolExecutor(max_workers=part_concurrency,
                                             thread_name_prefix="tos-part")

    def __repr__(self) -> str:
        return f"TosStorage(bucket={self.bucket!r}, endpoint={self.endpoint!r})"

    def close(self) -> None:
        self._part_pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    @property
    def scratch_dir(self) -> Path:
        return self.work_dir

    # errors

    def _error(self, action: str, key: str, reason: str, *, denied: bool = False
               ) -> StorageError:
        message = f"{action} {key!r} in bucket {self.bucket!r} failed: {reason}"
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return StorageError(message, denied=denied)

    def _fail(self, action: str, key: str, error: TosError) -> NoReturn:
        raise self._error(action, key, describe(error), denied=is_denied(error)) from error

    def _changed(self, key: str, path: Path) -> FileChanged:
        return FileChanged(f"upload of {key!r} in bucket {self.bucket!r} not completed: "
                           f"{path} changed while its parts were read")

    def _check_crc(self, action: str, key: str, what: str, expected: int,
                   reported: int | None) -> None:
        if reported != expected:
            raise self._error(action, key, f"CRC-64 mismatch on {what}: {expected} computed "
                              f"here, TOS reports {reported} ({CRC_HEADER})")

    @contextmanager
    def _translate(self, action: str, key: str) -> Iterator[None]:
        try:
            yield
        except TosError as error:
            self._fail(action, key, error)

    # writing

    def put_file(self, key: str, path: Path, content_type: str | None = None,
                 on_part: PartDone | None = None,
                 resume: PendingUpload | None = None) -> ObjectInfo:
        if resume is not None and resume.key != key:
            raise ValueError(f"cannot resume the upload of {resume.key!r} as {key!r}")
        if not path.is_file():
            raise self._error("upload of", key, f"{path} is not a file")
        # Taken before the first byte is read: a multipart upload is completed only if the
        # file is still in this state once its last part is stored.
        state = file_state(path)
        content_type = content_type or guess_content_type(path)
        with self._translate("upload of", key):
            if state.size > self.multipart_threshold:
                crc, reused = self._put_multipart(key, path, state, content_type, on_part,
                                                  resume)
            else:
                crc, reused = self._put_single(key, path, content_type), 0
        return ObjectInfo(key, state.size, crc, reused)

    def _put_single(self, key: str, path: Path, content_type: str) -> int:
        crc = file_crc64(path)
        output = self._client.put_object_from_file(self.bucket, key, str(path),
                                                   content_type=content_type,
                                                   rate_limiter=self.rate_limiter,
                                                   **self._write_options())
        self._check_crc("upload of", key, "the object", crc, output.hash_crc64_ecma)
        return crc

    def _write_options(self) -> dict[str, object]:
        """The SDK arguments for ``options``; an option not set is not sent, so that the
        bucket's default applies."""
        options = self.options
        return {
            "acl": ACLType(options.acl) if options.acl else None,
            "storage_class": StorageClassType(options.storage_class)
            if options.storage_class else None,
            "server_side_encryption": options.sse,
        }

    def conform(self, key: str) -> Correction:
        """An object already in the bucket with the file's bytes, brought to ``options``:
        its ACL is set in place; a storage class or encryption other than asked can only
        be changed by sending the object again ("resend")."""
        options = self.options
        with self._translate("check of the ACL and storage class of", key):
            if options.storage_class or options.sse:
                head = self._client.head_object(self.bucket, key)
                stored_class = head.storage_class.value if head.storage_class else None
                if (options.storage_class and stored_class != options.storage_class) or \
                        (options.sse and head.header.get(SSE_HEADER) != options.sse):
                    return "resend"
            if options.acl and canned_acl(self._client.get_object_acl(self.bucket, key)) \
                    != options.acl:
                self._client.put_object_acl(self.bucket, key, acl=ACLType(options.acl))
                return "acl"
        return "none"

    def pending_uploads(self, prefix: str = "") -> Iterator[PendingUpload]:
        key_marker = upload_id_marker = None
        while True:
            with self._translate("listing of the multipart uploads under", prefix):
                page = self._client.list_multipart_uploads(
                    self.bucket, prefix=prefix or None, key_marker=key_marker,
                    upload_id_marker=upload_id_marker, max_uploads=self.list_page_size,
                )
            for listed in page.uploads:
                yield PendingUpload(listed.key, listed.upload_id, listed.initiated)
            if not page.is_truncated:
                return
            key_marker, upload_id_marker = page.next_key_marker, page.next_upload_id_marker

    def abort_upload(self, upload: PendingUpload) -> None:
        try:
            self._client.abort_multipart_upload(self.bucket, upload.key, upload.upload_id)
        except TosServerError as error:
            if not is_no_such_upload(error):
                self._fail("abort of the multipart upload of", upload.key, error)
        except TosError as error:
            self._fail("abort of the multipart upload of", upload.key, error)

    def delete(self, key: str) -> None:
        with self._translate("delete of", key):
            self._client.delete_object(self.bucket, key)

    # reading

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            output = self._client.head_object(self.bucket, key)
        except TosServerError as error:
            # HEAD answers carry no body: the EC header tells a missing bucket from a key.
            if error.status_code == 404 and error.header.get("x-tos-ec") != NO_SUCH_BUCKET_EC:
                return None
            self._fail("stat of", key, error)
        except TosError as error:
            self._fail("stat of", key, error)
        return ObjectInfo(key, output.content_length, output.hash_crc64_ecma)

    def open(self, key: str) -> BinaryIO:
        with self._translate("download of", key):
            output = self._client.get_object(self.bucket, key)
        return io.BufferedReader(_ObjectReader(self, key, output), buffer_size=MiB)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        token = None
        while True:
            with self._translate("listing of", prefix):
                page = self._client.list_objects_type2(
                    self.bucket, prefix=prefix or None, continuation_token=token,
                    max_keys=self.list_page_size, list_only_once=True,
                )
            for listed in page.contents:
                yield ObjectInfo(listed.key, listed.size, listed.hash_crc64_ecma)
            if not page.is_truncated:
                return
            token = page.next_continuation_token

    def public_url(self, key: str) -> str:
        return join_url(self.public_base_url, key)

class _ObjectReader(io.RawIOBase):
    """A GetObjectOutput as a raw stream whose CRC-64 is checked against the server's once
    the whole object has been read; any failure is a StorageError naming the key."""

    def __init__(self, storage: TosStorage, key: str, output: GetObjectOutput) -> None:
        super().__init__()
        self._storage = storage
        self._key = key
        self._output = output
        self._crc = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        with self._storage._translate("download of", self._key):
            data = self._output.read(len(buffer))
        if data:
            self._crc = crc64_update(data, self._crc)
        elif self._output.content_range is None and self._output.hash_crc64_ecma is not None:
            # The end of a full read of an object TOS has a CRC-64 for.
            self._storage._check_crc("download of", self._key, "the object", self._crc,
                                     self._output.hash_crc64_ecma)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._output.resp.resp.close()  # frees the pooled connection if not fully read
        super().close()




def canned_acl(output: GetObjectACLOutput) -> str:
    """The canned ACL an object's grants amount to, as far as an upload sets them:
    ``public-read`` when everyone may read it, ``default`` when it follows the bucket's,
    else ``private``."""
    if output.is_default:
        return "default"
    public = any(grant.grantee.canned is CannedType.Canned_All_Users
                 and grant.permission is PermissionType.Permission_Read
                 for grant in output.grants)
    return "public-read" if public else "private"


def guess_content_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"







