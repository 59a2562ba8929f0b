"""HTTP handling of the local TOS server: who may call, faults, replies, the server.

The official ``tos`` SDK talks to it unchanged through its HTTP-proxy mode: give the client
an ``http://`` endpoint on any fake host (e.g. ``http://tos-cn-beijing.volces.com``) and
``proxy_host=127.0.0.1, proxy_port=<port>``. Requests then arrive in absolute form with
``Host: <bucket>.<fake host>``, so one server serves many buckets and the signature covers
the same Host as in production. Only what the SDK parses is answered: JSON bodies (never
XML), ``x-tos-hash-crc64ecma`` on writes and reads, ``x-tos-ec`` on errors.
"""


from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from devtools.tos_server.errors import TosError, status_error
from devtools.tos_server.faults import FaultOutcome, Faults, Throttle
from devtools.tos_server.operations import (
    CRC_HEADER,
    POLICY_ACTIONS,
    Reply,
    allows_anonymous,
    error_reply,
    route,
)
from devtools.tos_server.request import COPY_CHUNK, RequestBody, parse_request
from devtools.tos_server.signature import access_denied, is_signed, verify_signature
from devtools.tos_server.store import ObjectStore

log = logging.getLogger("devtools.tos_server")

# --------------------------------------------------------------------------- HTTP layer

class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    # A reply's headers and body are two writes; with Nagle's algorithm the body would wait
    # for the client's (delayed) ACK of the headers.
    disable_nagle_algorithm = True
    server: _HTTPServer
    _throttle: Throttle

    def do_CONNECT(self) -> None:
        # The SDK only proxies http:// endpoints; a tunnel would bypass the fake TOS host.
        self.close_connection = True
        with self.server.owner.request_in_flight():
            self._send(error_reply(TosError(405, "MethodNotAllowed", "CONNECT is refused."),
                       uuid.uuid4().hex, self.path))

    def do_GET(self) -> None:
        self._dispatch()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def _dispatch(self) -> None:
        with self.server.owner.request_in_flight():
            faults = self.server.owner.faults
            if faults.latency > 0:
                time.sleep(faults.latency)
            outcome = faults.draw(self.command)
            if outcome == "drop":
                self.close_connection = True  # the socket closes with no answer at all
                return
            try:
                self._serve(faults, outcome)
            except OSError:  # the client went away (reset, broken pipe, closed mid-body)
                self.close_connection = True

    def _serve(self, faults: Faults, outcome: FaultOutcome) -> None:
        request_id = uuid.uuid4().hex
        self._throttle = Throttle(faults.bandwidth)
        try:
            body = RequestBody(self.rfile, self.headers, pace=self._throttle.pace)
        except TosError as error:  # unusable framing: answer, then drop the connection
            self.close_connection = True
            self._send(error_reply(error, request_id, self.path))
            return
        reply = self._answer(self.server.owner, body, request_id, outcome)
        body.drain()  # a keep-alive connection must not see leftover body as a request
        if faults.corrupt_crc and CRC_HEADER in reply.headers:
            reply.headers[CRC_HEADER] = str(int(reply.headers[CRC_HEADER]) ^ 1)
        reply.headers["x-tos-request-id"] = request_id
        reply.headers["x-tos-id-2"] = f"local-tos-{request_id[:16]}"
        self._send(reply)

    def _answer(self, owner: TosServer, body: RequestBody, request_id: str,
                outcome: FaultOutcome) -> Reply:
        try:
            if outcome == "error":
                raise status_error(owner.faults.error_status)
            request = parse_request(self.command, self.path, self.headers, owner.domains)
            signed = is_signed(request)
            if signed:
                verify_signature(request, owner.credentials)
            elif not allows_anonymous(owner.store, request, owner.bucket_acls):
                raise access_denied("Anonymous access is refused: sign the request, or make "
                                    "the object public-read.")
            handler = route(request)
            # The key's policy is checked before the resource is looked up: a denied key
            # learns nothing of what exists.
            if signed and (action := POLICY_ACTIONS[handler]) in owner.faults.denied:
                raise access_denied(f"Access Denied: the policy does not allow tos:{action}.")
            return handler(owner.store, request, body)
        except TosError as error:
            return error_reply(error, request_id, self.path)
        except ConnectionError:
            raise  # the client went away mid-body; nothing to answer
        except Exception:
            log.exception("local TOS server failed on %s %s", self.command, self.path)
            return error_reply(TosError(500, "InternalError", "Internal error."), request_id,
                               self.path)

    def _send(self, reply: Reply) -> None:
        head_only = self.command == "HEAD"
        if (head_only and reply.status >= 300) or reply.status == 304:
            reply.body = b""  # a HEAD error advertising a body breaks the SDK's parser
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if "Content-Length" not in reply.headers:
            length = reply.length if reply.stream else len(reply.body)
            self.send_header("Content-Length", str(length))
        self.end_headers()
        try:
            if not head_only:
                self.wfile.write(reply.body)
                if reply.stream:
                    self._copy_stream(reply.stream, reply.length)
        finally:
            if reply.stream:
                reply.stream.close()

    def _copy_stream(self, stream: BinaryIO, length: int) -> None:
        while length > 0:
            chunk = stream.read(min(length, COPY_CHUNK))
            if not chunk:
                break
            self.wfile.write(chunk)
            self._throttle.pace(len(chunk))
            length -= len(chunk)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many parallel clients connect at once

    def __init__(self, address: tuple[str, int], owner: TosServer) -> None:
        self.owner = owner
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:  # type: ignore[no-untyped-def]
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End idle keep-alive connections, whose threads would otherwise outlive stop()."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)


class TosServer:
    """The local TOS server, for use from Python.

    ``with TosServer(root, access_key="AK", secret_key="SK", buckets=["b"]) as server:``
    listens on ``server.port`` (port 0 picks a free one). ``server.faults`` can be changed
    at any time; the next request sees the change.

    ``bucket_acls`` gives a bucket its canned ACL (``{"b": "public-read"}``: every object
    in it can be read without a signature; unnamed buckets are private). ``domains`` binds
    a custom domain to one bucket (``{"cdn.local": "b"}``, or ``{"127.0.0.1": "b"}`` for
    ``http://127.0.0.1:<port>/<key>``), as a CDN or custom domain bound to a bucket.
    ``tls`` serves https with that context's certificate (the SDK's proxy mode needs
    plain http: a second server on the same root serves the https side). ``region`` is
    where its buckets are, answered as ``x-tos-bucket-region`` on HeadBucket.

    ``wait_idle()`` returns once no request is in flight: after a client is killed
    mid-upload, the bucket is listed once the requests it had sent are answered.
    """

    def __init__(self, root: Path, *, access_key: str, secret_key: str,
                 buckets: Iterable[str] = (), host: str = "127.0.0.1", port: int = 0,
                 faults: Faults | None = None, bucket_acls: Mapping[str, str] | None = None,
                 domains: Mapping[str, str] | None = None,
                 tls: ssl.SSLContext | None = None, region: str = "cn-beijing") -> None:
        self.store = ObjectStore(root, region)
        for name in buckets:
            self.store.ensure_bucket(name)
        self.bucket_acls = dict(bucket_acls or {})
        self.domains = {host.lower(): bucket for host, bucket in (domains or {}).items()}
        self.tls = tls
        self.credentials = {access_key: secret_key}
        self.faults = faults or Faults()
        self._address = (host, port)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._requests = 0  # in flight: from the parsed headers to the reply sent
        self._idle = threading.Condition()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self._address[0]}:{self.port}"

    @contextlib.contextmanager
    def request_in_flight(self) -> Iterator[None]:
        """Count one request as in flight for the block (the handler's whole answer)."""
        with self._idle:
            self._requests += 1
        try:
            yield
        finally:
            with self._idle:
                self._requests -= 1
                if not self._requests:
                    self._idle.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no request is in flight; False if one still is after ``timeout``.

        A client killed mid-request leaves the server answering what had already reached
        it (a PUT whose whole body is in the socket's buffer is still stored), so what a
        bucket holds after such a kill settles only once those requests end. A request
        counts from its parsed headers to its reply.
        """
        with self._idle:
            return self._idle.wait_for(lambda: not self._requests, timeout)

    def start(self) -> TosServer:
        """Start serving in a background thread; returns once the socket listens."""
        self._httpd = _HTTPServer(self._address, self)
        if self.tls:
            self._httpd.socket = self.tls.wrap_socket(self._httpd.socket, server_side=True)
        # A short poll interval keeps stop() quick (the default waits up to 0.5 s).
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        name=f"tos-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None or self._thread is None:
            return
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> TosServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


