"""The Service of one model: the stable backend the gateway and HTTPRoute weight over.

A cluster IP (the default) lets in-cluster clients call `<service>-<model>.<namespace>.svc:80`. A headless one
(`headless_model_services`) has none to allocate: kube-apiserver allocates cluster IPs one at a time, under one
lock, and at ten new services a second that queue, not the pods, decided when a service was `running`. The
gateway reads the Service's EndpointSlices either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inference_operator.api.v1alpha1 import InferenceService, ModelSpec
from inference_operator.builders.deployment import PORT_NAME
from inference_operator.builders.labels import child_metadata, model_labels, selector_labels
from inference_operator.builders.names import service_name
from inference_operator.config import OperatorConfig

SERVICE_PORT = 80
HEADLESS = "None"  # spec.clusterIP of a Service without a cluster IP


def build_service(svc: InferenceService, model: ModelSpec, cfg: OperatorConfig) -> dict[str, Any]:
    """v1 Service, port 80 -> the pod's named "http" port, so a port change needs no Service edit."""
    spec: dict[str, Any] = {
        "type": "ClusterIP",
        "selector": selector_labels(svc, model),
        "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
    }
    if cfg.headless_model_services:
        spec["clusterIP"] = HEADLESS
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(svc, service_name(svc, model), model_labels(svc, model)),
        "spec": spec,
    }


def keep_address(manifest: Mapping[str, Any], live_spec: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The manifest of a Service as it can be applied over `live_spec`: a Service keeps the kind of address it
    was created with (the API server refuses to change spec.clusterIP once set), so `headless_model_services`
    applies to the Services created after it was switched; delete one to have it made again the new way."""
    if manifest.get("kind") != "Service" or live_spec is None:
        return manifest
    live_headless = live_spec.get("clusterIP") == HEADLESS
    if live_headless == (manifest["spec"].get("clusterIP") == HEADLESS):
        return manifest
    spec = {k: v for k, v in manifest["spec"].items() if k != "clusterIP"}
    if live_headless:
        spec["clusterIP"] = HEADLESS
    return {**manifest, "spec": spec}
