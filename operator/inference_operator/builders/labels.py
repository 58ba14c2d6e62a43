"""Labels and owner references of children, in one place (kopf.adopt-like, without kopf).

`inference.io/service` and `inference.io/model` find a service's children (a kopf index or a label
selector) and select a model's pods; they are the only selector labels because a Deployment's
selector is immutable. The app.kubernetes.io labels are for humans and tooling.
"""

from __future__ import annotations

from typing import Any

from inference_operator.api.v1alpha1 import API_VERSION, KIND, InferenceService, ModelSpec

SERVICE_LABEL = "inference.io/service"
MODEL_LABEL = "inference.io/model"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
PART_OF_LABEL = "app.kubernetes.io/part-of"
MANAGER = "inference-operator"
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGER}"  # every child this operator writes, as a label selector


def service_labels(svc: InferenceService) -> dict[str, str]:
    """Labels of children that belong to the whole service (the HTTPRoute)."""
    return {
        SERVICE_LABEL: svc.name,
        MANAGED_BY_LABEL: MANAGER,
        PART_OF_LABEL: svc.name,
    }


def selector_labels(svc: InferenceService, model: ModelSpec) -> dict[str, str]:
    """The immutable Deployment selector and the Service selector of one model's pods."""
    return {SERVICE_LABEL: svc.name, MODEL_LABEL: model.name}


def model_labels(svc: InferenceService, model: ModelSpec) -> dict[str, str]:
    """Labels of a model's Deployment, Service, HPA and pods."""
    return {**service_labels(svc), **selector_labels(svc, model)}


def owner_reference(svc: InferenceService) -> dict[str, Any]:
    """Controller reference: garbage collection removes children with the service."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": svc.name,
        "uid": svc.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(svc: InferenceService, name: str, labels: dict[str, str]) -> dict[str, Any]:
    """metadata of a child: same namespace as the service, owned by it."""
    return {
        "name": name,
        "namespace": svc.namespace,
        "labels": dict(sorted(labels.items())),
        "ownerReferences": [owner_reference(svc)],
    }
