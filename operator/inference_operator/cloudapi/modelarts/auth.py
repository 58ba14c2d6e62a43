"""Who a ModelArts caller is: an AK/SK signature (SDK-HMAC-SHA256, as huaweicloudsdkcore's Signer signs)
or an X-Auth-Token holding a Kubernetes bearer token (TokenReview).

The canonical forms are gateway/signing.py's (the same signer the gateway verifies against); the body
hash is over the bytes received, the date must be within 15 minutes of the server's clock, and the
signature is compared in constant time. Each failure says which: unknown key, bad signature, stale date.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from inference_operator.cloudapi.credentials import AccessKey
from inference_operator.cloudapi.errors import CloudError, Problem, printable
from inference_operator.gateway import signing

MAX_SKEW = timedelta(minutes=15)
TOKEN_HEADER = "x-auth-token"
EMPTY_SHA256 = signing.sha256_hex(b"")


@dataclass(frozen=True)
class SignedRequest:
    """What the verifier needs of a request as received: method, raw path and query, headers keyed by lower-case
    name, the body's bytes."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


def _refuse(message: str) -> CloudError:
    return CloudError(Problem.UNAUTHENTICATED, message)


def signature_head(req: SignedRequest, now: datetime) -> tuple[str, list[str], str, str]:
    """(access key, signed headers, signature, X-Sdk-Date) of a well-formed, fresh signed request."""
    authorization = req.headers.get("authorization", "").strip()
    scheme = authorization.split(None, 1)[0] if authorization else ""
    if scheme != signing.ALGORITHM:
        raise _refuse(f"unsupported signing algorithm {printable(scheme, 32)}: sign with {signing.ALGORITHM}")
    try:
        key, signed, sig = signing.parse_authorization(authorization)
    except ValueError as err:
        raise _refuse(f"malformed Authorization header: {err}") from None
    if not (key.isascii() and sig.isascii() and all(name.isascii() for name in signed)):
        raise _refuse("malformed Authorization header: Access, SignedHeaders and Signature must be ASCII")
    signed = [name.strip().lower() for name in signed]
    if "x-sdk-date" not in signed or "host" not in signed:
        raise _refuse("SignedHeaders must include host and x-sdk-date")
    if missing := [name for name in signed if name not in req.headers]:
        raise _refuse(f"signed headers not sent: {', '.join(missing)[:200]}")
    date = req.headers["x-sdk-date"].strip()
    try:
        moment = signing.parse_date(date)
    except ValueError:
        raise _refuse(f"X-Sdk-Date {printable(date)} is not YYYYMMDDTHHMMSSZ (UTC)") from None
    if abs(now - moment) > MAX_SKEW:
        raise _refuse(f"stale date: X-Sdk-Date {date} is more than 15 minutes from the server's clock "
                      f"({signing.format_date(now)})")
    return key, signed, sig, date


def body_hash(req: SignedRequest) -> str:
    """As the SDK hashes: an empty body is the empty hash; else the X-Sdk-Content-Sha256 sent (UNSIGNED-PAYLOAD
    or a hash, which must then be the body's), else the body's hash."""
    if not req.body:
        return EMPTY_SHA256
    actual = signing.sha256_hex(req.body)
    declared = req.headers.get(signing.CONTENT_SHA_HEADER.lower(), "").strip()
    if not declared:
        return actual
    if declared != signing.UNSIGNED_PAYLOAD and not hmac.compare_digest(declared.lower().encode("utf-8", "replace"),
                                                                         actual.encode()):
        raise _refuse("bad signature: the body does not match its X-Sdk-Content-Sha256")
    return declared


def verify(req: SignedRequest, key: AccessKey | None, access: str, signed: list[str], sig: str, date: str) -> None:
    """The signature over the request as received, compared in constant time; CloudError (401) says why not."""
    if key is None:
        raise _refuse(f"unknown access key {printable(access)}")
    canonical = signing.canonical_request(req.method, req.path, signing.parse_query(req.query), req.headers,
                                          signed, body_hash(req))
    expected = signing.signature(key.secret_key, signing.string_to_sign(canonical, date))
    if not hmac.compare_digest(expected.encode(), sig.strip().lower().encode("utf-8", "replace")):
        raise _refuse(f"bad signature: the request's signature does not match the one computed with the secret "
                      f"key of {printable(access)}")
