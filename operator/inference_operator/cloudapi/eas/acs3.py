"""The ACS3-HMAC-SHA256 request signature, as `alibabacloud_tea_openapi` signs by default.

What the SDK does (alibabacloud_tea_openapi/utils.py, `get_authorization`): every header it has set
when it signs is signed (host, accept, user-agent, content-type, x-acs-action, x-acs-version,
x-acs-date, x-acs-signature-nonce, x-acs-content-sha256), names lower-cased and sorted, values trimmed;
the canonical request is method, the path as sent, the query (names sorted, values encoded keeping only
`A-Za-z0-9-_.~`, names as they are), the header lines, the signed names and the hex SHA-256 of the body;
the string to sign is `ACS3-HMAC-SHA256\\n<hex sha256 of the canonical request>`, keyed with the
AccessKeySecret; the header is `ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=<a;b>,Signature=<hex>`.

The verifier rebuilds it from what was received: the raw path, the raw query decoded as a form (the SDK
sends it with `urlencode`), the received values of the headers the client names, and the hash of the
body bytes received (a declared x-acs-content-sha256 must match them). Every refusal is an Acs3Error
whose `kind` says which check failed.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote

ALGORITHM = "ACS3-HMAC-SHA256"
DATE_HEADER = "x-acs-date"
CONTENT_SHA_HEADER = "x-acs-content-sha256"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
WINDOW = timedelta(minutes=15)
REQUIRED_SIGNED = ("host", DATE_HEADER, CONTENT_SHA_HEADER)


class Failure(enum.Enum):
    """Which check refused the request; each has the code Alibaba Cloud's gateway answers with."""

    INCOMPLETE = "IncompleteSignature"
    UNKNOWN_KEY = "InvalidAccessKeyId.NotFound"
    BAD_SIGNATURE = "SignatureDoesNotMatch"
    STALE_DATE = "InvalidTimeStamp.Expired"
    CONTENT_HASH = "InvalidContentSHA256"


class Acs3Error(Exception):
    def __init__(self, kind: Failure, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Received:
    """A request as it arrived: method, raw path (still percent-encoded), raw query, headers by lower-case
    name (every value received), body bytes."""

    method: str
    path: str
    query: str
    headers: Mapping[str, Sequence[str]]
    body: bytes


@dataclass(frozen=True)
class Authorization:
    access_key: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str | None) -> Authorization:
    """The parts of an ACS3-HMAC-SHA256 Authorization value; INCOMPLETE naming what is missing."""
    if not value:
        raise Acs3Error(Failure.INCOMPLETE, "the request has no Authorization header (ACS3-HMAC-SHA256)")
    scheme, _, rest = value.strip().partition(" ")
    if scheme != ALGORITHM:
        raise Acs3Error(Failure.INCOMPLETE, f"the Authorization scheme is not {ALGORITHM}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, item = part.strip().partition("=")
        if sep:
            fields[name.strip()] = item.strip()
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if not fields.get(name)]
    if missing:
        raise Acs3Error(Failure.INCOMPLETE, f"the Authorization header lacks {', '.join(missing)}")
    signed = tuple(fields["SignedHeaders"].split(";"))
    absent = [name for name in REQUIRED_SIGNED if name not in signed]
    if absent:
        raise Acs3Error(Failure.INCOMPLETE, f"SignedHeaders must include {', '.join(absent)}")
    return Authorization(fields["Credential"], signed, fields["Signature"])


def canonical_query(raw: str) -> str:
    """Names sorted, `name=value` with the value encoded as the SDK encodes it; a repeated name is refused
    (the SDK's query is a map: a second value would be outside the signature)."""
    pairs = parse_qsl(raw, keep_blank_values=True, errors="surrogateescape")
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise Acs3Error(Failure.BAD_SIGNATURE, "a query parameter is repeated")
    return "&".join(f"{name}={quote(value, safe='~', errors='surrogateescape')}" for name, value in sorted(pairs))


def canonical_headers(headers: Mapping[str, Sequence[str]], signed: Sequence[str]) -> str:
    """`name:values` per signed header (values trimmed, sorted, comma-joined), each line ending in a newline."""
    lines = []
    for name in signed:
        values = headers.get(name)
        if not values:
            raise Acs3Error(Failure.INCOMPLETE, f"the signed header {name!r} is not in the request")
        lines.append(f"{name}:{','.join(sorted(v.strip() for v in values))}\n")
    return "".join(lines)


def canonical_request(req: Received, signed: Sequence[str], body_hash: str) -> str:
    return "\n".join([req.method.upper(), req.path or "/", canonical_query(req.query),
                      canonical_headers(req.headers, signed), ";".join(signed), body_hash])


def string_to_sign(canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{ALGORITHM}\n{digest}"


def sign(secret: str, text: str) -> str:
    return hmac.new(secret.encode("utf-8", "surrogateescape"), text.encode("utf-8", "surrogateescape"),
                    hashlib.sha256).hexdigest()


def parse_date(value: str) -> datetime:
    try:
        return datetime.strptime(value.strip(), DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise Acs3Error(Failure.INCOMPLETE, f"{DATE_HEADER} is not {DATE_FORMAT.replace('%', '')} "
                                            "(UTC, e.g. 2024-05-01T08:00:00Z)") from None


def check_date(headers: Mapping[str, Sequence[str]], now: datetime) -> None:
    values = headers.get(DATE_HEADER) or []
    if len(values) != 1:
        raise Acs3Error(Failure.INCOMPLETE, f"the request needs exactly one {DATE_HEADER} header")
    moment = parse_date(values[0])
    if abs(now - moment) > WINDOW:
        raise Acs3Error(Failure.STALE_DATE, f"{DATE_HEADER} {values[0].strip()} is more than 15 minutes from the "
                                            f"server's time {now.strftime(DATE_FORMAT)}")


def body_hash(req: Received) -> str:
    """Hex SHA-256 of the bytes received; a declared x-acs-content-sha256 that differs is refused."""
    actual = hashlib.sha256(req.body).hexdigest()
    declared = [v.strip().lower() for v in req.headers.get(CONTENT_SHA_HEADER) or []]
    if declared != [actual]:
        raise Acs3Error(Failure.CONTENT_HASH, f"{CONTENT_SHA_HEADER} does not match the body received")
    return actual


def verify(req: Received, auth: Authorization, secret: str, now: datetime) -> None:
    """Raises Acs3Error unless `auth` signs `req` with `secret`, dated within 15 minutes of `now`."""
    check_date(req.headers, now)
    digest = body_hash(req)
    expected = sign(secret, string_to_sign(canonical_request(req, auth.signed_headers, digest)))
    if not hmac.compare_digest(expected.encode(), auth.signature.strip().lower().encode("utf-8", "replace")):
        raise Acs3Error(Failure.BAD_SIGNATURE, "the signature does not match: check the AccessKeySecret")
