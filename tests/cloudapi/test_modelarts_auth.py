"""The ModelArts dialect's SDK-HMAC-SHA256 verifier against requests signed by huaweicloudsdkcore's own
Signer (vectors made by the SDK at test time, with a fixed date): what it signs passes, and an unknown
key, a wrong secret, a changed byte and a stale date are refused saying which."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

from inference_operator.cloudapi.credentials import AccessKey
from inference_operator.cloudapi.errors import CloudError
from inference_operator.cloudapi.identity import Caller
from inference_operator.cloudapi.modelarts import auth

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
KEY = AccessKey("AKEXAMPLE", "sk-example-secret", Caller("system:serviceaccount:team-a:deployer"), "keys/a")
HOST = "cloudapi.example:8443"


def sdk_signed(method: str, path: str, query: list[tuple[str, object]] | None = None, body: bytes = b"",
               content_type: str = "application/json", secret: str = KEY.secret_key,
               date: datetime = NOW) -> auth.SignedRequest:
    """A request as the SDK signs it and as the server receives it (path and query as sent)."""
    request = SdkRequest(method=method, schema="https", host=HOST, resource_path=path, query_params=list(query or []),
                         header_params={"Content-Type": content_type, "X-Sdk-Date": date.strftime("%Y%m%dT%H%M%SZ")},
                         body=body)
    signed = Signer(BasicCredentials(KEY.access_key, secret)).sign(request)
    raw_path, _, raw_query = signed.uri.partition("?")
    headers = {k.lower(): v for k, v in signed.header_params.items()}
    return auth.SignedRequest(method, raw_path, raw_query, headers, signed.body or b"")


def check(req: auth.SignedRequest, key: AccessKey | None = KEY, now: datetime = NOW) -> None:
    access, signed, sig, date = auth.signature_head(req, now)
    auth.verify(req, key, access, signed, sig, date)


@pytest.mark.parametrize("req", [
    sdk_signed("GET", "/v1/team-a/services", [("service_name", "a b/c"), ("limit", 10), ("status", "running")]),
    sdk_signed("GET", "/v1/team-a/services/%E6%9C%8D%E5%8A%A1/events", [("order", "asc")]),
    sdk_signed("POST", "/v1/team-a/services", body=json.dumps({"service_name": "digits", "config": []}).encode()),
    sdk_signed("PUT", "/v1/team-a/services/u-1", body=b'{"status": "stopped"}'),
    sdk_signed("POST", "/v1/team-a/models", body=b"raw bytes", content_type="application/octet-stream"),
    sdk_signed("DELETE", "/v1/team-a/services/u-1,u-2"),
], ids=["query", "encoded-path", "json-post", "put", "unsigned-payload", "delete"])
def test_what_the_sdk_signs_passes(req: auth.SignedRequest) -> None:
    check(req)


def test_the_unsigned_payload_vector_is_what_the_sdk_sends() -> None:
    req = sdk_signed("POST", "/v1/team-a/models", body=b"raw", content_type="application/octet-stream")
    assert req.headers["x-sdk-content-sha256"] == "UNSIGNED-PAYLOAD"


def refusal(req: auth.SignedRequest, key: AccessKey | None = KEY, now: datetime = NOW) -> str:
    with pytest.raises(CloudError) as caught:
        check(req, key, now)
    assert caught.value.status == 401
    return caught.value.message


def test_a_wrong_secret_is_a_bad_signature() -> None:
    assert refusal(sdk_signed("GET", "/v1/team-a/services", secret="other")).startswith("bad signature")


def test_an_unknown_key_says_so() -> None:
    assert refusal(sdk_signed("GET", "/v1/team-a/services"), key=None).startswith("unknown access key")


def test_a_changed_body_query_or_path_is_a_bad_signature() -> None:
    req = sdk_signed("POST", "/v1/team-a/services", body=b'{"service_name": "a"}')
    for changed in (auth.SignedRequest(req.method, req.path, req.query, req.headers, b'{"service_name": "b"}'),
                    auth.SignedRequest(req.method, req.path, "limit=1", req.headers, req.body),
                    auth.SignedRequest(req.method, "/v1/team-b/services", req.query, req.headers, req.body),
                    auth.SignedRequest("PUT", req.path, req.query, req.headers, req.body)):
        assert "bad signature" in refusal(changed)


def test_the_date_window_is_fifteen_minutes() -> None:
    check(sdk_signed("GET", "/v1/team-a/services"), now=NOW + timedelta(minutes=14, seconds=59))
    assert refusal(sdk_signed("GET", "/v1/team-a/services"), now=NOW + timedelta(minutes=15, seconds=1)) \
        .startswith("stale date")
    assert refusal(sdk_signed("GET", "/v1/team-a/services"), now=NOW - timedelta(minutes=16)).startswith("stale date")


def test_a_malformed_head_is_refused_naming_the_part() -> None:
    req = sdk_signed("GET", "/v1/team-a/services")
    no_date = {k: v for k, v in req.headers.items() if k != "x-sdk-date"}
    assert "signed headers not sent: x-sdk-date" in refusal(auth.SignedRequest("GET", req.path, "", no_date, b""))
    basic = {**req.headers, "authorization": "Basic abc"}
    assert "unsupported signing algorithm" in refusal(auth.SignedRequest("GET", req.path, "", basic, b""))
