"""Observed children in, InferenceService status out (API.md, "Precise rules").

Pure: the clock, the previous status and the gateway base URL are parameters. The result is the
status subresource as the API stores it (camelCase keys), so the caller can compare and write it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from inference_operator.api.conventions import is_true, rfc3339
from inference_operator.api.states import SERVING, ModelState, ServiceState
from inference_operator.api.v1alpha1 import InferenceService, ModelSpec, infer_path
from inference_operator.status.batch import batch_outcome
from inference_operator.status.causes import Cause, model_causes
from inference_operator.status.conditions import Progress, ready_conditions
from inference_operator.status.inferencepool import pool_conditions
from inference_operator.status.rollout import rollout


@dataclass(frozen=True)
class ParentMeta:
    """What status needs from the parent object even when its spec cannot be parsed."""

    uid: str
    generation: int
    created: str | None = None


@dataclass(frozen=True)
class Observed:
    """A service's children as the watch caches show them, keyed by model name. `pending`: models whose
    Deployment the watch does not show yet as last applied (its counts describe an older spec)."""

    deployments: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    pods: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    job: Mapping[str, Any] | None = None  # the batch Job of the current spec, if any
    runner_pods: Sequence[Mapping[str, Any]] = ()
    pending: frozenset[str] = frozenset()
    pool: Mapping[str, Any] | None = None  # the service's InferencePool, if any
    idle: Mapping[str, str] = field(default_factory=dict)  # models scaled to zero (idle.py) -> idleSince
    waking: frozenset[str] = frozenset()  # models coming back from idle, not ready yet


@dataclass(frozen=True)
class ModelView:
    name: str
    weight: int
    desired: int
    ready: int  # ready instances of the current template
    cause: Cause | None  # failing: needs a person
    waiting: Cause | None = None  # clears by itself
    settled: bool = False  # every replica current and available, at the Deployment's latest generation
    old_ready: int = 0  # instances of an older template still serving
    rolling: bool = False  # a new template is replacing an older one
    pending: bool = False  # the Deployment's controller has not observed its latest spec yet
    idle: bool = False  # scaled to zero for want of requests: at rest, it still answers (it wakes)
    waking: bool = False  # coming back from idle for a request the gateway holds

    @property
    def state(self) -> ModelState:
        if self.idle:
            return ModelState.IDLE
        if self.desired > 0 and self.ready >= self.desired and self.settled:
            return ModelState.READY
        if self.waking and self.ready == 0:
            return ModelState.WAKING
        return ModelState.CONCERNING if self.ready > 0 or self.old_ready > 0 else ModelState.NOT_READY

    @property
    def at_rest(self) -> bool:
        """Nothing for the service to wait for: settled, idle, or waking without a cause (a wake is the
        service answering, not deploying)."""
        return self.settled or self.idle or (self.waking and self.cause is None)

    @property
    def serving(self) -> int:
        return self.ready + self.old_ready


def view_models(svc: InferenceService, observed: Observed) -> list[ModelView]:
    """Desired = the Deployment's replicas (the HPA's choice when scaling); ready = its available pods
    of the current template (status/rollout.py). Before the Deployment is seen, desired is the spec's."""
    views = []
    for model in svc.spec.models:
        deployment = observed.deployments.get(model.name)
        pods = observed.pods.get(model.name, ())
        if model.name in observed.idle:
            views.append(ModelView(model.name, model.weight, 0, 0, None, settled=True, idle=True))
            continue
        waking = model.name in observed.waking
        if svc.spec.stopped:
            desired = 0
        elif deployment is None:
            desired = model.instance_count
        else:
            desired = max(deployment.get("spec", {}).get("replicas", 1), _scaling_floor(model))
        if deployment is None:
            causes = model_causes(model.name, None, pods)
            views.append(ModelView(model.name, model.weight, desired, 0, causes.failing, causes.waiting,
                                   pending=model.name in observed.pending, waking=waking))
            continue
        state = rollout(deployment, pods)
        causes = model_causes(model.name, deployment, state.current_pods)
        views.append(ModelView(model.name, model.weight, desired, state.ready, causes.failing, causes.waiting,
                               settled=state.complete and state.ready >= desired, old_ready=state.old_ready,
                               rolling=state.rolling,
                               pending=not state.caught_up, waking=waking))
    return views


def _scaling_floor(model: ModelSpec) -> int:
    """The fewest instances a scaling model runs (the HPA's minReplicas, as builders/hpa.py sets it): a
    Deployment created before the HPA or the replicas handover raised it is not yet what was asked for."""
    scaling = model.scaling
    if scaling is None or not scaling.enabled:
        return 0
    if scaling.scales_to_zero:
        return 1  # awake; idle models never get here
    high = scaling.max_replicas or max(scaling.min_replicas or 0, model.instance_count)
    return min(scaling.min_replicas or model.instance_count, high)


def _weighted(svc: InferenceService, views: list[ModelView]) -> list[ModelView]:
    if svc.spec.infer_type == "batch":
        return views
    return [v for v in views if v.weight > 0]


def _stuck(view: ModelView, cause: Cause) -> Cause:
    """A failing cause of a model that still serves; a stuck rollout says how many old instances serve."""
    if not view.rolling:
        return cause
    plural = "s" if view.old_ready != 1 else ""
    return replace(cause, message=f"{cause.message} (rollout stuck: {view.old_ready} old instance{plural} "
                                  "still serving)")


def _previous_ready(previous: Mapping[str, Any]) -> dict[str, int]:
    return {m["name"]: m.get("readyReplicas", 0) for m in previous.get("models") or []
            if isinstance(m, Mapping) and isinstance(m.get("name"), str)}


def _growing(view: ModelView, before: Mapping[str, int]) -> bool:
    """Coming up to a higher count (scale-up) without having lost an instance and without a cause."""
    return (view.name in before and not view.rolling and view.cause is None and view.ready > 0
            and view.ready >= min(before[view.name], view.desired))


def service_state(svc: InferenceService, views: list[ModelView],
                  previous: Mapping[str, Any], generation: int) -> tuple[ServiceState, list[Cause]]:
    """The service status and the causes behind it, in the order docs/api.md fixes. Waiting causes
    are not returned: they never change the state (see waiting_causes)."""
    if svc.spec.stopped:
        return ServiceState.STOPPED, []
    weighted = _weighted(svc, views)
    failing = [v.cause for v in weighted if v.cause and v.serving == 0]
    if failing:
        return ServiceState.FAILED, failing
    if all(v.at_rest for v in weighted):
        return ServiceState.RUNNING, []
    troubled = [_stuck(v, v.cause) for v in weighted if v.cause]
    if troubled:
        return ServiceState.CONCERNING, troubled
    before = _previous_ready(previous)
    unsettled = [v for v in weighted if not v.settled]
    if previous.get("status") == ServiceState.RUNNING and all(_growing(v, before) for v in unsettled):
        return ServiceState.RUNNING, []
    was_running = previous.get("status") in SERVING \
        and previous.get("observedGeneration") == generation
    if was_running and not any(v.rolling for v in unsettled):
        return ServiceState.CONCERNING, []
    return ServiceState.DEPLOYING, []


def waiting_causes(state: ServiceState, weighted: list[ModelView]) -> list[Cause]:
    """What a deploying (or concerning) service waits for: the Ready condition's message names it."""
    return [v.waiting for v in weighted if v.waiting] \
        if state in (ServiceState.DEPLOYING, ServiceState.CONCERNING) else []


def progress(state: ServiceState, weighted: list[ModelView]) -> int:
    """Ready instances of the current templates over desired; 100 only once settled (at most 99 while
    old instances are still being removed), 0 when stopped."""
    if state == ServiceState.FINISHED or (state == ServiceState.RUNNING and all(v.at_rest for v in weighted)):
        return 100
    if state == ServiceState.STOPPED:
        return 0
    desired = sum(v.desired for v in weighted)
    if desired == 0:
        return 0
    return min(99, (100 * sum(min(v.ready, v.desired) for v in weighted)) // desired)


def _detail(state: ServiceState, weighted: list[ModelView]) -> str | None:
    """The Ready condition's message when it says more than its state: a rollout or a scale-up under way."""
    desired = sum(v.desired for v in weighted)
    ready = sum(min(v.ready, v.desired) for v in weighted)
    old = sum(v.old_ready for v in weighted if v.rolling)
    if state == ServiceState.DEPLOYING and any(v.rolling for v in weighted):
        plural = "s" if old != 1 else ""
        return (f"Rolling out the current template: {ready} of {desired} instances updated and ready; "
                f"{old} old instance{plural} still serving.")
    waking = [v.name for v in weighted if v.waking and v.ready == 0]
    if state == ServiceState.RUNNING and waking:
        return f"Waking {', '.join(waking)} from zero: requests wait for it."
    if state == ServiceState.RUNNING and ready < desired:
        return f"Scaling up: {ready} of {desired} instances ready."
    return None


def _scaling_up_to_a_new_spec(state: ServiceState, weighted: list[ModelView], previous: Mapping[str, Any],
                              generation: int) -> bool:
    """Running while instances a spec change asked for come up: the service serves, but this generation
    is not rolled out yet, so Ready stays False until it is. An autoscaler's scale-up at a generation
    that was already Ready keeps Ready True."""
    if state != ServiceState.RUNNING or all(v.at_rest for v in weighted):
        return False
    return previous.get("observedGeneration") != generation or not is_true(previous.get("conditions"), "Ready")


def hold(svc: InferenceService | None, views: list[ModelView], previous: Mapping[str, Any]) -> bool:
    """Keep a running (or concerning) status while a Deployment's controller has not observed its latest
    spec (a moment after a change): its counts may describe the previous template, so neither running
    nor deploying can be told yet, and the controller's next status update brings the truth. Without
    this, every scale-up would flicker running -> deploying -> running."""
    if svc is None or svc.spec.stopped or previous.get("status") not in SERVING:
        return False
    return any(v.pending for v in _weighted(svc, views))


def _model_entry(view: ModelView, stopped: bool, observed: Observed, previous: Mapping[str, Any]) -> dict[str, Any]:
    """One entry of status.models; a model that scales to zero keeps its last cold start."""
    entry: dict[str, Any] = {"name": view.name, "status": ModelState.NOT_READY if stopped else view.state,
                             "replicas": view.desired, "readyReplicas": view.ready, "weight": view.weight}
    if view.idle:
        entry["idleSince"] = observed.idle[view.name]
    before = next((m for m in previous.get("models") or [] if isinstance(m, Mapping) and m.get("name") == view.name),
                  {})
    if "coldStartSeconds" in before:
        entry["coldStartSeconds"] = before["coldStartSeconds"]
    return entry


def access_address(gateway_base_url: str, service_id: str) -> str:
    """status.accessAddress of a real-time service: the gateway's URL for it."""
    return gateway_base_url.rstrip("/") + infer_path(service_id)


def summarize(meta: ParentMeta, svc: InferenceService | None, observed: Observed,
              previous: Mapping[str, Any], now: datetime, gateway_base_url: str,
              spec_error: Cause | None = None) -> dict[str, Any]:
    """The whole status for one pass. `spec_error` (invalid spec, unknown flavor) means failed."""
    stamp = rfc3339(now)
    status: dict[str, Any] = {
        "serviceId": meta.uid,
        "invocationTimes": previous.get("invocationTimes", 0),
        "failedTimes": previous.get("failedTimes", 0),
        "publishAt": previous.get("publishAt") or meta.created or stamp,
    }
    waiting: list[Cause] = []
    if svc is None or spec_error is not None:
        state, causes, models = ServiceState.FAILED, [spec_error] if spec_error else [], []
        weighted: list[ModelView] = []
    else:
        views = view_models(svc, observed)
        if hold(svc, views, previous):
            return dict(previous)
        weighted = _weighted(svc, views)
        state, causes = service_state(svc, views, previous, meta.generation)
        waiting = waiting_causes(state, weighted)
        if svc.spec.infer_type == "batch" and state != ServiceState.STOPPED:
            outcome, cause = batch_outcome(observed.job, observed.runner_pods)
            if outcome is not None:
                state, causes = outcome, [cause] if cause else []
        models = [_model_entry(v, svc.spec.stopped, observed, previous) for v in views]
        if svc.spec.infer_type == "real-time":
            status["accessAddress"] = access_address(gateway_base_url, meta.uid)
    status.update(status=state, progress=progress(state, weighted), models=models)
    if causes:
        status["errorMsg"] = "; ".join(c.message for c in causes)
    new_generation = previous.get("observedGeneration") != meta.generation
    status["updateTime"] = stamp if new_generation or not previous.get("updateTime") else previous["updateTime"]
    changed = previous.get("status") != state
    status["transitionAt"] = stamp if changed or not previous.get("transitionAt") else previous["transitionAt"]
    status["observedGeneration"] = meta.generation
    progress_of = Progress(waiting, _detail(state, weighted), any(v.rolling for v in weighted),
                           _scaling_up_to_a_new_spec(state, weighted, previous, meta.generation))
    status["conditions"] = ready_conditions(state, causes, meta.generation, previous.get("conditions") or [], stamp,
                                            progress_of)
    status["conditions"] += pool_conditions(observed.pool, meta.generation, previous.get("conditions") or [], stamp)
    return status
