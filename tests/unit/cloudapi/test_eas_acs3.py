"""ACS3-HMAC-SHA256: requests signed by the real alibabacloud_eas20210701 / tea_openapi client verify; any
change to what was signed, a wrong secret or a stale date does not, and says which."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from alibabacloud_eas20210701 import models
from alibabacloud_eas20210701.client import Client
from eas_capture import ACCESS_KEY, SECRET_KEY, Captured, Recorder

from inference_operator.cloudapi.eas import acs3


def received(captured: Captured) -> acs3.Received:
    path, _, query = captured.target.partition("?")
    return acs3.Received(captured.method, path, query, captured.headers, captured.body)


def check(captured: Captured, secret: str = SECRET_KEY, now: datetime | None = None) -> acs3.Authorization:
    auth = acs3.parse_authorization((captured.headers.get("authorization") or [None])[0])
    req = received(captured)
    moment = now or acs3.parse_date(req.headers["x-acs-date"][0])
    acs3.verify(req, auth, secret, moment)
    return auth


def create_body() -> str:
    return json.dumps({"metadata": {"name": "demo", "instance": 1},
                       "containers": [{"image": "python:3.11", "script": "python app.py", "port": 8000}]})


def test_sdk_requests_verify(eas: Client, recorder: Recorder) -> None:
    eas.create_service(models.CreateServiceRequest(body=create_body(), workspace_id="ws 1/2+3"))
    eas.list_services(models.ListServicesRequest(service_name="a b", page_number=2, page_size=10,
                                                 filter="名前&x=y"))
    eas.describe_service("local", "my_svc")
    eas.stop_service("local", "svc/with space")
    eas.create_app_service(models.CreateAppServiceRequest(service_name="llm", app_type="LLM",
                                                          service_spec="llama_7b_fp16", replicas=1,
                                                          config={"ModelStorage": "oss", "OssPath": "oss://b/k/"}))
    assert len(recorder.requests) == 5
    for captured in recorder.requests:
        auth = check(captured)
        assert auth.access_key == ACCESS_KEY
        assert {"host", "x-acs-date", "x-acs-content-sha256", "x-acs-action"} <= set(auth.signed_headers)


@pytest.fixture
def signed(eas: Client, recorder: Recorder) -> Captured:
    eas.create_service(models.CreateServiceRequest(body=create_body(), workspace_id="w1"))
    return recorder.requests[-1]


def refused(captured: Captured, **kw: object) -> acs3.Failure:
    with pytest.raises(acs3.Acs3Error) as err:
        check(captured, **kw)  # type: ignore[arg-type]
    return err.value.kind


def test_wrong_secret_is_a_bad_signature(signed: Captured) -> None:
    assert refused(signed, secret="not-the-secret") is acs3.Failure.BAD_SIGNATURE


def test_stale_and_future_dates(signed: Captured) -> None:
    sent = acs3.parse_date(signed.headers["x-acs-date"][0])
    assert refused(signed, now=sent + timedelta(minutes=16)) is acs3.Failure.STALE_DATE
    assert refused(signed, now=sent - timedelta(minutes=16)) is acs3.Failure.STALE_DATE
    check(signed, now=sent + timedelta(minutes=14))


def test_body_changed_after_signing(signed: Captured) -> None:
    tampered = replace(signed, body=signed.body.replace(b'"instance": 1', b'"instance": 9'))
    assert refused(tampered) is acs3.Failure.CONTENT_HASH
    rehashed = dict(tampered.headers)
    rehashed["x-acs-content-sha256"] = [acs3.hashlib.sha256(tampered.body).hexdigest()]
    assert refused(replace(tampered, headers=rehashed)) is acs3.Failure.BAD_SIGNATURE


@pytest.mark.parametrize("change", ["path", "query", "method", "header", "extra-query", "repeat-query"])
def test_anything_signed_changed(signed: Captured, change: str) -> None:
    headers = dict(signed.headers)
    target = signed.target
    method = signed.method
    if change == "path":
        target = target.replace("/api/v2/services", "/api/v2/service")
    elif change == "query":
        target = target.replace("WorkspaceId=w1", "WorkspaceId=w2")
    elif change == "extra-query":
        target += "&PageSize=1"
    elif change == "repeat-query":
        target += "&WorkspaceId=w1"
    elif change == "method":
        method = "PUT"
    else:
        headers["x-acs-action"] = ["DeleteService"]
    assert refused(replace(signed, target=target, headers=headers, method=method)) is acs3.Failure.BAD_SIGNATURE


@pytest.mark.parametrize(("value", "needle"), [
    (None, "no Authorization"), ("Bearer x", "scheme"), ("ACS3-HMAC-SHA256 Credential=a", "SignedHeaders"),
    ("ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host,Signature=00", "x-acs-date"),
])
def test_malformed_authorization_says_what(value: str | None, needle: str) -> None:
    with pytest.raises(acs3.Acs3Error) as err:
        acs3.parse_authorization(value)
    assert err.value.kind is acs3.Failure.INCOMPLETE and needle in err.value.message


def test_unsigned_date_format_is_incomplete() -> None:
    with pytest.raises(acs3.Acs3Error) as err:
        acs3.check_date({"x-acs-date": ["Thu, 06 Feb 2020 07:32:54 GMT"]}, datetime.now(UTC))
    assert err.value.kind is acs3.Failure.INCOMPLETE
