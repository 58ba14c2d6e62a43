"""The SDK-HMAC-SHA256 signature: the published example, and vectors derived here by hand from the rules.

Each hand vector writes the canonical request out literally, following GATEWAY.md rule by rule, and
computes the signature with hashlib/hmac in the test itself; the client's Signer and the gateway's
verifier must both agree with it.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from inference_operator.gateway import signing
from inference_operator.gateway.auth import PendingSignature, RequestFacts, check_head, lower_headers
from inference_operator.gateway.client import HttpRequest, Signer
from inference_operator.gateway.entries import AppCredential, ServiceRoute
from inference_operator.gateway.errors import GatewayError

# The published example (GATEWAY.md, from the public signing guide).
PUB_KEY, PUB_SECRET = "QTWAOYTTINDUT2QVKYUC", "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"
PUB_URL = ("https://service.region.example.com/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs"
           "?limit=2&marker=13551d6b-755d-4757-b956-536f674975c0")
PUB_HEADERS = {"Content-Type": "application/json", "Host": "service.region.example.com",
               "X-Sdk-Date": "20191115T033655Z"}
PUB_CANONICAL_SHA = "b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
PUB_SIGNATURE = "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
PUB_TIME = datetime(2019, 11, 15, 3, 36, 55, tzinfo=UTC)

ROUTE = ServiceRoute("sid", "ns", "svc", app_auth=True, app_secrets=("app",))


def by_hand(secret: str, date: str, canonical: str) -> str:
    """Rules 8 and 9 computed directly with hashlib and hmac."""
    to_sign = "SDK-HMAC-SHA256\n" + date + "\n" + hashlib.sha256(canonical.encode()).hexdigest()
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def verify(key: str, secret: str, method: str, url_path: str, query: str, headers: dict[str, str], body: bytes,
           now: datetime) -> AppCredential | None:
    app = AppCredential(key, secret, "", "ns/app")
    facts = RequestFacts(method, url_path, query, lower_headers(headers.items()))
    passed = check_head(ROUTE, [app], [app], facts, now)  # the head, then the body's hash, as the gateway does
    if isinstance(passed, PendingSignature):
        return passed.verify(None if passed.unsigned_payload else signing.sha256_hex(body))
    return passed


class TestPublishedExample:
    def test_canonical_request_hash_and_signature(self):
        canonical = ("GET\n/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs/\n"
                     "limit=2&marker=13551d6b-755d-4757-b956-536f674975c0\n"
                     "content-type:application/json\nhost:service.region.example.com\nx-sdk-date:20191115T033655Z\n"
                     "\ncontent-type;host;x-sdk-date\n" + hashlib.sha256(b"").hexdigest())
        assert hashlib.sha256(canonical.encode()).hexdigest() == PUB_CANONICAL_SHA
        assert by_hand(PUB_SECRET, "20191115T033655Z", canonical) == PUB_SIGNATURE
        built = signing.canonical_request("GET", "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
                                          signing.parse_query(PUB_URL.split("?")[1]),
                                          lower_headers(PUB_HEADERS.items()), ["content-type", "host", "x-sdk-date"],
                                          signing.payload_hash(b""))
        assert built == canonical

    def test_signer_reproduces_it(self):
        headers = Signer(PUB_KEY, PUB_SECRET).sign("GET", PUB_URL, PUB_HEADERS)
        assert headers["Authorization"] == (f"SDK-HMAC-SHA256 Access={PUB_KEY}, "
                                            f"SignedHeaders=content-type;host;x-sdk-date, Signature={PUB_SIGNATURE}")

    def test_sdk_style_sign_reproduces_it(self):
        request = HttpRequest("GET", PUB_URL, {"Content-Type": "application/json"})
        sig = Signer()
        sig.Key, sig.Secret = PUB_KEY, PUB_SECRET
        sig.Sign(request, now=PUB_TIME)
        assert request.headers["X-Sdk-Date"] == "20191115T033655Z"
        assert request.headers["Host"] == "service.region.example.com"
        assert request.headers["Authorization"].endswith(f"Signature={PUB_SIGNATURE}")
        assert request.uri == PUB_URL.split("example.com")[1]

    def test_gateway_verifier_accepts_it_within_15_minutes(self):
        headers = {**PUB_HEADERS, "Authorization": f"SDK-HMAC-SHA256 Access={PUB_KEY}, "
                   f"SignedHeaders=content-type;host;x-sdk-date, Signature={PUB_SIGNATURE}"}
        path, query = PUB_URL.split("example.com")[1].split("?")
        for skew in (timedelta(0), timedelta(minutes=14, seconds=59), -timedelta(minutes=15)):
            assert verify(PUB_KEY, PUB_SECRET, "GET", path, query, headers, b"", PUB_TIME + skew)
        with pytest.raises(GatewayError, match="signature expired") as err:
            verify(PUB_KEY, PUB_SECRET, "GET", path, query, headers, b"", PUB_TIME + timedelta(minutes=15, seconds=1))
        assert err.value.code == "APIG.0303" and err.value.status == 401


class TestHandDerivedVectors:
    KEY, SECRET, DATE = "AK-test-0001", "s3cr3t/with+chars=", "20240102T030405Z"
    NOW = datetime(2024, 1, 2, 3, 10, 0, tzinfo=UTC)

    def test_encoded_path_repeated_query_and_body(self):
        """Rules 4 and 5: decode then re-encode each segment; names sorted, repeated values sorted, '+' kept."""
        path = "/v1/infers/abc/predict/a%20b~%C3%BC"
        query = "b=2&a=x%20y&b=1&c=&d=%2F&e=1+1"
        body = b'{"x": 1}'
        canonical = ("POST\n"
                     "/v1/infers/abc/predict/a%20b~%C3%BC/\n"
                     "a=x%20y&b=1&b=2&c=&d=%2F&e=1%2B1\n"
                     "content-type:application/json\n"
                     "host:gw.example:8080\n"
                     "x-sdk-date:20240102T030405Z\n"
                     "\n"
                     "content-type;host;x-sdk-date\n"
                     + hashlib.sha256(body).hexdigest())
        expected = by_hand(self.SECRET, self.DATE, canonical)
        headers = Signer(self.KEY, self.SECRET).sign("post", f"http://gw.example:8080{path}?{query}", {
            "Content-Type": "application/json", "X-Sdk-Date": self.DATE}, body)
        assert headers["Authorization"] == (f"SDK-HMAC-SHA256 Access={self.KEY}, "
                                            f"SignedHeaders=content-type;host;x-sdk-date, Signature={expected}")
        assert verify(self.KEY, self.SECRET, "POST", path, query, headers, body, self.NOW)
        with pytest.raises(GatewayError, match="signature mismatch"):
            verify(self.KEY, self.SECRET, "POST", path, query, headers, b'{"x": 2}', self.NOW)

    def test_unsigned_payload_and_bare_service_path(self):
        """Rule 6: X-Sdk-Content-Sha256 stands for the body; rule 4: the bare path still ends in '/'."""
        canonical = ("PUT\n/v1/infers/abc/\n\n"
                     "host:127.0.0.1:9000\n"
                     "x-custom:padded value\n"
                     "x-sdk-content-sha256:UNSIGNED-PAYLOAD\n"
                     "x-sdk-date:20240102T030405Z\n"
                     "\nhost;x-custom;x-sdk-content-sha256;x-sdk-date\nUNSIGNED-PAYLOAD")
        expected = by_hand(self.SECRET, self.DATE, canonical)
        headers = Signer(self.KEY, self.SECRET).sign("PUT", "http://127.0.0.1:9000/v1/infers/abc", {
            "X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD", "X-Custom": "  padded value ", "X-Sdk-Date": self.DATE})
        assert headers["Authorization"].endswith(f"Signature={expected}")
        assert verify(self.KEY, self.SECRET, "PUT", "/v1/infers/abc", "", headers, b"any body at all", self.NOW)

    def test_signer_dates_requests_now(self):
        headers = Signer(self.KEY, self.SECRET).sign("GET", "http://h/x")
        sent = signing.parse_date(headers["X-Sdk-Date"])
        assert abs(datetime.now(UTC) - sent) < timedelta(seconds=5)


@pytest.mark.parametrize(("raw", "expected"), [
    ("", "/"), ("/", "/"), ("/a/b", "/a/b/"), ("/a/b/", "/a/b/"), ("/a%2Fb", "/a/b/"), ("/a b", "/a%20b/"),
    ("/%7euser", "/~user/"), ("/x*y", "/x%2Ay/"),
])
def test_canonical_uri(raw, expected):
    assert signing.canonical_uri(raw) == expected


@pytest.mark.parametrize("value", ["Basic abc", "SDK-HMAC-SHA256 Access=k, Signature=s",
                                   "SDK-HMAC-SHA256 Access=, SignedHeaders=host, Signature=s"])
def test_malformed_authorization(value):
    with pytest.raises(ValueError):
        signing.parse_authorization(value)


def test_signer_needs_credentials():
    with pytest.raises(ValueError):
        Signer().sign("GET", "http://h/")
