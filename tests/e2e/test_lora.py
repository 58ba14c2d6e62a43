"""LoRA adapters end to end (docs/lora.md): examples/lora.yaml on the local cluster, its replicas simulated engines
(tests/enginesim, with LoRA slots) behind kwok "hostlocal" pods, so the operator's adapters loop reaches them at
their pods' addresses and the gateway through the real EndpointSlices. The operator loads every adapter on every
ready replica, again after an engine restarts, unloads a removed one without touching the pods, and reports an
adapter whose files the engine refuses without disturbing the others. Every step waits for what the engines or
the status report."""

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
from gateways import DIRECT, start_gateway
from kubernetes import client
from services import Cluster

from conftest import REPO, _localcluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOSTLOCAL = "example.invalid/hostlocal-engine:1"
BASE = "llama-3.1-8b-instruct"
GOOD = {"sql-writer", "support-tone"}


class Engine:
    """A simulated vLLM with LoRA on (4 slots), on this machine's every interface."""

    def __init__(self, port: int = 0) -> None:
        self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "enginesim" / "server.py"), "--model", BASE,
                                      "--host", "0.0.0.0", "--port", str(port), "--max-loras", "4", "--itl", "0.005"],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])

    def adapters(self) -> dict[str, str]:
        """What the engine holds: adapter -> its parent, as vLLM's /v1/models lists them."""
        try:
            with DIRECT.open(f"http://127.0.0.1:{self.port}/v1/models", timeout=5) as resp:
                data = json.loads(resp.read())["data"]
        except OSError:
            return {}
        return {m["id"]: m["parent"] for m in data if m.get("parent")}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    found = [Engine(), Engine()]
    yield found
    for engine in found:
        if engine.proc.poll() is None:
            engine.stop()


@pytest.fixture
def model_storage(namespace: str) -> Iterator[None]:
    """examples/model-storage.yaml (the claim "models" the example mounts), moved to the test's namespace."""
    volume, claim = yaml.safe_load_all((EXAMPLES / "model-storage.yaml").read_text())
    volume["metadata"]["name"] = claim["spec"]["volumeName"] = f"{namespace}-models"
    volume["spec"]["claimRef"]["namespace"] = claim["metadata"]["namespace"] = namespace
    lc = _localcluster()
    lc.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([volume, claim]))
    yield
    lc.kubectl("delete", "persistentvolume", volume["metadata"]["name"], "--wait=false", check=False)


def apply_example(api: client.ApiClient, kube: Cluster, engines: list[Engine], extra: list[dict] = ()) -> dict:
    """examples/lora.yaml as given but for its image (hostlocal: the pod gets this machine's address) and port
    (engine 0's), one replica from its Deployment and engine 1 behind a pod of its own with the model's labels;
    the stored service once both engines are endpoints."""
    body = yaml.safe_load((EXAMPLES / "lora.yaml").read_text())
    llama = body["spec"]["models"][0]
    llama.update(image=HOSTLOCAL, port=engines[0].port, instanceCount=1)
    llama["adapters"] += list(extra)
    _localcluster().kubectl("apply", "-n", kube.ns, "-f", "-", input=yaml.safe_dump(body))
    service = kube.wait_for(lambda: _services(api, kube.ns), 60, "the model's Service")
    client.CoreV1Api(api).create_namespaced_pod(kube.ns, {
        "metadata": {"name": "engine-1", "labels": service.spec.selector},
        "spec": {"containers": [{"name": "engine", "image": HOSTLOCAL,
                                 "ports": [{"name": "http", "containerPort": engines[1].port}]}]}})
    kube.wait_for(lambda: kube.status("llm-lora").get("status") in ("running", "concerning"), 90,
                  "the service serving (concerning: an adapter its engines refuse)")
    return kube.get("llm-lora")


def _services(api: client.ApiClient, namespace: str) -> Any:
    found = client.CoreV1Api(api).list_namespaced_service(namespace).items
    return found[0] if found else None


def adapter_status(kube: Cluster) -> dict[str, dict[str, Any]]:
    models = kube.status("llm-lora").get("models") or [{}]
    return {a["name"]: a for a in models[0].get("adapters") or []}


def everywhere(engines: list[Engine], names: set[str]) -> bool:
    return all(set(e.adapters()) == names and set(e.adapters().values()) == {BASE} for e in engines)


def chat(url: str, uid: str, model: str) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"model": model, "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = urllib.request.Request(f"{url}/v1/infers/{uid}/v1/chat/completions", body,
                                     {"Content-Type": "application/json"})
    try:
        with DIRECT.open(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def get_json(url: str) -> Any:
    with DIRECT.open(url, timeout=10) as resp:
        return json.loads(resp.read())


def test_adapters_load_everywhere_come_back_after_a_restart_and_unload_without_a_rollout(
        api, cluster, crds, namespace, wait_for, operator, model_storage, engines):
    kube = Cluster(api, namespace, wait_for)
    uid = apply_example(api, kube, engines)["metadata"]["uid"]
    wait_for(lambda: everywhere(engines, GOOD), 60, "both adapters on both engines")
    wait_for(lambda: all(a["loadedReplicas"] == a["replicas"] == 2 and "reason" not in a
                         for a in adapter_status(kube).values()) and set(adapter_status(kube)) == GOOD,
             60, "status: each adapter on 2 of 2 replicas")
    deployment = kube.apps.list_namespaced_deployment(namespace).items[0]
    pods = {p.metadata.uid for p in kube.core.list_namespaced_pod(namespace).items}

    gateway = start_gateway(cluster, namespace, "lora", wait_for)
    try:
        listed = wait_for(lambda: (m := get_json(f"{gateway.url}/v1/infers/{uid}/v1/models"))["data"] and m, 30,
                          "the gateway's /v1/models")
        assert [(m["id"], m.get("parent")) for m in listed["data"]] == [
            (BASE, None), ("sql-writer", BASE), ("support-tone", BASE)]
        wait_for(lambda: chat(gateway.url, uid, "sql-writer")[0] == 200, 30, "the gateway to route an adapter")
        status, answer = chat(gateway.url, uid, "support-tone")
        assert status == 200 and answer["model"] == "support-tone"  # the engine answered as the adapter
        assert chat(gateway.url, uid, "no-such-adapter")[0] == 404
    finally:
        gateway.proc.terminate()
        gateway.proc.wait(40)

    port = engines[1].port  # the engine process restarts behind its pod, which stays Ready
    engines[1].stop()
    engines[1] = Engine(port)
    assert engines[1].adapters() == {}
    wait_for(lambda: everywhere(engines, GOOD), 60, "the restarted engine to get its adapters back")

    kube.patch_spec("llm-lora", {"models": [{**kube.get("llm-lora")["spec"]["models"][0],
                                             "adapters": [{"name": "sql-writer",
                                                           "source": "pvc://models/adapters/sql-writer/v3"}]}]})
    wait_for(lambda: everywhere(engines, {"sql-writer"}), 60, "support-tone unloaded from both engines")
    wait_for(lambda: set(adapter_status(kube)) == {"sql-writer"}, 60, "status without support-tone")
    after = kube.apps.read_namespaced_deployment(deployment.metadata.name, namespace)
    assert after.metadata.generation == deployment.metadata.generation  # the pod template did not change
    assert {p.metadata.uid for p in kube.core.list_namespaced_pod(namespace).items} == pods  # nothing restarted


def test_an_adapter_the_engines_refuse_is_reported_and_the_others_serve(
        api, cluster, crds, namespace, wait_for, operator, model_storage, engines):
    kube = Cluster(api, namespace, wait_for)
    broken = {"name": "broken", "source": "pvc://models/adapters/invalid/v1"}  # enginesim refuses "invalid" paths
    apply_example(api, kube, engines, [broken])
    wait_for(lambda: everywhere(engines, GOOD), 60, "the good adapters on both engines")
    status = kube.wait_status("llm-lora", "concerning", timeout=60)
    assert "adapter broken of model llama" in status["errorMsg"] and "No adapter found" in status["errorMsg"]
    reported = adapter_status(kube)
    assert reported["broken"]["loadedReplicas"] == 0 and "No adapter found" in reported["broken"]["reason"]
    assert all(reported[name]["loadedReplicas"] == 2 for name in GOOD)

    kube.patch_spec("llm-lora", {"models": [{**kube.get("llm-lora")["spec"]["models"][0],
                                             "adapters": [a for a in kube.get("llm-lora")["spec"]["models"][0]
                                                          ["adapters"] if a["name"] != "broken"]}]})
    kube.wait_status("llm-lora", "running", timeout=60)
    assert everywhere(engines, GOOD)


def test_a_name_split_between_two_versions_goes_to_each_by_weight(
        api, cluster, crds, namespace, wait_for, operator, model_storage, engines):
    kube = Cluster(api, namespace, wait_for)
    versions = [{"name": "chat", "source": "pvc://models/adapters/chat/v1", "weight": 1},
                {"name": "chat", "source": "pvc://models/adapters/chat/v2", "weight": 3}]
    uid = apply_example(api, kube, engines, versions)["metadata"]["uid"]
    wait_for(lambda: len(adapter_status(kube)) == 4 and all(a["loadedReplicas"] == 2
                                                           for a in adapter_status(kube).values()),
             60, "both versions and the other adapters on both engines")
    v1, v2 = (name for name in adapter_status(kube) if name.startswith("chat@"))  # in spec order
    assert everywhere(engines, GOOD | {v1, v2})
    gateway = start_gateway(cluster, namespace, "lora-split", wait_for)
    try:
        listed = wait_for(lambda: (m := get_json(f"{gateway.url}/v1/infers/{uid}/v1/models"))["data"] and m, 30,
                          "the gateway's /v1/models")
        assert [(m["id"], m.get("parent")) for m in listed["data"]][-1] == ("chat", BASE)  # the name, once
        wait_for(lambda: chat(gateway.url, uid, "chat")[0] == 200, 30, "the gateway to route the split name")
        answered = [chat(gateway.url, uid, "chat")[1].get("model") for _ in range(60)]
    finally:
        gateway.proc.terminate()
        gateway.proc.wait(40)
    assert set(answered) == {v1, v2} and answered.count(v2) > answered.count(v1), answered


def llm(name: str, adapters: list[dict[str, str]], weight: int = 100, **fields: Any) -> dict[str, Any]:
    return {"name": name, "modelName": f"{name}-llm", "modelVersion": "1", "runtime": "vllm", "weight": weight,
            "adapters": adapters, **fields}


def pvc(name: str) -> dict[str, str]:
    return {"name": name, "source": f"pvc://models/adapters/{name}"}


@pytest.mark.parametrize(("models", "field", "words"), [
    ([llm("a", [pvc("sql")], runtime="tgi")], "spec.models[0].adapters", "only for runtime vllm"),
    ([llm("a", [pvc("sql"), {"name": "sql", "source": "pvc://models/other"}])], "spec.models[0].adapters",
     "needs a weight"),
    ([llm("a", [{**pvc("sql"), "weight": 1}, {**pvc("sql"), "weight": 2}])], "spec.models[0].adapters", "twice"),
    ([llm("a", [pvc("a-llm")])], "spec.models", "must not be a model's modelName or name"),
    ([llm("a", [pvc("sql")]), llm("b", [pvc("sql")], weight=0)], "spec.models", "served by one model only"),
    ([llm("a", [pvc(f"x{i}") for i in range(40)]), llm("b", [pvc(f"y{i}") for i in range(30)], weight=0)],
     "spec.models", "at most 64 adapters"),
    ([llm("a", [{"name": "sql", "source": "s3://bucket/sql"}])], "spec.models[0].adapters[0].source", ""),
    ([llm("a", [{"name": "sql", "source": "pvc://models/../etc"}])], "spec.models[0].adapters[0].source", ".."),
    ([llm("a", [], maxLoras=4, runtime="tgi")], "spec.models[0].maxLoras", "only for runtime vllm"),
], ids=["vllm-only", "split-needs-weights", "no-entry-twice",
                                        "not-a-model-name", "one-model", "count", "pvc-only", "no-dotdot", "maxloras"])
def test_bad_adapters_are_refused_by_the_api_server_naming_the_field(api, namespace, crds, models, field, words):
    body = {"apiVersion": "inference.io/v1alpha1", "kind": "InferenceService", "metadata": {"name": "bad"},
            "spec": {"models": models}}
    with pytest.raises(client.ApiException) as refused:
        client.CustomObjectsApi(api).create_namespaced_custom_object("inference.io", "v1alpha1", namespace,
                                                                     "inferenceservices", body)
    assert refused.value.status == 422
    assert field in refused.value.body and words in refused.value.body
