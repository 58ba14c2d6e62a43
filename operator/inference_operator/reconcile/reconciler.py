"""The reconciler: what one operator process remembers between passes, and where a pass is asked for.

No kopf here: handlers hand in the parent body and its children as the watch caches (kopf indices)
hold them, and a Kube port that writes. Writes are minimal: children are applied only when they
differ or drifted (sync.py), and status is written only when it differs from the last status
written or stored (status_writer.py). The work is the parts': a pass (passes.py) runs on a pass slot
(slots.py), announces its transition (announce.py) and keeps its bookkeeping in the service's record
(record.py); this class makes and forgets the records and wires the parts together.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from inference_operator.catalog.flavors import Flavor
from inference_operator.config import OperatorConfig
from inference_operator.policies.concurrency import Decisions
from inference_operator.policies.idle import ActivityTracker
from inference_operator.ports import Children, KubePort
from inference_operator.reconcile.announce import Announcer
from inference_operator.reconcile.passes import guarded_pass
from inference_operator.reconcile.record import ServiceRecord
from inference_operator.reconcile.slots import PASSES_AT_ONCE, PassSlots
from inference_operator.reconcile.status_writer import count_state, previous_status
from inference_operator.reconcile.sync import ChildSync
from inference_operator.reconcile.timers import RETRY_DELAYS, Wakeup
from inference_operator.status.adapters import ModelAdapters

__all__ = ["PASSES_AT_ONCE", "RETRY_DELAYS", "Reconciler"]  # the slots and retry delays a Reconciler starts with


@dataclass
class Reconciler:
    """Holds what one operator process remembers between passes: a ServiceRecord per service uid."""

    kube: KubePort  # read at each write (handlers put a fenced one in place once the process leads)
    cfg: OperatorConfig
    catalog: Callable[[], Mapping[str, Flavor]]
    gateway_api: Callable[[], bool] = lambda: False
    inference_pool: Callable[[], bool] = lambda: False
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    wakeup: Wakeup | None = None
    retry_delays: Sequence[float] = RETRY_DELAYS
    activity: ActivityTracker | None = None  # the gateways' per-model activity (scale to zero); None: not read
    decisions: Decisions = field(default_factory=Decisions)  # replicas of the models scaled on concurrency
    services: dict[str, ServiceRecord] = field(default_factory=dict)
    services_of: Callable[[str], Iterable[str]] = lambda namespace: ()  # uids of a namespace's known services
    # LoRA adapters on the engines of a service's models (runtime/adapters.py), by service uid
    adapters: Callable[[str], Mapping[str, ModelAdapters]] = lambda uid: {}
    refused: set[str] = field(default_factory=set)  # uids of services whose namespace refused a write
    children: ChildSync = field(init=False)
    slots: PassSlots = field(init=False)
    announcer: Announcer = field(init=False)

    def __post_init__(self) -> None:
        self.children = ChildSync(self.kube, self.cfg.field_manager)
        self.slots = PassSlots(self.services, self._guarded_pass, self._in_terminating_namespace)
        self.announcer = Announcer(self.note_terminating)

    def _record(self, uid: str) -> ServiceRecord:
        """The one place a service's record is made."""
        record = self.services.get(uid)
        if record is None:
            record = self.services[uid] = ServiceRecord()
        return record

    def forget_service(self, uid: str) -> None:
        """The service is deleted: drop everything this process remembers of it (the one place a record goes)."""
        record = self.services.pop(uid, None)
        self.refused.discard(uid)
        if self.activity is not None:
            self.activity.forget(uid)
        self.decisions.forget(uid)
        if record is not None:
            record.cancel_timers()
            count_state(record, None)
            self.slots.forgotten(record)

    def forget_child(self, owner_uid: str, obj: Mapping[str, Any]) -> None:
        """A child is gone (deleted by hand or by us): the next pass must not trust its fingerprint."""
        record = self.services.get(owner_uid)
        if record is not None:
            record.children.forget(obj)

    def forget_kind(self, kind: str) -> None:
        """Every child of a kind is gone (its CRD was removed): no service remembers applying one."""
        for record in self.services.values():
            record.children.forget_kind(kind)

    def last_status(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """The status this process last wrote for the service, else the one the body carries."""
        record = self.services.get(body["metadata"]["uid"])
        return previous_status(record, body) if record is not None else body.get("status") or {}

    def counts_of(self, uid: str) -> Mapping[str, int] | None:
        record = self.services.get(uid)
        return record.counts if record is not None else None

    def set_counts(self, uid: str, counts: Mapping[str, int]) -> None:
        """The gateway counts status shows from the next pass on (state.py reads them)."""
        self._record(uid).counts = dict(counts)

    def submit(self, body: Mapping[str, Any], children: Children) -> asyncio.Task[None] | None:
        """A pass for the service, coalesced, run as the operator's own task; the caller (a kopf event handler)
        returns at once (slots.py). Not awaited by the handler: a handler that awaited its pass would keep
        kopf's state of that event (its raw body, patch and the events queued behind it for the same object)
        until the pass ended. Returns the task it started, if it started one."""
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            return None  # being deleted: the garbage collector removes the children
        if self._in_terminating_namespace(meta):
            return None  # its namespace is being deleted, children, status and all: nothing to write
        return self.slots.submit(meta["uid"], self._record(meta["uid"]), (body, children))

    async def reconcile(self, body: Mapping[str, Any], children: Children) -> None:
        """submit, then wait for the passes it started (the folded ones included): for callers that must
        see a pass's writes (tests, a caller that reports them)."""
        task = self.submit(body, children)
        if task is not None:
            await asyncio.shield(task)

    async def settled(self) -> None:
        """Until no pass runs or waits (tests; a caller that must see every pass's writes)."""
        await self.slots.settled()

    async def announced(self) -> None:
        """Until the Events of transitions so far are posted (tests; a caller that must see them)."""
        await self.announcer.announced()

    async def close(self) -> None:
        """Stop the passes and the Events not yet posted (shutting down). No pass starts after this: a pass
        cancelled here frees its slot, and the queued service that slot would go to stays queued."""
        self.slots.closing = True
        tasks = [*self.slots.drains, *self.announcer.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # What a pass calls back (passes.PassHost).

    def known(self, uid: str, record: ServiceRecord) -> bool:
        """False once the service was forgotten (deleted) while a pass held its record."""
        return self.slots.known(uid, record)

    def deployments_written(self, uid: str, record: ServiceRecord) -> None:
        self.slots.deployments_written(uid, record)

    def announce(self, body: Mapping[str, Any], before: str | None, status: Mapping[str, Any]) -> None:
        self.announcer.announce(self.kube, body, before, status)

    def note_terminating(self, meta: Mapping[str, Any]) -> None:
        """A write in the service's namespace was refused because the namespace is being deleted: from now
        on, passes of this service and of every service of that namespace known now are skipped (a namespace
        being deleted accepts no new service; one created again later has services with new uids)."""
        self.refused.add(meta["uid"])
        self.refused |= set(self.services_of(meta.get("namespace", "")))

    def _in_terminating_namespace(self, meta: Mapping[str, Any]) -> bool:
        """Refused itself, or known in its namespace when another service there was refused: a namespace's
        deletion then costs one refused pass, not a status write and an Event for each of its services
        while their children go."""
        return meta["uid"] in self.refused

    async def _guarded_pass(self, uid: str, body: Mapping[str, Any], children: Children,
                            record: ServiceRecord) -> None:
        await guarded_pass(self, uid, body, children, record)

    # The slots' counters and queue, as tests set and read them.

    @property
    def free_passes(self) -> int:
        return self.slots.free_passes

    @free_passes.setter
    def free_passes(self, value: int) -> None:
        self.slots.free_passes = value

    @property
    def free_finishing(self) -> int:
        return self.slots.free_finishing

    @free_finishing.setter
    def free_finishing(self, value: int) -> None:
        self.slots.free_finishing = value

    @property
    def queued(self) -> collections.deque[str]:
        return self.slots.queued

    @property
    def drains(self) -> set[asyncio.Task[None]]:
        return self.slots.drains
