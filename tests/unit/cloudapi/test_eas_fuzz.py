"""Hostile input to the PAI-EAS dialect: any body either converts to a valid InferenceService or is refused
400 naming a field, in EAS's error JSON; any headers on the real aiohttp app are refused 401/403/404 in EAS's
JSON, never a 500. Quick: the app's refusals happen before any Kubernetes call."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.cloudapi.credentials import KeyRing
from inference_operator.cloudapi.dialect import AuthContext, Settings
from inference_operator.cloudapi.eas import Eas, bodies, errors
from inference_operator.cloudapi.errors import CloudError
from inference_operator.cloudapi.server import Backend, Limits, build_app

scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=20)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8),
                                                                                         inner, max_size=3),
                      max_leaves=12)
eas_keys = st.sampled_from(["metadata", "containers", "processor", "storage", "cloud", "autoscaler", "model_path",
                            "token", "name", "other"])
meta = st.fixed_dictionaries({"name": st.sampled_from(["demo", "a_b", "Bad Name", "", "x" * 70]) | values},
                             optional={"instance": values, "cpu": values, "memory": values, "gpu": values,
                                       "workspace_id": values})
eas_bodies = st.fixed_dictionaries({"metadata": meta | values}, optional={k: values for k in
                                   ("containers", "storage", "cloud", "autoscaler", "processor", "model_path")}) \
    | st.dictionaries(eas_keys, values, max_size=5)
app_bodies = st.fixed_dictionaries(
    {"ServiceName": st.sampled_from(["llm", "llm_1", "LLM!"]) | values,
     "ServiceSpec": st.sampled_from(["llama_7b_fp16", "chatglm2_6b_int8", "nope", "llama_9999b_fp16"]) | values},
    optional={"AppType": values, "AppVersion": values, "Replicas": values, "Config": values, "QuotaId": values})


def check(data: Any, fmt: str) -> None:
    try:
        manifest = bodies.to_manifest(data, fmt, "team-a")
    except CloudError as err:
        assert err.status == 400 and err.message
        shown = json.loads(errors.error_body(err, "r-1"))
        assert set(shown) == {"RequestId", "Code", "Message"}
        return
    InferenceService.from_body(manifest)
    assert manifest["metadata"]["annotations"][bodies.NAME_ANNOTATION]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(eas_bodies)
def test_service_bodies(data: Any) -> None:
    check(data, bodies.SERVICE)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(app_bodies)
def test_app_bodies(data: Any) -> None:
    check(data, bodies.APP)


def _keys() -> KeyRing:
    ring = KeyRing()
    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    ring.replace([{"metadata": {"name": "k", "namespace": "keys", "uid": "1", "annotations": {
        "inference.io/identity": "system:serviceaccount:team-a:deployer", "inference.io/namespace": "team-a"}},
        "data": {"accessKey": b64("AK1"), "secretKey": b64("SK1")}}])
    return ring


async def _never(_: str) -> None:
    return None


header_names = st.sampled_from(["Authorization", "x-acs-date", "x-acs-content-sha256", "Host", "Content-Type",
                                "x-acs-signature-nonce", "X-Request-Id"])
header_values = st.sampled_from(["ACS3-HMAC-SHA256 Credential=AK1,SignedHeaders=host;x-acs-date;"
                                 "x-acs-content-sha256,Signature=00", "ACS3-HMAC-SHA256 Credential=ZZ,"
                                 "SignedHeaders=host;x-acs-date;x-acs-content-sha256,Signature=ab",
                                 "ACS3-HMAC-SHA256", "Bearer x", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                 "1999-01-01T00:00:00Z"]) | st.text(st.characters(min_codepoint=32,
                                                                                  max_codepoint=126), max_size=40)
paths = st.sampled_from(["/api/v2/services", "/api/v2/app_services", "/api/v2/services/local/demo",
                         "/api/v2/services/local/demo/stop", "/api/v2/nothing", "/api/v2/services/a/b/c/d"])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]), paths,
       st.dictionaries(header_names, header_values, max_size=5), st.binary(max_size=64))
async def test_headers_never_a_500(method: str, path: str, headers: dict[str, str], body: bytes) -> None:
    auth = AuthContext(keys=_keys(), review_token=_never, now=lambda: datetime.now(UTC))
    app = build_app([Eas()], Backend(kube=None, auth=auth, settings=Settings(), limits=Limits()))  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as http:
        answer = await http.request(method, path, headers=headers, data=body)
        shown = await answer.json()
    assert answer.status in (401, 403, 404, 405), (answer.status, shown)
    assert set(shown) == {"RequestId", "Code", "Message"} and shown["Message"]
