"""App authentication over real HTTP: each path, wrong signature, expired date, 403, Secret rotation."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from inference_operator.gateway.client import Signer

from .conftest import NS, GatewayUnderTest, counted, service_body

UID = "0b6f4a8e-3333-4c1e-9d51-5a0c7d9e0003"
OTHER_UID = "0b6f4a8e-3333-4c1e-9d51-5a0c7d9e0004"


def secret_data(key: str, secret: str, code: str) -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in
            {"appKey": key, "appSecret": secret, "appCode": code}.items()}


@pytest.fixture
def sid(gateway: GatewayUnderTest, backends) -> str:
    sid = gateway.add_service(service_body("secure", UID, [("v1", 100)], apps=["app-a"], annotations={
        "inference.io/gateway-apikey-auth": "true"}), backends)
    gateway.add_service(service_body("other", OTHER_UID, [("v2", 100)], apps=["app-b"]), backends)
    gateway.table.set_secret(NS, "app-a", secret_data("KEY-A", "SECRET-A", "CODE-A"))
    gateway.table.set_secret(NS, "app-b", secret_data("KEY-B", "SECRET-B", "CODE-B"))
    return sid


async def call(gateway: GatewayUnderTest, sid: str, headers: dict[str, str], body: bytes = b'{"x": 1}'):
    async with gateway.http.post(gateway.infer_url(sid, "/predict?mode=fast"), data=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_appcode(gateway, sid):
    status, echo = await call(gateway, sid, {"X-Apig-AppCode": "CODE-A"})
    assert status == 200 and echo["server"] == "v1"
    assert "x-apig-appcode" not in echo["headers"]
    status, err = await call(gateway, sid, {"X-Apig-AppCode": "CODE-X"})
    assert (status, err["error_code"]) == (401, "APIG.0303")


async def test_apikey(gateway, sid):
    status, echo = await call(gateway, sid, {"apikey": "KEY-A"})
    assert status == 200 and "apikey" not in echo["headers"]


async def test_signature(gateway, sid):
    url = gateway.infer_url(sid, "/predict?mode=fast")
    body = b'{"x": 1}'
    headers = Signer("KEY-A", "SECRET-A").sign("POST", url, {"Content-Type": "application/json"}, body)
    status, echo = await call(gateway, sid, headers, body)
    assert status == 200
    assert echo["body"] == '{"x": 1}'
    assert "authorization" not in echo["headers"] and "x-sdk-date" not in echo["headers"]


async def test_wrong_signature(gateway, sid):
    url = gateway.infer_url(sid, "/predict?mode=fast")
    headers = Signer("KEY-A", "NOT-THE-SECRET").sign("POST", url, {}, b'{"x": 1}')
    status, err = await call(gateway, sid, headers)
    assert (status, err["error_code"]) == (401, "APIG.0303")
    assert "signature mismatch" in err["error_msg"]


async def test_signature_over_another_path_is_a_mismatch(gateway, sid):
    headers = Signer("KEY-A", "SECRET-A").sign("POST", gateway.infer_url(sid, "/other?mode=fast"), {}, b'{"x": 1}')
    status, err = await call(gateway, sid, headers)
    assert status == 401 and "signature mismatch" in err["error_msg"]


async def test_expired_date(gateway, sid):
    url = gateway.infer_url(sid, "/predict?mode=fast")
    old = datetime.now(UTC) - timedelta(minutes=20)
    headers = Signer("KEY-A", "SECRET-A").sign("POST", url, {}, b'{"x": 1}', now=old)
    status, err = await call(gateway, sid, headers)
    assert (status, err["error_code"]) == (401, "APIG.0303")
    assert "signature expired" in err["error_msg"]


async def test_other_services_app_is_403(gateway, sid):
    status, err = await call(gateway, sid, {"X-Apig-AppCode": "CODE-B"})
    assert (status, err["error_code"]) == (403, "APIG.0304")


async def test_no_credentials(gateway, sid):
    status, err = await call(gateway, sid, {})
    assert (status, err["error_code"]) == (401, "ModelArts.0205")


async def test_rotated_secret_takes_effect_at_once(gateway, sid):
    assert (await call(gateway, sid, {"X-Apig-AppCode": "CODE-A"}))[0] == 200
    gateway.table.set_secret(NS, "app-a", secret_data("KEY-A2", "SECRET-A2", "CODE-A2"))
    assert (await call(gateway, sid, {"X-Apig-AppCode": "CODE-A"}))[0] == 401
    assert (await call(gateway, sid, {"X-Apig-AppCode": "CODE-A2"}))[0] == 200


async def test_auth_failures_are_not_invocations(gateway, sid):
    """Only a request that passed auth and reached a model counts: a stranger cannot move the counts."""
    await call(gateway, sid, {})
    await call(gateway, sid, {"X-Apig-AppCode": "nope"})
    assert (await call(gateway, sid, {"X-Apig-AppCode": "CODE-A"}))[0] == 200
    async with gateway.http.get(gateway.url + "/-/counts") as resp:
        counts = json.loads(await resp.text())
    assert counts[sid] == counted(1, 0, v1=1)
