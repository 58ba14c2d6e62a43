"""Every child an InferenceService should have, in a stable order (models in spec order).

The reconciler applies this list and deletes labelled children not in it, so a model removed from
spec.models loses its Deployment, Service and HPA, and a stopped service loses its HPAs and route.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.builders.deployment import build_deployment
from inference_operator.builders.hpa import build_hpa
from inference_operator.builders.httproute import build_httproute
from inference_operator.builders.service import build_service
from inference_operator.config import OperatorConfig
from inference_operator.flavors import Flavor, resolve_flavor


def build_children(svc: InferenceService, cfg: OperatorConfig, catalog: Mapping[str, Flavor], *,
                   gateway_api: bool) -> list[dict[str, Any]]:
    """Deployment, Service (and HPA) per model, then the HTTPRoute when Gateway API is installed.

    Raises flavors.UnknownFlavorError (naming spec.models[i].specification) before building
    anything, so a bad flavor never yields a partial set.
    """
    flavors = [resolve_flavor(model, catalog, index) for index, model in enumerate(svc.spec.models)]
    children: list[dict[str, Any]] = []
    for model, flavor in zip(svc.spec.models, flavors, strict=True):
        children.append(build_deployment(svc, model, flavor, cfg))
        children.append(build_service(svc, model, cfg))
        hpa = build_hpa(svc, model, cfg)
        if hpa is not None:
            children.append(hpa)
    route = build_httproute(svc, cfg) if gateway_api else None
    if route is not None:
        children.append(route)
    return children
