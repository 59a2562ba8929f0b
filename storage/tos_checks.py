"""What the preflight asks TOS before a run writes: the bucket and the key
(check_access), and the calls a run makes beyond writing, reading, listing and deleting
objects (preflight_permissions)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, NoReturn

import tos
from tos.enum import ACLType
from tos.exceptions import TosError, TosServerError

from storage.base import PendingUpload, Retry, StorageError, preflight_error, preflight_step
from storage.options import ObjectOptions
from storage.tos_errors import describe

# An upload id no upload has: the preflight's permission checks aim their calls at it.
NO_UPLOAD_ID = "0" * 32
LEFTOVER_UPLOADS_NOT_LISTED = (
    "The storage key may not call tos:ListMultipartUploads: the files step does without "
    "finding the incomplete multipart uploads a killed run left, so none is resumed or "
    "aborted (their files are sent whole again; their parts stay until the bucket's "
    "lifecycle rule for incomplete multipart uploads removes them).")


class TosChecks:
    """The preflight half of TosStorage (storage/tos.py), which sets these attributes and
    the methods named below."""

    bucket: str
    endpoint: str
    region: str
    options: ObjectOptions
    _client: tos.TosClientV2

    if TYPE_CHECKING:
        def _fail(self, action: str, key: str, error: TosError) -> NoReturn:
                ...
        def pending_uploads(self, prefix: str = "") -> Iterator[PendingUpload]:
                ...

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
            head = self._client.head_bucket(self.bucket)
        except TosServerError as error:
            if error.status_code in (401, 403):
                # A HEAD answer has no body to tell a wrong key from a policy without the
                # action.
                step, reason = "credentials", ("the access key or secret key was refused, "
                                               "STORAGE_REGION is not the bucket's, or the "
                                               "key may not call tos:HeadBucket")
            elif error.status_code == 404:
                step, reason = "bucket", "the bucket does not exist"
            else:
                step, reason = "bucket", "the bucket cannot be checked"
            where = f"bucket {self.bucket!r} at {self.endpoint}"
            raise preflight_error(step, f"{reason} ({where}: {describe(error)})") from error
        except TosError as error:
            raise preflight_error("connect", f"{self.endpoint}: {describe(error)}") from error
        if head.region and head.region != self.region:
            # Signed for one region, sent to an endpoint of another: writes would fail or
            # go through another region's network; named here, before any.
            raise preflight_error("region", f"bucket {self.bucket!r} is in region "
                                  f"{head.region!r}, not STORAGE_REGION {self.region!r} "
                                  f"(endpoint {self.endpoint})")
