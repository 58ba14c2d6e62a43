"""The clouds' clients and the project's own, against the gateway process watching the local cluster.

An app-auth, OpenAI-speaking InferenceService whose model is a process on this machine (an FQDN
EndpointSlice points at it: kwok's pods never serve), its app a Secret as a user creates it. Called
with `eas_prediction.PredictClient` (by name, `set_token`), with OpenAI's client (`api_key` = the
AppCode; streaming; a wrong key), and with `kubectl infsvc invoke` (signed with the app's key read from
the Secret); `kubectl infsvc get` / `describe` read a service the operator runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from eas_prediction import PredictClient, StringRequest
from eas_prediction.exception import PredictException
from gateways import GatewayProcess, host_model_server, serve_from_model_server, start_gateway
from kubernetes import client
from services import Cluster, manifest, model

from conftest import _localcluster

APP = {"appKey": "e2e-key", "appSecret": "e2e-secret-value", "appCode": "e2e-app-code"}
PLUGIN = Path(sys.executable).with_name("kubectl-infsvc")


@pytest.fixture
def model_server() -> Iterator[int]:
    with host_model_server("chat") as port:
        yield port


@pytest.fixture
def chat_service(api, cluster, crds, namespace, wait_for, model_server) -> Iterator[GatewayProcess]:
    """The service and its app Secret applied as a user would, its model on this host, a gateway watching."""
    client.CoreV1Api(api).create_namespaced_secret(namespace, {"metadata": {"name": "app-e2e"}, "stringData": APP})
    entry = model("v1", runtime="custom", openaiCompatible=True, image="example.invalid/hostlocal-chat:1",
                  port=model_server)
    Cluster(api, namespace, wait_for).create(manifest("chat", entry, auth={"appAuth": True,
                                                                            "apps": [{"secretName": "app-e2e"}]}))
    serve_from_model_server(api, namespace, "chat", "v1", model_server)
    gateway = start_gateway(cluster, namespace, "clients", wait_for)
    yield gateway
    gateway.proc.terminate()
    gateway.proc.wait(40)


def eas_predict(url: str, service: str, token: str, body: bytes) -> dict:
    predictor = PredictClient(url, service)
    predictor.set_token(token)
    predictor.set_retry_count(1)
    predictor.init()
    try:
        return json.loads(predictor.predict(StringRequest(body)).response_data)
    finally:
        predictor.destroy()


def test_eas_prediction_and_openai_clients_call_the_service(chat_service, namespace, wait_for):
    url = chat_service.url

    def reached() -> dict | None:
        try:
            return eas_predict(url, "chat", APP["appCode"], b'{"x": 1}')
        except PredictException:
            return None

    echo = wait_for(reached, 30, "the gateway to route chat by name")
    assert (echo["server"], echo["path"], echo["body_length"]) == ("chat", "/", 8)
    assert eas_predict(url, f"{namespace}.chat/score", APP["appCode"], b"{}")["path"] == "/score"
    with pytest.raises(PredictException) as refused:
        eas_predict(url, "chat", "not-the-code", b"{}")
    assert refused.value.code == 401

    llm = openai.OpenAI(base_url=f"{url}/api/predict/chat/v1", api_key=APP["appCode"], max_retries=0)
    answer = llm.chat.completions.with_raw_response.create(model="v1-model",
                                                           messages=[{"role": "user", "content": "hi"}])
    assert json.loads(answer.http_response.text)["path"] == "/v1/chat/completions"
    chunks = list(llm.chat.completions.create(model="v1-model", messages=[{"role": "user", "content": "hi"}],
                                              stream=True, extra_query={"pause": "0"}))
    assert [c.model_extra["chunk"] for c in chunks] == [0, 1, 2, 3]
    with pytest.raises(openai.AuthenticationError) as wrong:
        openai.OpenAI(base_url=f"{url}/api/predict/chat/v1", api_key="wrong", max_retries=0).models.list()
    assert wrong.value.code == "invalid_api_key"


def plugin(*args: str, cluster: str) -> subprocess.CompletedProcess:
    """`kubectl infsvc ...`: kubectl finds the plugin on PATH, as a user's would."""
    env = {**os.environ, "PATH": f"{PLUGIN.parent}{os.pathsep}{os.environ.get('PATH', '')}", "KUBECONFIG": cluster}
    kubectl = str(_localcluster().bin_dir() / "kubectl")
    return subprocess.run([kubectl, "infsvc", *args], capture_output=True, text=True, env=env, timeout=60)


def test_kubectl_infsvc_invoke_signs_with_the_apps_secret(chat_service, cluster, namespace, wait_for):
    wait_for(lambda: plugin("invoke", "chat", "-n", namespace, "--gateway", chat_service.url, "--data", "{}",
                            cluster=cluster).returncode == 0, 30, "the gateway to route chat")
    done = plugin("invoke", "chat", "-n", namespace, "--gateway", chat_service.url, "--path", "/v1/chat/completions",
                  "--data", '{"model": "v1-model", "messages": []}', cluster=cluster)
    echo = json.loads(done.stdout)
    assert done.returncode == 0 and echo["path"] == "/v1/chat/completions"
    assert echo["headers"].get("authorization") is None and "x-sdk-date" not in echo["headers"]  # the gateway's
    streamed = plugin("invoke", "chat", "-n", namespace, "--gateway", chat_service.url, "--stream", "--path",
                      "/v1/chat/completions?pause=0", "--data", '{"model": "v1-model"}', cluster=cluster)
    assert [json.loads(line)["chunk"] for line in streamed.stdout.splitlines()] == [0, 1, 2, 3], streamed.stderr
    missing = plugin("invoke", "chat", "-n", namespace, "--app", "nosuch", "--gateway", chat_service.url,
                     cluster=cluster)
    assert missing.returncode == 2 and 'secret "nosuch" not found' in missing.stderr


def test_kubectl_infsvc_get_and_describe_show_what_the_operator_reports(api, cluster, namespace, wait_for, operator):
    kube = Cluster(api, namespace, wait_for)
    kube.create(manifest("shown", model("v1"), model("v2", weight=0)))
    status = kube.wait_status("shown", "running", timeout=90)
    listed = plugin("get", "-n", namespace, cluster=cluster)
    head, row = listed.stdout.splitlines()
    assert head.split() == ["NAME", "STATUS", "PROGRESS", "ADDRESS", "MODELS", "AGE"]
    assert row.split()[:5] == ["shown", "running", "100", status["accessAddress"], "v1,v2"]
    described = plugin("describe", "shown", "-n", namespace, cluster=cluster).stdout
    fields = dict(line.split(":", 1) for line in described.splitlines() if line and not line.startswith(" ")
                  and ":" in line and not line.endswith(":"))
    assert fields["Status"].strip() == "running" and fields["Service ID"].strip() == status["serviceId"]
    assert fields["Address"].strip() == status["accessAddress"]
    models = described.split("Models:")[1].split("Events:")[0].splitlines()
    assert [line.split()[:4] for line in models[2:4]] == [["v1", "ready", "1/1", "100"], ["v2", "ready", "1/1", "0"]]
    assert "Ready" in described.split("Conditions:")[1].split("Models:")[0]
    assert "Events:  <none>" not in described and "Events:" in described
    gone = plugin("describe", "nosuch", "-n", namespace, cluster=cluster)
    assert gone.returncode == 2 and "not found" in gone.stderr
