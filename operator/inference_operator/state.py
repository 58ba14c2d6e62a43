"""What one operator process holds: the API connection, the flavor catalog, the reconciler."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from inference_operator.config import OperatorConfig
from inference_operator.flavors import Flavor, FlavorError, load_catalog
from inference_operator.kube import Kube
from inference_operator.reconcile import FINGERPRINT, Children, Reconciler

log = logging.getLogger(__name__)


# Watched child kinds; the handlers keep an index of each, named children_<plural>.
CHILD_KINDS = [("apps", "v1", "deployments"), ("v1", "services"),
               ("autoscaling", "v2", "horizontalpodautoscalers"), ("gateway.networking.k8s.io", "v1", "httproutes")]


def children_of(key: tuple[str, str], indices: Mapping[str, Any]) -> Children:
    """A service's children from kopf's indices (keyed by namespace and service name)."""
    objects = [o for plural in CHILD_KINDS for o in indices[f"children_{plural[-1]}"].get(key, [])]
    return Children(objects=objects, pods=list(indices["children_pods"].get(key, [])))


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a child that reconcile and status read; indices keep only these (memory)."""
    meta = body.get("metadata", {})
    annotations = meta.get("annotations") or {}
    out: dict[str, Any] = {
        "apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
        "metadata": {key: meta[key] for key in ("name", "namespace", "uid", "generation", "labels",
                                                "ownerReferences", "deletionTimestamp") if key in meta},
        "status": dict(body.get("status") or {}),
    }
    if FINGERPRINT in annotations:
        out["metadata"]["annotations"] = {FINGERPRINT: annotations[FINGERPRINT]}
    if body.get("kind") == "Deployment":
        out["spec"] = {"replicas": (body.get("spec") or {}).get("replicas")}
    return out


@dataclass
class OperatorState:
    kube: Kube
    cfg: OperatorConfig
    namespace: str
    reconciler: Reconciler = field(init=False)
    flavors: dict[str, Flavor] = field(default_factory=load_catalog)
    gateway_api: bool = False

    indices: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reconciler = Reconciler(self.kube, self.cfg, catalog=lambda: self.flavors,
                                     gateway_api=lambda: self.gateway_api, wakeup=self.revisit)

    async def revisit(self, namespace: str, name: str) -> None:
        """A pass for one service outside any event (its scheduled stop is due)."""
        for parent in self.indices.get("inference_services", {}).get((namespace, name), []):
            await self.reconciler.reconcile(parent, children_of((namespace, name), self.indices))

    @classmethod
    async def start(cls, environ: Mapping[str, str]) -> OperatorState:
        cfg = OperatorConfig.from_env(environ)
        kube = await Kube.connect(cfg.field_manager)
        namespace = cfg.flavor_configmap_namespace or environ.get("POD_NAMESPACE", "inference-system")
        state = cls(kube=kube, cfg=cfg, namespace=namespace)
        state.gateway_api = await kube.served("gateway.networking.k8s.io/v1", "httproutes")
        log.info("gateway API %s; flavor ConfigMap %s/%s", "found" if state.gateway_api else "absent",
                 namespace, cfg.flavor_configmap_name)
        return state

    async def close(self) -> None:
        await self.kube.close()

    def is_flavor_configmap(self, namespace: str, name: str) -> bool:
        return namespace == self.namespace and name == self.cfg.flavor_configmap_name

    def load_flavors(self, data: Mapping[str, str] | None) -> None:
        """Built-ins plus the admin's entries; a bad entry keeps the previous catalog and says why."""
        try:
            self.flavors = load_catalog(data)
        except FlavorError as exc:
            log.error("flavor ConfigMap %s/%s ignored: %s", self.namespace, self.cfg.flavor_configmap_name, exc)
