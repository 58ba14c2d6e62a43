"""Token credentials in `Authorization`: what PAI-EAS clients and OpenAI's clients send.

Pure and synchronous, like auth.py, which calls it for the requests whose `Authorization` carries a
token rather than an SDK-HMAC-SHA256 signature:

- on `/api/predict/<service>/...` (the EAS URL): `Authorization: <token>` (curl, and
  `eas_prediction.PredictClient` with a custom URL), `Authorization: Bearer <token>`, or the signature
  `eas_prediction.PredictClient` makes from its token: `Authorization: EAS <base64 HMAC-SHA1>` over
  `POST\\n<Content-MD5>\\n<Content-Type>\\n<Date>\\n<path>`, with the token as key;
- on the OpenAI routes of an OpenAI-speaking service (either URL): `Authorization: Bearer <key>`, what
  `OpenAI(api_key=...)` sends; its refusals are in OpenAI's error shape, which OpenAI's clients read
  (AuthenticationError for 401).

A token is an AppCode of one of the service's apps, or its AppKey where the service enables apikey
(simple) authentication. The EAS signature's Date is not held to a window: the SDK writes the local
time labelled GMT, so a window would refuse every client east or west of UTC; a signature proves no
more than the token itself, which a client may send in the clear. Its Content-MD5 is checked against
the body received, so a signature cannot carry another body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from inference_operator.gateway.entries import AppCredential, ServiceRoute
from inference_operator.gateway.errors import APP_NOT_AUTHORIZED, AUTH_FAILED, AUTH_MISSING, GatewayError
from inference_operator.gateway.openai import OpenAIError

BEARER = "bearer"
EAS_SCHEME = "EAS"
MD5_HEADER = "content-md5"


def _same(a: str, b: str) -> bool:
    raw_a, raw_b = a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape")
    return bool(raw_a) and hmac.compare_digest(raw_a, raw_b)


def tokens_of(route: ServiceRoute, app: AppCredential) -> tuple[str, ...]:
    """What an app's token may be for this service: its AppCode, and its AppKey where apikey is on."""
    return (app.code, app.key) if route.options.apikey_auth else (app.code,)


def eas_string_to_sign(method: str, content_md5: str, content_type: str, date: str, resource: str) -> str:
    """What eas_prediction.PredictClient signs (generate_singaure), stripped as it strips it."""
    return f"{method}\n{content_md5}\n{content_type}\n{date}\n{resource}".strip()


def eas_signature(token: str, text: str) -> str:
    """Base64 HMAC-SHA1 of `text` with the token as key: the value after `EAS ` in Authorization."""
    digest = hmac.new(token.encode("utf-8", "surrogateescape"), text.encode("utf-8", "surrogateescape"), hashlib.sha1)
    return base64.b64encode(digest.digest()).decode()


@dataclass(frozen=True)
class Refusal:
    """How a token refusal is worded: the contract's JSON, or OpenAI's error shape (OpenAI routes)."""

    openai: bool

    def error(self, kind: tuple[str, int], message: str, code: str) -> GatewayError:
        if self.openai:
            return OpenAIError(kind[1], message, "invalid_request_error", None, code)
        return GatewayError(kind, message)


def match_token(route: ServiceRoute, apps: list[AppCredential], others: Iterable[AppCredential], token: str,
                refusal: Refusal) -> AppCredential:
    """The service's app whose token this is; 403 for another service's app, 401 for an unknown one."""
    if not token:
        raise refusal.error(AUTH_MISSING, "this service requires app authentication: the Authorization header "
                                          "carries no token (send an AppCode of one of its apps)", "missing_api_key")
    for app in apps:
        if any(_same(candidate, token) for candidate in tokens_of(route, app)):
            return app
    if any(_same(candidate, token) for app in others for candidate in tokens_of(route, app)):
        raise refusal.error(APP_NOT_AUTHORIZED, "the app of this token is not authorized for this service",
                            "app_not_authorized")
    raise refusal.error(AUTH_FAILED, "Incorrect API key provided: app authentication failed: unknown token (send "
                                     "an AppCode of one of the service's apps)", "invalid_api_key")


@dataclass(frozen=True)
class PendingEasSignature:
    """An `Authorization: EAS <signature>` whose head checked out (Content-MD5, Content-Type and Date sent):
    the body's MD5 is checked when it has been read, then the signature against each app's tokens."""

    route: ServiceRoute
    apps: tuple[AppCredential, ...]
    others: tuple[AppCredential, ...]
    signature: str
    text: str  # the string to sign, from the head
    content_md5: str

    def verify(self, body_md5: str) -> AppCredential:
        if not hmac.compare_digest(self.content_md5.strip().lower().encode(), body_md5.encode()):
            raise GatewayError(AUTH_FAILED, "app authentication failed: the body does not match its Content-MD5")
        for pool, own in ((self.apps, True), (self.others, False)):
            for app in pool:
                for token in tokens_of(self.route, app):
                    if token and _same(eas_signature(token, self.text), self.signature):
                        if not own:
                            raise GatewayError(APP_NOT_AUTHORIZED, "the app of this signature is not authorized "
                                                                   "for this service")
                        return app
        raise GatewayError(AUTH_FAILED, "app authentication failed: signature mismatch: the EAS signature does not "
                                        "match one made with the token of any of the service's apps")


def eas_pending(route: ServiceRoute, apps: list[AppCredential], others: Iterable[AppCredential],
                headers: Mapping[str, str], method: str, resource: str, signature: str) -> PendingEasSignature:
    """The head's part of an EAS signature check: the signed headers must be there (401 naming the missing).
    `headers` keyed by lower-case name; `resource`: the request target as sent (the SDK signs its URL's path)."""
    missing = [name for name in (MD5_HEADER, "date") if not headers.get(name, "").strip()]
    if missing:
        raise GatewayError(AUTH_FAILED, f"app authentication failed: an EAS signature needs the header(s) "
                                        f"{', '.join(missing)}")
    content_md5 = headers[MD5_HEADER].strip()
    if not (len(content_md5) == 32 and all(c in "0123456789abcdefABCDEF" for c in content_md5)):
        raise GatewayError(AUTH_FAILED, "app authentication failed: Content-MD5 is not a hex MD5")
    text = eas_string_to_sign(method, content_md5, headers.get("content-type", ""), headers["date"], resource)
    return PendingEasSignature(route, tuple(apps), tuple(others), signature.strip(), text, content_md5)
