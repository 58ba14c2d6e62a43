"""The HorizontalPodAutoscaler of one model, when scaling is enabled and the service runs.

An HPA cannot hold 0 replicas, so a stopped service has none (API.md, stopped); starting it again
recreates it. CPU utilisation is the default metric because metrics-server is all it needs;
`scaling.metrics` passes autoscaling/v2 MetricSpecs through for custom metrics. A model scaled on
concurrency (vllm and tgi by default) has none: the operator sets its replicas (policies/concurrency.py).
"""

from __future__ import annotations

from typing import Any

from inference_operator.api.v1alpha1 import InferenceService, ModelSpec
from inference_operator.builders.labels import child_metadata, model_labels
from inference_operator.builders.names import deployment_name, hpa_name
from inference_operator.config import OperatorConfig


def replica_bounds(model: ModelSpec) -> tuple[int, int]:
    """(min, max): min defaults to instanceCount (1 for a model that scales to zero: an HPA cannot hold 0,
    the operator itself takes an idle model to 0), max to max(min, instanceCount); min never > max."""
    scaling = model.scaling
    assert scaling is not None
    high = scaling.max_replicas or max(scaling.min_replicas or 0, model.instance_count)
    low = 1 if scaling.scales_to_zero else min(scaling.min_replicas or model.instance_count, high)
    return low, high


def _metrics(model: ModelSpec) -> list[dict[str, Any]]:
    """scaling.metrics as given, else CPU at targetCPUUtilization (its default when unset)."""
    scaling = model.scaling
    assert scaling is not None
    if scaling.metrics:
        return [dict(m) for m in scaling.metrics]
    return [{"type": "Resource", "resource": {
        "name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": scaling.cpu_target},
    }}]


def build_hpa(svc: InferenceService, model: ModelSpec, cfg: OperatorConfig) -> dict[str, Any] | None:
    """autoscaling/v2 HPA targeting the model's Deployment, or None when none should exist."""
    del cfg
    if svc.spec.stopped or model.scaling is None or not model.scaling.enabled or model.scales_on_concurrency:
        return None
    low, high = replica_bounds(model)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": child_metadata(svc, hpa_name(svc, model), model_labels(svc, model)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                               "name": deployment_name(svc, model)},
            "minReplicas": low,
            "maxReplicas": high,
            "metrics": _metrics(model),
        },
    }
