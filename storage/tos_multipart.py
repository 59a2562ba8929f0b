"""Multipart uploads to TOS: a large file in parts on the shared part threads, a killed
run's upload finished from the parts the bucket holds (its part listing is the
checkpoint), aborted on any failure so that no half upload lingers."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import tos
from tos.exceptions import TosError, TosServerError
from tos.models2 import UploadedPart
from tos.utils import RateLimiter

from storage.base import FileChanged, FileState, PartDone, PendingUpload, file_state
from storage.crc64 import crc64_combine, crc64_update, file_chunks, file_crc64
from storage.tos_errors import is_no_such_upload


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


class TosMultipart:
    """The multipart half of TosStorage (storage/tos.py), which sets these attributes
    and the CRC and error helpers named below."""

    bucket: str
    part_size: int
    list_page_size: int
    rate_limiter: RateLimiter | None
    _client: tos.TosClientV2
    _part_pool: ThreadPoolExecutor

    if TYPE_CHECKING:
        def _write_options(self) -> dict[str, object]:
                ...
        def _changed(self, key: str, path: Path) -> FileChanged:
                ...
        def _check_crc(self, action: str, key: str, what: str, expected: int,
                       reported: int | None) -> None:
                ...

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
                if is_no_such_upload(error):
                    return None
                raise
            stored.update((part.part_number, part) for part in page.parts)
            if not page.is_truncated:
                return stored
            marker = page.next_part_number_marker

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
