"""What one operator process holds, wired together: the API connection, the indices the watch streams fill,
the reconciler, the flavor catalog's watch and the gateways' counts loop. The parts live in their modules
(slim, lookup, gateway_counts, flavor_watch, ghosts, served); this one connects them and forgets a service."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inference_operator import metrics
from inference_operator.config import OperatorConfig
from inference_operator.kube.client import Kube
from inference_operator.policies.handover import handover_manager
from inference_operator.reconcile.reconciler import Reconciler
from inference_operator.runtime.adapters import AdapterLoop, lora_targets
from inference_operator.runtime.flavor_watch import FlavorWatch
from inference_operator.runtime.gateway_counts import GatewayCounts, LedgerStore
from inference_operator.runtime.ghosts import Ghosts
from inference_operator.runtime.indices import SERVICES, Indices
from inference_operator.runtime.leader import Fenced
from inference_operator.runtime.lookup import children_of, current
from inference_operator.runtime.served import HTTPROUTES, INFERENCEPOOLS, OptionalApi, ServedApis
from inference_operator.runtime.slim import INDEX_NAMES
from inference_operator.runtime.watchfeed import Listings

log = logging.getLogger(__name__)
# The first listing of the optional APIs' CRDs, awaited at start (served.py); past it, the watches go on.
SERVED_LIST_SECONDS = 30.0


@dataclass
class OperatorState:
    kube: Kube
    cfg: OperatorConfig
    namespace: str
    # With leader election: writes go out only while the Lease may still be held (leader.Fenced), from the
    # reconciler's first write on. None: every write goes out.
    may_write: Callable[[], bool] | None = None
    reconciler: Reconciler = field(init=False)
    flavor_watch: FlavorWatch = field(init=False)
    counts: GatewayCounts = field(init=False)
    adapters: AdapterLoop = field(init=False)
    apis: ServedApis = field(default_factory=ServedApis)

    indices: Indices = field(default_factory=lambda: Indices(INDEX_NAMES, on_change=metrics.INDEXED.set))
    listings: Listings = field(default_factory=Listings)  # which watch streams have listed (watchfeed.py)
    names: dict[str, tuple[str, str]] = field(default_factory=dict)  # uid -> (namespace, name)
    ghosts: Ghosts = field(default_factory=Ghosts)
    watching: set[str] = field(default_factory=set)  # kinds past their first listing
    listed: set[str] = field(default_factory=set)  # kinds whose first listing is in the indices

    def __post_init__(self) -> None:
        port: Any = self.kube
        if self.may_write is not None:
            port = Fenced(self.kube, self.may_write)  # checked on the call
            self.kube.write_gate = self.may_write  # and again when the request is about to go out
        self.flavor_watch = FlavorWatch(self.kube, self.namespace, self.cfg.flavor_configmap_name,
                                        changed=self.revisit_all)
        self.reconciler = Reconciler(port, self.cfg, catalog=lambda: self.flavor_watch.flavors,
                                     gateway_api=lambda: self.apis(HTTPROUTES),
                                     inference_pool=lambda: self.apis(INFERENCEPOOLS), wakeup=self.revisit,
                                     services_of=self.service_uids, adapters=lambda uid: self.adapters.of(uid))
        self.adapters = AdapterLoop(self.cfg, self.lora_targets, self.revisit, self.may_write)
        self.counts = GatewayCounts(self.cfg, self.kube, LedgerStore(self.kube, self.namespace,
                                                                     self.cfg.counts_ledger_name), self)

    def lora_targets(self) -> list[Any]:
        """Every model with LoRA on, with its service and pods (ghosts left out), for the adapters loop."""
        return lora_targets(self.indices[SERVICES], self.indices["children_pods"],
                            lambda parents: current(self.ghosts.live(parents)))

    def service_uids(self, namespace: str) -> list[str]:
        """The uids of the services the indices hold in a namespace."""
        return [parent["metadata"]["uid"] for (ns, _), parents in self.indices[SERVICES].items() if ns == namespace
                for parent in parents]

    @property
    def field_managers(self) -> tuple[str, str]:
        """The operator's own field managers: its writes are not "another writer"'s."""
        return (self.cfg.field_manager, handover_manager(self.cfg.field_manager))

    def forget_service(self, uid: str) -> None:
        """The service is gone (its DELETED, its namespace's stream ended, or found a ghost): every part of
        the process that keeps something per service lets it go here."""
        self.reconciler.forget_service(uid)
        self.adapters.forget(uid)
        self.names.pop(uid, None)

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
                self.forget_service(uid)
                continue
            for parent in self.indices[SERVICES].get(key, []):
                self.reconciler.forget_child(parent["metadata"]["uid"], obj)
        for namespace, name in sorted(affected):
            await self.revisit(namespace, name)

    @classmethod
    async def start(cls, environ: Mapping[str, str], may_write: Callable[[], bool] | None = None) -> OperatorState:
        cfg = OperatorConfig.from_env(environ)
        kube = await Kube.connect(cfg.field_manager)
        namespace = cfg.flavor_configmap_namespace or environ.get("POD_NAMESPACE", "inference-system")
        state = cls(kube=kube, cfg=cfg, namespace=namespace, may_write=may_write)
        state.apis.start(kube, state.api_changed)
        if not await state.apis.wait_listed(SERVED_LIST_SECONDS):
            log.warning("the CRDs of Gateway API and InferencePool could not be listed in %.0fs: neither is "
                        "written until they are", SERVED_LIST_SECONDS)
        log.info("gateway API %s, InferencePool %s; flavor ConfigMap %s/%s",
                 "served" if state.apis(HTTPROUTES) else "absent",
                 "served" if state.apis(INFERENCEPOOLS) else "absent", namespace, cfg.flavor_configmap_name)
        return state

    def start_loops(self) -> None:
        """The gateways' counts loop (when configured), the flavor ConfigMap's watch, the adapters loop."""
        self.counts.start()
        self.flavor_watch.start()
        self.adapters.start()

    async def close(self) -> None:
        self.apis.stop()
        self.counts.stop()
        self.flavor_watch.stop()
        self.adapters.stop()
        await self.reconciler.close()
        await self.kube.close()
