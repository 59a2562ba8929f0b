"""The TOS V4 signature (``TOS4-HMAC-SHA256``), checked as TOS checks it."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from devtools.tos_server.errors import TosError
from devtools.tos_server.request import TosRequest


@dataclass(frozen=True)
class Authorization:
    access_key: str
    date: str  # YYYYMMDD
    region: str
    signed_headers: list[str]
    signature: str


AUTH_PATTERN = re.compile(
    r"TOS4-HMAC-SHA256 Credential=(?P<ak>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/tos/request,"
    r"\s*SignedHeaders=(?P<headers>[^,]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)


def parse_authorization(value: str | None) -> Authorization:
    match = AUTH_PATTERN.fullmatch((value or "").strip())
    if not match:
        raise TosError(403, "AccessDenied", "Missing or malformed Authorization header.")
    return Authorization(
        match["ak"], match["date"], match["region"], match["headers"].split(";"),
        match["signature"],
    )


def canonical_request(request: TosRequest, signed_headers: list[str]) -> str:
    """The SDK's canonical request (auth.py ``_canonical_request``), rebuilt server side."""
    query = "&".join(
        f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}"
        for name, value in sorted(request.query_pairs)
    )
    header_lines = "".join(f"{name}:{request.headers.get(name, '')}\n" for name in signed_headers)
    return "\n".join([
        request.method,
        quote("/" + request.key, safe="/~"),
        query,
        header_lines,
        ";".join(signed_headers),
        request.headers.get("x-tos-content-sha256", "UNSIGNED-PAYLOAD"),
    ])


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def compute_signature(secret_key: str, auth: Authorization, request: TosRequest) -> str:
    request_date = request.headers.get("x-tos-date", "")
    scope = f"{auth.date}/{auth.region}/tos/request"
    digest = hashlib.sha256(canonical_request(request, auth.signed_headers).encode()).hexdigest()
    string_to_sign = "\n".join(["TOS4-HMAC-SHA256", request_date, scope, digest])
    key = secret_key.encode()
    for part in (auth.date, auth.region, "tos", "request"):
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def verify_signature(request: TosRequest, credentials: Mapping[str, str]) -> None:
    auth = parse_authorization(request.headers.get("Authorization"))
    secret_key = credentials.get(auth.access_key)
    if secret_key is None:
        raise TosError(403, "InvalidAccessKeyId", "The access key ID does not exist.")
    expected = compute_signature(secret_key, auth, request)
    if not hmac.compare_digest(expected, auth.signature):
        raise TosError(
            403, "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )


