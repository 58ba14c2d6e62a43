"""App authentication of a request, when the service sets spec.auth.appAuth (GATEWAY.md).

A request passes with any one of: `X-Apig-AppCode: <AppCode>`; `apikey: <AppKey>` when the service
enables simple authentication (annotation inference.io/gateway-apikey-auth: "true"); or an
SDK-HMAC-SHA256 signature made with AppKey/AppSecret and an X-Sdk-Date within 15 minutes of the
gateway's clock. Credentials of another service's app are recognised and refused with 403 (the app
exists but is not authorized here); everything else that fails is 401 and says why.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from inference_operator.gateway import signing
from inference_operator.gateway.errors import APP_NOT_AUTHORIZED, AUTH_FAILED, AUTH_MISSING, GatewayError
from inference_operator.gateway.routes import AppCredential, ServiceRoute

MAX_SKEW = timedelta(minutes=15)
APPCODE_HEADER = "x-apig-appcode"
APIKEY_HEADER = "apikey"
# Headers that carry gateway credentials: never forwarded to the model.
CREDENTIAL_HEADERS = frozenset({APPCODE_HEADER})


@dataclass(frozen=True)
class RequestFacts:
    """What the verifier needs of a request, as received: raw path and query, headers, body."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes = b""


def lower_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers keyed by lower-case name; the first value of a repeated header wins."""
    found: dict[str, str] = {}
    for name, value in headers:
        found.setdefault(name.lower(), value)
    return found


def is_signed(headers: Mapping[str, str]) -> bool:
    return headers.get("authorization", "").startswith(signing.ALGORITHM)


def needs_body(headers: Mapping[str, str]) -> bool:
    """True when the verifier must hash the whole body: a signature without X-Sdk-Content-Sha256."""
    return is_signed(headers) and not headers.get(signing.CONTENT_SHA_HEADER.lower())


def _same(a: str, b: str) -> bool:
    return bool(a) and hmac.compare_digest(a.encode(), b.encode())


def _match(apps: list[AppCredential], others: Iterable[AppCredential], test: Callable[[AppCredential], bool],
           what: str) -> AppCredential:
    for app in apps:
        if test(app):
            return app
    if any(test(app) for app in others):
        raise GatewayError(APP_NOT_AUTHORIZED, f"the app of this {what} is not authorized for this service")
    raise GatewayError(AUTH_FAILED, f"app authentication failed: unknown {what}")


def authenticate(route: ServiceRoute, apps: list[AppCredential], others: Iterable[AppCredential],
                 req: RequestFacts, now: datetime) -> AppCredential | None:
    """The app a request authenticates as (None when the service needs no auth); raises GatewayError.

    `apps` are the service's own credentials, `others` every credential the gateway knows (for 403).
    `req.headers` must be keyed by lower-case name (lower_headers).
    """
    if not route.app_auth:
        return None
    headers = req.headers
    if code := headers.get(APPCODE_HEADER, "").strip():
        return _match(apps, others, lambda app: _same(app.code, code), "AppCode")
    if is_signed(headers):
        return _verify_signature(apps, list(others), req, now)
    if key := headers.get(APIKEY_HEADER, "").strip():
        if not route.options.apikey_auth:
            raise GatewayError(AUTH_FAILED, "app authentication failed: apikey (simple) authentication is not "
                                            "enabled for this service; use X-Apig-AppCode or a signature")
        return _match(apps, others, lambda app: _same(app.key, key), "apikey")
    raise GatewayError(AUTH_MISSING, "this service requires app authentication: send X-Apig-AppCode, or sign "
                                     "the request with AppKey/AppSecret (SDK-HMAC-SHA256)")


def _check_date(headers: Mapping[str, str], now: datetime) -> str:
    date = headers.get(signing.DATE_HEADER.lower(), "").strip()
    if not date:
        raise GatewayError(AUTH_FAILED, "app authentication failed: the X-Sdk-Date header is missing")
    try:
        moment = signing.parse_date(date)
    except ValueError:
        raise GatewayError(AUTH_FAILED, f"app authentication failed: X-Sdk-Date {date!r} is not "
                                        "YYYYMMDDTHHMMSSZ (UTC)") from None
    if abs(now - moment) > MAX_SKEW:
        raise GatewayError(AUTH_FAILED, f"app authentication failed: signature expired: X-Sdk-Date {date} is "
                                        f"more than 15 minutes from the gateway's clock ({signing.format_date(now)})")
    return date


def _verify_signature(apps: list[AppCredential], others: list[AppCredential], req: RequestFacts,
                      now: datetime) -> AppCredential:
    headers = req.headers
    try:
        key, signed, sig = signing.parse_authorization(headers["authorization"])
    except ValueError as err:
        raise GatewayError(AUTH_FAILED, f"app authentication failed: malformed Authorization header: {err}") from None
    date = _check_date(headers, now)
    signed = [name.strip().lower() for name in signed]
    if "host" not in signed or "x-sdk-date" not in signed:
        raise GatewayError(AUTH_FAILED, "app authentication failed: SignedHeaders must include host and x-sdk-date")
    if missing := [name for name in signed if name not in headers]:
        raise GatewayError(AUTH_FAILED, f"app authentication failed: signed headers not sent: {', '.join(missing)}")
    own = [app for app in apps if _same(app.key, key)]
    pool = own or [app for app in others if _same(app.key, key)]
    if not pool:
        raise GatewayError(AUTH_FAILED, f"app authentication failed: unknown app (AppKey {key})")
    body_hash = signing.payload_hash(req.body, headers.get(signing.CONTENT_SHA_HEADER.lower()))
    canonical = signing.canonical_request(req.method, req.path, signing.parse_query(req.query), headers, signed,
                                          body_hash)
    text = signing.string_to_sign(canonical, date)
    for app in pool:
        if app.secret and hmac.compare_digest(signing.signature(app.secret, text), sig.strip().lower()):
            if not own:
                raise GatewayError(APP_NOT_AUTHORIZED, f"app {key} is not authorized for this service")
            return app
    raise GatewayError(AUTH_FAILED, "app authentication failed: signature mismatch: the request's signature "
                                    "does not match the one computed with the app's AppSecret")
