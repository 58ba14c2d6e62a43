"""Pods, Deployments and services as the API returns them, for the status tests.

Plain functions (not fixtures) so a test reads like the `kubectl get -o yaml` it stands for.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.status import Observed

UID = "7f3c1b2e-0d4a-4c55-9e61-2b8a9f0c1d23"
GATEWAY = "http://inference-gateway.inference-system.svc"
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
STAMP = "2024-05-01T12:00:00Z"
LATER = NOW + timedelta(minutes=5)
LATER_STAMP = "2024-05-01T12:05:00Z"
CREATED = "2024-05-01T11:59:00Z"
GPU_MESSAGE = "0/8 nodes are available: 8 Insufficient nvidia.com/gpu."
IMAGE = "registry.example/jar-model:1.0.1"


def model(name: str = "v1", weight: int = 100, **fields: Any) -> dict[str, Any]:
    """One spec.models[] entry in the API's camelCase."""
    return {"name": name, "modelName": "jar-model", "modelVersion": "1.0.1", "image": IMAGE,
            "weight": weight, "specification": "gpu.t4", **fields}


def service(*models: dict[str, Any], generation: int = 1, **spec: Any) -> InferenceService:
    """A validated service; one weight-100 model "v1" unless models are given."""
    return InferenceService.from_body({
        "apiVersion": "inference.io/v1alpha1", "kind": "InferenceService",
        "metadata": {"name": "service-demo", "namespace": "team-a", "uid": UID, "generation": generation},
        "spec": {"models": list(models) or [model()], **spec},
    })


def batch_service(**fields: Any) -> InferenceService:
    return service(model(**fields), inferType="batch",
                   batch={"srcPath": "pvc://data/in/", "destPath": "pvc://data/out/", "reqUri": "/predict",
                          "mappingType": "file"})


def _labels(model_name: str) -> dict[str, str]:
    return {"inference.io/service": "service-demo", "inference.io/model": model_name}


def deployment(model_name: str = "v1", replicas: int = 1, ready: int = 0, *, updated: int | None = None,
               generation: int = 1, observed_generation: int | None = None,
               conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An apps/v1 Deployment whose controller has (by default) caught up with its generation; every
    pod runs the current template unless `updated` says fewer do."""
    status: dict[str, Any] = {
        "observedGeneration": generation if observed_generation is None else observed_generation,
        "replicas": replicas, "updatedReplicas": replicas if updated is None else updated,
    }
    if ready:
        status.update(readyReplicas=ready, availableReplicas=ready)
    if conditions is not None:
        status["conditions"] = conditions
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"service-demo-{model_name}", "namespace": "team-a",
                         "generation": generation, "labels": _labels(model_name)},
            "spec": {"replicas": replicas}, "status": status}


def pod(model_name: str = "v1", name: str = "a", *, phase: str = "Pending",
        conditions: list[dict[str, Any]] | None = None, container_statuses: list[dict[str, Any]] | None = None,
        init_container_statuses: list[dict[str, Any]] | None = None, **metadata: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if container_statuses is not None:
        status["containerStatuses"] = container_statuses
    if init_container_statuses is not None:
        status["initContainerStatuses"] = init_container_statuses
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"service-demo-{model_name}-7d9f8c6b5-{name}", "namespace": "team-a",
                         "labels": _labels(model_name), **metadata},
            "status": status}


def _condition(ctype: str, status: str, **fields: str) -> dict[str, Any]:
    return {"type": ctype, "status": status, "lastProbeTime": None,
            "lastTransitionTime": "2024-05-01T11:59:30Z", **fields}


def _container(state: dict[str, Any], name: str = "model", image: str = IMAGE, ready: bool = False,
               restarts: int = 0, last_state: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "image": image, "imageID": "", "ready": ready, "restartCount": restarts,
            "started": False, "state": state, "lastState": last_state or {}}


def ready_pod(model_name: str = "v1", name: str = "a") -> dict[str, Any]:
    return pod(model_name, name, phase="Running",
               conditions=[_condition("PodScheduled", "True"), _condition("Initialized", "True"),
                           _condition("ContainersReady", "True"), _condition("Ready", "True")],
               container_statuses=[_container({"running": {"startedAt": "2024-05-01T11:59:40Z"}}, ready=True)])


def starting_pod(model_name: str = "v1", name: str = "a") -> dict[str, Any]:
    """Scheduled, image being pulled: nothing permanent, waiting helps."""
    return pod(model_name, name, conditions=[_condition("PodScheduled", "True"),
                                             _condition("Ready", "False", reason="ContainersNotReady")],
               container_statuses=[_container({"waiting": {"reason": "ContainerCreating"}})])


def unschedulable_pod(model_name: str = "v1", name: str = "a", message: str = GPU_MESSAGE) -> dict[str, Any]:
    return pod(model_name, name, conditions=[
        _condition("PodScheduled", "False", reason="Unschedulable", message=message)])


def image_pull_pod(model_name: str = "v1", name: str = "a", image: str = "x",
                   reason: str = "ImagePullBackOff", **metadata: Any) -> dict[str, Any]:
    waiting = {"reason": reason, "message": f'Back-off pulling image "{image}"'}
    return pod(model_name, name, conditions=[_condition("PodScheduled", "True"),
                                             _condition("Ready", "False", reason="ContainersNotReady")],
               container_statuses=[_container({"waiting": waiting}, image=image)], **metadata)


def crashloop_pod(model_name: str = "v1", name: str = "a", exit_code: int = 1, reason: str = "Error",
                  container: str = "model", init: bool = False) -> dict[str, Any]:
    status = _container(
        {"waiting": {"reason": "CrashLoopBackOff",
                     "message": f"back-off 5m0s restarting failed container={container}"}},
        name=container, restarts=6,
        last_state={"terminated": {"exitCode": exit_code, "reason": reason,
                                   "startedAt": "2024-05-01T11:59:50Z", "finishedAt": "2024-05-01T11:59:55Z"}})
    conditions = [_condition("PodScheduled", "True"), _condition("Ready", "False", reason="ContainersNotReady")]
    if init:
        return pod(model_name, phase="Pending", conditions=conditions, init_container_statuses=[status],
                   container_statuses=[_container({"waiting": {"reason": "PodInitializing"}})], name=name)
    return pod(model_name, name, phase="Running", conditions=conditions, container_statuses=[status])


def observed(*objects: dict[str, Any]) -> Observed:
    """Deployments and pods keyed by their model label, as reconcile.observe groups them."""
    deployments = {o["metadata"]["labels"]["inference.io/model"]: o for o in objects if o["kind"] == "Deployment"}
    pods: dict[str, list[dict[str, Any]]] = {}
    for o in objects:
        if o["kind"] == "Pod":
            pods.setdefault(o["metadata"]["labels"]["inference.io/model"], []).append(o)
    return Observed(deployments=deployments, pods=pods)


NEW_HASH, OLD_HASH = "7d9f8c6b5", "5c4b3a291"


def of_template(pod_body: dict[str, Any], template_hash: str) -> dict[str, Any]:
    """The pod as its ReplicaSet created it: labelled with the template's hash."""
    pod_body["metadata"]["labels"] = {**pod_body["metadata"]["labels"], "pod-template-hash": template_hash}
    return pod_body


def progressing(model_name: str = "v1", template_hash: str = NEW_HASH,
                message: str = 'ReplicaSet "{rs}" is progressing.', reason: str = "ReplicaSetUpdated",
                status: str = "True") -> list[dict[str, Any]]:
    """A Deployment's conditions naming its new ReplicaSet, as the Deployment controller writes them."""
    rs = f"service-demo-{model_name}-{template_hash}"
    return [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": status, "reason": reason, "message": message.format(rs=rs)}]


def rolling_deployment(model_name: str = "v1", desired: int = 2, *, total: int, updated: int, ready: int,
                       available: int | None = None, generation: int = 2,
                       conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A Deployment in the middle of replacing its template: `total` pods of every template exist."""
    body = deployment(model_name, desired, ready, updated=updated, generation=generation,
                      conditions=progressing(model_name) if conditions is None else conditions)
    body["status"].update(replicas=total, availableReplicas=ready if available is None else available)
    return body
