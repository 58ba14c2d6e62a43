"""App authentication of a request, when the service sets spec.auth.appAuth (GATEWAY.md).

A request passes with any one of: `X-Apig-AppCode: <AppCode>`; `apikey: <AppKey>` when the service
enables simple authentication (annotation inference.io/gateway-apikey-auth: "true"); an
SDK-HMAC-SHA256 signature made with AppKey/AppSecret and an X-Sdk-Date within 15 minutes of the
gateway's clock; or, on the EAS URL and on OpenAI routes, a token in `Authorization` (tokens.py).
Credentials of another service's app are recognised and refused with 403 (the app exists but is not
authorized here); everything else that fails is 401 and says why.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from inference_operator.gateway import signing, tokens
from inference_operator.gateway.entries import AppCredential, ServiceRoute
from inference_operator.gateway.errors import APP_NOT_AUTHORIZED, AUTH_FAILED, AUTH_MISSING, GatewayError

MAX_SKEW = timedelta(minutes=15)
APPCODE_HEADER = "x-apig-appcode"
APIKEY_HEADER = "apikey"


@dataclass(frozen=True)
class RequestFacts:
    """What the verifier needs of a request's head, as received: method, raw path and query, headers (the
    body, when signed, comes later as its hash: PendingSignature.verify)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    tokens: bool = False  # Authorization may carry a token (the EAS URL, /api/predict/...): gateway/tokens.py
    openai: bool = False  # an OpenAI route of an OpenAI-speaking service: `Authorization: Bearer <key>` is a token


@dataclass(frozen=True)
class PendingSignature:
    """A signed request whose head checked out (known AppKey, valid date, signed headers present): what is
    left is the payload hash. `content_sha` is the X-Sdk-Content-Sha256 sent (None: hash the body)."""

    pool: tuple[AppCredential, ...]  # apps with this AppKey: the service's own, else another service's
    own: bool
    key: str
    signed: tuple[str, ...]
    sig: str
    date: str
    content_sha: str | None
    facts: RequestFacts

    @property
    def unsigned_payload(self) -> bool:
        return self.content_sha == signing.UNSIGNED_PAYLOAD

    def verify(self, body_sha256: str | None = None) -> AppCredential:
        """The app, once the signature matches; `body_sha256` is the hex SHA-256 of the body as received
        (None only for UNSIGNED-PAYLOAD). A declared X-Sdk-Content-Sha256 must equal it."""
        if self.content_sha is not None and not self.unsigned_payload and body_sha256 is not None \
                and not hmac.compare_digest(self.content_sha.lower(), body_sha256):
            raise GatewayError(AUTH_FAILED, "app authentication failed: the body does not match its "
                                            "X-Sdk-Content-Sha256")
        body_hash = self.content_sha if self.content_sha is not None else body_sha256
        if body_hash is None:
            raise ValueError("the body's hash is needed to verify this signature")
        facts = self.facts
        canonical = signing.canonical_request(facts.method, facts.path, signing.parse_query(facts.query),
                                              facts.headers, list(self.signed), body_hash)
        text = signing.string_to_sign(canonical, self.date)
        for app in self.pool:
            if app.secret and _same(signing.signature(app.secret, text), self.sig.strip().lower()):
                if not self.own:
                    raise GatewayError(APP_NOT_AUTHORIZED, f"app {self.key} is not authorized for this service")
                return app
        raise GatewayError(AUTH_FAILED, "app authentication failed: signature mismatch: the request's signature "
                                        "does not match the one computed with the app's AppSecret")


def lower_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers keyed by lower-case name; the first value of a repeated header wins."""
    found: dict[str, str] = {}
    for name, value in headers:
        found.setdefault(name.lower(), value)
    return found


def is_signed(headers: Mapping[str, str]) -> bool:
    return headers.get("authorization", "").startswith(signing.ALGORITHM)


def _raw(text: str) -> bytes:
    """The bytes a header value arrived as (aiohttp keeps undecodable bytes as surrogates)."""
    return text.encode("utf-8", "surrogateescape")


def _same(a: str, b: str) -> bool:
    return bool(a) and hmac.compare_digest(_raw(a), _raw(b))


def _match(apps: list[AppCredential], others: Iterable[AppCredential], test: Callable[[AppCredential], bool],
           what: str) -> AppCredential:
    for app in apps:
        if test(app):
            return app
    if any(test(app) for app in others):
        raise GatewayError(APP_NOT_AUTHORIZED, f"the app of this {what} is not authorized for this service")
    raise GatewayError(AUTH_FAILED, f"app authentication failed: unknown {what}")


def check_head(route: ServiceRoute, apps: list[AppCredential], others: Iterable[AppCredential],
               req: RequestFacts, now: datetime
               ) -> AppCredential | PendingSignature | tokens.PendingEasSignature | None:
    """Everything that can be judged from the request head, before a byte of the body is read.

    None: the service needs no auth. An AppCredential: the request passed (AppCode, apikey, a token in
    Authorization). A PendingSignature: a known app's signed request with a valid date, waiting for its
    payload hash; a PendingEasSignature: an EAS signature, waiting for its body's MD5.
    `req.headers` must be keyed by lower-case name (lower_headers). Raises GatewayError.
    """
    if not route.app_auth:
        return None
    headers = req.headers
    if code := headers.get(APPCODE_HEADER, "").strip():
        return _match(apps, others, lambda app: _same(app.code, code), "AppCode")
    if authorization := headers.get("authorization", "").strip():
        if (req.tokens or req.openai) and (passed := _check_token(route, apps, others, req, authorization)):
            return passed
        return _check_signature_head(route, apps, list(others), req, authorization, now)
    if key := headers.get(APIKEY_HEADER, "").strip():
        if not route.options.apikey_auth:
            raise GatewayError(AUTH_FAILED, "app authentication failed: apikey (simple) authentication is not "
                                            "enabled for this service; use X-Apig-AppCode or a signature")
        return _match(apps, others, lambda app: _same(app.key, key), "apikey")
    if req.tokens:
        raise GatewayError(AUTH_MISSING, "this service requires app authentication: send Authorization: <token> "
                                         "(an AppCode of one of its apps), or X-Apig-AppCode")
    raise GatewayError(AUTH_MISSING, "this service requires app authentication: send X-Apig-AppCode, or sign "
                                     "the request with AppKey/AppSecret (SDK-HMAC-SHA256)")


def _check_token(route: ServiceRoute, apps: list[AppCredential], others: Iterable[AppCredential], req: RequestFacts,
                 authorization: str) -> AppCredential | tokens.PendingEasSignature | None:
    """A token in Authorization (gateway/tokens.py), or None: a signature, for _check_signature_head."""
    scheme, _, rest = authorization.partition(" ")
    if scheme == signing.ALGORITHM:
        return None
    refusal = tokens.Refusal(req.openai)
    if scheme.lower() == tokens.BEARER:
        return tokens.match_token(route, apps, others, rest.strip(), refusal)
    if not req.tokens:
        return None
    if scheme == tokens.EAS_SCHEME and rest.strip():
        resource = req.path + (f"?{req.query}" if req.query else "")
        return tokens.eas_pending(route, apps, others, req.headers, req.method, resource, rest)
    return tokens.match_token(route, apps, others, authorization, refusal)


def authorization_consumed(route: ServiceRoute, headers: Mapping[str, str]) -> bool:
    """Whether check_head took its credentials from Authorization (then it is not the model's to see): an
    app-auth service's request without X-Apig-AppCode, in check_head's order."""
    return route.app_auth and not headers.get(APPCODE_HEADER, "").strip() and bool(headers.get("authorization"))


def _check_date(headers: Mapping[str, str], now: datetime) -> str:
    date = headers.get(signing.DATE_HEADER.lower(), "").strip()
    if not date:
        raise GatewayError(AUTH_FAILED, "app authentication failed: the X-Sdk-Date header is missing")
    try:
        moment = signing.parse_date(date)
    except ValueError:
        raise GatewayError(AUTH_FAILED, f"app authentication failed: X-Sdk-Date {_printable(date)} is not "
                                        "YYYYMMDDTHHMMSSZ (UTC)") from None
    if abs(now - moment) > MAX_SKEW:
        raise GatewayError(AUTH_FAILED, f"app authentication failed: signature expired: X-Sdk-Date {date} is "
                                        f"more than 15 minutes from the gateway's clock ({signing.format_date(now)})")
    return date


def _printable(text: str, limit: int = 64) -> str:
    """A client's value, quoted for an error message: ASCII, bounded."""
    return ascii(text[:limit])


def _content_sha(route: ServiceRoute, headers: Mapping[str, str]) -> str | None:
    """The X-Sdk-Content-Sha256 sent (None: not sent, the body is hashed): a hex SHA-256, or
    UNSIGNED-PAYLOAD where the service accepts it."""
    content_sha = headers.get(signing.CONTENT_SHA_HEADER.lower())
    if content_sha is None:
        return None
    content_sha = content_sha.strip()
    if content_sha == signing.UNSIGNED_PAYLOAD:
        if not route.options.unsigned_payload:
            raise GatewayError(AUTH_FAILED, "app authentication failed: this service does not accept "
                                            "X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD; sign the body")
    elif not (len(content_sha) == 64 and all(c in "0123456789abcdefABCDEF" for c in content_sha)):
        raise GatewayError(AUTH_FAILED, "app authentication failed: X-Sdk-Content-Sha256 is neither "
                                        "UNSIGNED-PAYLOAD nor a hex SHA-256")
    return content_sha


def _check_signature_head(route: ServiceRoute, apps: list[AppCredential], others: list[AppCredential],
                          req: RequestFacts, authorization: str, now: datetime) -> PendingSignature:
    headers = req.headers
    scheme = authorization.split(None, 1)[0]
    if scheme != signing.ALGORITHM:
        raise GatewayError(AUTH_FAILED, f"app authentication failed: unsupported signing algorithm "
                                        f"{_printable(scheme, 32)}; sign with {signing.ALGORITHM}")
    try:
        key, signed, sig = signing.parse_authorization(authorization)
    except ValueError as err:
        raise GatewayError(AUTH_FAILED, f"app authentication failed: malformed Authorization header: {err}") from None
    if not (key.isascii() and sig.isascii() and all(name.isascii() for name in signed)):
        raise GatewayError(AUTH_FAILED, "app authentication failed: malformed Authorization header: "
                                        "Access, SignedHeaders and Signature must be ASCII")
    date = _check_date(headers, now)
    signed = [name.strip().lower() for name in signed]
    if "host" not in signed or "x-sdk-date" not in signed:
        raise GatewayError(AUTH_FAILED, "app authentication failed: SignedHeaders must include host and x-sdk-date")
    if missing := [name for name in signed if name not in headers]:
        raise GatewayError(AUTH_FAILED, f"app authentication failed: signed headers not sent: "
                                        f"{', '.join(missing)[:200]}")
    content_sha = _content_sha(route, headers)
    own = tuple(app for app in apps if _same(app.key, key))
    pool = own or tuple(app for app in others if _same(app.key, key))
    if not pool:
        raise GatewayError(AUTH_FAILED, f"app authentication failed: unknown app (AppKey {key})")
    return PendingSignature(pool, bool(own), key, tuple(signed), sig, date, content_sha, req)
