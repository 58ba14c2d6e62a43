"""What one operator process holds: the API connection, the flavor catalog, the reconciler."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from inference_operator.config import OperatorConfig
from inference_operator.counts import CountsLedger, add_counts
from inference_operator.flavors import Flavor, FlavorError, load_catalog
from inference_operator.handover import REPLICAS_OWNERS, replicas_owners
from inference_operator.kube import Kube
from inference_operator.reconcile import FINGERPRINT, LIVE_SPEC, Children, Reconciler

log = logging.getLogger(__name__)


# Watched child kinds; the handlers keep an index of each, named children_<plural>.
CHILD_KINDS = [("apps", "v1", "deployments"), ("v1", "services"),
               ("autoscaling", "v2", "horizontalpodautoscalers"), ("gateway.networking.k8s.io", "v1", "httproutes"),
               ("batch", "v1", "jobs")]


def children_of(key: tuple[str, str], indices: Mapping[str, Any]) -> Children:
    """A service's children from kopf's indices (keyed by namespace and service name)."""
    objects = [o for plural in CHILD_KINDS for o in indices[f"children_{plural[-1]}"].get(key, [])]
    return Children(objects=objects, pods=list(indices["children_pods"].get(key, [])))


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a child that reconcile and status read; indices keep only these (memory).

    A child the operator applies also keeps its whole spec, for the drift check, as compact JSON
    (LIVE_SPEC): a few hundred bytes where the same spec as Python dicts costs ten times more; a
    Deployment keeps the managers owning spec.replicas (for the HPA handover), not managedFields.
    """
    meta = body.get("metadata", {})
    annotations = meta.get("annotations") or {}
    out: dict[str, Any] = {
        "apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
        "metadata": {key: meta[key] for key in ("name", "namespace", "uid", "generation", "resourceVersion",
                                                "labels", "ownerReferences", "deletionTimestamp") if key in meta},
        "status": dict(body.get("status") or {}),
    }
    if FINGERPRINT in annotations:
        out["metadata"]["annotations"] = {FINGERPRINT: annotations[FINGERPRINT]}
    if body.get("kind") == "Deployment":
        out["spec"] = {"replicas": (body.get("spec") or {}).get("replicas")}
        out[REPLICAS_OWNERS] = replicas_owners(meta.get("managedFields"))
    if body.get("kind") != "Pod":
        out[LIVE_SPEC] = json.dumps(body.get("spec") or {}, separators=(",", ":"))
    return out


PARENT_METADATA = ("name", "namespace", "uid", "generation", "creationTimestamp", "deletionTimestamp", "labels")


def slim_parent(body: Mapping[str, Any]) -> dict[str, Any]:
    """An InferenceService as reconcile reads it, without managedFields and the last-applied annotation
    (together often larger than the rest): the index holds one per service."""
    meta = body.get("metadata", {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k != "kubectl.kubernetes.io/last-applied-configuration"}
    slim_meta = {key: meta[key] for key in PARENT_METADATA if key in meta}
    if annotations:
        slim_meta["annotations"] = annotations
    return {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "metadata": slim_meta,
            "spec": body.get("spec") or {}, "status": body.get("status") or {}}


@dataclass
class OperatorState:
    kube: Kube
    cfg: OperatorConfig
    namespace: str
    reconciler: Reconciler = field(init=False)
    flavors: dict[str, Flavor] = field(default_factory=load_catalog)
    gateway_api: bool = False

    indices: Mapping[str, Any] = field(default_factory=dict)
    names: dict[str, tuple[str, str]] = field(default_factory=dict)  # uid -> (namespace, name)
    counts_task: asyncio.Task | None = None
    flavor_task: asyncio.Task | None = None
    flavor_data: Mapping[str, str] | None = None

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
        for task in (self.counts_task, self.flavor_task):
            if task is not None:
                task.cancel()
        await self.kube.close()

    def start_counting(self) -> None:
        if self.cfg.gateway_counts_url:
            self.counts_task = asyncio.get_running_loop().create_task(self._count_forever())

    async def _count_forever(self) -> None:
        """Every interval: read the gateway's counts and revisit only services with new requests."""
        ledger = CountsLedger()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            while True:
                try:
                    async with session.get(self.cfg.gateway_counts_url) as response:
                        reading = await response.json() if response.status == 200 else {}
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    log.debug("gateway counts unavailable: %s", exc)
                    reading = {}
                for uid, delta in ledger.advance(reading).items():
                    await self._add_counts(uid, delta)
                await asyncio.sleep(self.cfg.counts_interval_seconds)

    async def _add_counts(self, uid: str, delta: Mapping[str, int]) -> None:
        key = self.names.get(uid)
        for parent in self.indices.get("inference_services", {}).get(key, []) if key else []:
            if parent.get("metadata", {}).get("uid") == uid:
                stored = self.reconciler.counts.get(uid) or parent.get("status") or {}
                self.reconciler.counts[uid] = add_counts(stored, delta)
                await self.revisit(*key)

    def start_flavor_watch(self) -> None:
        self.flavor_task = asyncio.get_running_loop().create_task(self._watch_flavors())

    async def _watch_flavors(self) -> None:
        """Admins edit flavors without restarting the operator: reload, then revisit every service."""
        name = self.cfg.flavor_configmap_name
        async for event_type, configmap in self.kube.watch_one("v1", "ConfigMap", self.namespace, name):
            data = None if event_type == "DELETED" else configmap.get("data") or {}
            if data == self.flavor_data:
                continue
            self.flavor_data = data
            self.load_flavors(data)
            for namespace, service in list(self.indices.get("inference_services", {}).keys()):
                await self.revisit(namespace, service)

    def load_flavors(self, data: Mapping[str, str] | None) -> None:
        """Built-ins plus the admin's entries; a bad entry keeps the previous catalog and says why."""
        try:
            self.flavors = load_catalog(data)
        except FlavorError as exc:
            log.error("flavor ConfigMap %s/%s ignored: %s", self.namespace, self.cfg.flavor_configmap_name, exc)
