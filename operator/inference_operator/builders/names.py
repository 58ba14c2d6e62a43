"""Child object names, in one place, so builders, reconciler and tests can never disagree.

Each model's Deployment, Service and HPA share the name `<service>-<model>`; the HTTPRoute is named
after the service. Kubernetes caps Service names at 63 characters (DNS-1035 labels), so a longer
name is cut and given a short stable hash, keeping names unique and deterministic.
"""

from __future__ import annotations

import hashlib

from inference_operator.api.v1alpha1 import InferenceService, ModelSpec

MAX_NAME_LENGTH = 63
_HASH_LENGTH = 8


def fit_name(name: str, limit: int = MAX_NAME_LENGTH) -> str:
    """`name` if short enough, else its head plus "-" and 8 hex digits of its SHA-256."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:_HASH_LENGTH]
    head = name[: limit - _HASH_LENGTH - 1].rstrip("-")
    return f"{head}-{digest}"


def child_name(service_name: str, model_name: str) -> str:
    """Name shared by the Deployment, Service and HPA of one model."""
    return fit_name(f"{service_name}-{model_name}")


def deployment_name(svc: InferenceService, model: ModelSpec) -> str:
    return child_name(svc.name, model.name)


def service_name(svc: InferenceService, model: ModelSpec) -> str:
    return child_name(svc.name, model.name)


def hpa_name(svc: InferenceService, model: ModelSpec) -> str:
    return child_name(svc.name, model.name)


def httproute_name(svc: InferenceService) -> str:
    return fit_name(svc.name)


def inferencepool_name(svc: InferenceService) -> str:
    return fit_name(svc.name)
