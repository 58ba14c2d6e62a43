"""A service's children as observed, and each model's view of them: how many instances it wants and has
ready, its rollout and its causes (status/rollout.py, status/causes.py), and so its state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from inference_operator.api.states import ModelState
from inference_operator.api.v1alpha1 import InferenceService, ModelSpec
from inference_operator.status.adapters import ModelAdapters
from inference_operator.status.causes import Cause, model_causes
from inference_operator.status.rollout import rollout


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
    adapters: Mapping[str, ModelAdapters] = field(default_factory=dict)  # LoRA adapters on the engines, by model


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
