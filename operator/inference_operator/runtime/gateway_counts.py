"""The gateways' request counts: every interval, each gateway process is read over an HTTP session of this
loop's own, the readings are merged into the counts ledger (a ConfigMap, so totals outlive a restart of the
operator or of a gateway), and each service's totals go to the reconciler, which writes them into status.
The same readings say which models were idle, which scales them to zero (policies/idle.py), and how many
requests each model has in flight, which scales the models scaled on concurrency (policies/concurrency.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from inference_operator.api.v1alpha1 import KIND, ScalingMetric, scaling_metric
from inference_operator.builders.labels import MANAGED_BY_LABEL, MANAGER
from inference_operator.config import OperatorConfig
from inference_operator.kube.client import Kube
from inference_operator.policies.concurrency import ModelKey
from inference_operator.policies.counts import Ledger, counts_urls
from inference_operator.policies.idle import ActivityTracker, SpecCache, may_sleep, pass_due, shown_idle
from inference_operator.ports import ApiError
from inference_operator.reconcile.reconciler import Reconciler
from inference_operator.reconcile.scaling import settings_of
from inference_operator.runtime.ghosts import Ghosts
from inference_operator.runtime.indices import SERVICES, Indices
from inference_operator.runtime.lookup import current

log = logging.getLogger(__name__)
# While a model is idle (scaled to zero), the gateways are read this often: a held request waits for it.
WAKE_READ_SECONDS = 1.0
Reading = tuple[str, dict[str, Any]]  # (gateway instance id, its cumulative counts)


class Services(Protocol):
    """What the loop reads of the operator's state (runtime/state.py): the services, and a pass for one."""

    indices: Indices
    ghosts: Ghosts
    names: dict[str, tuple[str, str]]  # uid -> (namespace, name): the gateways count by uid
    listed: set[str]  # kinds whose first listing is in the indices
    reconciler: Reconciler

    async def revisit(self, namespace: str, name: str) -> None: ...


def on_concurrency(body: Mapping[str, Any]) -> bool:
    """A service body with a model scaled on concurrency (a cheap look at the raw spec, as may_sleep)."""
    models = (body.get("spec") or {}).get("models")
    return isinstance(models, list) and any(
        isinstance(m, Mapping) and isinstance(m.get("scaling"), Mapping) and m["scaling"].get("enabled") is True
        and scaling_metric(m.get("runtime"), m["scaling"].get("metric"),
                           "metrics" in m["scaling"] or "targetCPUUtilization" in m["scaling"])
        == ScalingMetric.CONCURRENCY for m in models)


@dataclass
class LedgerStore:
    """The ledger's ConfigMap in the operator's namespace."""

    kube: Kube
    namespace: str
    name: str

    @property
    def path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/configmaps/{self.name}"

    async def load(self) -> Ledger | None:
        """The stored ledger; None where there is none yet."""
        try:
            return Ledger.from_data((await self.kube.get_json(self.path)).get("data"))
        except ApiError as err:
            if err.status != 404:
                raise
            return None

    async def save(self, ledger: Ledger) -> None:
        await self.kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": self.name, "namespace": self.namespace,
            "labels": {MANAGED_BY_LABEL: MANAGER}}, "data": ledger.to_data()})


@dataclass
class GatewayCounts:
    """The loop over the gateways' counts, while one is configured (a fixed URL or the gateways' Service)."""

    cfg: OperatorConfig
    kube: Kube
    store: LedgerStore
    services: Services
    sleepers: SpecCache = field(default_factory=SpecCache)  # parsed specs of services that may scale to zero
    scaled: SpecCache = field(default_factory=SpecCache)  # parsed specs of services scaled on concurrency
    ledger: Ledger | None = None  # read from its ConfigMap at the first round
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.cfg.gateway_counts_url or self.cfg.gateway_counts_service:
            self.services.reconciler.activity = ActivityTracker()
            self.task = asyncio.get_running_loop().create_task(self._forever())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def _forever(self) -> None:
        """Every interval: read every gateway process, store the ledger, revisit services whose totals moved."""
        async with self._session() as session:
            while True:
                sleeping = False
                try:
                    urls = await self._sources()
                    readings = [r for r in await asyncio.gather(*(self._read(session, url) for url in urls)) if r]
                    now = time.time()
                    sleeping = await self._idle_or_wake(readings, now, complete=len(readings) == len(urls))
                    await self._scale(now)
                    await self._record(readings, now)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the API or a gateway is away: try again next interval
                    log.warning("gateway counts: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(min(self.cfg.counts_interval_seconds, WAKE_READ_SECONDS) if sleeping
                                    else self.cfg.counts_interval_seconds)

    def _session(self) -> aiohttp.ClientSession:
        """The gateways' counts endpoint asks for the operator's token when one is configured."""
        token = None
        if self.cfg.gateway_counts_token_file:
            with open(self.cfg.gateway_counts_token_file, encoding="utf-8") as handle:
                token = handle.read().strip()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5), headers=headers)

    async def _record(self, readings: list[Reading], now: float) -> None:
        """Merge a round's readings into the ledger, store it if it moved, hand the totals over."""
        fresh = False
        if self.ledger is None:
            self.ledger, fresh = await self._load_ledger(readings, now)
        ledger = self.ledger
        live = self._live_uids()
        changed = any([ledger.merge(instance, reading, now, live) for instance, reading in readings])
        changed = fresh or changed  # a new ledger is stored at once: a restart must not re-add readings
        changed = ledger.retire(now) or changed
        changed = (live is not None and ledger.prune(live)) or changed
        if changed:
            await self.store.save(ledger)
        await self._apply_totals(ledger.totals())

    async def _idle_or_wake(self, readings: list[Reading], now: float, complete: bool) -> bool:
        """Feed the round's per-model activity to the tracker; a pass for each service with a model to idle
        or to wake (idle.py). True while some model is idle: the next round comes sooner."""
        reconciler = self.services.reconciler
        tracker = reconciler.activity
        if tracker is None:
            return False
        tracker.observe(readings, now, complete)
        sleeping, seen = False, set()
        for key, parents in list(self.services.indices[SERVICES].items()):
            for parent in current(self.services.ghosts.live(list(parents))):
                if not may_sleep(parent):
                    continue
                uid = parent["metadata"]["uid"]
                seen.add(uid)
                sleeping = sleeping or bool(shown_idle(parent))
                svc = self.sleepers.get(parent)
                if svc is not None and pass_due(svc, uid, reconciler.last_status(parent), tracker, now):
                    await self.services.revisit(*key)
        self.sleepers.keep(seen)
        return sleeping

    async def _scale(self, now: float) -> None:
        """Feed each model scaled on concurrency its requests in flight (a round that read every gateway
        only: a missing one would understate them); a pass for each service whose decided count moved."""
        reconciler = self.services.reconciler
        tracker, decisions = reconciler.activity, reconciler.decisions
        if tracker is None or not tracker.trusted:
            return
        kept: set[ModelKey] = set()
        for key, parents in list(self.services.indices[SERVICES].items()):
            for parent in current(self.services.ghosts.live(list(parents))):
                svc = self.scaled.get(parent) if on_concurrency(parent) else None
                if svc is None:
                    continue
                uid, moved = parent["metadata"]["uid"], False
                for model in (m for m in svc.spec.models if m.scales_on_concurrency):
                    kept.add((uid, model.name))
                    activity = tracker.get(uid, model.name)
                    before = decisions.get((uid, model.name))
                    after = decisions.decide((uid, model.name), settings_of(model), now,
                                             activity.inflight if activity is not None else 0)
                    moved = moved or after != before
                if moved:
                    await self.services.revisit(*key)
        decisions.keep(kept)
        self.scaled.keep({uid for uid, _ in kept})

    def _live_uids(self) -> set[str] | None:
        """The uids of the services that exist, once the first listing of services is complete (kopf
        calls event handlers only after every index is filled); None before."""
        if KIND not in self.services.listed:
            return None
        return {parent["metadata"]["uid"] for parents in self.services.indices[SERVICES].values()
                for parent in parents}

    async def _sources(self) -> list[str]:
        """The /-/counts URL of every gateway process: the fixed URL, or one per endpoint of the internal Service."""
        if self.cfg.gateway_counts_url:
            return [self.cfg.gateway_counts_url]
        assert self.cfg.gateway_counts_service is not None
        namespace, name = self.cfg.gateway_counts_service.split("/", 1)
        data = await self.kube.get_json(f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                                        [("labelSelector", f"kubernetes.io/service-name={name}")])
        return counts_urls(data.get("items") or [], self.cfg.gateway_counts_port)

    async def _read(self, session: aiohttp.ClientSession, url: str) -> Reading | None:
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

    async def _load_ledger(self, readings: list[Reading], now: float) -> tuple[Ledger, bool]:
        """The stored ledger; without one, a new ledger whose base is what status already holds (True:
        new, not stored yet)."""
        stored = await self.store.load()
        if stored is not None:
            return stored, False
        totals = {}
        for parents in self.services.indices[SERVICES].values():
            for parent in parents:
                status = parent.get("status") or {}
                totals[parent["metadata"]["uid"]] = {f: int(status.get(f) or 0)
                                                     for f in ("invocationTimes", "failedTimes")}
        log.info("gateway counts: no ledger yet; starting one from the counts in status")
        return Ledger.start(totals, readings, now), True

    async def _apply_totals(self, totals: Mapping[str, Mapping[str, int]]) -> None:
        """Hand each service's totals to the reconciler; revisit those whose status does not show them yet."""
        reconciler = self.services.reconciler
        for uid, counts in totals.items():
            key = self.services.names.get(uid)
            if key is None or reconciler.counts_of(uid) == counts:
                continue
            for parent in self.services.indices[SERVICES].get(key, []):
                if parent.get("metadata", {}).get("uid") != uid:
                    continue
                reconciler.set_counts(uid, counts)
                status = parent.get("status") or {}
                if any(int(status.get(f) or 0) != counts[f] for f in counts):
                    await self.services.revisit(*key)
