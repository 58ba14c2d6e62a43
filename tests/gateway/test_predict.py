"""The PAI-EAS URL (`/api/predict/<service>/...`) and token keys, with the clients' own libraries.

`eas_prediction.PredictClient` and OpenAI's client, from PyPI, unchanged but for the endpoint, call a real
gateway on loopback with real model-server processes behind it (tests/gateway/model_server.py echoes what
reached it, so each test sees what the model got).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from typing import Any

import openai
import pytest
from eas_prediction import PredictClient, StringRequest
from eas_prediction.exception import PredictException

from fakes import until
from inference_operator.gateway.tokens import eas_signature, eas_string_to_sign

from .conftest import NS, GatewayUnderTest, counted, service_body, slice_body
from .test_openai import llm_service

PRED = "0b6f4a8e-6666-4c1e-9d51-5a0c7d9e0001"  # app auth, apps app-p then app-q
OPEN = "0b6f4a8e-6666-4c1e-9d51-5a0c7d9e0002"  # no app auth
OTHER = "0b6f4a8e-6666-4c1e-9d51-5a0c7d9e0003"  # app auth with app-other only
LLM = "0b6f4a8e-6666-4c1e-9d51-5a0c7d9e0004"  # vllm, app auth app-p
DUP_A, DUP_B = "0b6f4a8e-6666-4c1e-9d51-5a0c7d9e0005", "0b6f4a8e-6666-4c1e-9d51-5a0c7d9e0006"
KEY_LLM = "0b6f4a8e-6666-4c1e-9d51-5a0c7d9e0007"  # vllm, app auth app-p, apikey on
APPS = {"app-p": ("KEY-P", "SECRET-P", "CODE-P"), "app-q": ("KEY-Q", "SECRET-Q", "CODE-Q"),
        "app-other": ("KEY-O", "SECRET-O", "CODE-O")}


def secret_data(key: str, secret: str, code: str) -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in
            {"appKey": key, "appSecret": secret, "appCode": code}.items()}


@pytest.fixture
def services(gateway: GatewayUnderTest, backends) -> GatewayUnderTest:
    gateway.add_service(service_body("pred", PRED, [("v1", 100)], apps=["app-p", "app-q"]), backends)
    gateway.add_service(service_body("open", OPEN, [("v1", 100)]), backends)
    gateway.add_service(service_body("other", OTHER, [("v1", 100)], apps=["app-other"]), backends)
    gateway.add_service(service_body("dup", DUP_A, [("v1", 100)]), backends)
    gateway.add_service(service_body("dup", DUP_B, [("v2", 100)], namespace="team-b"), backends)
    llm = llm_service(LLM, apps=["app-p"])
    gateway.add_service(llm, backends)
    keyed = llm_service(KEY_LLM, apps=["app-p"], annotations={"inference.io/gateway-apikey-auth": "true"})
    keyed["metadata"]["name"] = "llm-keyed"
    gateway.add_service(keyed, backends)
    for name, values in APPS.items():
        gateway.table.set_secret(NS, name, secret_data(*values))
    return gateway


def eas_client(gateway: GatewayUnderTest, service: str, token: str | None = None, **kwargs: Any) -> PredictClient:
    client = PredictClient(gateway.url, service, **kwargs)
    if token is not None:
        client.set_token(token)
    client.set_retry_count(1)
    client.init()
    return client


async def eas_predict(client: PredictClient, body: bytes) -> dict[str, Any]:
    """The SDK is synchronous (urllib3): it runs in a thread while the gateway serves in this loop."""
    try:
        response = await asyncio.to_thread(client.predict, StringRequest(body))
    finally:
        client.destroy()
    return json.loads(response.response_data)


async def eas_refusal(client: PredictClient, body: bytes = b"{}") -> tuple[int, dict[str, Any]]:
    with pytest.raises(PredictException) as caught:
        await eas_predict(client, body)
    return caught.value.code, json.loads(caught.value.message)


async def test_predict_client_with_its_token_reaches_the_service_by_name(services):
    """PredictClient signs with its token (Authorization: EAS <HMAC-SHA1>); the model gets the body and the
    path after the service's name, not the gateway's credential."""
    body = b'{"image": "cat.jpg"}'
    for ref, token in [("pred", "CODE-P"), (f"{NS}.pred", "CODE-P"), ("pred", "CODE-Q")]:
        echo = await eas_predict(eas_client(services, ref, token), body)
        assert (echo["server"], echo["method"], echo["path"]) == ("v1", "POST", "/")
        assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
        assert "authorization" not in echo["headers"]
    echo = await eas_predict(eas_client(services, "pred/predict/v2", "CODE-P"), body)
    assert echo["path"] == "/predict/v2"
    assert services.gw.metrics.counts()[PRED] == counted(4, v1=4)


async def test_a_plain_token_in_authorization_passes(services):
    """`Authorization: <token>` (curl, or PredictClient with a custom URL) and `Bearer <token>`."""
    echo = await eas_predict(eas_client(services, "pred", "CODE-P", custom_url=f"{services.url}/api/predict/pred"),
                             b"x")
    assert echo["server"] == "v1" and "authorization" not in echo["headers"]
    for value in ("CODE-Q", "Bearer CODE-P"):
        async with services.http.post(f"{services.url}/api/predict/pred/run", data=b"x",
                                      headers={"Authorization": value}) as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["path"] == "/run"


async def test_a_wrong_token_is_401_and_another_services_app_403(services):
    status, error = await eas_refusal(eas_client(services, "pred", "CODE-WRONG"))
    assert (status, error["error_code"]) == (401, "APIG.0303") and "signature mismatch" in error["error_msg"]
    status, error = await eas_refusal(eas_client(services, "pred", "CODE-O"))
    assert (status, error["error_code"]) == (403, "APIG.0304")
    status, error = await eas_refusal(eas_client(services, "pred"))
    assert (status, error["error_code"]) == (401, "ModelArts.0205")
    async with services.http.post(f"{services.url}/api/predict/pred", data=b"x",
                                  headers={"Authorization": "CODE-WRONG"}) as resp:
        assert resp.status == 401 and (await resp.json())["error_msg"].endswith(
            "unknown token (send an AppCode of one of the service's apps)")
    assert PRED not in services.gw.metrics.counts() or services.gw.metrics.counts()[PRED]["invocationTimes"] == 0


async def test_an_eas_signature_cannot_carry_another_body(services):
    """The signature covers Content-MD5, which must be the body's: a replay with another body is 401."""
    date, md5 = "Mon, 01 Dec 2026 10:00:00 GMT", hashlib.md5(b"original").hexdigest()
    text = eas_string_to_sign("POST", md5, "application/octet-stream", date, "/api/predict/pred")
    headers = {"Authorization": "EAS " + eas_signature("CODE-P", text), "Content-MD5": md5, "Date": date,
               "Content-Type": "application/octet-stream"}
    async with services.http.post(f"{services.url}/api/predict/pred", data=b"original", headers=headers) as resp:
        assert resp.status == 200
    async with services.http.post(f"{services.url}/api/predict/pred", data=b"tampered", headers=headers) as resp:
        error = await resp.json()
        assert (resp.status, error["error_code"]) == (401, "APIG.0303")
        assert "does not match its Content-MD5" in error["error_msg"]
    del headers["Content-MD5"]
    async with services.http.post(f"{services.url}/api/predict/pred", data=b"original", headers=headers) as resp:
        assert resp.status == 401 and "content-md5" in (await resp.json())["error_msg"]


async def test_a_service_without_app_auth_takes_any_token_or_none(services):
    for token in (None, "anything"):
        echo = await eas_predict(eas_client(services, "open", token), b"x")
        assert echo["server"] == "v1"


async def test_names_resolve_to_one_service_or_say_why_not(services):
    for ref, server in [("team-a.dup", "v1"), ("team-b.dup", "v2")]:
        assert (await eas_predict(eas_client(services, ref), b"x"))["server"] == server
    status, error = await eas_refusal(eas_client(services, "dup"))
    assert (status, error["error_code"]) == (400, "ModelArts.4201")
    assert "ambiguous" in error["error_msg"] and "team-a, team-b" in error["error_msg"]
    for ref in ("nosuch", "team-b.pred", "team-a."):
        status, error = await eas_refusal(eas_client(services, ref))
        assert (status, error["error_code"]) == (404, "ModelArts.4204"), ref
    async with services.http.post(f"{services.url}/api/predict/") as resp:
        assert (resp.status, (await resp.json())["error_code"]) == (400, "ModelArts.4201")


async def test_the_body_limit_and_stopped_services_apply_on_the_eas_url(services, backends):
    status, error = await eas_refusal(eas_client(services, "pred", "CODE-P"), b"x" * (1024 * 1024 + 1))
    assert (status, error["error_code"]) == (413, "APIG.0201")
    services.table.upsert_service(service_body("open", OPEN, [("v1", 100)], stopped=True))
    status, error = await eas_refusal(eas_client(services, "open"))
    assert (status, error["error_code"]) == (400, "ModelArts.4203")


async def test_a_request_for_a_sleeping_model_is_held_on_the_eas_url(gateway, backends):
    uid = "0b6f4a8e-6666-4c1e-9d51-5a0c7d9e0010"
    gateway.table.upsert_service(service_body("sleepy", uid, [("v1", 100)], scale_to_zero=("v1",)))
    call = asyncio.create_task(gateway.http.post(f"{gateway.url}/api/predict/sleepy/x", data=b"x"))
    await until(lambda: call.done() or gateway.gw.metrics.counts().get(uid, {}).get("models", {}).get("v1", {})
                .get("inflight") == 1, "the request to be held")
    assert not call.done(), await call
    gateway.table.upsert_slice(slice_body("sleepy", "v1", ["127.0.0.1"], backends["v1"].port))
    async with await call as resp:
        assert resp.status == 200 and (await resp.json())["path"] == "/x"


# -- OpenAI's client with an AppCode (or AppKey) as its api_key -------------------------------------------------

def openai_client(base: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base, api_key=key, max_retries=0)


@pytest.mark.parametrize("base", ["/api/predict/llm-vllm/v1", f"/v1/infers/{LLM}/v1"])
async def test_openai_client_with_an_appcode_as_api_key(services, base):
    client = openai_client(services.url + base, "CODE-P")
    raw = await client.chat.completions.with_raw_response.create(
        model="qwen-2", messages=[{"role": "user", "content": "hi"}])
    echo = json.loads(raw.http_response.text)
    assert (echo["server"], echo["path"]) == ("v2", "/v1/chat/completions")
    assert "authorization" not in echo["headers"]
    stream = await client.chat.completions.create(model="llama-3", messages=[{"role": "user", "content": "hi"}],
                                                  stream=True, extra_query={"pause": "0"})
    chunks = [chunk async for chunk in stream]
    assert [chunk.model_extra["server"] for chunk in chunks] == ["v1"] * 4
    assert [m.id for m in (await client.models.list()).data] == ["llama-3", "qwen-2"]


@pytest.mark.parametrize("base", ["/api/predict/llm-vllm/v1", f"/v1/infers/{LLM}/v1"])
async def test_openai_client_with_a_wrong_key_gets_authentication_error(services, base):
    for key in ("CODE-WRONG", "KEY-P"):  # an AppKey only where apikey is on
        with pytest.raises(openai.AuthenticationError) as caught:
            await openai_client(services.url + base, key).chat.completions.create(
                model="qwen-2", messages=[{"role": "user", "content": "hi"}])
        assert caught.value.status_code == 401
        assert caught.value.code == "invalid_api_key" and caught.value.type == "invalid_request_error"
        assert set(caught.value.response.json()["error"]) == {"message", "type", "param", "code"}
    with pytest.raises(openai.PermissionDeniedError):
        await openai_client(services.url + base, "CODE-O").models.list()


async def test_openai_client_with_an_appkey_where_apikey_is_on(services):
    client = openai_client(f"{services.url}/api/predict/llm-keyed/v1", "KEY-P")
    raw = await client.chat.completions.with_raw_response.create(
        model="llama-3", messages=[{"role": "user", "content": "hi"}])
    assert json.loads(raw.http_response.text)["server"] == "v1"


async def test_bearer_is_not_a_credential_off_the_openai_routes_of_the_modelarts_url(services):
    """On /v1/infers a Bearer token is a key only on OpenAI routes; elsewhere it is an unknown scheme."""
    async with services.http.post(services.infer_url(PRED, "/predict"), data=b"x",
                                  headers={"Authorization": "Bearer CODE-P"}) as resp:
        error = await resp.json()
        assert (resp.status, error["error_code"]) == (401, "APIG.0303")
        assert "unsupported signing algorithm" in error["error_msg"]
