"""Applying one service's desired children: minimal writes, drift undone, replicas handed over.

A child is applied when the fingerprint of its desired manifest differs from the one this process
last applied (or, when it applied none, from the one the child carries: the watch may lag behind our
own writes), or when the live child no longer holds a value the operator sets (drift.py: a hand edit
is put back, with an Event); each live version is judged once per desired digest, so a watch that
lags behind our own write never causes a second one. A child is deleted once when it is no longer
wanted. A Deployment's replicas pass to and from its HPA without a dip (handover.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from inference_operator.builders.service import keep_address
from inference_operator.policies.drift import WRITERS, drifted, restorers_of
from inference_operator.policies.handover import handover_manager, handover_manifest, handover_replicas, hpa_for
from inference_operator.ports import ApiError, Children, KubePort
from inference_operator.reconcile.child_memory import DELETED, ChildKey, ChildMemory, child_key

log = logging.getLogger(__name__)
FINGERPRINT = "inference.io/applied-fingerprint"
LIVE_SPEC = "liveSpec"  # key of a slimmed child: its live spec as compact JSON (state.slim)


def behind_in(desired: Sequence[Mapping[str, Any]], children: Children) -> set[str]:
    """Names of the desired Deployments that `children` (a watch's view) do not show with their desired
    fingerprint: their counts describe an older spec, or none yet."""
    seen = {o["metadata"]["name"]: o["metadata"].get("annotations", {}).get(FINGERPRINT)
            for o in children.objects if o["kind"] == "Deployment"}
    return {m["metadata"]["name"] for m in desired
            if m["kind"] == "Deployment" and seen.get(m["metadata"]["name"]) != stamped(m)[1]}


def live_spec(live: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The live spec a slimmed child keeps as JSON (state.slim), or None when not known."""
    if live is None or LIVE_SPEC not in live:
        return None
    try:
        spec = json.loads(live[LIVE_SPEC])
    except ValueError:
        return None
    return spec if isinstance(spec, dict) else None


def fingerprint(manifest: Mapping[str, Any]) -> str:
    """Stable digest of a desired manifest: equal digests mean nothing to apply."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:20]


def stamped(manifest: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The manifest with its fingerprint annotation (part of what is applied, owned by the operator)."""
    digest = fingerprint(manifest)
    meta = dict(manifest["metadata"])
    meta["annotations"] = {**meta.get("annotations", {}), FINGERPRINT: digest}
    return {**manifest, "metadata": meta}, digest


async def every(writes: Sequence[Awaitable[None]]) -> None:
    """Until every write is answered; then the first failure, if any, is raised (in the order given)."""
    if len(writes) == 1:  # no task for a lone write
        await writes[0]
        return
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


async def nothing() -> None:
    return None


async def every_but_first(first: Sequence[Coroutine[Any, Any, None]], then: Callable[[], Awaitable[None]],
                          meanwhile: Sequence[Coroutine[Any, Any, None]]) -> None:
    """The writes `first` and `meanwhile` together; `then()` once every one of `first` is answered, whether or not
    those of `meanwhile` are. Until all are answered, as `every`: then the first failure is raised (a failure of
    `first` skips `then`). Cancelled, the writes still in flight are cancelled with it."""
    if not meanwhile:  # most passes: no task
        await every(first)
        await then()
        return
    answered = [asyncio.ensure_future(write) for write in first]  # tasks: sent in the order given, first first
    rest = [asyncio.ensure_future(write) for write in meanwhile]
    try:
        await every(answered)
        await then()
    except asyncio.CancelledError:
        for task in (*answered, *rest):
            task.cancel()
        raise
    except Exception:
        await asyncio.gather(*rest, return_exceptions=True)  # answered before the pass fails: remembered as landed
        raise
    await every(rest)


@dataclass(frozen=True, slots=True)
class Wanted:
    """One desired child as a pass applies it: its manifest, that manifest stamped with its digest, its key."""

    manifest: Mapping[str, Any]
    body: Mapping[str, Any]  # the manifest with its fingerprint annotation (stamped)
    digest: str
    key: ChildKey

    @classmethod
    def of(cls, manifest: Mapping[str, Any]) -> Wanted:
        body, digest = stamped(manifest)
        return cls(manifest, body, digest, child_key(manifest))


Handover = tuple[dict[str, Any], str]  # the handover manager's manifest, the live version it answers


@dataclass
class ChildSync:
    """Applies a service's children; what it remembers of them is handed in (a ChildMemory per service)."""

    kube: KubePort
    field_manager: str

    async def sync(self, parent: Mapping[str, Any], desired: list[dict[str, Any]], children: Children,
                   memory: ChildMemory, deployments_written: Callable[[], None] = lambda: None,
                   routable: Callable[[], Awaitable[None]] = nothing) -> set[str]:
        """Apply what differs or drifted, delete what is no longer wanted; returns the names of
        Deployments the watch does not yet show as desired (their counts describe an older spec).

        HPAs no longer wanted go first: one left running would rescale a Deployment that is about to
        get a fixed count. Then the Deployments' writes, together: they start instances, and sent with the
        other children a new service's Deployment shares the API server's CPU with them and appears later
        (p99 of a Deployment's appearance 50 ms alone, 150-225 ms beside the other children, at 10 new services
        a second). Then, once every one is answered, the other children's writes together: one after the other,
        a new service's HTTPRoute in a loaded API server comes seconds after its Service. An HPA so comes after
        the Deployment it scales. A Deployment whose replicas pass to its HPA is handed over first. A failed
        write fails the pass once the others of its wave are answered (what landed is remembered: the retry
        writes only the rest). `deployments_written` is called once the Deployments' wave is answered (the
        pass's slot may go on); `routable` is awaited once the Services of that second wave are answered too,
        while its other writes (HTTPRoute, InferencePool, HPA) are still in flight: from then on the gateway
        can route to the models' pods, and a status saying so need not wait for those (a route that an admission
        policy refuses, or that a loaded API server holds, does not hold `running` back)."""
        observed = {child_key(o): o for o in children.objects}
        wanted = {child_key(m) for m in desired}
        await self._delete_unwanted(parent, observed, wanted, memory, only="HorizontalPodAutoscaler")
        await every(self._writes_of(parent, desired, observed, memory, {"Deployment"}))  # most passes write nothing
        deployments_written()
        services = self._writes_of(parent, desired, observed, memory, {"Service"})
        others = self._writes_of(parent, desired, observed, memory, {"Service"}, but=True)
        await every_but_first(services, routable, others)
        await self._delete_unwanted(parent, observed, wanted, memory)
        return behind_in(desired, children)

    def _writes_of(self, parent: Mapping[str, Any], desired: Sequence[Mapping[str, Any]],
                   observed: Mapping[ChildKey, Any], memory: ChildMemory, kinds: set[str],
                   but: bool = False) -> list[Coroutine[Any, Any, None]]:
        """The writes due of the desired children of these kinds (of every other kind: `but`)."""
        writes = [self._write_of(parent, manifest, desired, observed.get(child_key(manifest)), memory)
                  for manifest in desired if (manifest["kind"] in kinds) != but]
        return [write for write in writes if write is not None]

    def _write_of(self, parent: Mapping[str, Any], manifest: Mapping[str, Any], desired: Sequence[Mapping[str, Any]],
                  live: Mapping[str, Any] | None, memory: ChildMemory) -> Coroutine[Any, Any, None] | None:
        """The writes one child needs (handover, apply, or the restore of a drifted field), or None."""
        child = Wanted.of(manifest)
        seen = (live or {}).get("metadata", {}).get("annotations", {}).get(FINGERPRINT)
        if child.key[1] == "Service" and live is not None and seen != child.digest:  # applied from another manifest
            child = Wanted.of(keep_address(manifest, live_spec(live)))
        applied = memory.applied_of(child.key)
        due = child.digest != (seen if applied is None else applied)  # our last write wins over a lagging watch
        handover = self._handover_of(memory, child.manifest, desired, live, due) \
            if manifest["kind"] == "Deployment" else None
        if due:
            return self._apply(parent, child, live, memory, handover)
        restored = self._drifted(memory, child, live)
        if not restored and handover is None:
            return None
        return self._restore(parent, child, live, memory, handover, restored)

    async def _apply(self, parent: Mapping[str, Any], child: Wanted, live: Mapping[str, Any] | None,
                     memory: ChildMemory, handover: Handover | None) -> None:
        """The child is due: applied. An apply whose answer was lost is read first: when it landed, only a
        drift is put back."""
        await self._hand_over(child, memory, handover)
        known = memory.records.get(child.key)
        if known is None or known.uncertain != child.digest or not await self._landed(parent, child, memory):
            await self._apply_once(child, memory)
            memory.record_of(child.key).applied = child.digest
            return
        await self._put_back(parent, child, live, memory, self._drifted(memory, child, live))

    async def _restore(self, parent: Mapping[str, Any], child: Wanted, live: Mapping[str, Any] | None,
                       memory: ChildMemory, handover: Handover | None, restored: list[str]) -> None:
        """The child is applied already: its replicas handed over, its drifted fields (`restored`) put back."""
        await self._hand_over(child, memory, handover)
        await self._put_back(parent, child, live, memory, restored)

    async def _hand_over(self, child: Wanted, memory: ChildMemory, handover: Handover | None) -> None:
        if handover is not None:
            await self.kube.apply(handover[0], field_manager=handover_manager(self.field_manager))
            memory.record_of(child.key).handed = handover[1]

    async def _put_back(self, parent: Mapping[str, Any], child: Wanted, live: Mapping[str, Any] | None,
                        memory: ChildMemory, restored: Sequence[str]) -> None:
        """The operator's values of the drifted fields applied again, and an Event saying so."""
        if restored and live is not None:
            await self.kube.apply(child.body)
            memory.record_of(child.key).judged = (live["metadata"].get("resourceVersion", ""), child.digest)
            await self._announce_restored(parent, child.manifest, restored, live)

    async def _apply_once(self, child: Wanted, memory: ChildMemory) -> None:
        """Apply; when the answer is lost (a reset connection, a timeout) the write may have landed all the
        same: remember it as uncertain, so the retry reads before writing again."""
        try:
            await self.kube.apply(child.body)
        except ApiError:
            memory.unset_uncertain(child.key)  # the API server answered: it was not applied
            raise
        except Exception:
            memory.record_of(child.key).uncertain = child.digest
            raise
        memory.unset_uncertain(child.key)

    async def _landed(self, parent: Mapping[str, Any], child: Wanted, memory: ChildMemory) -> bool:
        """Whether an apply whose answer was lost did land (the child carries its fingerprint): one read
        instead of a second write, while the watch may still lag behind (a slow or lossy link)."""
        key = child.key
        live = await self.kube.read(key[0], key[1], parent["metadata"]["namespace"], key[2])
        memory.unset_uncertain(key)
        if live is not None and (live.get("metadata") or {}).get("annotations", {}).get(FINGERPRINT) == child.digest:
            memory.record_of(key).applied = child.digest
            return True
        return False

    async def _delete_unwanted(self, parent: Mapping[str, Any], observed: Mapping[ChildKey, Any],
                               wanted: set[ChildKey], memory: ChildMemory, only: str | None = None) -> None:
        applied = {key for key, record in memory.records.items() if record.applied is not None}
        for key in (set(observed) | applied) - wanted:
            if only is not None and key[1] != only:
                continue
            if memory.applied_of(key) == DELETED:  # deleted already; forget it once the watch agrees
                if key not in observed:
                    memory.unset_applied(key)
                continue
            await self.kube.delete(key[0], key[1], parent["metadata"]["namespace"], key[2])
            memory.record_of(key).applied = DELETED

    def _handover_of(self, memory: ChildMemory, deployment: Mapping[str, Any],
                     desired: Sequence[Mapping[str, Any]], live: Mapping[str, Any] | None,
                     dropping: bool) -> Handover | None:
        """Before the main manifest drops `replicas` (or when the live count left the HPA's bounds), a second
        field manager applies the count that should hold, so the field is never unowned: that manifest and
        the live version it answers, or None when nothing is due."""
        replicas = handover_replicas(deployment, hpa_for(deployment, desired), live, self.field_manager,
                                     dropping)
        if replicas is None or live is None:
            return None
        version = live["metadata"].get("resourceVersion", "")
        known = memory.records.get(child_key(deployment))
        if version and known is not None and known.handed == version:
            return None  # answered already; the watch has not shown the result yet
        return handover_manifest(deployment, replicas), version

    @staticmethod
    def _drifted(memory: ChildMemory, child: Wanted, live: Mapping[str, Any] | None) -> list[str]:
        """The fields of the live child that lost the value the operator set (each live version is
        judged once per desired digest, and a drifted one counts as judged only once it was restored, so a
        failed restore is retried; a child the watch shows before our last write is not judged)."""
        if live is None or LIVE_SPEC not in live:
            return []
        meta = live["metadata"]
        if meta.get("annotations", {}).get(FINGERPRINT) != child.digest:
            return []
        version = (meta.get("resourceVersion", ""), child.digest)
        known = memory.records.get(child.key)
        if known is not None and known.judged == version:
            return []
        spec = live_spec(live)
        found = drifted(child.body, {"metadata": meta, "spec": spec}) if spec is not None else []
        if not found:
            memory.record_of(child.key).judged = version
        return found

    async def _announce_restored(self, parent: Mapping[str, Any], manifest: Mapping[str, Any],
                                 paths: Sequence[str], live: Mapping[str, Any]) -> None:
        writers = restorers_of(live.get(WRITERS), paths)
        message = (f"restored {manifest['kind']} {manifest['metadata']['name']}: {', '.join(paths)} "
                   f"(changed by {', '.join(writers) or 'another writer'})")
        meta = parent["metadata"]
        log.info("%s/%s: %s", meta["namespace"], meta["name"], message)
        await self.kube.post_event(parent, "Warning", "DriftRestored", message)
