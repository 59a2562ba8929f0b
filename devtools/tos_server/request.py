"""A request as the local TOS server sees it: bucket and key from the Host header and
path, the query as sent, and the body as a stream whatever its framing."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import BinaryIO
from urllib.parse import parse_qsl, unquote, urlsplit

from devtools.tos_server.errors import TosError

MAX_JSON_BODY = 10 * 1024 * 1024
COPY_CHUNK = 1024 * 1024
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class TosRequest:
    method: str
    bucket: str
    key: str  # unquoted; "" for bucket-level calls
    query: dict[str, str]
    query_pairs: list[tuple[str, str]]  # as sent, for the canonical request
    headers: Message


def parse_request(method: str, target: str, headers: Message,
                  domains: Mapping[str, str] | None = None) -> TosRequest:
    """Split a request line target (absolute form via the proxy, or origin form).

    The bucket is the first label of the Host (virtual-host style), or the bucket a custom
    domain is bound to: ``domains`` maps a host (``cdn.local``, ``127.0.0.1:9000``, or a
    host without its port, which then binds every port) to one bucket, as a CDN or custom
    domain bound to a bucket does."""
    parts = urlsplit(target)
    host = headers.get("Host") or parts.netloc
    bucket = bound_bucket(host, domains or {}) or host.split(":", 1)[0].split(".", 1)[0]
    if not BUCKET_NAME.fullmatch(bucket):
        raise TosError(400, "InvalidBucketName", f"Invalid bucket name in Host {host!r}.")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    return TosRequest(method, bucket, unquote(parts.path[1:]), dict(pairs), pairs, headers)


def bound_bucket(host: str, domains: Mapping[str, str]) -> str | None:
    """The bucket a custom domain is bound to: by the host as sent, else without its port."""
    host = host.lower()
    return domains.get(host) or domains.get(host.rsplit(":", 1)[0])


class RequestBody:
    """The request body as a stream of chunks, whatever its framing.

    Chunked bodies (the SDK sends generators and empty parts that way) are decoded here.
    ``drain`` consumes what a handler left, so that a keep-alive connection stays in step.
    """

    def __init__(self, rfile: BinaryIO, headers: Message,
                 pace: Callable[[int], None] | None = None) -> None:
        self._rfile = rfile
        self._pace = pace
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
            if self._pace:
                self._pace(len(chunk))
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


