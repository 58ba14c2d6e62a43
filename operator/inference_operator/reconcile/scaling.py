"""The replicas of the models scaled on concurrency, as a pass builds them: the count last decided
(policies/concurrency.py), or, before any decision, the live Deployment's count moved into the bounds, so a
model handed over from its HPA keeps the instances it has (no dip)."""

from __future__ import annotations

from collections.abc import Mapping

from inference_operator.api.v1alpha1 import InferenceService, ModelSpec
from inference_operator.builders.hpa import replica_bounds
from inference_operator.builders.names import deployment_name
from inference_operator.policies.concurrency import Decisions, Settings
from inference_operator.ports import Children


def settings_of(model: ModelSpec) -> Settings:
    """The scaler's settings of a model scaled on concurrency: its targetConcurrency and its replica bounds."""
    low, high = replica_bounds(model)
    return Settings(target=float(model.concurrency_target), low=low, high=high)


def live_replicas(children: Children, name: str) -> int | None:
    """spec.replicas of the named Deployment as the watch shows it; None without one."""
    for child in children.objects:
        if child.get("kind") == "Deployment" and child["metadata"].get("name") == name:
            value = (child.get("spec") or {}).get("replicas")
            return value if isinstance(value, int) else None
    return None


def decided_replicas(svc: InferenceService, uid: str, children: Children, decisions: Decisions) -> Mapping[str, int]:
    """Model name -> replicas, for each model of `svc` scaled on concurrency."""
    out: dict[str, int] = {}
    for model in svc.spec.models:
        if not model.scales_on_concurrency:
            continue
        settings = settings_of(model)
        live = live_replicas(children, deployment_name(svc, model))
        start = min(max(live if live is not None else settings.low, settings.low), settings.high)
        out[model.name] = min(max(decisions.seed((uid, model.name), start), settings.low), settings.high)
    return out
