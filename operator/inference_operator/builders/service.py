"""The ClusterIP Service of one model: the stable backend the gateway and HTTPRoute weight over."""

from __future__ import annotations

from typing import Any

from inference_operator.api.v1alpha1 import InferenceService, ModelSpec
from inference_operator.builders.deployment import PORT_NAME
from inference_operator.builders.labels import child_metadata, model_labels, selector_labels
from inference_operator.builders.names import service_name
from inference_operator.config import OperatorConfig

SERVICE_PORT = 80


def build_service(svc: InferenceService, model: ModelSpec, cfg: OperatorConfig) -> dict[str, Any]:
    """v1 Service, port 80 -> the pod's named "http" port, so a port change needs no Service edit."""
    del cfg  # same signature as every builder; nothing in the Service is configurable
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(svc, service_name(svc, model), model_labels(svc, model)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(svc, model),
            "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }
