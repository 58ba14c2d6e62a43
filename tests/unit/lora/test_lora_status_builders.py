"""Adapters in the pod template (only the claims, never the list), in status (per adapter, concerning when one
serves nowhere), and at the gateway (/v1/models with parent, a name routed to its model; adapter affinity and
loads: test_lora_gateway.py)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.builders.children import build_children
from inference_operator.catalog.flavors import load_catalog
from inference_operator.config import OperatorConfig
from inference_operator.gateway import openai
from inference_operator.gateway.adapters import LoraInfo, lora_info
from inference_operator.gateway.entries import service_route
from inference_operator.status.adapters import NOT_REACHED, ModelAdapters, adapter_entries, adapters_nowhere
from inference_operator.status.summary import ParentMeta, summarize
from inference_operator.status.views import Observed


def body(adapters: list[dict[str, Any]] | None, **fields: Any) -> dict[str, Any]:
    model = {"name": "llama", "modelName": "llama-8b", "modelVersion": "1", "runtime": "vllm", **fields}
    if adapters is not None:
        model["adapters"] = adapters
    return {"metadata": {"name": "s", "namespace": "n", "uid": "u", "generation": 1,
                         "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"models": [model]}}


def svc(adapters: list[dict[str, Any]] | None, **fields: Any) -> InferenceService:
    return InferenceService.from_body(body(adapters, **fields))


SQL = {"name": "sql", "source": "pvc://adapters/sql/v1"}
CHAT = {"name": "chat", "source": "pvc://adapters/chat/v1"}


def template(service: InferenceService) -> dict[str, Any]:
    deployment = build_children(service, OperatorConfig(), load_catalog(), gateway_api=False)[0]
    return dict(deployment["spec"]["template"])


def test_lora_on_gives_the_runtime_switch_and_slots_and_mounts_the_claims():
    spec = template(svc([SQL]))["spec"]
    container = spec["containers"][0]
    assert container["args"][-3:] == ["--enable-lora", "--max-loras", "4"]
    assert {"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"} in container["env"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/mnt/adapters/adapters")
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert volume["persistentVolumeClaim"] == {"claimName": "adapters", "readOnly": True} and mount["readOnly"]
    assert "--max-loras" in template(svc(None, maxLoras=8))["spec"]["containers"][0]["args"]
    assert "--enable-lora" not in template(svc(None))["spec"]["containers"][0]["args"]


def test_adding_or_removing_an_adapter_on_a_mounted_claim_leaves_the_template_as_it_is():
    assert template(svc([SQL])) == template(svc([SQL, CHAT])) == template(svc([CHAT]))


def test_status_says_where_each_adapter_is_and_why_not():
    model = svc([SQL, CHAT]).spec.models[0]
    seen = ModelAdapters(2, {"sql": 2, "chat": 1}, {"chat": "the engine refused to load it (400): no files"})
    assert adapter_entries(model, seen) == [
        {"name": "sql", "loadedReplicas": 2, "replicas": 2},
        {"name": "chat", "loadedReplicas": 1, "replicas": 2, "reason": "the engine refused to load it (400): no files"}]
    assert adapter_entries(model, None)[0]["reason"] == NOT_REACHED


def test_an_adapter_that_failed_everywhere_is_a_cause_one_not_tried_yet_is_not():
    service = svc([SQL, CHAT])
    assert adapters_nowhere(service, {"llama": ModelAdapters(2, {"sql": 2, "chat": 0}, {})}) == []
    causes = adapters_nowhere(service, {"llama": ModelAdapters(2, {"sql": 2, "chat": 0}, {"chat": "refused"})})
    assert [c.message for c in causes] == ["adapter chat of model llama is loaded on none of its 2 ready replicas: "
                                           "refused"]


def test_a_running_service_with_an_adapter_nowhere_is_concerning_naming_it():
    service = svc([SQL])
    ready = {"metadata": {"name": "s-llama", "generation": 1, "labels": {"inference.io/model": "llama"}},
             "spec": {"replicas": 1}, "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1,
                                                 "updatedReplicas": 1, "availableReplicas": 1}}
    now = datetime(2026, 1, 1, tzinfo=UTC)
    meta = ParentMeta("u", 1)
    base = Observed(deployments={"llama": ready})
    assert summarize(meta, service, base, {}, now, "http://gw")["status"] == "running"
    failing = Observed(deployments={"llama": ready},
                       adapters={"llama": ModelAdapters(1, {"sql": 0}, {"sql": "refused"})})
    status = summarize(meta, service, failing, {}, now, "http://gw")
    assert status["status"] == "concerning" and "adapter sql of model llama" in status["errorMsg"]
    assert status["models"][0]["adapters"] == [{"name": "sql", "loadedReplicas": 0, "replicas": 1, "reason": "refused"}]


def test_the_gateway_lists_adapters_with_their_parent_and_routes_them_to_their_model():
    route = service_route(body([SQL, CHAT]))
    assert route is not None
    listed = openai.list_models(route)["data"]
    assert [(m["id"], m.get("parent")) for m in listed] == [("llama-8b", None), ("sql", "llama-8b"),
                                                             ("chat", "llama-8b")]
    assert openai.retrieve_model(route, "chat")["parent"] == "llama-8b"
    assert [m.name for m in openai.matching(route, "sql")] == ["llama"]


METRICS = ('# TYPE vllm:lora_requests_info gauge\n'
           'vllm:lora_requests_info{max_lora="2",running_lora_adapters="sql,chat",waiting_lora_adapters=""} 20.0\n'
           'vllm:lora_requests_info{max_lora="2",running_lora_adapters="",waiting_lora_adapters=""} 10.0\n'
           'vllm:num_requests_running 3\n')


def test_the_newest_lora_sample_is_read():
    assert lora_info(METRICS) == LoraInfo(frozenset({"sql", "chat"}), frozenset(), 2)
    assert lora_info('vllm:lora_requests_info{max_lora="0",running_lora_adapters=""} 1.0') is None
    assert lora_info("vllm:lora_requests_info{garbage") is None


def test_a_split_name_draws_a_version_by_weight_and_the_body_names_it():
    v1 = {"name": "chat", "source": "pvc://adapters/chat/v1", "weight": 1}
    v2 = {"name": "chat", "source": "pvc://adapters/chat/v2", "weight": 3}
    route = service_route(body([SQL, v1, v2]))
    assert route is not None
    among = openai.matching(route, "chat")
    versions = dict(route.models[0].versions)["chat"]
    rng = random.Random(3)
    drawn = [openai.adapter_version(among, "chat", rng) for _ in range(400)]
    assert set(drawn) == {v for v, _ in versions} and 250 < drawn.count(versions[1][0]) < 350
    assert openai.adapter_version(among, "sql", rng) is None
    assert route.models[0].loads_adapter(versions[0][0]) and route.models[0].loads_adapter("sql")
    assert [m["id"] for m in openai.list_models(route)["data"]] == ["llama-8b", "sql", "chat"]
    assert openai.with_model({"model": "chat", "messages": [{"content": "héllo"}]}, "chat@1") == \
        '{"model":"chat@1","messages":[{"content":"héllo"}]}'.encode()
