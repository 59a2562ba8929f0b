"""Error answers of the local TOS server: an HTTP status, TOS's error code and its EC."""

from __future__ import annotations

from http import HTTPStatus


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


