"""The Inference Extension InferencePool of a real-time service.

Where the InferencePool CRD (inference.networking.k8s.io/v1) is served and the service opts in
(spec.inferencePool.enabled, or the operator's setting for all), the service gets a pool: its model
pods, selected by labels only the operator sets; their one port as the pool's targetPort; and the
endpoint picker the service or the admin names. The HTTPRoute then sends its traffic to the pool, and
the picker chooses a pod per request (by load, prefix cache, ...) instead of the models' weights.
"""

from __future__ import annotations

from typing import Any

from inference_operator.api.v1alpha1 import EndpointPicker, InferenceService
from inference_operator.builders.labels import MANAGED_BY_LABEL, MANAGER, SERVICE_LABEL, child_metadata, service_labels
from inference_operator.builders.names import inferencepool_name
from inference_operator.config import OperatorConfig

POOL_GROUP = "inference.networking.k8s.io"
POOL_API_VERSION = f"{POOL_GROUP}/v1"
POOL_KIND = "InferencePool"
SERVICE_PLACEHOLDER = "{service}"  # in a picker's name: the service's (an EPP serves one pool)


def pool_wanted(svc: InferenceService, cfg: OperatorConfig) -> bool:
    """A running real-time service whose spec asks for a pool, or that leaves it to the operator's setting."""
    if svc.spec.stopped or svc.spec.infer_type == "batch":
        return False
    asked = svc.spec.inference_pool.enabled if svc.spec.inference_pool is not None else None
    return cfg.inference_pool if asked is None else asked


def endpoint_picker_ref(svc: InferenceService, cfg: OperatorConfig) -> dict[str, Any]:
    """The service's picker, else the operator's, `{service}` in its name replaced by the service's name;
    ValueError naming the field when neither names one."""
    picker: EndpointPicker | None = (svc.spec.inference_pool.endpoint_picker if svc.spec.inference_pool else None) \
        or cfg.endpoint_picker
    if picker is None:
        raise ValueError("spec.inferencePool.endpointPicker: required for an InferencePool: neither the service "
                         "nor the operator's setting (INFERENCE_OPERATOR_ENDPOINT_PICKER) names an endpoint picker")
    ref: dict[str, Any] = {"name": picker.name.replace(SERVICE_PLACEHOLDER, svc.name)}
    for key, value in (("group", picker.group), ("kind", picker.kind), ("failureMode", picker.failure_mode)):
        if value is not None:
            ref[key] = value
    if picker.port is not None:
        ref["port"] = {"number": picker.port}
    return ref


def pool_selector(svc: InferenceService) -> dict[str, str]:
    """Every model pod of the service (labels the operator sets on its pod templates, nobody else)."""
    return {MANAGED_BY_LABEL: MANAGER, SERVICE_LABEL: svc.name}


def target_port(svc: InferenceService) -> int:
    """The models' one port; ValueError naming the model that differs (the picker addresses pod:port
    for every pod of the pool, so a model on another port could be sent requests it cannot take)."""
    first = svc.spec.models[0].port
    for index, model in enumerate(svc.spec.models):
        if model.port != first:
            raise ValueError(f"spec.models[{index}].port: the models of a service with an InferencePool share "
                             f"one port (the pool's targetPort): {model.port} is not {first}")
    return first


def build_inferencepool(svc: InferenceService, cfg: OperatorConfig) -> dict[str, Any] | None:
    """inference.networking.k8s.io/v1 InferencePool, or None when the service has none. Raises ValueError
    (naming the field) for a pool that cannot be built: no endpoint picker, models on different ports."""
    if not pool_wanted(svc, cfg):
        return None
    return {
        "apiVersion": POOL_API_VERSION,
        "kind": POOL_KIND,
        "metadata": child_metadata(svc, inferencepool_name(svc), service_labels(svc)),
        "spec": {
            "selector": {"matchLabels": pool_selector(svc)},
            "targetPorts": [{"number": target_port(svc)}],
            "endpointPickerRef": endpoint_picker_ref(svc, cfg),
        },
    }


def pool_backend_ref(svc: InferenceService) -> dict[str, Any]:
    """The HTTPRoute's backendRef to the pool (no port: the pool's targetPorts say where)."""
    return {"group": POOL_GROUP, "kind": POOL_KIND, "name": inferencepool_name(svc)}
