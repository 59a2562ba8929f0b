"""``make verify`` fetches the rewritten URLs the way the app (and a user's browser) does.

Each URL gets one request with no credentials and no proxy: ``HEAD``, or a one-byte
ranged ``GET`` where ``HEAD`` is refused; ``MAX_CONCURRENT`` at a time, each with a
timeout. A URL passes when it answers 2xx with the size the manifest recorded. The
failures are grouped by class (403, 404, another status, a wrong size, a host that cannot
be reached and why), each class with its count, the first few URLs and its cause in words.
A 403 means a private object, unless the manifest says the object was written public-read:
then it means no object at that URL (a private bucket hides which keys exist).

requests (already installed: the tos SDK depends on it) rather than urllib: it keeps a
pool of keep-alive connections per host, so fetching a hundred thousand URLs on one CDN
host does not open a hundred thousand TLS connections, and it follows redirects (a CDN's
http → https) as a browser does. Its environment reading is switched off (no
``HTTP(S)_PROXY``, no ``.netrc`` credentials): the check must see what the app sees
directly. Only ``REQUESTS_CA_BUNDLE`` (or ``CURL_CA_BUNDLE``) is taken from it, for an
``https://`` URL signed by a company CA.
"""

from __future__ import annotations

import os
import random
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import requests

# (connect, read) seconds: a URL that does not answer within them fails.
TIMEOUT = (10.0, 30.0)
EXAMPLES = 3  # URLs shown per failure class
HEAD_REFUSED = frozenset({405, 501})
CAUSES = {
    403: "the objects are private: upload with STORAGE_ACL=public-read, or have the app "
         "sign URLs",
    404: "no object at that URL: check STORAGE_PUBLIC_BASE_URL",
}
# Canned ACLs that let anyone read an object.
PUBLIC_READ = frozenset({"public-read", "public-read-write"})
# A 403 for an object written public-read: TOS (as S3) answers an anonymous request for a
# key it does not have with 403 in a private bucket, so as not to tell which keys exist.
PUBLIC_403_CAUSE = ("the objects were written public-read (the manifest's acl), so this is "
                    "most likely no object at that URL, which a private bucket answers with "
                    "403: check STORAGE_PUBLIC_BASE_URL, or the origin its CDN fetches from")


@dataclass(frozen=True)
class Target:
    """A URL stored in a file-path column, and the size of the object it must serve."""

    url: str
    size: int
    acl: str | None = None  # the canned ACL it was written with; None: the bucket's default


@dataclass(frozen=True)
class Failure:
    """A class of failures: one row of the verify table."""

    subject: str
    cause: str


@dataclass
class FailureClass:
    failure: Failure
    count: int
    examples: list[str]

    @property
    def detail(self) -> str:
        shown = ", ".join(self.examples)
        more = f" and {self.count - len(self.examples):,} more" if self.count > len(
            self.examples) else ""
        urls = "URL" if self.count == 1 else "URLs"
        return f"{self.count:,} {urls} ({shown}{more}): {self.failure.cause}"


def chosen(targets: list[Target], count: int | None) -> list[Target]:
    """Every target (``count`` None), or ``count`` of them chosen at random."""
    if count is None or count >= len(targets):
        return targets
    return random.sample(targets, count)


def fetch_all(targets: list[Target], max_concurrent: int) -> list[FailureClass]:
    """Fetch every target, ``max_concurrent`` at a time; the failures by class, in the order
    they were first met."""
    classes: dict[Failure, FailureClass] = {}
    with _sessions() as session, ThreadPoolExecutor(max_concurrent) as pool:
        for target, failure in zip(targets, pool.map(lambda t: _check(session(), t), targets),
                                   strict=True):
            if failure is None:
                continue
            found = classes.setdefault(failure, FailureClass(failure, 0, []))
            found.count += 1
            if len(found.examples) < EXAMPLES:
                found.examples.append(target.url)
    return list(classes.values())


@contextmanager
def _sessions() -> Iterator[Callable[[], requests.Session]]:
    """One session a thread (a session's connection pool is not shared across threads),
    all closed at the end."""
    local, made = threading.local(), []
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.trust_env = False  # no proxy, no .netrc: as the app sees it
            local.session.verify = ca_bundle or True
            made.append(local.session)
        return local.session

    try:
        yield session
    finally:
        for each in made:
            each.close()


def _check(session: requests.Session, target: Target) -> Failure | None:
    if urlsplit(target.url).scheme == "file":
        return _check_file(target)
    try:
        status, size = _fetch(session, target.url)
    except requests.RequestException as error:
        return _unreachable(target.url, error)
    if status == 403 and target.acl in PUBLIC_READ:
        return Failure(f"{status} {_reason(status)}", PUBLIC_403_CAUSE)
    if status in CAUSES:
        return Failure(f"{status} {_reason(status)}", CAUSES[status])
    if not 200 <= status < 300:
        return Failure(f"HTTP {status}", f"the server answered {status} {_reason(status)}")
    if size != target.size:
        return Failure("wrong size", "the URL serves another object than the one uploaded "
                                     "(sizes differ): check where STORAGE_PUBLIC_BASE_URL, or "
                                     "its CDN, points")
    return None


def _fetch(session: requests.Session, url: str) -> tuple[int, int | None]:
    """The status, and the object's size as the answer gives it."""
    with session.head(url, timeout=TIMEOUT, allow_redirects=True) as answer:
        if answer.status_code not in HEAD_REFUSED:
            return answer.status_code, _length(answer.headers.get("Content-Length"))
    with session.get(url, headers={"Range": "bytes=0-0"}, timeout=TIMEOUT, stream=True,
                     allow_redirects=True) as answer:
        if answer.status_code == 206:  # Content-Range: bytes 0-0/<size>
            total = answer.headers.get("Content-Range", "").rpartition("/")[2]
            return 206, _length(total)
        return answer.status_code, _length(answer.headers.get("Content-Length"))


def _length(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _check_file(target: Target) -> Failure | None:
    """A ``file://`` URL (the ``local`` provider, for development): the file and its size."""
    path = Path(url2pathname(unquote(urlsplit(target.url).path)))
    if not path.is_file():
        return Failure("no such file", CAUSES[404])
    if path.stat().st_size != target.size:
        return Failure("wrong size", "the file differs from the one uploaded (sizes differ)")
    return None


def _unreachable(url: str, error: requests.RequestException) -> Failure:
    """A request that got no answer: the host, and why, in the words of the error under
    requests' and urllib3's wrappers."""
    host = urlsplit(url).netloc
    if isinstance(error, requests.Timeout):
        return Failure(f"cannot reach {host}", f"no answer within {TIMEOUT[1]:g} s")
    root = _root_cause(error)
    if isinstance(root, socket.gaierror):
        why = f"the name does not resolve ({root.strerror or root})"
    elif isinstance(root, ssl.SSLCertVerificationError):
        why = f"TLS failed: certificate verify failed: {root.verify_message}"
    elif isinstance(root, ssl.SSLError):
        why = f"TLS failed: {root.reason or root}"
    elif isinstance(root, OSError) and root.strerror:
        why = root.strerror
    else:
        why = str(root)
    return Failure(f"cannot reach {host}", why)


def _root_cause(error: BaseException) -> BaseException:
    while (under := error.__cause__ or error.__context__) is not None:
        error = under
    return error
