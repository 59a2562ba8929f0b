"""Command line of the local TOS server::

    python -m devtools.tos_server --root DIR --port 9000 --access-key AK --secret-key SK
        [--bucket NAME ...] [--latency-ms 20] [--error-rate 0.1] [--drop-rate 0.1]
        [--bandwidth-mib 50] [--bucket-acl NAME=public-read ...] [--domain HOST=BUCKET ...]
        [--deny ListMultipartUploads ...]

``--bucket-acl`` makes every object of a bucket readable without a signature;
``--domain`` binds a custom domain to one bucket (``--domain 127.0.0.1=NAME`` serves
``http://127.0.0.1:<port>/<key>`` from that bucket, as a CDN bound to it would);
``--deny`` answers the key's requests for that policy action (tos:<ACTION>) with 403
AccessDenied, as a policy that lacks it would.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from pathlib import Path

from devtools.tos_server.faults import Faults
from devtools.tos_server.http import TosServer
from devtools.tos_server.operations import CANNED_ACLS, POLICY_ACTIONS


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"must look like NAME=VALUE, got {text!r}")
    return name, value


def _bucket_acl(text: str) -> tuple[str, str]:
    bucket, acl = _pair(text)
    if acl not in CANNED_ACLS:
        raise argparse.ArgumentTypeError(f"unknown ACL {acl!r}: one of {sorted(CANNED_ACLS)}")
    return bucket, acl


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.tos_server",
        description="Local TOS server; point the SDK at it with proxy_host/proxy_port.",
    )
    parser.add_argument("--root", type=Path, required=True, help="folder holding the buckets")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    parser.add_argument("--access-key", default=os.environ.get("STORAGE_ACCESS_KEY"),
                        help="default: $STORAGE_ACCESS_KEY")
    parser.add_argument("--secret-key", default=os.environ.get("STORAGE_SECRET_KEY"),
                        help="default: $STORAGE_SECRET_KEY (keeps it out of the process list)")
    parser.add_argument("--bucket", action="append", default=[], help="create if missing")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--error-rate", type=_rate, default=0.0)
    parser.add_argument("--error-status", type=int, default=503)
    parser.add_argument("--drop-rate", type=_rate, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bandwidth-mib", type=float, default=0.0,
                        help="cap each connection at this many MiB/s (0: no cap)")
    parser.add_argument("--bucket-acl", type=_bucket_acl, action="append", default=[],
                        metavar="NAME=ACL", help="a bucket's canned ACL, e.g. NAME=public-read")
    parser.add_argument("--domain", type=_pair, action="append", default=[],
                        metavar="HOST=BUCKET",
                        help="bind a custom domain (host, or host:port) to one bucket")
    parser.add_argument("--deny", action="append", default=[], metavar="ACTION",
                        choices=sorted(set(POLICY_ACTIONS.values())),
                        help="a policy action the key may not call, e.g. ListMultipartUploads")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    if not args.access_key or not args.secret_key:
        parser.error("--access-key and --secret-key (or STORAGE_ACCESS_KEY and "
                     "STORAGE_SECRET_KEY) are required")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(message)s")
    faults = Faults(latency=args.latency_ms / 1000, error_rate=args.error_rate,
                    error_status=args.error_status, drop_rate=args.drop_rate, seed=args.seed,
                    bandwidth=args.bandwidth_mib * 1024 * 1024, denied=frozenset(args.deny))
    server = TosServer(args.root, access_key=args.access_key, secret_key=args.secret_key,
                       buckets=args.bucket, host=args.host, port=args.port, faults=faults,
                       bucket_acls=dict(args.bucket_acl), domains=dict(args.domain))
    server.start()
    print(f"local TOS server listening on {server.url} (root {args.root}); use it as the "
          "SDK's HTTP proxy with an http:// endpoint", flush=True)
    try:
        threading.Event().wait()  # serve until Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
