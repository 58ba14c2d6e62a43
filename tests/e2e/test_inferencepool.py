"""InferencePool per service (issue 13, point 3) on the real CRDs: examples/inferencepool.yaml applied as
a user would, the pool and the HTTPRoute to it accepted by their schemas, the pool's parents'
conditions in the service's status, and the route back on the model Services while the pool CRD is
gone (followed live, no restart)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from services import Cluster, crd_gone, model, route_of

from conftest import _localcluster as localcluster

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inferencepool.yaml"
POOLS = ("inference.networking.k8s.io", "v1")
POOL_CRD = "inferencepools.inference.networking.k8s.io"
LIVE_SECONDS = 15


def pool_of(api: client.ApiClient, namespace: str, name: str) -> dict | None:
    try:
        return client.CustomObjectsApi(api).get_namespaced_custom_object(*POOLS, namespace, "inferencepools", name)
    except client.ApiException:
        return None


def backends(route: dict | None) -> list[dict[str, Any]]:
    return route["spec"]["rules"][0]["backendRefs"] if route else []


def conditions(kube: Cluster, name: str) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in kube.status(name).get("conditions") or []}


def test_example_gets_a_pool_and_a_route_to_it(cluster, crds, api, namespace, wait_for, operator, gateway_api):
    kube = Cluster(api, namespace, wait_for)
    body = yaml.safe_load(EXAMPLE.read_text())
    name = body["metadata"]["name"]
    kube.create(body)

    pool = wait_for(lambda: pool_of(api, namespace, name), 15, "the InferencePool")
    assert pool["spec"]["targetPorts"] == [{"number": 8000}]
    assert pool["spec"]["endpointPickerRef"] == {"name": "vllm-epp", "port": {"number": 9002},
                                                 "failureMode": "FailClose", "group": "", "kind": "Service"}
    selector = ",".join(f"{k}={v}" for k, v in pool["spec"]["selector"]["matchLabels"].items())
    wait_for(lambda: len(kube.core.list_namespaced_pod(namespace, label_selector=selector).items) == 2, 30,
             "the pool's selector to match the service's two model pods")
    wait_for(lambda: backends(route_of(api, namespace, name)) == [
        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": name, "weight": 1}], 15,
        "the HTTPRoute to the pool")
    wait_for(lambda: conditions(kube, name).get("InferencePoolAccepted") == ("Unknown", "NoParents"), 15,
             "the pool's (empty) parents in the service's conditions")

    # A Gateway implementation takes the pool up and says so in its status, as its controller would.
    now = "2026-12-01T00:00:00Z"
    parent = {"parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": namespace,
                            "name": "inference-gateway"},
              "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                              "lastTransitionTime": now, "observedGeneration": 1},
                             {"type": "ResolvedRefs", "status": "False", "reason": "InvalidExtensionRef",
                              "message": "Service vllm-epp not found", "lastTransitionTime": now,
                              "observedGeneration": 1}]}
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        *POOLS, namespace, "inferencepools", name, {"status": {"parents": [parent]}})
    wait_for(lambda: conditions(kube, name).get("InferencePoolResolvedRefs") == ("False", "InvalidExtensionRef"),
             15, "the pool's parent conditions in the service's status")
    assert conditions(kube, name)["InferencePoolAccepted"] == ("True", "Accepted")
    message = next(c["message"] for c in kube.status(name)["conditions"] if c["type"] == "InferencePoolResolvedRefs")
    assert "Service vllm-epp not found" in message and f"Gateway/{namespace}/inference-gateway" in message


def test_the_route_follows_the_pool_crd(cluster, crds, api, namespace, wait_for, operator, gateway_api):
    """The InferencePool CRD removed while the operator runs: the route goes back to the model Services
    by weight within seconds, nothing fails; installed again, the pool and the route to it come back."""
    kube = Cluster(api, namespace, wait_for)
    picker = {"enabled": True, "endpointPicker": {"name": "epp", "port": 9002}}
    kube.create({"apiVersion": "inference.io/v1alpha1", "kind": "InferenceService", "metadata": {"name": "pooled"},
                 "spec": {"inferencePool": picker, "models": [model("a", 100)]}})
    wait_for(lambda: backends(route_of(api, namespace, "pooled"))[:1] == [
        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "pooled", "weight": 1}], 15,
        "the route to the pool")
    errors = operator.metrics().get('inference_operator_reconciles_total{result="error"}', 0.0)

    client.ApiextensionsV1Api(api).delete_custom_resource_definition(POOL_CRD)
    wait_for(lambda: [(b.get("kind"), b["name"]) for b in backends(route_of(api, namespace, "pooled"))]
             == [("Service", "pooled-a")], LIVE_SECONDS, "the route back on the model's Service")
    wait_for(lambda: crd_gone(api, POOL_CRD), 60, "the InferencePool CRD to be deleted")
    kube.wait_status("pooled", "running")
    assert "InferencePoolAccepted" not in conditions(kube, "pooled")  # no pool, nothing said about one

    localcluster().install_gateway_crds()
    wait_for(lambda: pool_of(api, namespace, "pooled") is not None, LIVE_SECONDS, "the pool written again")
    wait_for(lambda: backends(route_of(api, namespace, "pooled"))[:1] == [
        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "pooled", "weight": 1}],
        LIVE_SECONDS, "the route to the pool again")
    assert operator.metrics().get('inference_operator_reconciles_total{result="error"}', 0.0) == errors


def test_admission_refuses_a_pool_over_models_on_different_ports(cluster, crds, api, namespace, wait_for):
    kube = Cluster(api, namespace, wait_for)
    body = {"apiVersion": "inference.io/v1alpha1", "kind": "InferenceService", "metadata": {"name": "ports"},
            "spec": {"inferencePool": {"enabled": True, "endpointPicker": {"name": "epp", "port": 9002}},
                     "models": [model("a", 50, port=8000), model("b", 50, port=9000)]}}
    with pytest.raises(client.ApiException) as refused:
        kube.create(body)
    assert refused.value.status == 422 and "share one port" in refused.value.body
