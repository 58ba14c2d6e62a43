"""examples/llm-openai.yaml on the local cluster: admitted by the real CRD with its openaiCompatible flag
kept (a CRD without the field: kubectl's strict validation refuses it, other clients' writes lose it),
run by the operator, and what the gateway's
watch layer makes of the stored object routes by model (tests/gateway/test_openai.py sends the traffic)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from test_operator import Cluster

from conftest import _localcluster
from inference_operator.gateway import openai
from inference_operator.gateway.routes import service_route

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
