"""The app authentication rules, one case per path and per refusal (pure: no HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from inference_operator.gateway import signing
from inference_operator.gateway.auth import PendingSignature, RequestFacts, check_head, lower_headers
from inference_operator.gateway.client import Signer
from inference_operator.gateway.entries import AppCredential, ServiceRoute
from inference_operator.gateway.errors import GatewayError
from inference_operator.gateway.limits import ServiceOptions

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
MINE = AppCredential("key-mine", "secret-mine", "code-mine", "ns/mine")
THEIRS = AppCredential("key-theirs", "secret-theirs", "code-theirs", "ns/theirs")
ROUTE = ServiceRoute("sid", "ns", "svc", app_auth=True, app_secrets=("mine",))
URL = "http://gw.local/v1/infers/sid/predict?x=1"


def check(headers: dict[str, str], route: ServiceRoute = ROUTE, body: bytes = b"{}", now: datetime = NOW,
          method: str = "POST") -> AppCredential | None:
    """As the gateway judges a request: its head, then (a signature pending) the body's hash."""
    passed = head(headers, route, now, method)
    if isinstance(passed, PendingSignature):
        return passed.verify(None if passed.unsigned_payload else signing.sha256_hex(body))
    return passed


def head(headers: dict[str, str], route: ServiceRoute = ROUTE, now: datetime = NOW,
         method: str = "POST") -> AppCredential | PendingSignature | None:
    facts = RequestFacts(method, "/v1/infers/sid/predict", "x=1", lower_headers(headers.items()))
    return check_head(route, [MINE], [MINE, THEIRS], facts, now)


def needs_body(headers: dict[str, str]) -> bool:
    """The gateway reads and hashes the body: the head left a signature pending that is not UNSIGNED-PAYLOAD."""
    passed = head(headers)
    return isinstance(passed, PendingSignature) and not passed.unsigned_payload


def signed(app: AppCredential = MINE, body: bytes = b"{}", when: datetime = NOW, **extra: str) -> dict[str, str]:
    return Signer(app.key, app.secret).sign("POST", URL, {"Content-Type": "application/json", **extra}, body, when)


def refused(headers: dict[str, str], **kwargs) -> GatewayError:
    with pytest.raises(GatewayError) as err:
        check(headers, **kwargs)
    return err.value


def test_service_without_app_auth_lets_everyone_in():
    assert check({}, route=ServiceRoute("sid", "ns", "svc")) is None


class TestAppCode:
    def test_own_code_passes(self):
        assert check({"X-Apig-AppCode": "code-mine"}) == MINE

    def test_unknown_code_is_401(self):
        err = refused({"X-Apig-AppCode": "nope"})
        assert (err.code, err.status) == ("APIG.0303", 401)
        assert "unknown AppCode" in err.message

    def test_other_services_code_is_403(self):
        err = refused({"X-Apig-AppCode": "code-theirs"})
        assert (err.code, err.status) == ("APIG.0304", 403)


class TestApiKey:
    route = ServiceRoute("sid", "ns", "svc", app_auth=True, app_secrets=("mine",),
                         options=ServiceOptions(apikey_auth=True))

    def test_passes_when_enabled(self):
        assert check({"apikey": "key-mine"}, route=self.route) == MINE

    def test_refused_when_not_enabled(self):
        err = refused({"apikey": "key-mine"})
        assert err.status == 401 and "not enabled" in err.message

    def test_unknown_key_is_401_and_foreign_key_403(self):
        assert refused({"apikey": "zzz"}, route=self.route).status == 401
        assert refused({"apikey": "key-theirs"}, route=self.route).status == 403


class TestSignature:
    def test_valid_signature_passes_and_needs_the_body(self):
        headers = signed()
        assert needs_body(headers)
        assert check(headers) == MINE

    def test_tampered_body_is_a_mismatch(self):
        err = refused(signed(), body=b'{"evil": 1}')
        assert err.status == 401 and "signature mismatch" in err.message

    def test_wrong_secret_is_a_mismatch(self):
        forged = signed(AppCredential("key-mine", "guessed", "", ""))
        assert "signature mismatch" in refused(forged).message

    def test_expired_date_says_so(self):
        err = refused(signed(when=NOW - timedelta(minutes=16)))
        assert err.status == 401 and "signature expired" in err.message
        assert "signature expired" in refused(signed(when=NOW + timedelta(minutes=16))).message

    def test_missing_or_malformed_date(self):
        headers = signed()
        del headers["X-Sdk-Date"]
        assert "X-Sdk-Date header is missing" in refused(headers).message
        assert "is not YYYYMMDDTHHMMSSZ" in refused({**signed(), "X-Sdk-Date": "2025-06-01T12:00:00Z"}).message

    def test_unknown_app_says_so(self):
        err = refused(signed(AppCredential("who", "x", "", "")))
        assert err.status == 401 and "unknown app" in err.message

    def test_other_services_app_with_a_valid_signature_is_403(self):
        assert refused(signed(THEIRS)).status == 403

    def test_other_services_app_with_a_bad_signature_is_401(self):
        assert refused(signed(AppCredential("key-theirs", "wrong", "", ""))).status == 401

    def test_signed_headers_must_cover_host_and_date(self):
        headers = signed()
        headers["Authorization"] = headers["Authorization"].replace("content-type;host;x-sdk-date", "content-type")
        assert "must include host and x-sdk-date" in refused(headers).message

    def test_a_signed_header_that_is_not_sent(self):
        headers = signed(**{"X-Extra": "1"})
        del headers["X-Extra"]
        assert "signed headers not sent: x-extra" in refused(headers).message

    def test_unsigned_payload_does_not_need_the_body(self):
        headers = signed(**{"X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"})
        assert not needs_body(headers)
        assert check(headers, body=b"whatever") == MINE


def test_no_credentials_is_401_modelarts_0205():
    err = refused({"Content-Type": "application/json"})
    assert (err.code, err.status) == ("ModelArts.0205", 401)


def test_appcode_is_checked_before_a_signature():
    assert check({**signed(AppCredential("who", "x", "", "")), "X-Apig-AppCode": "code-mine"}) == MINE
