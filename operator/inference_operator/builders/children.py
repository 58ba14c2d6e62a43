"""Every child an InferenceService should have, in a stable order (models in spec order).

The reconciler applies this list and deletes labelled children not in it, so a model removed from
spec.models loses its Deployment, Service and HPA, and a stopped service loses its HPAs and route.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.builders.batch import build_batch_job
from inference_operator.builders.deployment import build_deployment
from inference_operator.builders.hpa import build_hpa
from inference_operator.builders.httproute import build_httproute
from inference_operator.builders.inferencepool import build_inferencepool
from inference_operator.builders.service import build_service
from inference_operator.catalog.flavors import Flavor
from inference_operator.catalog.specification import resolve_flavor
from inference_operator.config import OperatorConfig


# Eight parameters: the spec, the settings and the catalog, then keyword-named facts of the cluster (served
# APIs) and of this pass (batch done, idle models, decided replicas), each known to the caller only.
def build_children(svc: InferenceService, cfg: OperatorConfig, catalog: Mapping[str, Flavor], *,
                   gateway_api: bool, inference_pool: bool = False, batch_done: bool = False,
                   idle: frozenset[str] = frozenset(),
                   replicas: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """Deployment, Service (and HPA) per model, then the InferencePool when its CRD is served
    (`inference_pool`) and the service has one, then the HTTPRoute when Gateway API is installed (to the
    pool, if written). A pool the service asks for but cannot have (no endpoint picker named, models on
    different ports) raises ValueError naming the field, whether or not its CRD is served.

    Raises flavors.UnknownFlavorError (naming spec.models[i].specification) before building
    anything, so a bad flavor never yields a partial set. A batch service also gets its runner Job;
    once that Job has completed (`batch_done`), the model server is scaled to 0 to free its GPUs.
    An `idle` model (scaled to zero, idle.py) is built as a stopped one: 0 replicas, no HPA; its Service
    stays, so waking it is a replicas change only. `replicas`: the counts decided for the models scaled on
    concurrency (policies/concurrency.py), by model name; idle wins over them.
    """
    flavors = [resolve_flavor(model, catalog, index, gpu_memory_mib=cfg.preset_gpu_memory_mib,
                              gpu_product=cfg.preset_gpu_product) for index, model in enumerate(svc.spec.models)]
    serving = stopped_copy(svc) if batch_done else svc
    sleeping = stopped_copy(svc) if idle else svc
    children: list[dict[str, Any]] = []
    for model, flavor in zip(svc.spec.models, flavors, strict=True):
        running = sleeping if model.name in idle else serving
        children.append(build_deployment(running, model, flavor, cfg, (replicas or {}).get(model.name)))
        children.append(build_service(svc, model, cfg))
        hpa = build_hpa(running, model, cfg)
        if hpa is not None:
            children.append(hpa)
        if svc.spec.infer_type == "batch":
            children.append(build_batch_job(svc, model, cfg))
    pool = build_inferencepool(svc, cfg)
    if pool is not None and inference_pool:
        children.append(pool)
    route = build_httproute(svc, cfg, pool=pool is not None and inference_pool) if gateway_api else None
    if route is not None:
        children.append(route)
    return children


def stopped_copy(svc: InferenceService) -> InferenceService:
    """The service as if spec.stopped were true (a schedule's due time, a finished batch)."""
    return svc.model_copy(update={"spec": svc.spec.model_copy(update={"stopped": True})})
