"""LoRA adapters end to end (docs/lora.md): examples/lora.yaml on the local cluster, its replicas simulated engines
(tests/enginesim, with LoRA slots) behind kwok "hostlocal" pods, so the operator's adapters loop reaches them at
their pods' addresses and the gateway through the real EndpointSlices. The operator loads every adapter on every
ready replica, again after an engine restarts, unloads a removed one without touching the pods, and reports an
adapter whose files the engine refuses without disturbing the others. Every step waits for what the engines or
the status report."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import yaml
from gateways import DIRECT, GatewayProcess, free_port, start_gateway
from kubernetes import client
from lora_setup import BASE, EXAMPLES, GOOD, Engine, adapter_status, apply_example, chat, everywhere, get_json
from services import Cluster

from conftest import OperatorProcess, _localcluster
from inference_operator.gateway.limits import TIMEOUT_ANNOTATION


@pytest.fixture
def engines(request) -> Iterator[list[Engine]]:
    """Two simulated engines; parametrized indirectly with Engine's keyword arguments."""
    options = getattr(request, "param", {})
    found = [Engine(**options), Engine(**options)]
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


@pytest.fixture
def quiet_operator(cluster, crds, namespace, alone) -> Iterator[OperatorProcess]:
    """An operator of the test's namespace whose adapters loop makes one round at its start (before the service
    exists) and then sleeps for an hour: the engines hold only what the gateway, or the test, loads."""
    proc = OperatorProcess(cluster, free_port(), namespace, ("--namespace", namespace), log_name="operator-lora.log",
                           env={"INFERENCE_OPERATOR_ADAPTERS_INTERVAL_SECONDS": "3600"})
    proc.start()
    yield proc
    proc.stop()


def gateway_samples(gateway: GatewayProcess) -> dict[str, float]:
    with DIRECT.open(f"http://127.0.0.1:{gateway.metrics_port}/metrics", timeout=5) as resp:
        lines = resp.read().decode().splitlines()
    return {key: float(value) for key, _, value in (line.rpartition(" ") for line in lines if line[:1] != "#")}


def sample(gateway: GatewayProcess, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(v for k, v in gateway_samples(gateway).items()
               if k.split("{", 1)[0] == name and all(w in k for w in wanted))


def read_by_gateway(engines: list[Engine], wait_for) -> None:
    """Wait until the gateway has read every engine's metrics twice since now: it knows what each holds and runs
    (a round reads every engine, and the next one starts after the last has been recorded)."""
    marks = [e.sim()["metrics_reads"] for e in engines]
    wait_for(lambda: all(e.sim()["metrics_reads"] >= m + 2 for e, m in zip(engines, marks, strict=True)), 30,
             "two readings of every engine by the gateway")


@pytest.mark.parametrize("engines", [{"register_seconds": 1.0}], indirect=True)
def test_the_gateway_loads_an_adapter_no_replica_holds_once_for_concurrent_requests_and_refuses_a_bad_one_clearly(
        api, cluster, crds, namespace, wait_for, quiet_operator, model_storage, engines):
    kube = Cluster(api, namespace, wait_for)
    broken = {"name": "broken", "source": "pvc://models/adapters/invalid/v1"}  # enginesim refuses "invalid" paths
    uid = apply_example(api, kube, engines, [broken])["metadata"]["uid"]
    assert all(e.adapters() == {} for e in engines), "the operator's loop loaded adapters: nothing left to test"
    gateway = start_gateway(cluster, namespace, "lora-loads", wait_for)
    try:
        read_by_gateway(engines, wait_for)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: chat(gateway.url, uid, "sql-writer"), range(8)))
        assert [status for status, _ in answers] == [200] * 8, answers
        assert {answer["model"] for _, answer in answers} == {"sql-writer"}
        assert sum(e.sim()["load_calls"] for e in engines) == 1  # one load, made by the gateway, for all eight
        assert sample(gateway, "inference_gateway_adapter_loads_total", adapter="sql-writer", result="loaded") == 1
        assert sample(gateway, "inference_gateway_adapter_wait_seconds_count", reason="load") == 8
        assert chat(gateway.url, uid, "sql-writer")[0] == 200 and sum(e.sim()["load_calls"] for e in engines) == 1

        refused = [chat(gateway.url, uid, "broken") for _ in range(5)]
        for status, answer in refused:
            assert status == 503, refused
            assert answer["error"]["code"] == "adapter_load_failed" and "`broken`" in answer["error"]["message"]
        assert "No adapter found" in refused[0][1]["error"]["message"]
        assert sum(e.sim()["load_calls"] for e in engines) <= 3  # one try per engine, then the backoff
        status, answer = chat(gateway.url, uid, "support-tone")
        assert status == 200 and answer["model"] == "support-tone"  # the others unaffected
    finally:
        gateway.proc.terminate()
        gateway.proc.wait(40)


def stream_direct(engine: Engine, adapter: str) -> http.client.HTTPConnection:
    """A long streamed request for `adapter` straight to the engine (another gateway's, say), its first token
    read: it holds one of the engine's slots until the connection is closed."""
    conn = http.client.HTTPConnection("127.0.0.1", engine.port, timeout=30)
    conn.request("POST", "/v1/chat/completions", json.dumps({
        "model": adapter, "stream": True, "max_tokens": 100000, "messages": [{"role": "user", "content": "hi"}]}),
        {"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200 and response.readline().startswith(b"data: ")
    return conn


@pytest.mark.parametrize("engines", [{"max_loras": 1}], indirect=True)
def test_a_request_for_an_adapter_waits_in_the_gateway_while_every_slot_runs_another(
        api, cluster, crds, namespace, wait_for, quiet_operator, model_storage, engines):
    kube = Cluster(api, namespace, wait_for)
    third = {"name": "third", "source": "pvc://models/adapters/third/v1"}
    uid = apply_example(api, kube, engines, [third], {TIMEOUT_ANNOTATION: "4"})["metadata"]["uid"]
    engines[0].load("sql-writer")
    engines[1].load("support-tone")
    busy = [stream_direct(engines[0], "sql-writer"), stream_direct(engines[1], "support-tone")]
    gateway = start_gateway(cluster, namespace, "lora-room", wait_for)
    try:
        assert [e.sim()["running"] for e in engines] == [["sql-writer"], ["support-tone"]]
        read_by_gateway(engines, wait_for)
        status, answer = chat(gateway.url, uid, "third")
        assert status == 503 and answer["error"]["code"] == "adapter_no_room", answer
        assert "`third`" in answer["error"]["message"] and "within 4 s" in answer["error"]["message"]
        assert sum(e.sim()["load_calls"] for e in engines) == 2  # the test's: the engines never saw the request

        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(chat, gateway.url, uid, "third")
            wait_for(lambda: sample(gateway, "inference_gateway_adapter_waiting_requests", reason="room") == 1, 3,
                     "the request held in the gateway")
            busy.pop(0).close()  # engine 0's slot frees
            status, answer = waiting.result(10)
        assert status == 200 and answer["model"] == "third"
        assert "third" in engines[0].adapters() and "third" not in engines[1].adapters()
    finally:
        for conn in busy:
            conn.close()
        gateway.proc.terminate()
        gateway.proc.wait(40)
