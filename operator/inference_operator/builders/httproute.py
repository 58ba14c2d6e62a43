"""The Gateway API HTTPRoute of a real-time service: the cloud's weighted URL, on any Gateway.

One rule matches `/v1/infers/<serviceId>` (the ModelArts gateway's path, API.md) and rewrites the
prefix to "/", so the model sees the path the client added after it, like behind the project's own
gateway. Every model is a backendRef with its weight; weight-0 models stay listed with weight 0
(dark launch: deployed, no traffic). Stopped and batch services take no traffic: no route.
"""

from __future__ import annotations

from typing import Any

from inference_operator.api.v1alpha1 import InferenceService, infer_path
from inference_operator.builders.inferencepool import pool_backend_ref
from inference_operator.builders.labels import child_metadata, service_labels
from inference_operator.builders.names import httproute_name, service_name
from inference_operator.builders.service import SERVICE_PORT
from inference_operator.config import OperatorConfig


def route_path(svc: InferenceService) -> str:
    """The path prefix clients call: /v1/infers/<serviceId>."""
    return infer_path(svc.uid)


def build_httproute(svc: InferenceService, cfg: OperatorConfig, pool: bool = False) -> dict[str, Any] | None:
    """gateway.networking.k8s.io/v1 HTTPRoute, or None for stopped and batch services; `pool`: to the
    service's InferencePool rather than to its models' Services by weight."""
    if svc.spec.stopped or svc.spec.infer_type == "batch":
        return None
    backends = [pool_backend_ref(svc)] if pool else [
        {"name": service_name(svc, model), "port": SERVICE_PORT, "weight": model.weight} for model in svc.spec.models]
    rule = {
        "matches": [{"path": {"type": "PathPrefix", "value": route_path(svc)}}],
        "filters": [{"type": "URLRewrite", "urlRewrite": {
            "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}],
        "backendRefs": backends,
    }
    spec: dict[str, Any] = {}
    if cfg.gateway_parent_ref:
        spec["parentRefs"] = [dict(cfg.gateway_parent_ref)]
    spec["rules"] = [rule]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": child_metadata(svc, httproute_name(svc), service_labels(svc)),
        "spec": spec,
    }
