"""Observed children in, InferenceService status out (API.md, "Precise rules").

Pure: the clock, the previous status and the gateway base URL are parameters. The result is the
status subresource as the API stores it (camelCase keys), so the caller can compare and write it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from inference_operator.api.conventions import is_true, rfc3339
from inference_operator.api.states import SERVING, ModelState, ServiceState
from inference_operator.api.v1alpha1 import InferenceService, ModelSpec, infer_path
from inference_operator.status.adapters import adapter_entries, adapters_nowhere
from inference_operator.status.batch import batch_outcome
from inference_operator.status.causes import Cause
from inference_operator.status.conditions import Progress, ready_conditions
from inference_operator.status.inferencepool import pool_conditions
from inference_operator.status.views import ModelView, Observed, view_models


@dataclass(frozen=True)
class ParentMeta:
    """What status needs from the parent object even when its spec cannot be parsed."""

    uid: str
    generation: int
    created: str | None = None


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


def _model_entry(view: ModelView, stopped: bool, observed: Observed, previous: Mapping[str, Any],
                 model: ModelSpec | None = None) -> dict[str, Any]:
    """One entry of status.models; a model that scales to zero keeps its last cold start."""
    entry: dict[str, Any] = {"name": view.name, "status": ModelState.NOT_READY if stopped else view.state,
                             "replicas": view.desired, "readyReplicas": view.ready, "weight": view.weight}
    if view.idle:
        entry["idleSince"] = observed.idle[view.name]
    before = next((m for m in previous.get("models") or [] if isinstance(m, Mapping) and m.get("name") == view.name),
                  {})
    if "coldStartSeconds" in before:
        entry["coldStartSeconds"] = before["coldStartSeconds"]
    if model is not None and model.adapters and not stopped:
        entry["adapters"] = adapter_entries(model, observed.adapters.get(view.name))
    return entry


def access_address(gateway_base_url: str, service_id: str) -> str:
    """status.accessAddress of a real-time service: the gateway's URL for it."""
    return gateway_base_url.rstrip("/") + infer_path(service_id)


def _times(previous: Mapping[str, Any], generation: int, state: ServiceState, stamp: str) -> dict[str, Any]:
    """updateTime moves with a new generation, transitionAt with a new state; observedGeneration."""
    new_generation = previous.get("observedGeneration") != generation
    changed = previous.get("status") != state
    return {"updateTime": stamp if new_generation or not previous.get("updateTime") else previous["updateTime"],
            "transitionAt": stamp if changed or not previous.get("transitionAt") else previous["transitionAt"],
            "observedGeneration": generation}


# Seven parameters: the pass's inputs (parent, spec, children, last status, clock, address, spec error), all
# of them data, so status stays a pure function of them.
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
        if state == ServiceState.RUNNING:  # serving its models, but an adapter of one serves nowhere
            nowhere = adapters_nowhere(svc, observed.adapters)
            if nowhere:
                state, causes = ServiceState.CONCERNING, nowhere
        specs = {m.name: m for m in svc.spec.models}
        models = [_model_entry(v, svc.spec.stopped, observed, previous, specs.get(v.name)) for v in views]
        if svc.spec.infer_type == "real-time":
            status["accessAddress"] = access_address(gateway_base_url, meta.uid)
    status.update(status=state, progress=progress(state, weighted), models=models)
    if causes:
        status["errorMsg"] = "; ".join(c.message for c in causes)
    status.update(_times(previous, meta.generation, state, stamp))
    progress_of = Progress(waiting, _detail(state, weighted), any(v.rolling for v in weighted),
                           _scaling_up_to_a_new_spec(state, weighted, previous, meta.generation))
    status["conditions"] = ready_conditions(state, causes, meta.generation, previous.get("conditions") or [], stamp,
                                            progress_of)
    status["conditions"] += pool_conditions(observed.pool, meta.generation, previous.get("conditions") or [], stamp)
    return status
