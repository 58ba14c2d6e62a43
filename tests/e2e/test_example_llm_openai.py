"""examples/llm-openai.yaml on the local cluster: admitted by the real CRD with its openaiCompatible flag
kept (a CRD without the field: kubectl's strict validation refuses it, other clients' writes lose it),
run by the operator, and what the gateway's
watch layer makes of the stored object routes by model (tests/gateway/test_openai.py sends the traffic)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from gateways import DIRECT, serve_from_model_server, start_gateway
from services import Cluster

from conftest import REPO, _localcluster
from inference_operator.gateway import openai
from inference_operator.gateway.entries import service_route

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def model_storage(namespace: str) -> Iterator[None]:
    """examples/model-storage.yaml (the claim "models" the examples mount), moved to the test's namespace."""
    volume, claim = yaml.safe_load_all((EXAMPLES / "model-storage.yaml").read_text())
    volume["metadata"]["name"] = claim["spec"]["volumeName"] = f"{namespace}-models"
    volume["spec"]["claimRef"]["namespace"] = claim["metadata"]["namespace"] = namespace
    lc = _localcluster()
    lc.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([volume, claim]))
    yield
    lc.kubectl("delete", "persistentvolume", volume["metadata"]["name"], "--wait=false", check=False)


def test_llm_openai_example_applies_runs_and_routes_by_model(api, namespace, wait_for, operator, model_storage):
    kube = Cluster(api, namespace, wait_for)
    _localcluster().kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "llm-openai.yaml"))
    stored = kube.get("llm-chat")
    assert {m["name"]: m.get("openaiCompatible") for m in stored["spec"]["models"]} == {
        "qwen-v1": None, "qwen-v2": None, "llama": None, "embed": True}
    status = kube.wait_status("llm-chat", "running", timeout=90)
    assert [(m["name"], m["weight"]) for m in status["models"]] == [
        ("qwen-v1", 90), ("qwen-v2", 10), ("llama", 0), ("embed", 0)]

    route = service_route(kube.get("llm-chat"))
    assert route is not None and route.unavailable is None
    assert [m["id"] for m in openai.list_models(route)["data"]] == ["qwen2.5-7b-instruct", "llama-3.1-8b-instruct",
                                                                    "bge-m3"]
    assert [m.name for m in openai.matching(route, "bge-m3")] == ["embed"]
    assert route.created > 0  # the API server's creationTimestamp


@pytest.fixture
def llm_servers() -> Iterator[dict[str, int]]:
    """One model process per entry of the example (tests/gateway/model_server.py, named after the entry)."""
    procs = {name: subprocess.Popen([sys.executable, str(REPO / "tests" / "gateway" / "model_server.py"), "--name",
                                     name], stdout=subprocess.PIPE, text=True)
             for name in ("qwen-v1", "qwen-v2", "llama", "embed")}
    ports = {}
    for name, proc in procs.items():
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PORT "), line
        ports[name] = int(line.split()[1])
    yield ports
    for proc in procs.values():
        proc.terminate()
        proc.wait(10)


def post(base: str, uid: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"{base}/v1/infers/{uid}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with DIRECT.open(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_gateway_routes_the_example_by_model(api, cluster, crds, namespace, wait_for, llm_servers):
    """The example applied (no operator: its pods would be kwok's), one FQDN EndpointSlice per entry pointing at
    that entry's model process, and the gateway process watching the cluster: requests reach the model they
    name, /v1/models lists what the service serves, an unknown model is OpenAI's 404."""
    _localcluster().kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "llm-openai.yaml"))
    uid = Cluster(api, namespace, wait_for).get("llm-chat")["metadata"]["uid"]
    for entry, port in llm_servers.items():
        serve_from_model_server(api, namespace, "llm-chat", entry, port)
    gateway = start_gateway(cluster, namespace, "llm-openai", wait_for)
    try:
        chat = {"messages": [{"role": "user", "content": "Hello"}]}
        wait_for(lambda: post(gateway.url, uid, "/v1/chat/completions", {**chat, "model": "llama-3.1-8b-instruct"})
                 [1].get("server") == "llama", 30, "the gateway to route llm-chat")
        status, echo = post(gateway.url, uid, "/v1/embeddings", {"model": "bge-m3", "input": "Hello"})
        assert (status, echo["server"], echo["path"]) == (200, "embed", "/v1/embeddings")
        servers = {post(gateway.url, uid, "/v1/chat/completions", {**chat, "model": "qwen2.5-7b-instruct"})[1]["server"]
                   for _ in range(40)}
        assert servers <= {"qwen-v1", "qwen-v2"} and "qwen-v1" in servers
        status, answer = post(gateway.url, uid, "/v1/chat/completions", {**chat, "model": "gpt-4o"})
        assert (status, answer["error"]["code"]) == (404, "model_not_found")
        with DIRECT.open(f"{gateway.url}/v1/infers/{uid}/v1/models", timeout=10) as resp:
            assert [m["id"] for m in json.loads(resp.read())["data"]] == [
                "qwen2.5-7b-instruct", "llama-3.1-8b-instruct", "bge-m3"]
    finally:
        gateway.proc.terminate()
        gateway.proc.wait(40)
