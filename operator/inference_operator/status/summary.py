"""Observed children in, InferenceService status out (API.md, "Precise rules").

Pure: the clock, the previous status and the gateway base URL are parameters. The result is the
status subresource as the API stores it (camelCase keys), so the caller can compare and write it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from inference_operator.api.v1alpha1 import InferenceService, infer_path
from inference_operator.status.batch import batch_outcome
from inference_operator.status.causes import Cause, model_cause
from inference_operator.status.conditions import ready_conditions


@dataclass(frozen=True)
class ParentMeta:
    """What status needs from the parent object even when its spec cannot be parsed."""

    uid: str
    generation: int
    created: str | None = None


@dataclass(frozen=True)
class Observed:
    """A service's children as the watch caches show them, keyed by model name."""

    deployments: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    pods: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    job: Mapping[str, Any] | None = None  # the batch Job of the current spec, if any
    runner_pods: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class ModelView:
    name: str
    weight: int
    desired: int
    ready: int
    cause: Cause | None

    @property
    def state(self) -> str:
        if self.desired > 0 and self.ready >= self.desired:
            return "ready"
        return "concerning" if self.ready > 0 else "notReady"


def view_models(svc: InferenceService, observed: Observed) -> list[ModelView]:
    """Desired = the Deployment's replicas (the HPA's choice when scaling); ready = its ready pods
    of the current template. Before the Deployment is seen, desired is what the spec asks for."""
    views = []
    for model in svc.spec.models:
        deployment = observed.deployments.get(model.name)
        if svc.spec.stopped:
            desired = 0
        elif deployment is None:
            desired = model.instance_count
        else:
            desired = deployment.get("spec", {}).get("replicas", 1)
        ready = _current_ready(deployment) if deployment else 0
        cause = model_cause(model.name, deployment, observed.pods.get(model.name, ()))
        views.append(ModelView(model.name, model.weight, desired, ready, cause))
    return views


def _current_ready(deployment: Mapping[str, Any]) -> int:
    """Ready instances of the template the Deployment now wants; counts from an older
    generation of the Deployment are not trusted until its controller has caught up."""
    status = deployment.get("status", {})
    if status.get("observedGeneration", 0) < deployment.get("metadata", {}).get("generation", 0):
        return 0
    return min(status.get("readyReplicas", 0), status.get("updatedReplicas", 0))


def _weighted(svc: InferenceService, views: list[ModelView]) -> list[ModelView]:
    if svc.spec.infer_type == "batch":
        return views
    return [v for v in views if v.weight > 0]


def service_state(svc: InferenceService, views: list[ModelView],
                  previous: Mapping[str, Any], generation: int) -> tuple[str, list[Cause]]:
    """The service status and the causes behind it, in the order API.md fixes."""
    if svc.spec.stopped:
        return "stopped", []
    weighted = _weighted(svc, views)
    failing = [v.cause for v in weighted if v.cause and v.ready == 0]
    if failing:
        return "failed", failing
    if all(v.ready >= v.desired for v in weighted):
        return "running", []
    troubled = [v.cause for v in weighted if v.cause]
    was_running = previous.get("status") in ("running", "concerning") \
        and previous.get("observedGeneration") == generation
    if troubled or was_running:
        return "concerning", troubled
    return "deploying", []


def progress(state: str, weighted: list[ModelView]) -> int:
    if state in ("running", "finished"):
        return 100
    if state == "stopped":
        return 0
    desired = sum(v.desired for v in weighted)
    if desired == 0:
        return 0
    return min(100, (100 * sum(min(v.ready, v.desired) for v in weighted)) // desired)


def summarize(meta: ParentMeta, svc: InferenceService | None, observed: Observed,
              previous: Mapping[str, Any], now: datetime, gateway_base_url: str,
              spec_error: Cause | None = None) -> dict[str, Any]:
    """The whole status for one pass. `spec_error` (invalid spec, unknown flavor) means failed."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    status: dict[str, Any] = {
        "serviceId": meta.uid,
        "invocationTimes": previous.get("invocationTimes", 0),
        "failedTimes": previous.get("failedTimes", 0),
        "publishAt": previous.get("publishAt") or meta.created or stamp,
    }
    if svc is None or spec_error is not None:
        state, causes, models = "failed", [spec_error] if spec_error else [], []
        weighted: list[ModelView] = []
    else:
        views = view_models(svc, observed)
        weighted = _weighted(svc, views)
        state, causes = service_state(svc, views, previous, meta.generation)
        if svc.spec.infer_type == "batch" and state != "stopped":
            outcome, cause = batch_outcome(observed.job, observed.runner_pods)
            if outcome is not None:
                state, causes = outcome, [cause] if cause else []
        models = [{"name": v.name, "status": "notReady" if svc.spec.stopped else v.state,
                   "replicas": v.desired, "readyReplicas": v.ready, "weight": v.weight} for v in views]
        if svc.spec.infer_type == "real-time":
            status["accessAddress"] = gateway_base_url.rstrip("/") + infer_path(meta.uid)
    status.update(status=state, progress=progress(state, weighted), models=models)
    if causes:
        status["errorMsg"] = "; ".join(c.message for c in causes)
    new_generation = previous.get("observedGeneration") != meta.generation
    status["updateTime"] = stamp if new_generation or not previous.get("updateTime") else previous["updateTime"]
    changed = previous.get("status") != state
    status["transitionAt"] = stamp if changed or not previous.get("transitionAt") else previous["transitionAt"]
    status["observedGeneration"] = meta.generation
    status["conditions"] = ready_conditions(state, causes, meta.generation, previous.get("conditions") or [], stamp)
    return status
