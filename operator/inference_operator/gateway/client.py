"""Call the inference gateway with AppKey/AppSecret: sign requests the SDK-HMAC-SHA256 way.

The signature is the one GATEWAY.md describes (the cloud's API signing guide); this helper signs
exactly as the gateway verifies, because both use inference_operator.gateway.signing. It works
with any HTTP library: it only computes headers.

    from inference_operator.gateway.client import Signer
    signer = Signer(app_key, app_secret)
    headers = signer.sign("POST", url, {"Content-Type": "application/json"}, body)
    requests.post(url, headers=headers, data=body)          # or httpx, aiohttp, urllib ...

The cloud SDK's own style works unchanged (seed 002's sample code):

    request = HttpRequest("POST", url, {"Content-Type": "application/json"}, body)
    sig = Signer(); sig.Key = app_key; sig.Secret = app_secret
    sig.Sign(request)
    requests.request(request.method, request.scheme + "://" + request.host + request.uri,
                     headers=request.headers, data=request.body)

For bodies you stream or build later (multipart uploads), pass the header
`X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`: the body is then not part of the signature.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

from inference_operator.gateway import signing

__all__ = ["HttpRequest", "Signer", "signing"]


class HttpRequest:
    """A request to sign, split as the cloud SDK's HttpRequest: scheme, host, uri (path), query, headers, body."""

    def __init__(self, method: str = "", url: str = "", headers: Mapping[str, str] | None = None,
                 body: bytes | str = b"") -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        self.method = method.upper()
        self.scheme = parts.scheme or "http"
        self.host = parts.netloc.rpartition("@")[2]
        self.uri = parts.path or "/"
        self.query = signing.parse_query(parts.query)
        self.headers: dict[str, str] = dict(headers or {})
        self.body: bytes = body.encode() if isinstance(body, str) else body


class Signer:
    """Signer(key, secret).sign(method, url, headers, body) -> headers with X-Sdk-Date and Authorization."""

    def __init__(self, key: str = "", secret: str = "") -> None:
        self.Key = key
        self.Secret = secret

    def sign(self, method: str, url: str, headers: Mapping[str, str] | None = None, body: bytes | str = b"",
             now: datetime | None = None) -> dict[str, str]:
        """The headers to send: yours, plus Host (if absent), X-Sdk-Date (if absent) and Authorization.

        Every header passed here is signed, so send exactly these headers with the same values.
        """
        request = HttpRequest(method, url, headers, body)
        self._sign(request, now)
        return request.headers

    def Sign(self, request: HttpRequest, now: datetime | None = None) -> None:  # noqa: N802 - the SDK's name
        """Sign an HttpRequest in place, as the cloud SDK does (the canonical query is appended to uri)."""
        self._sign(request, now)
        if query := signing.canonical_query(request.query):
            request.uri = f"{request.uri}?{query}"

    def _sign(self, request: HttpRequest, now: datetime | None) -> None:
        if not self.Key or not self.Secret:
            raise ValueError("Signer needs an AppKey and an AppSecret")
        headers = request.headers
        lower = {name.lower(): value for name, value in headers.items()}
        if signing.DATE_HEADER.lower() not in lower:
            headers[signing.DATE_HEADER] = lower[signing.DATE_HEADER.lower()] = signing.format_date(
                now or datetime.now(UTC))
        if "host" not in lower:
            headers["Host"] = lower["host"] = request.host
        signed = sorted(name for name in lower if name != "authorization")
        body_hash = signing.payload_hash(request.body, lower.get(signing.CONTENT_SHA_HEADER.lower()))
        canonical = signing.canonical_request(request.method, request.uri, request.query, lower, signed, body_hash)
        text = signing.string_to_sign(canonical, lower[signing.DATE_HEADER.lower()])
        headers["Authorization"] = signing.authorization(self.Key, signed, signing.signature(self.Secret, text))
