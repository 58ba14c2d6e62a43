"""The burst's ceiling: a client that writes what the operator writes, as fast as the API server allows.

The same children (the operator's own builders, for the same spec), through the operator's own client
(kube/client.py: server-side apply, the same connection count, the same lane for Services that allocate a
cluster IP), in the order that is fastest for the API server: every service's Deployment first, all at once,
then every other child. No watch, no pass, no status or Event: only the writes that make pods start and
route, so the operator can at best equal it and `ceiling / operator <= 1` by construction.

The children carry no owner reference (there is no InferenceService to own them) and no
`app.kubernetes.io/managed-by` label (the operator running beside the benchmark must not take them for its own).
"""

from __future__ import annotations

import asyncio
import copy
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.builders.children import build_children
from inference_operator.builders.labels import MANAGED_BY_LABEL
from inference_operator.catalog.flavors import load_catalog
from inference_operator.config import OperatorConfig
from inference_operator.kube.client import Kube
from inference_operator.kube.kubeconfig import Connection

FIELD_MANAGER = "bench-ceiling"
FIRST = "Deployment"


def unowned(child: Mapping[str, Any]) -> dict[str, Any]:
    """A child as the ceiling writes it: no owner reference, no managed-by label (metadata and pod template)."""
    out = copy.deepcopy(dict(child))
    out["metadata"].pop("ownerReferences", None)
    out["metadata"].get("labels", {}).pop(MANAGED_BY_LABEL, None)
    template = (out.get("spec") or {}).get("template") or {}
    (template.get("metadata") or {}).get("labels", {}).pop(MANAGED_BY_LABEL, None)
    return out


def ceiling_children(body: Mapping[str, Any], namespace: str, cfg: OperatorConfig, gateway_api: bool) -> \
        list[dict[str, Any]]:
    """The children the operator builds for `body` (an InferenceService manifest), as the ceiling writes them."""
    meta = {**body["metadata"], "namespace": namespace, "uid": f"ceiling-{body['metadata']['name']}",
            "generation": 1}
    svc = InferenceService.from_body({**body, "metadata": meta})
    return [unowned(c) for c in build_children(svc, cfg, load_catalog(), gateway_api=gateway_api)]


def write_order(children: Sequence[Sequence[Mapping[str, Any]]]) -> list[list[Mapping[str, Any]]]:
    """Every service's children in two waves: every Deployment, then every other child (each wave in service
    order). A Deployment never waits behind a Service queued for the API server's one cluster-IP lock."""
    flat = [child for one in children for child in one]
    return [[c for c in flat if c["kind"] == FIRST], [c for c in flat if c["kind"] != FIRST]]


async def write_waves(kube: Any, waves: Sequence[Sequence[Mapping[str, Any]]]) -> list[float]:
    """Apply each wave whole (the client's own gate bounds the connections), one wave after the other; the
    seconds from the start until each wave was written."""
    started, ends = time.monotonic(), []
    for wave in waves:
        await asyncio.gather(*(kube.apply(child) for child in wave))
        ends.append(time.monotonic() - started)
    return ends


async def ceiling(kubeconfig: str, namespace: str, bodies: Sequence[Mapping[str, Any]], gateway_api: bool) -> \
        dict[str, float]:
    """The ceiling's two moments: every Deployment written, every child written (seconds)."""
    cfg = OperatorConfig.from_env(os.environ)  # headless model Services or not, as the operator beside it reads
    waves = write_order([ceiling_children(b, namespace, cfg, gateway_api) for b in bodies])
    kube = Kube(await asyncio.to_thread(Connection.from_kubeconfig, kubeconfig), FIELD_MANAGER)
    try:
        deployments, children = await write_waves(kube, waves)
    finally:
        await kube.close()
    return {"deployments": deployments, "children": children}
