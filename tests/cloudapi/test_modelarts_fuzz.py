"""Hypothesis against the cloud API's ModelArts dialect: any method, path, header and body, signed by
huaweicloudsdkcore's Signer or not. Whatever arrives, the answer is never a 500, and every refusal is
ModelArts' JSON ({"error_code", "error_msg"}). The server runs its real HTTP stack in a thread; its
Kubernetes API is a closed port, so a request that gets past every check is answered 503 (the API is
unavailable), never anything worse. The create body's conversion is fuzzed directly too: a manifest
that validates, or a CloudError naming the field."""

from __future__ import annotations

import asyncio
import json
import string
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference_operator.cloudapi.credentials import KeyRing
from inference_operator.cloudapi.dialect import AuthContext, Settings
from inference_operator.cloudapi.errors import CloudError
from inference_operator.cloudapi.metrics import REQUESTS
from inference_operator.cloudapi.modelarts import ModelArts, create
from inference_operator.cloudapi.server import Backend, Limits, build_app
from inference_operator.convert.common import RegisteredModel, validate
from inference_operator.gateway.httpserver import start_site
from inference_operator.kube.client import Kube
from inference_operator.kube.kubeconfig import Connection

AK, SK = "FUZZKEY", "fuzz-secret"
MODEL_ID = "0b6f4a8e-0000-4c1e-9d51-5a0c7d9e0001"
SECRET = {"metadata": {"name": "k", "namespace": "keys", "uid": "s1",
                       "annotations": {"inference.io/identity": "system:serviceaccount:team-a:deployer"}},
          "data": {"accessKey": "RlVaWktFWQ==", "secretKey": "ZnV6ei1zZWNyZXQ="}}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    ready: list[str] = []
    stop = asyncio.Event()

    async def main() -> None:
        keys = KeyRing()
        keys.replace([SECRET])
        kube = Kube(Connection(server="http://127.0.0.1:1", ssl_context=False), "inference-cloud-api")

        async def review(_: str) -> None:
            return None
        backend = Backend(kube, AuthContext(keys, review, lambda: datetime.now(UTC)), Settings(),
                          Limits(body_bytes=64 * 1024, request_seconds=5, client_seconds=1))
        runner, port = await start_site(build_app([ModelArts()], backend), "127.0.0.1", 0)
        ready.append(f"127.0.0.1:{port}")
        await stop.wait()
        await runner.cleanup()
        await kube.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    while not ready:
        threading.Event().wait(0.05)
    yield ready[0]
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
CONFIG_KEYS = ["model_id", "weight", "specification", "custom_spec", "instance_count", "envs", "scaling", "src_path",
               "cluster_id", "status", "model_name", "mapping_rule", "surprise"]
TOP_KEYS = ["service_name", "description", "infer_type", "config", "schedule", "vpc_id", "status", "extra"]
configs = st.dictionaries(st.sampled_from(CONFIG_KEYS), json_values | st.just(MODEL_ID) | st.sampled_from(
    ["modelarts.vm.cpu.2u", "custom", "gpu.t4"]), max_size=7)
bodies = st.one_of(json_values, st.dictionaries(st.sampled_from(TOP_KEYS), json_values | st.lists(configs, max_size=3)
                                                | st.sampled_from(["real-time", "batch", "svc_1"]), max_size=7))
PATHS = ["/v1/team-a/services", "/v1/team-a/services/u-1", "/v1/team-a/services/u-1,u-2", "/v1/team-a/models",
         "/v1/team-a/services/u-1/events", "/v1/team-a/services/specifications", "/v1/Team_A/services", "/v1//x",
         "/v1/team-a/models/m-1", "/v1/", "/v1/team-a/services/%00", "/v1/a/services?limit=-1&offset=x"]
header_text = st.text(alphabet=string.printable.replace("\r", "").replace("\n", ""), max_size=40).map(str.strip)


def is_modelarts_error(answer: requests.Response) -> bool:
    try:
        body = answer.json()
    except ValueError:
        return False
    return isinstance(body, dict) and str(body.get("error_code", "")).startswith(("ModelArts.", "APIG.")) \
        and isinstance(body.get("error_msg"), str)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]), path=st.sampled_from(PATHS), body=bodies,
       sign=st.booleans(), headers=st.dictionaries(st.sampled_from(["Authorization", "X-Sdk-Date", "X-Auth-Token",
                                                                   "X-Sdk-Content-Sha256", "Content-Type",
                                                                   "X-Request-Id"]), header_text, max_size=3))
def test_never_a_500_and_every_error_in_modelarts_json(server: str, method: str, path: str, body: Any, sign: bool,
                                                       headers: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    resource, _, query = path.partition("?")
    request = SdkRequest(method=method, schema="http", host=server, resource_path=resource,
                         query_params=[tuple(p.split("=", 1)) for p in query.split("&") if "=" in p],
                         header_params={"Content-Type": "application/json"}, body=data)
    if sign:
        request = Signer(BasicCredentials(AK, SK)).sign(request)
        sent = {**request.header_params}
    else:
        sent = {**request.header_params, **headers}
    answer = requests.request(method, f"http://{server}{path}", headers=sent, data=data, timeout=10)
    assert answer.status_code != 500, answer.text
    if answer.status_code >= 400:
        assert is_modelarts_error(answer), answer.text
    if not sign:
        assert answer.status_code in (401, 404, 405, 400, 413), answer.text


def test_an_oversized_body_is_refused_before_it_is_read(server: str) -> None:
    answer = requests.post(f"http://{server}/v1/team-a/services", data=b"x" * (65 * 1024), timeout=10,
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error_code"] == "APIG.0201"
    assert REQUESTS.labels(dialect="modelarts", status="413")._value.get() >= 1  # counted on /metrics


MODELS = {MODEL_ID: RegisteredModel("digits", "1.0.0", "registry.example.com/digits:1", "s3://m/digits")}


@settings(max_examples=300, deadline=None)
@given(body=bodies)
def test_a_create_body_converts_to_a_valid_service_or_is_refused_naming_a_field(body: Any) -> None:
    try:
        out = create.manifest(body, "team-a", MODELS)
    except CloudError as err:
        assert err.status == 400 and err.message
        return
    validate(out)
    assert out["metadata"]["namespace"] == "team-a"
