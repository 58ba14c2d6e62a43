"""Headless model Services (`INFERENCE_OPERATOR_HEADLESS_MODEL_SERVICES`): no cluster IP to allocate, the same
EndpointSlices for the gateway. A Service made before the setting was switched keeps its cluster IP (the API
server refuses to change spec.clusterIP): the switched operator neither fails on it nor writes it."""

from __future__ import annotations

import uuid

from gateways import free_port
from kubernetes import client
from services import Cluster, manifest, model, restarted_and_reconciled

from conftest import OperatorProcess, _has_default_sa

ERRORS = 'inference_operator_reconciles_total{result="error"}'


def ready_addresses(discovery: client.DiscoveryV1Api, namespace: str, service: str) -> list[str]:
    """The ready addresses of a Service's EndpointSlices on its port named http: what the gateway routes to."""
    slices = discovery.list_namespaced_endpoint_slice(namespace, label_selector=f"kubernetes.io/service-name={service}")
    return [address for s in slices.items if any(p.name == "http" for p in s.ports or [])
            for e in s.endpoints or [] if e.conditions and e.conditions.ready for address in e.addresses]


def test_headless_services_and_one_made_before_keeps_its_cluster_ip(api, cluster, crds, wait_for, alone):
    core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    namespace = f"t-headless-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    wait_for(lambda: _has_default_sa(core, namespace), 30, f"default service account in {namespace}")
    kube = Cluster(api, namespace, wait_for)
    operator = OperatorProcess(cluster, free_port(), namespace, ("--namespace", namespace),
                               log_name="operator-headless-e2e.log")
    try:
        operator.start()
        kube.create(manifest("before", model("m")))
        kube.wait_status("before", "running")
        address = core.read_namespaced_service("before-m", namespace).spec.cluster_ip
        assert address and address != "None", "by default a model's Service has a cluster IP"

        operator.stop()
        operator = OperatorProcess(cluster, free_port(), namespace, ("--namespace", namespace),
                                   log_name="operator-headless-e2e.log",
                                   env={"INFERENCE_OPERATOR_HEADLESS_MODEL_SERVICES": "true"})
        operator.start()
        restarted_and_reconciled(kube, operator, "before", "running")
        assert operator.metrics().get(ERRORS, 0) == 0, "a pass failed over the Service made before"
        assert operator.writes() == 0, "the switched operator rewrote a child made before"
        assert core.read_namespaced_service("before-m", namespace).spec.cluster_ip == address

        kube.create(manifest("after", model("m")))
        kube.wait_status("after", "running")
        assert core.read_namespaced_service("after-m", namespace).spec.cluster_ip == "None"
        pods = {p.status.pod_ip
                for p in core.list_namespaced_pod(namespace, label_selector="inference.io/service=after").items}
        wait_for(lambda: set(ready_addresses(discovery, namespace, "after-m")) == pods - {None} != set(), 30,
                 "the headless Service's EndpointSlice with every pod ready on port http")
        assert kube.status("after").get("errorMsg") in (None, "")
        assert operator.metrics().get(ERRORS, 0) == 0
    finally:
        operator.stop()
        core.delete_namespace(namespace)
