"""Volcengine TOS through the official ``tos`` SDK (TosClientV2), used unchanged."""

from __future__ import annotations

import hashlib
import io
import logging
import mimetypes
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO, NoReturn, TypeVar

import tos
from tos.enum import ACLType, CannedType, PermissionType, StorageClassType
from tos.exceptions import TosError, TosServerError
from tos.models2 import GetObjectACLOutput, GetObjectOutput, UploadedPart
from tos.utils import RateLimiter

from storage.base import (
    FileChanged,
    FileState,
    ObjectInfo,
    PartDone,
    PendingUpload,
    Retry,
    StorageClient,
    StorageError,
    file_state,
    join_url,
    preflight_error,
    preflight_step,
)
from storage.crc64 import crc64_combine, crc64_update, file_chunks, file_crc64
from storage.options import BUCKET_DEFAULTS, Correction, ObjectOptions

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # TOS refuses smaller parts, except the last one
# Above this a file goes up in parts, on parallel connections (a single connection is
# often capped well below the link), and a killed run resumes it from its stored parts.
DEFAULT_MULTIPART_THRESHOLD = 16 * MiB
DEFAULT_PART_SIZE = 16 * MiB
DEFAULT_PART_CONCURRENCY = 8
NO_SUCH_BUCKET_EC = "0006-00000001"
CRC_HEADER = "x-tos-hash-crc64ecma"
SSE_HEADER = "x-tos-server-side-encryption"
NO_SUCH_UPLOAD = "NoSuchUpload"
ACCESS_DENIED = "AccessDenied"
# An upload id no upload has: the preflight's permission checks aim their calls at it.
NO_UPLOAD_ID = "0" * 32
LEFTOVER_UPLOADS_NOT_LISTED = (
    "The storage key may not call tos:ListMultipartUploads: the files step does without "
    "finding the incomplete multipart uploads a killed run left, so none is resumed or "
    "aborted (their files are sent whole again; their parts stay until the bucket's "
    "lifecycle rule for incomplete multipart uploads removes them).")
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


@dataclass(frozen=True)
class _Part:
    """One part of a multipart upload: which bytes of the file it carries."""

    number: int
    offset: int
    length: int


@dataclass(frozen=True)
class _PartResult:
    """A part the upload holds: its ETag, the CRC-64 of its bytes, and whether it was
    already stored by an earlier run (reused) rather than sent now."""

    etag: str
    crc64: int
    reused: bool = False


_Result = TypeVar("_Result")


class TosStorage(StorageClient):
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

    def _put_multipart(self, key: str, path: Path, state: FileState, content_type: str,
                       on_part: PartDone | None,
                       resume: PendingUpload | None) -> tuple[int, int]:
        """The completed object's CRC-64 and how many of its bytes were reused from
        ``resume``'s stored parts; a resumed upload that is gone is started afresh.

        The parts are read at different times: if the file left ``state`` (taken before
        the first of them, reused parts' checks included) by the time the last one is
        stored, they are not one version of it, and the upload is aborted, not completed
        (FileChanged). The completed object's CRC-64 is then the one of those very reads."""
        stored = None if resume is None else self._stored_parts(key, resume.upload_id)
        if resume is not None and stored is not None:
            upload_id = resume.upload_id
        else:
            upload_id = self._client.create_multipart_upload(
                self.bucket, key, content_type=content_type, **self._write_options()
            ).upload_id
        try:
            parts, crc, reused = self._upload_parts(key, path, state.size, upload_id, on_part,
                                                    stored or {})
            if file_state(path) != state:
                raise self._changed(key, path)
            output = self._client.complete_multipart_upload(
                self.bucket, key, upload_id, parts=parts
            )
        except BaseException:
            self._abort_quietly(key, upload_id)
            raise
        # Reused parts were matched by MD5 alone: this check of the whole object against
        # the file's CRC-64 is what makes reusing them safe.
        self._check_crc("upload of", key, "the completed multipart object", crc,
                        output.hash_crc64_ecma)
        return crc, reused

    def _stored_parts(self, key: str, upload_id: str) -> dict[int, UploadedPart] | None:
        """The parts an incomplete upload holds, by number, across all pages; None when
        the upload is gone (completed or aborted meanwhile)."""
        stored: dict[int, UploadedPart] = {}
        marker = None
        while True:
            try:
                page = self._client.list_parts(self.bucket, key, upload_id,
                                               part_number_marker=marker,
                                               max_parts=self.list_page_size)
            except TosServerError as error:
                if _is_no_such_upload(error):
                    return None
                raise
            stored.update((part.part_number, part) for part in page.parts)
            if not page.is_truncated:
                return stored
            marker = page.next_part_number_marker

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

    def _upload_parts(
        self, key: str, path: Path, size: int, upload_id: str, on_part: PartDone | None,
        stored: dict[int, UploadedPart],
    ) -> tuple[list[UploadedPart], int, int]:
        """Every part in the upload: ``stored`` ones that match the file reused, the
        others sent. Returns them in part order with the CRC-64 of the whole file they
        make and the bytes reused."""
        parts = [_Part(number, offset, min(self.part_size, size - offset))
                 for number, offset in enumerate(range(0, size, self.part_size), start=1)]
        done = self._reusable_parts(path, parts, stored)
        for part in parts:
            if part.number in done and on_part is not None:
                on_part(part.length)
        missing = [part for part in parts if part.number not in done]
        if missing:
            upload = partial(self._upload_part, key, path, upload_id, on_part=on_part)
            # The first part goes up alone: a failure every part would meet (a refused
            # key, a store that is down) then costs one request, not a burst of them.
            sent = [upload(missing[0]), *self._on_part_threads(upload, missing[1:])]
            done.update(zip((part.number for part in missing), sent, strict=True))
        uploaded, crc, reused = [], 0, 0
        for part in parts:
            result = done[part.number]
            uploaded.append(UploadedPart(part.number, result.etag))
            crc = crc64_combine(crc, result.crc64, part.length)
            reused += part.length if result.reused else 0
        return uploaded, crc, reused

    def _reusable_parts(self, path: Path, parts: list[_Part],
                        stored: dict[int, UploadedPart]) -> dict[int, _PartResult]:
        """The stored parts that hold exactly the file's bytes of that part: same size,
        and an ETag equal to the MD5 of the file's range (what TOS gives a part; an ETag
        of any other form, e.g. under some encryptions, never matches and the part is sent
        again). Checked on the part threads: each reads its part of the file."""
        candidates = [part for part in parts if part.number in stored
                      and stored[part.number].size == part.length]
        checked = self._on_part_threads(partial(_reuse_if_same, path, stored), candidates)
        return {part.number: result for part, result in zip(candidates, checked, strict=True)
                if result is not None}

    def _on_part_threads(self, work: Callable[[_Part], _Result],
                         parts: list[_Part]) -> list[_Result]:
        """``work`` done for each part on the shared part threads, results in part order.
        The first failure (or an interrupt) cancels the parts not started yet and waits for
        those in flight, so that the abort that follows leaves nothing behind."""
        futures = [self._part_pool.submit(work, part) for part in parts]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
            if failed := next((future for future in futures if _failed(future)), None):
                failed.result()  # raises the part's error
            return [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()  # only those not started yet
            wait(futures)

    def _upload_part(self, key: str, path: Path, upload_id: str, part: _Part, *,
                     on_part: PartDone | None) -> _PartResult:
        """One part, streamed from its offset in the file; returns its ETag and CRC-64
        and, once TOS holds it, tells ``on_part`` its length."""
        crc = file_crc64(path, part.offset, part.length)
        output = self._client.upload_part_from_file(
            self.bucket, key, upload_id, part.number,
            file_path=str(path), offset=part.offset, part_size=part.length,
            rate_limiter=self.rate_limiter,
        )
        self._check_crc("upload of", key, f"part {part.number}", crc, output.hash_crc64_ecma)
        if on_part is not None:
            on_part(part.length)
        return _PartResult(output.etag, crc)

    def _abort_quietly(self, key: str, upload_id: str) -> None:
        # The original failure is the one to report; if the abort fails too, TOS lifecycle
        # rules for incomplete uploads clean up.
        with suppress(TosError):
            self._client.abort_multipart_upload(self.bucket, key, upload_id)

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
            if not _is_no_such_upload(error):
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

    def preflight_permissions(self, key: str, retry: Retry) -> list[str]:
        """The multipart calls (abort, and the listings that find and resume a killed run's
        uploads) and, with STORAGE_ACL, the object ACL calls, each made on ``key`` or an
        upload of it that do not exist: TOS checks the policy first, so an allowed call
        answers "no such key/upload" and a denied one 403, and nothing is written.
        Without tos:ListMultipartUploads a run can still upload: it does without finding
        the uploads a killed run left (and so without their part listing)."""
        calls: list[tuple[str, str, Callable[[], object]]] = [
            ("tos:AbortMultipartUpload", "abort of a multipart upload of",
             partial(self._client.abort_multipart_upload, self.bucket, key, NO_UPLOAD_ID))]
        if self.options.acl:
            calls += [
                ("tos:GetObjectAcl", "read of the ACL of",
                 partial(self._client.get_object_acl, self.bucket, key)),
                ("tos:PutObjectAcl", "setting of the ACL of",
                 partial(self._client.put_object_acl, self.bucket, key,
                         acl=ACLType(self.options.acl)))]
        for action, what, call in calls:
            with preflight_step("permissions", action):
                retry(partial(self._absent_target_call, what, key, call), f"{what} {key}")
        try:
            retry(lambda: next(iter(self.pending_uploads(key)), None),
                  f"listing of the multipart uploads under {key}")
        except StorageError as error:
            if not error.denied:
                raise preflight_error("permissions", str(error)) from error
            return [LEFTOVER_UPLOADS_NOT_LISTED]
        with preflight_step("permissions", "tos:ListMultipartUploadParts"):
            retry(partial(self._absent_target_call, "listing of the parts of an upload of", key,
                          partial(self._client.list_parts, self.bucket, key, NO_UPLOAD_ID)),
                  f"listing of the parts of an upload of {key}")
        return []

    def _absent_target_call(self, what: str, key: str, call: Callable[[], object]) -> None:
        """``call`` on a key or upload that does not exist: its 404 is the expected answer."""
        try:
            call()
        except TosServerError as error:
            if error.status_code != 404:
                self._fail(what, key, error)
        except TosError as error:
            self._fail(what, key, error)

    def check_access(self) -> None:
        try:
            self._client.head_bucket(self.bucket)
        except TosServerError as error:
            if error.status_code in (401, 403):
                # A HEAD answer has no body to tell a wrong key from a policy without the
                # action.
                step, reason = "credentials", ("the access key or secret key was refused, or "
                                               "the key may not call tos:HeadBucket")
            elif error.status_code == 404:
                step, reason = "bucket", "the bucket does not exist"
            else:
                step, reason = "bucket", "the bucket cannot be checked"
            where = f"bucket {self.bucket!r} at {self.endpoint}"
            raise preflight_error(step, f"{reason} ({where}: {describe(error)})") from error
        except TosError as error:
            raise preflight_error("connect", f"{self.endpoint}: {describe(error)}") from error


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


def describe(error: TosError) -> str:
    """One line for an SDK error: status and TOS code, or the client-side cause."""
    if isinstance(error, TosServerError):
        text = f"HTTP {error.status_code}"
        text += f" {error.code}" if error.code else ""
        return text + (f": {error.message}" if error.message else "")
    cause = getattr(error, "cause", None)
    return f"{error.message} ({cause})" if cause else str(error.message)


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


def is_denied(error: TosError) -> bool:
    """TOS refused the call as not allowed to this key by its bucket or IAM policy."""
    return isinstance(error, TosServerError) and error.status_code == 403 \
        and error.code == ACCESS_DENIED


def _is_no_such_upload(error: TosServerError) -> bool:
    return error.status_code == 404 and error.code == NO_SUCH_UPLOAD


def _reuse_if_same(path: Path, stored: dict[int, UploadedPart], part: _Part) -> _PartResult | None:
    """``part`` as reused from ``stored`` if its ETag is the MD5 of the file's bytes of
    it, else None (to be sent again). Both digests come from one read of the range."""
    md5, crc = hashlib.md5(usedforsecurity=False), 0
    for chunk in file_chunks(path, part.offset, part.length):
        md5.update(chunk)
        crc = crc64_update(chunk, crc)
    etag = stored[part.number].etag
    return _PartResult(etag, crc, reused=True) if etag.lower() == md5.hexdigest() else None


def _failed(future: Future) -> bool:
    return future.done() and not future.cancelled() and future.exception() is not None
