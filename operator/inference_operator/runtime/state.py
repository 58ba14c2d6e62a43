"""What one operator process holds: the API connection, the flavor catalog, the reconciler."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from inference_operator import metrics
from inference_operator.api.v1alpha1 import KIND
from inference_operator.builders.labels import MANAGED_BY_LABEL, MANAGER
from inference_operator.catalog.flavors import Flavor, FlavorError, load_catalog
from inference_operator.config import OperatorConfig
from inference_operator.kube.client import Kube
from inference_operator.policies.counts import Ledger, counts_urls
from inference_operator.policies.drift import WRITERS, spec_writers
from inference_operator.policies.handover import REPLICAS_OWNERS, handover_manager, replicas_owners
from inference_operator.policies.idle import ActivityTracker, SpecCache, may_sleep, pass_due, shown_idle
from inference_operator.ports import ApiError, Children
from inference_operator.reconcile.reconciler import Reconciler
from inference_operator.reconcile.sync import FINGERPRINT, LIVE_SPEC
from inference_operator.runtime.ghosts import Ghosts
from inference_operator.runtime.indices import SERVICES, Indices, index_names, shared_strings
from inference_operator.runtime.served import HTTPROUTES, INFERENCEPOOLS, OptionalApi, ServedApis
from inference_operator.runtime.watchfeed import Listings

log = logging.getLogger(__name__)


# Watched child kinds; the operator keeps an index of each (indices.py), named children_<plural>.
CHILD_KINDS = [("apps", "v1", "deployments"), ("v1", "services"),
               ("autoscaling", "v2", "horizontalpodautoscalers"), ("gateway.networking.k8s.io", "v1", "httproutes"),
               ("batch", "v1", "jobs"), ("inference.networking.k8s.io", "v1", "inferencepools")]
INDEX_NAMES = index_names([kind[-1] for kind in CHILD_KINDS] + ["pods"])
# Marks an object slimmed (its managedFields already read into WRITERS and REPLICAS_OWNERS).
SLIMMED = "inference.io/slimmed"
# The first listing of the optional APIs' CRDs, awaited at start (served.py); past it, the watches go on.
SERVED_LIST_SECONDS = 30.0
# While a model is idle (scaled to zero), the gateways are read this often: a held request waits for it.
WAKE_READ_SECONDS = 1.0


def group_plural(kind: tuple[str, ...]) -> tuple[str, str]:
    """(group, plural) of a CHILD_KINDS entry; the core group is ""."""
    return (kind[0], kind[-1]) if len(kind) == 3 else ("", kind[-1])


def children_of(key: tuple[str, str], indices: Mapping[str, Any], ghosts: Ghosts | None = None,
                hidden: frozenset[str] = frozenset()) -> Children:
    """A service's children from the indices (keyed by namespace and service name), ghosts and the
    kinds whose API is not served now (`hidden` plurals) left out."""
    objects = [o for plural in CHILD_KINDS if plural[-1] not in hidden
               for o in indices.get(f"children_{plural[-1]}", {}).get(key, [])]
    pods = list(indices["children_pods"].get(key, []))
    if ghosts is not None and ghosts.uids:
        objects, pods = ghosts.live(objects), ghosts.live(pods)
    return Children(objects=objects, pods=pods)


def current(parents: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The one live service among index entries of one name. Two entries mean a service deleted and
    re-created while a watch was away (its DELETED missed): every resourceVersion of the deleted one
    predates the re-created one's, so the highest is the live one. Opaque versions: all are kept."""
    if len(parents) < 2:
        return parents
    try:
        return [max(parents, key=lambda p: int(p["metadata"].get("resourceVersion", "")))]
    except ValueError:
        return parents


def slim(body: Mapping[str, Any], ours: Container[str] = ()) -> dict[str, Any]:
    """The parts of a child that reconcile and status read; indices keep only these (memory).

    A child the operator applies also keeps its whole spec, for the drift check, as compact JSON
    (LIVE_SPEC): a few hundred bytes where the same spec as Python dicts costs ten times more; a
    Deployment keeps the managers owning spec.replicas (for the HPA handover), not managedFields; a
    child keeps what other writers (not `ours`, the operator's managers) own, to name them in an Event.
    Idempotent: an object slimmed already (at the watch stream, watchfeed.py) comes back as it is.
    """
    if SLIMMED in body:
        return dict(body)
    meta = body.get("metadata", {})
    annotations = meta.get("annotations") or {}
    out: dict[str, Any] = {
        SLIMMED: True,
        "apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
        "metadata": {key: meta[key] for key in (POD_METADATA if body.get("kind") == "Pod" else CHILD_METADATA)
                     if key in meta},
        "status": child_status(str(body.get("kind")), body.get("status") or {}),
    }
    if FINGERPRINT in annotations:
        out["metadata"]["annotations"] = {FINGERPRINT: annotations[FINGERPRINT]}
    if body.get("kind") == "Deployment":
        out["spec"] = {"replicas": (body.get("spec") or {}).get("replicas")}
        out[REPLICAS_OWNERS] = replicas_owners(meta.get("managedFields"))
    if body.get("kind") != "Pod":
        out[WRITERS] = spec_writers(meta.get("managedFields"), ours)
        out[LIVE_SPEC] = json.dumps(body.get("spec") or {}, separators=(",", ":"))
    return shared_strings(out)


CHILD_METADATA = ("name", "namespace", "uid", "generation", "resourceVersion", "labels", "ownerReferences",
                  "deletionTimestamp")
POD_METADATA = ("name", "namespace", "uid", "resourceVersion", "labels", "deletionTimestamp")  # not applied: no drift
STATUS_READ = ("Deployment", "Job", "InferencePool")  # and Pod (pod_status): status/ reads no other child's status
CONDITION_FIELDS = ("type", "status", "reason", "message")  # of a Deployment's or Job's; their times are not read


def child_status(kind: str, status: Mapping[str, Any]) -> dict[str, Any]:
    """A child's status as status/ reads it: a Service's, an HTTPRoute's or an HPA's not at all (a route's
    parents and their conditions were a kilobyte and more per service with a Gateway)."""
    if kind == "Pod":
        return pod_status(status)
    if kind not in STATUS_READ:
        return {}
    out = dict(status)
    if kind in ("Deployment", "Job") and isinstance(status.get("conditions"), list):
        out["conditions"] = [{k: c[k] for k in CONDITION_FIELDS if k in c} if isinstance(c, Mapping) else c
                             for c in status["conditions"]]
    return out


POD_CONDITIONS = ("Ready", "PodScheduled")  # status/causes.py and rollout.py read these, no other
CONTAINER_FIELDS = ("name", "image", "ready", "restartCount")


def pod_status(status: Mapping[str, Any]) -> dict[str, Any]:
    """A pod's status as status/ reads it (conditions Ready and PodScheduled, why a container waits or
    ended): a pod's full status is the largest part of what 1,000 running services keep in memory."""
    out: dict[str, Any] = {key: status[key] for key in ("phase", "nominatedNodeName") if key in status}
    out["conditions"] = [{k: c[k] for k in ("type", "status", "reason", "message") if k in c}
                         for c in status.get("conditions") or () if c.get("type") in POD_CONDITIONS]
    for key in ("initContainerStatuses", "containerStatuses"):
        if key in status:
            out[key] = [_container_status(c) for c in status[key] or ()]
    return out


def _container_status(container: Mapping[str, Any]) -> dict[str, Any]:
    out = {key: container[key] for key in CONTAINER_FIELDS if key in container}
    state, last = container.get("state") or {}, container.get("lastState") or {}
    if "waiting" in state:
        out["state"] = {"waiting": state["waiting"]}
    elif "terminated" in state:
        out["state"] = {"terminated": state["terminated"]}
    if "terminated" in last:
        out["lastState"] = {"terminated": last["terminated"]}
    return out


PARENT_METADATA = ("name", "namespace", "uid", "generation", "creationTimestamp", "deletionTimestamp", "labels",
                   "resourceVersion")


def slim_parent(body: Mapping[str, Any]) -> dict[str, Any]:
    """An InferenceService as reconcile reads it, without managedFields and the last-applied annotation
    (together often larger than the rest): the index holds one per service."""
    meta = body.get("metadata", {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k != "kubectl.kubernetes.io/last-applied-configuration"}
    slim_meta = {key: meta[key] for key in PARENT_METADATA if key in meta}
    if annotations:
        slim_meta["annotations"] = annotations
    return shared_strings({"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "metadata": slim_meta,
                           "spec": body.get("spec") or {}, "status": body.get("status") or {}})


@dataclass
class OperatorState:
    kube: Kube
    cfg: OperatorConfig
    namespace: str
    reconciler: Reconciler = field(init=False)
    flavors: dict[str, Flavor] = field(default_factory=load_catalog)
    apis: ServedApis = field(default_factory=ServedApis)

    indices: Indices = field(default_factory=lambda: Indices(INDEX_NAMES, on_change=metrics.INDEXED.set))
    listings: Listings = field(default_factory=Listings)  # which watch streams have listed (watchfeed.py)
    names: dict[str, tuple[str, str]] = field(default_factory=dict)  # uid -> (namespace, name)
    counts_task: asyncio.Task[None] | None = None
    flavor_task: asyncio.Task[None] | None = None
    flavor_data: Mapping[str, str] | None = None
    ghosts: Ghosts = field(default_factory=Ghosts)
    watching: set[str] = field(default_factory=set)  # kinds past their first listing
    listed: set[str] = field(default_factory=set)  # kinds whose first listing is in the indices
    sleepers: SpecCache = field(default_factory=SpecCache)  # parsed specs of services that may scale to zero

    def __post_init__(self) -> None:
        self.reconciler = Reconciler(self.kube, self.cfg, catalog=lambda: self.flavors,
                                     gateway_api=lambda: self.apis(HTTPROUTES),
                                     inference_pool=lambda: self.apis(INFERENCEPOOLS), wakeup=self.revisit,
                                     services_of=self.service_uids)

    def service_uids(self, namespace: str) -> list[str]:
        """The uids of the services the indices hold in a namespace."""
        return [parent["metadata"]["uid"] for (ns, _), parents in self.indices[SERVICES].items() if ns == namespace
                for parent in parents]

    @property
    def field_managers(self) -> tuple[str, str]:
        """The operator's own field managers: its writes are not "another writer"'s."""
        return (self.cfg.field_manager, handover_manager(self.cfg.field_manager))

    async def revisit(self, namespace: str, name: str) -> None:
        """A pass for one service outside any event (its scheduled stop is due)."""
        parents = list(self.indices[SERVICES].get((namespace, name), []))
        for parent in current(self.ghosts.live(parents)):
            self.reconciler.submit(parent, children_of((namespace, name), self.indices, self.ghosts,
                                                       self.apis.hidden()))

    async def api_changed(self, api: OptionalApi, served: bool) -> None:
        """An optional API came or went: every service gets a pass (its HTTPRoute written, or forgotten).
        Gone, its objects went with the CRD: what this process applied of the kind is forgotten, so a
        CRD installed again gets them re-created, and nothing is deleted twice."""
        if not served:
            self.reconciler.forget_kind(api.kind)
        await self.revisit_all()

    async def revisit_all(self) -> None:
        """A pass for every service."""
        for namespace, name in list(self.indices[SERVICES].keys()):
            await self.revisit(namespace, name)

    def saw(self, kind: str, event_type: str | None) -> None:
        """kopf lists a kind (event type None) at start and again when its watch could not resume: after
        a watch event of that kind, a listing is such a relist, so look for ghosts once it is done."""
        self.listed.add(kind)
        if event_type is not None:
            self.watching.add(kind)
        elif kind in self.watching and self.indices:
            self.ghosts.soon(self.resync)

    async def resync(self) -> None:
        """Forget what was deleted behind the watches' back and give each affected service a pass."""
        found = await self.ghosts.find(self.kube, self.indices, self.apis.hidden())
        affected = set()
        for uid, (index, key, obj) in found.items():
            affected.add(key)
            if index == SERVICES:
                self.reconciler.forget_service(uid)
                self.names.pop(uid, None)
                continue
            for parent in self.indices[SERVICES].get(key, []):
                self.reconciler.forget_child(parent["metadata"]["uid"], obj)
        for namespace, name in sorted(affected):
            await self.revisit(namespace, name)

    @classmethod
    async def start(cls, environ: Mapping[str, str]) -> OperatorState:
        cfg = OperatorConfig.from_env(environ)
        kube = await Kube.connect(cfg.field_manager)
        namespace = cfg.flavor_configmap_namespace or environ.get("POD_NAMESPACE", "inference-system")
        state = cls(kube=kube, cfg=cfg, namespace=namespace)
        state.apis.start(kube, state.api_changed)
        if not await state.apis.wait_listed(SERVED_LIST_SECONDS):
            log.warning("the CRDs of Gateway API and InferencePool could not be listed in %.0fs: neither is "
                        "written until they are", SERVED_LIST_SECONDS)
        log.info("gateway API %s, InferencePool %s; flavor ConfigMap %s/%s",
                 "served" if state.apis(HTTPROUTES) else "absent",
                 "served" if state.apis(INFERENCEPOOLS) else "absent", namespace, cfg.flavor_configmap_name)
        return state

    async def close(self) -> None:
        self.apis.stop()
        for task in (self.counts_task, self.flavor_task):
            if task is not None:
                task.cancel()
        await self.reconciler.close()
        await self.kube.close()

    def start_counting(self) -> None:
        if self.cfg.gateway_counts_url or self.cfg.gateway_counts_service:
            self.reconciler.activity = ActivityTracker()
            self.counts_task = asyncio.get_running_loop().create_task(self._count_forever())

    async def _count_forever(self) -> None:
        """Every interval: read every gateway process, store the ledger, revisit services whose totals moved."""
        ledger: Ledger | None = None
        token = None
        if self.cfg.gateway_counts_token_file:
            with open(self.cfg.gateway_counts_token_file, encoding="utf-8") as handle:
                token = handle.read().strip()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5), headers=headers) as session:
            while True:
                sleeping = False
                try:
                    urls = await self._counts_sources()
                    readings = [r for r in await asyncio.gather(*(self._read_counts(session, url) for url in urls))
                                if r]
                    now = time.time()
                    sleeping = await self._idle_or_wake(readings, now, complete=len(readings) == len(urls))
                    fresh = False
                    if ledger is None:
                        ledger, fresh = await self._load_ledger(readings, now)
                    live = self._live_uids()
                    changed = any([ledger.merge(instance, reading, now, live) for instance, reading in readings])
                    changed = fresh or changed  # a new ledger is stored at once: a restart must not re-add readings
                    changed = ledger.retire(now) or changed
                    changed = (live is not None and ledger.prune(live)) or changed
                    if changed:
                        await self._save_ledger(ledger)
                    await self._apply_totals(ledger.totals())
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the API or a gateway is away: try again next interval
                    log.warning("gateway counts: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(min(self.cfg.counts_interval_seconds, WAKE_READ_SECONDS) if sleeping
                                    else self.cfg.counts_interval_seconds)

    async def _idle_or_wake(self, readings: list[tuple[str, dict[str, Any]]], now: float, complete: bool) -> bool:
        """Feed the round's per-model activity to the tracker; a pass for each service with a model to idle
        or to wake (idle.py). True while some model is idle: the next round comes sooner."""
        tracker = self.reconciler.activity
        if tracker is None:
            return False
        tracker.observe(readings, now, complete)
        sleeping, seen = False, set()
        for key, parents in list(self.indices[SERVICES].items()):
            for parent in current(self.ghosts.live(list(parents))):
                if not may_sleep(parent):
                    continue
                seen.add(parent["metadata"]["uid"])
                sleeping = sleeping or bool(shown_idle(parent))
                svc = self.sleepers.get(parent)
                if svc is not None and pass_due(svc, parent["metadata"]["uid"], self.reconciler.last_status(parent),
                                                tracker, now):
                    await self.revisit(*key)
        self.sleepers.keep(seen)
        return sleeping

    def _live_uids(self) -> set[str] | None:
        """The uids of the services that exist, once the first listing of services is complete (kopf
        calls event handlers only after every index is filled); None before."""
        if KIND not in self.listed:
            return None
        return {parent["metadata"]["uid"] for parents in self.indices[SERVICES].values()
                for parent in parents}

    async def _counts_sources(self) -> list[str]:
        """The /-/counts URL of every gateway process: the fixed URL, or one per endpoint of the internal Service."""
        if self.cfg.gateway_counts_url:
            return [self.cfg.gateway_counts_url]
        assert self.cfg.gateway_counts_service is not None
        namespace, name = self.cfg.gateway_counts_service.split("/", 1)
        data = await self.kube.get_json(f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                                        [("labelSelector", f"kubernetes.io/service-name={name}")])
        return counts_urls(data.get("items") or [], self.cfg.gateway_counts_port)

    async def _read_counts(self, session: aiohttp.ClientSession, url: str) -> tuple[str, dict[str, Any]] | None:
        """(instance id, cumulative counts) of one gateway process; None if it does not answer."""
        try:
            async with session.get(url) as response:
                instance = response.headers.get("X-Gateway-Instance", "")
                if response.status != 200 or not instance:
                    log.warning("gateway counts at %s: HTTP %s", url, response.status)
                    return None
                reading = await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.debug("gateway counts at %s unavailable: %s", url, exc)
            return None
        return (instance, reading) if isinstance(reading, dict) else None

    def _ledger_path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/configmaps/{self.cfg.counts_ledger_name}"

    async def _load_ledger(self, readings: list[tuple[str, dict[str, Any]]], now: float) -> tuple[Ledger, bool]:
        """The stored ledger; without one, a new ledger whose base is what status already holds (True:
        new, not stored yet)."""
        try:
            stored = Ledger.from_data((await self.kube.get_json(self._ledger_path())).get("data"))
        except ApiError as err:
            if err.status != 404:
                raise
            stored = None
        if stored is not None:
            return stored, False
        totals = {}
        for parents in self.indices[SERVICES].values():
            for parent in parents:
                status = parent.get("status") or {}
                totals[parent["metadata"]["uid"]] = {f: int(status.get(f) or 0)
                                                     for f in ("invocationTimes", "failedTimes")}
        log.info("gateway counts: no ledger yet; starting one from the counts in status")
        return Ledger.start(totals, readings, now), True

    async def _save_ledger(self, ledger: Ledger) -> None:
        await self.kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": self.cfg.counts_ledger_name, "namespace": self.namespace,
            "labels": {MANAGED_BY_LABEL: MANAGER}}, "data": ledger.to_data()})

    async def _apply_totals(self, totals: Mapping[str, Mapping[str, int]]) -> None:
        """Hand each service's totals to the reconciler; revisit those whose status does not show them yet."""
        for uid, counts in totals.items():
            key = self.names.get(uid)
            if key is None or self.reconciler.counts_of(uid) == counts:
                continue
            for parent in self.indices[SERVICES].get(key, []):
                if parent.get("metadata", {}).get("uid") != uid:
                    continue
                self.reconciler.set_counts(uid, counts)
                status = parent.get("status") or {}
                if any(int(status.get(f) or 0) != counts[f] for f in counts):
                    await self.revisit(*key)

    def start_flavor_watch(self) -> None:
        self.flavor_task = asyncio.get_running_loop().create_task(self._watch_flavors())

    async def _watch_flavors(self) -> None:
        """Admins edit flavors without restarting the operator: reload, then revisit every service."""
        name = self.cfg.flavor_configmap_name
        first = True
        async for event_type, configmap in self.kube.watch_one("v1", "ConfigMap", self.namespace, name):
            data = None if event_type == "DELETED" else configmap.get("data") or {}
            if data == self.flavor_data and not first:
                continue
            first = False
            self.flavor_data = data
            log.info("flavor ConfigMap %s/%s %s", self.namespace, name,
                     "absent: built-in flavors only" if data is None else f"read: {len(data)} entries")
            self.load_flavors(data)
            await self.revisit_all()

    def load_flavors(self, data: Mapping[str, str] | None) -> None:
        """Built-ins plus the admin's entries; a bad entry keeps the previous catalog and says why."""
        try:
            self.flavors = load_catalog(data)
        except FlavorError as exc:
            log.error("flavor ConfigMap %s/%s ignored: %s", self.namespace, self.cfg.flavor_configmap_name, exc)
