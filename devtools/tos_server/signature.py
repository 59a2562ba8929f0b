"""The TOS V4 signature (``TOS4-HMAC-SHA256``), checked as TOS checks it: in the
``Authorization`` header, or in the query string of a pre-signed URL (with its expiry).
A request dated more than 15 minutes away from the server's clock is refused."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from devtools.tos_server.errors import TosError
from devtools.tos_server.request import TosRequest

MAX_SKEW_SECONDS = 15 * 60
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
SIGNATURE_PARAM = "X-Tos-Signature"
# The query parameters of a pre-signed URL; the signature covers all but the last.
PRESIGN_PARAMS = frozenset({"X-Tos-Algorithm", "X-Tos-Credential", "X-Tos-Date",
                            "X-Tos-Expires", "X-Tos-SignedHeaders", "X-Tos-Security-Token",
                            SIGNATURE_PARAM})


@dataclass(frozen=True)
class Authorization:
    """What a request claims about its signature, from the header or the query string."""

    access_key: str
    date: str  # YYYYMMDD, of the credential scope
    region: str
    signed_headers: list[str]
    signature: str
    request_date: str  # YYYYMMDDTHHMMSSZ, what the string to sign carries
    query_pairs: list[tuple[str, str]]  # the signed query parameters
    payload_hash: str


AUTH_PATTERN = re.compile(
    r"TOS4-HMAC-SHA256 Credential=(?P<ak>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/tos/request,"
    r"\s*SignedHeaders=(?P<headers>[^,]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)
CREDENTIAL_PATTERN = re.compile(r"(?P<ak>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/tos/request")


def access_denied(message: str) -> TosError:
    return TosError(403, "AccessDenied", message)


def is_signed(request: TosRequest) -> bool:
    """Whether the request carries a signature at all (an unsigned one is anonymous)."""
    return "Authorization" in request.headers or SIGNATURE_PARAM in request.query


def parse_authorization(request: TosRequest) -> Authorization:
    match = AUTH_PATTERN.fullmatch((request.headers.get("Authorization") or "").strip())
    if not match:
        raise access_denied("Missing or malformed Authorization header.")
    return Authorization(
        match["ak"], match["date"], match["region"], match["headers"].split(";"),
        match["signature"], request.headers.get("x-tos-date", ""), request.query_pairs,
        request.headers.get("x-tos-content-sha256", UNSIGNED_PAYLOAD),
    )


def parse_query_authorization(request: TosRequest) -> Authorization:
    """The signature of a pre-signed URL; refused once X-Tos-Expires seconds have passed."""
    query = request.query
    credential = CREDENTIAL_PATTERN.fullmatch(query.get("X-Tos-Credential", ""))
    expires = query.get("X-Tos-Expires", "")
    if credential is None or not expires.isdigit() or "X-Tos-Date" not in query:
        raise access_denied("Malformed pre-signed URL.")
    if not 1 <= int(expires) <= MAX_PRESIGN_EXPIRES:
        raise access_denied("X-Tos-Expires must be between 1 and 604800 seconds.")
    signed_at = _parse_date(query["X-Tos-Date"])
    if time.time() > signed_at + int(expires):
        raise access_denied("Request has expired.")
    return Authorization(
        credential["ak"], credential["date"], credential["region"],
        query.get("X-Tos-SignedHeaders", "host").split(";"), query[SIGNATURE_PARAM],
        query["X-Tos-Date"],
        [(name, value) for name, value in request.query_pairs if name != SIGNATURE_PARAM],
        UNSIGNED_PAYLOAD,
    )


def _parse_date(text: str) -> float:
    try:
        return datetime.strptime(text, DATE_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise access_denied(f"Malformed request date {text!r}.") from None


def check_request_date(auth: Authorization) -> None:
    if abs(time.time() - _parse_date(auth.request_date)) > MAX_SKEW_SECONDS:
        raise TosError(403, "RequestTimeTooSkewed", "The difference between the request time "
                       "and the server's time is too large.")


def canonical_request(request: TosRequest, auth: Authorization) -> str:
    """The SDK's canonical request (auth.py ``_canonical_request``), rebuilt server side."""
    query = "&".join(
        f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}"
        for name, value in sorted(auth.query_pairs)
    )
    header_lines = "".join(f"{name}:{request.headers.get(name, '')}\n"
                           for name in auth.signed_headers)
    return "\n".join([
        request.method,
        quote("/" + request.key, safe="/~"),
        query,
        header_lines,
        ";".join(auth.signed_headers),
        auth.payload_hash,
    ])


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def compute_signature(secret_key: str, auth: Authorization, request: TosRequest) -> str:
    scope = f"{auth.date}/{auth.region}/tos/request"
    digest = hashlib.sha256(canonical_request(request, auth).encode()).hexdigest()
    string_to_sign = "\n".join(["TOS4-HMAC-SHA256", auth.request_date, scope, digest])
    key = secret_key.encode()
    for part in (auth.date, auth.region, "tos", "request"):
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def verify_signature(request: TosRequest, credentials: Mapping[str, str]) -> None:
    """Check the header signature, or the pre-signed URL's when there is no header."""
    if "Authorization" in request.headers or SIGNATURE_PARAM not in request.query:
        auth = parse_authorization(request)
        check_request_date(auth)
    else:
        auth = parse_query_authorization(request)
    secret_key = credentials.get(auth.access_key)
    if secret_key is None:
        raise TosError(403, "InvalidAccessKeyId", "The access key ID does not exist.")
    expected = compute_signature(secret_key, auth, request)
    if not hmac.compare_digest(expected, auth.signature):
        raise TosError(
            403, "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
