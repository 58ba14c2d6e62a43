"""The SDK-HMAC-SHA256 request signature, as GATEWAY.md writes it down (the cloud's signing guide).

One implementation, shared by the verifier (gateway/auth.py) and the client helper
(inference_operator.gateway.client), so both sides always agree on every canonical form. It mirrors the
cloud's own Python signer: the path is percent-decoded and every segment re-encoded keeping only
`A-Za-z0-9-_.~`, a trailing `/` is added, query values are sorted per name, the payload hash is the
literal `X-Sdk-Content-Sha256` when sent, and the HMAC key is the AppSecret itself.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_HEADER = "X-Sdk-Date"
CONTENT_SHA_HEADER = "X-Sdk-Content-Sha256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"


def encode(text: str) -> str:
    """Percent-encode everything but A-Za-z0-9-_.~ (space -> %20, / -> %2F)."""
    return quote(text, safe="~", errors="surrogateescape")


def sha256_hex(data: bytes | str) -> str:
    """Hex SHA-256; text is hashed as the bytes it arrived as (undecodable header bytes are surrogates)."""
    return hashlib.sha256(data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data).hexdigest()


def canonical_uri(path: str) -> str:
    """Rule 4: decode the path, re-encode each segment, end with '/'."""
    uri = "/".join(encode(segment) for segment in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def parse_query(raw: str) -> dict[str, list[str]]:
    """A raw query string as the signer sees it: split on & and the first =, percent-decoded ('+' stays)."""
    params: dict[str, list[str]] = {}
    for pair in raw.split("&") if raw else []:
        name, _, value = pair.partition("=")
        if name:
            params.setdefault(unquote(name), []).append(unquote(value))
    return params


def canonical_query(params: Mapping[str, Sequence[str]]) -> str:
    """Rule 5: names sorted, one name=value per value, values sorted, both encoded."""
    return "&".join(f"{encode(name)}={encode(value)}" for name in sorted(params) for value in sorted(params[name]))


def canonical_headers(headers: Mapping[str, str], signed_headers: Sequence[str]) -> str:
    """Rule 3: `name:value` (trimmed) per signed header, each line ending in a newline.

    `headers` must be keyed by lower-case name; a missing signed header raises KeyError.
    """
    return "".join(f"{name}:{headers[name].strip()}\n" for name in signed_headers)


def payload_hash(body: bytes, content_sha256: str | None = None) -> str:
    """Rule 6: the literal X-Sdk-Content-Sha256 when sent, else hex SHA-256 of the body."""
    return content_sha256 if content_sha256 else sha256_hex(body)


def canonical_request(method: str, path: str, params: Mapping[str, Sequence[str]], headers: Mapping[str, str],
                      signed_headers: Sequence[str], body_hash: str) -> str:
    """Rule 7: method, URI, query, headers, signed header list and payload hash, joined by newlines."""
    return "\n".join([method.upper(), canonical_uri(path), canonical_query(params),
                      canonical_headers(headers, signed_headers), ";".join(signed_headers), body_hash])


def string_to_sign(canonical: str, sdk_date: str) -> str:
    """Rule 8."""
    return f"{ALGORITHM}\n{sdk_date}\n{sha256_hex(canonical)}"


def signature(app_secret: str, text: str) -> str:
    """Rule 9: hex HMAC-SHA256 keyed with the AppSecret itself."""
    return hmac.new(app_secret.encode(), text.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()


def authorization(app_key: str, signed_headers: Sequence[str], sig: str) -> str:
    """Rule 10."""
    return f"{ALGORITHM} Access={app_key}, SignedHeaders={';'.join(signed_headers)}, Signature={sig}"


def parse_authorization(value: str) -> tuple[str, list[str], str]:
    """(AppKey, signed headers, signature) of an SDK-HMAC-SHA256 Authorization value; ValueError if malformed."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme != ALGORITHM:
        raise ValueError(f"authorization scheme is not {ALGORITHM}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, item = part.strip().partition("=")
        if sep:
            fields[name.strip()] = item.strip()
    try:
        access, signed, sig = fields["Access"], fields["SignedHeaders"], fields["Signature"]
    except KeyError as err:
        raise ValueError(f"authorization lacks {err.args[0]}") from None
    if not access or not signed or not sig:
        raise ValueError("authorization has an empty Access, SignedHeaders or Signature")
    return access, signed.split(";"), sig


def format_date(moment: datetime) -> str:
    """X-Sdk-Date of a moment: UTC, YYYYMMDDTHHMMSSZ."""
    return moment.astimezone(UTC).strftime(DATE_FORMAT)


def parse_date(value: str) -> datetime:
    """The moment an X-Sdk-Date names; ValueError if it is not YYYYMMDDTHHMMSSZ."""
    return datetime.strptime(value.strip(), DATE_FORMAT).replace(tzinfo=UTC)
