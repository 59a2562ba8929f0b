"""What a TOS call's failure means, in one line: the status and TOS code the server
answered, or what happened to the connection (the SDK calls every connection failure
"http request timeout", a refused proxy included)."""

from __future__ import annotations

from tos.exceptions import TosError, TosServerError

NO_SUCH_BUCKET_EC = "0006-00000001"
NO_SUCH_UPLOAD = "NoSuchUpload"
ACCESS_DENIED = "AccessDenied"


def describe(error: TosError) -> str:
    """One line for an SDK error: status and TOS code, or the client-side cause."""
    if isinstance(error, TosServerError):
        text = f"HTTP {error.status_code}"
        text += f" {error.code}" if error.code else ""
        return text + (f": {error.message}" if error.message else "")
    cause = getattr(error, "cause", None)
    if cause is None:
        return str(error.message)
    return f"{connection_failure(cause) or error.message} ({cause})"


def connection_failure(cause: BaseException) -> str | None:
    """"connection refused" (by the proxy, when it was the proxy that refused) when that
    is what the SDK's "http request timeout" stands for; None for any other cause."""
    chain = _causes(cause)
    if not any(isinstance(link, ConnectionRefusedError) for link in chain):
        return None
    by_proxy = any("ProxyError" in type(link).__name__ for link in chain)
    return "connection refused by the proxy (STORAGE_PROXY)" if by_proxy \
        else "connection refused"


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and everything it wraps: requests and urllib3 keep the cause in
    ``__cause__``, ``reason`` or their arguments."""
    seen: list[BaseException] = []
    todo = [error]
    while todo:
        link = todo.pop()
        if link in seen:
            continue
        seen.append(link)
        reason = getattr(link, "reason", None)
        todo += [c for c in (link.__cause__, reason, *link.args)
                 if isinstance(c, BaseException)]
    return seen


def is_denied(error: TosError) -> bool:
    """TOS refused the call as not allowed to this key by its bucket or IAM policy."""
    return isinstance(error, TosServerError) and error.status_code == 403 \
        and error.code == ACCESS_DENIED


def is_no_such_upload(error: TosServerError) -> bool:
    return error.status_code == 404 and error.code == NO_SUCH_UPLOAD
