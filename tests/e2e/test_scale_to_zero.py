"""Scale to zero and back on the local cluster (issue 13, point 5), with traffic reaching a real model process.

The model's pods are kwok pods whose image says "hostlocal": kwok gives them this machine's address as pod
IP (hack/kwok-stages.yaml), so the Service's real EndpointSlice, written by the real EndpointSlice
controller from the real pods, points at the model process the test runs on this machine. Two gateway
processes watch the namespace; the operator reads both gateways' counts through an internal Service, as the
chart wires it, and no other operator runs meanwhile (`alone`: the session's, configured without the
gateways' counts, would see no evidence of idleness and wake the model). Nothing here sleeps to
synchronise: every step waits for what a user would see.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateways import DIRECT, CountsReads, call, counting_operator, host_ip, host_model_server, start_gateway
from kubernetes import client
from services import Cluster, manifest, model

from conftest import OperatorProcess, _localcluster, free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
IDLE_AFTER = "6s"


@pytest.fixture
def host_model() -> Iterator[int]:
    with host_model_server("sleepy") as port:
        yield port


def model_entry(kube: Cluster, name: str, model_name: str) -> dict[str, Any]:
    return next((m for m in kube.status(name).get("models") or [] if m.get("name") == model_name), {})


def internal_service(api: client.ApiClient, namespace: str, reads: list[CountsReads]) -> str:
    """The gateways' internal (headless) Service, one EndpointSlice per process (each its own metrics port,
    behind a pass-through that counts the operator's reads)."""
    address = host_ip()
    client.CoreV1Api(api).create_namespaced_service(namespace, {"metadata": {"name": "gw-internal"}, "spec": {
        "clusterIP": "None", "ports": [{"name": "metrics", "port": 9090}]}})
    for i, proxy in enumerate(reads):
        client.DiscoveryV1Api(api).create_namespaced_endpoint_slice(namespace, {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"gw-internal-{i}", "labels": {
                "kubernetes.io/service-name": "gw-internal", "endpointslice.kubernetes.io/managed-by": "e2e-test"}},
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": "metrics", "port": proxy.port, "protocol": "TCP"}]})
    return f"{namespace}/gw-internal"


def test_an_idle_model_sleeps_and_two_gateways_wake_it_once(api, cluster, crds, namespace, wait_for, host_model,
                                                         alone):
    kube = Cluster(api, namespace, wait_for)
    sleepy = model("m", image="example.invalid/hostlocal-model:1", port=host_model,
                   scaling={"minReplicas": 0, "scaleToZeroAfter": IDLE_AFTER})
    uid = kube.create(manifest("sleepy", sleepy))["metadata"]["uid"]
    gateways = [start_gateway(cluster, namespace, f"zero-{i}", wait_for) for i in range(2)]
    reads = [CountsReads(gateway.metrics_port) for gateway in gateways]
    operator = OperatorProcess(cluster, free_port(), namespace, ("--namespace", namespace),
                               log_name="operator-scale-to-zero-e2e.log",
                               env={"INFERENCE_OPERATOR_GATEWAY_COUNTS_SERVICE": internal_service(api, namespace,
                                                                                                  reads),
                                    "INFERENCE_OPERATOR_GATEWAY_COUNTS_PORT": "metrics",
                                    "INFERENCE_OPERATOR_COUNTS_INTERVAL_SECONDS": "1"})
    operator.start()
    try:
        kube.wait_status("sleepy", "running", timeout=90)
        wait_for(lambda: call(gateways[0].url, uid) == 200, 30, "the gateway to reach the model through its pods")

        # quiet for its window: scaled to zero, idle, the service still running and Ready
        wait_for(lambda: model_entry(kube, "sleepy", "m").get("status") == "idle", 60, "the model to go idle")
        status = kube.status("sleepy")
        assert status["status"] == "running" and status["progress"] == 100
        assert next(c for c in status["conditions"] if c["type"] == "Ready")["status"] == "True"
        assert model_entry(kube, "sleepy", "m")["idleSince"]
        wait_for(lambda: (kube.deployment("sleepy-m").status.replicas or 0) == 0, 60, "the model's pods to go")
        wait_for(lambda: not _endpoints(api, namespace), 60, "the model's endpoints to go")
        asleep = kube.deployment("sleepy-m")
        assert asleep.spec.replicas == 0
        generation = asleep.metadata.generation

        # an operator restart while it sleeps: it stays asleep, and nothing is written
        operator.restart()
        seen = reads[0].reads
        wait_for(lambda: reads[0].reads >= seen + 3, 30, "three rounds of counts read by the new operator")
        assert operator.writes() == 0
        assert model_entry(kube, "sleepy", "m")["status"] == "idle"
        assert kube.deployment("sleepy-m").metadata.generation == generation

        # one request through each gateway while it sleeps: both held, both answered by the model
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda gw: call(gw.url, uid), gateways))
        assert answers == [200, 200]
        waited = time.monotonic() - started

        awake = kube.deployment("sleepy-m")
        assert awake.spec.replicas == 1 and awake.metadata.generation == generation + 1, \
            "two gateways holding requests cause one scale-up"
        wait_for(lambda: model_entry(kube, "sleepy", "m").get("status") == "ready", 30, "the model to be ready")
        cold = model_entry(kube, "sleepy", "m")["coldStartSeconds"]
        assert 0 < cold <= waited + 2  # from the request that woke it to ready, in the status a user reads
        assert kube.status("sleepy")["status"] == "running"
        assert operator.metrics()["inference_operator_cold_start_seconds_count"] >= 1
    finally:
        operator.stop()
        for proxy in reads:
            proxy.close()
        for gateway in gateways:
            gateway.proc.terminate()
            gateway.proc.wait(40)


def _endpoints(api: client.ApiClient, namespace: str) -> list[str]:
    """Ready addresses of the model's Service, as the EndpointSlice controller writes them."""
    slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        namespace, label_selector="kubernetes.io/service-name=sleepy-m").items
    return [a for s in slices for e in s.endpoints or [] if (e.conditions and e.conditions.ready)
            for a in e.addresses]


def test_the_scale_to_zero_example_is_admitted_and_runs(api, namespace, wait_for, operator):
    kube = Cluster(api, namespace, wait_for)
    _localcluster().kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "scale-to-zero.yaml"))
    scaling = kube.get("chat-assistant")["spec"]["models"][0]["scaling"]
    assert (scaling["minReplicas"], scaling["scaleToZeroAfter"]) == (0, "10m")
    kube.wait_status("chat-assistant", "running", timeout=90)
    assert kube.hpa("chat-assistant-chat").spec.min_replicas == 1  # awake: an HPA cannot hold 0


def test_a_wake_that_cannot_finish_in_time_answers_the_timeout_error(api, cluster, crds, namespace, wait_for,
                                                                   alone):
    """A model whose image cannot be pulled: asleep after its window, a request wakes it, the wake cannot
    finish, the gateway answers the contract's timeout (504, ModelArts.4503) at the service's timeout, and the
    status says why the model does not come up."""
    kube = Cluster(api, namespace, wait_for)
    broken = model("m", image="example.invalid/unpullable:1", scaling={"minReplicas": 0, "scaleToZeroAfter": "2s"})
    body = manifest("stuck", broken)
    body["metadata"]["annotations"] = {"inference.io/gateway-timeout-seconds": "3"}
    uid = kube.create(body)["metadata"]["uid"]
    gateway = start_gateway(cluster, namespace, "zero-timeout", wait_for)
    operator = counting_operator(cluster, namespace, gateway.metrics_port, "operator-scale-to-zero-timeout-e2e.log")
    operator.start()
    try:
        wait_for(lambda: model_entry(kube, "stuck", "m").get("status") == "idle", 60, "the model to go idle")
        request = urllib.request.Request(f"{gateway.url}/v1/infers/{uid}/predict", data=b"{}", method="POST")
        started = time.monotonic()
        with pytest.raises(urllib.error.HTTPError) as answer:
            DIRECT.open(request, timeout=30)
        assert answer.value.code == 504 and json.loads(answer.value.read())["error_code"] == "ModelArts.4503"
        assert 2.5 <= time.monotonic() - started < 20
        wait_for(lambda: kube.status("stuck").get("status") == "failed", 60, "the failed wake in status")
        assert "example.invalid/unpullable:1" in kube.status("stuck")["errorMsg"]
    finally:
        operator.stop()
        gateway.proc.terminate()
        gateway.proc.wait(40)
