"""A deleted namespace leaves nothing in the operator. Watched by a pattern (`--namespace 'team-*'`), a namespace's
watches are stopped by kopf once the namespace is deleted, often before its objects' DELETED events arrived: its
services stayed counted in `inference_operator_services` (a dashboard showing services that no longer exist) and
their records and indexed children stayed in memory (issue 14: after a bench's deleted namespaces, 31 MB of a
traced heap, 50 MB of RSS)."""

from __future__ import annotations

import uuid

from gateways import free_port
from kubernetes import client
from services import INDEXED, Cluster, manifest, model

from conftest import OperatorProcess, _has_default_sa

SERVICES = "inference_operator_services{"


def counted(operator: OperatorProcess) -> tuple[float, float]:
    """(services the operator counts, objects it holds in its indices)."""
    samples = operator.metrics()
    return sum(v for k, v in samples.items() if k.startswith(SERVICES)), samples.get(INDEXED, 0.0)


def test_a_deleted_namespace_leaves_nothing_in_the_operator(api, cluster, crds, wait_for, alone):
    core = client.CoreV1Api(api)
    namespace = f"t-gone-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    wait_for(lambda: _has_default_sa(core, namespace), 30, f"default service account in {namespace}")
    operator = OperatorProcess(cluster, free_port(), namespace, ("--namespace", f"{namespace}*"),
                               log_name="operator-namespace-gone-e2e.log")
    operator.start()
    try:
        kube = Cluster(api, namespace, wait_for)
        for name in ("first", "second"):
            kube.create(manifest(name, model("m")))
        for name in ("first", "second"):
            kube.wait_status(name, "running")
        services, indexed = wait_for(lambda: (c := counted(operator))[0] == 2 and c, 30, "two services counted")
        assert indexed >= 2 + 2 * 3, "each service with its Deployment, Service and pod indexed"

        core.delete_namespace(namespace, propagation_policy="Background")
        wait_for(lambda: namespace not in {n.metadata.name for n in core.list_namespace().items}, 180,
                 f"namespace {namespace} deleted")
        try:
            wait_for(lambda: counted(operator) == (0, 0), 30, "no service counted and nothing indexed")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: (services, indexed objects) = {counted(operator)}") from None
    finally:
        operator.stop()
        try:
            core.delete_namespace(namespace)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
