"""What the e2e tests do with the local cluster as a user would: InferenceService manifests, a kubectl-like
client in one namespace, and waits for the operator's passes read from its /metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes import client

GROUP, VERSION, PLURAL = "inference.io", "v1alpha1", "inferenceservices"
SERVICE = "inference.io/service"  # the label on every child of a service
OK = 'inference_operator_reconciles_total{result="ok"}'
INDEXED = "inference_operator_indexed_objects"
PENDING = "inference_operator_pending_reconciles"


def model(name: str, weight: int = 100, spec: str = "modelarts.vm.cpu.2u", **extra: Any) -> dict:
    return {"name": name, "modelName": f"{name}-model", "modelVersion": "1.0.0",
            "image": f"registry.example/{name}:1.0.0", "weight": weight, "specification": spec, **extra}


def manifest(name: str, *models: dict, **spec: Any) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService", "metadata": {"name": name},
            "spec": {"models": list(models), **spec}}


class Cluster:
    """What a user does with kubectl, in the test's namespace."""

    def __init__(self, api: client.ApiClient, ns: str, wait_for) -> None:
        self.api, self.ns, self.wait_for = api, ns, wait_for
        self.crd = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.hpas = client.AutoscalingV2Api(api)

    def create(self, body: dict) -> dict:
        return self.crd.create_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, body)

    def get(self, name: str) -> dict:
        return self.crd.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name)

    def patch_spec(self, name: str, spec: dict) -> None:
        self.crd.patch_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name, {"spec": spec})

    def replace_models(self, name: str, models: list[dict]) -> None:
        """A merge patch replaces the whole list, with no read-modify-write to race the operator's status
        writes (a replace of a body read earlier fails with 409 when its resourceVersion is stale)."""
        self.patch_spec(name, {"models": models})

    def touch(self, name: str, service: bool = True, deployments: bool = True) -> int:
        """Events the operator must handle without anything it owns changing: a label on the service, an
        annotation on each of its Deployments (metadata only, no generation bump; the Deployment controller
        answers it with a status update of its own). Returns their number."""
        stamp = str(time.monotonic_ns())
        if service:
            self.crd.patch_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name,
                                                    {"metadata": {"labels": {"e2e.test/touched": stamp}}})
        touched = self.apps.list_namespaced_deployment(self.ns, label_selector=f"{SERVICE}={name}").items \
            if deployments else []
        for d in touched:
            self.apps.patch_namespaced_deployment(d.metadata.name, self.ns,
                                                  {"metadata": {"annotations": {"e2e.test/touched": stamp}}})
        return int(service) + len(touched)

    def objects_of(self, name: str) -> int:
        """The service and the children of it the operator watches (each is one event when it lists)."""
        selector = f"{SERVICE}={name}"
        return 1 + sum(len(listed(self.ns, label_selector=selector).items) for listed in (
            self.apps.list_namespaced_deployment, self.core.list_namespaced_service, self.core.list_namespaced_pod,
            self.hpas.list_namespaced_horizontal_pod_autoscaler))

    def status(self, name: str) -> dict:
        return self.get(name).get("status") or {}

    def wait_status(self, name: str, state: str, timeout: float = 45) -> dict:
        def reached() -> dict | None:
            body = self.get(name)
            status = body.get("status") or {}
            current = status.get("observedGeneration") == body["metadata"]["generation"]
            return status if current and status.get("status") == state else None
        try:
            return self.wait_for(reached, timeout, f"{name} to be {state}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nstatus now: {self.status(name)}") from None

    def deployment(self, name: str) -> client.V1Deployment | None:
        try:
            return self.apps.read_namespaced_deployment(name, self.ns)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def hpa(self, name: str) -> Any:
        try:
            return self.hpas.read_namespaced_horizontal_pod_autoscaler(name, self.ns)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise


def settled_children(kube: Cluster) -> bool:
    """Every Deployment complete as `kubectl rollout status` judges it (and its controller done writing
    its status: Progressing says NewReplicaSetAvailable), every pod ready."""
    deployments = kube.apps.list_namespaced_deployment(kube.ns).items
    pods = kube.core.list_namespaced_pod(kube.ns).items

    def complete(d: client.V1Deployment) -> bool:
        s = d.status
        progressing = next((c for c in s.conditions or [] if c.type == "Progressing"), None)
        return (s.observed_generation == d.metadata.generation
                and (s.ready_replicas or 0) == (s.available_replicas or 0) == (s.updated_replicas or 0)
                == (s.replicas or 0) == d.spec.replicas
                and progressing is not None and progressing.reason == "NewReplicaSetAvailable")

    return bool(deployments) and all(complete(d) for d in deployments) and all(
        any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []) for p in pods)


def reconciled_after(kube: Cluster, operator, poke: Callable[[], int]) -> None:
    """Make `poke()` events, then wait until the operator has finished a pass for each of them (its counter
    of passes, read before the poke; a pass ends after its writes)."""
    start = operator.metrics().get(OK, 0)
    events = poke()
    kube.wait_for(lambda: (m := operator.metrics()).get(OK, 0) >= start + events and m.get(PENDING) == 0, 30,
                  f"{events} more reconcile passes")


def restarted_and_reconciled(kube: Cluster, operator, name: str, state: str) -> None:
    """The restarted process has listed the service and its children (its indices hold them all), finished
    its passes (events during a pass fold into one more: fewer passes than objects) and counts the service in
    `state`: it has read everything once (a new process counts from 0)."""
    objects = kube.objects_of(name)
    kube.wait_for(lambda: (m := operator.metrics()).get(INDEXED, 0) >= objects and m.get(OK, 0) >= 1
                  and m.get(PENDING) == 0 and m.get(f'inference_operator_services{{status="{state}"}}', 0) >= 1, 60,
                  f"the restarted operator to index {name}'s {objects} objects and finish its passes")


def route_of(api: client.ApiClient, namespace: str, name: str) -> dict | None:
    try:
        return client.CustomObjectsApi(api).get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", namespace, "httproutes", name)
    except client.ApiException:
        return None


def crd_gone(api: client.ApiClient, name: str) -> bool:
    try:
        client.ApiextensionsV1Api(api).read_custom_resource_definition(name)
    except client.ApiException as exc:
        return exc.status == 404
    return False
