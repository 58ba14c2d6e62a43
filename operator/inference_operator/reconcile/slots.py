"""Where passes run: a bounded number of pass slots, a queue of services waiting for one, and finishing
slots that passes past their Deployments move to, so a queued service's Deployments need not wait for
other services' Services.

A service's passes are coalesced: the events of a service and its children that arrive while a pass of it
runs are folded into one more pass with the latest of them (level-triggered: the latest view is all a pass
needs). A service's record says where its passes stand (record.PassState).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inference_operator import metrics, trace
from inference_operator.ports import Children
from inference_operator.reconcile.record import PassState, ServiceRecord

# Passes at once. Every pass holds its built children and requests until its writes are answered, so a burst
# does not get a pass per service. A pass waits at the API connections for each of its writes, Deployments
# first (kube.gate.DEPLOYMENTS): with too few slots the last services of a burst cannot start a pass to have their
# Deployments written. For a burst of 1,000 headless services, 1,024 slots write every Deployment within 18 s
# (512 slots: 31 s) for about 15 MB more peak RSS. Services beyond it wait as a uid in `queued` (their later
# events fold into their one next pass), not as a suspended event handler each holding kopf's per-event state.
PASSES_AT_ONCE = 1024
# Passes past their Deployments that gave their slot to a queued service finish (Services, route, status) on
# one of these. A pass waits for its Service (the API server's ClusterIP lock, kube.gate.SERVICE_APPLIES_AT_ONCE),
# and Services go out at 5-12 a second while a burst is created: without these, a queued service's Deployments
# wait for other services' Services (a burst of 2,000: every Deployment after 97 s). Bounded so that the
# passes alive (what they hold) stay bounded: at most the sum of both.
FINISHING_PASSES_AT_ONCE = 1024

OnePass = Callable[[str, Mapping[str, Any], Children, ServiceRecord], Awaitable[None]]  # uid, body, children


def drop_latest(record: ServiceRecord) -> None:
    """The service's waiting view is dropped: nothing will run it."""
    if record.latest is not None:
        record.latest = None
        metrics.BACKLOG.dec()


@dataclass
class PassSlots:
    """The pass slots of one process, over the Reconciler's records (`services`, by uid)."""

    services: dict[str, ServiceRecord]
    run: OnePass  # one pass, its failures handled (passes.guarded_pass)
    refused: Callable[[Mapping[str, Any]], bool]  # a service whose namespace is being deleted: no pass
    free_passes: int = PASSES_AT_ONCE
    free_finishing: int = FINISHING_PASSES_AT_ONCE
    lendable: dict[str, ServiceRecord] = field(default_factory=dict)  # passes past their Deployments, on a slot
    queued: collections.deque[str] = field(default_factory=collections.deque)
    drains: set[asyncio.Task[None]] = field(default_factory=set)  # the passes running (submit, the queue)
    closing: bool = False  # no pass starts any more

    def known(self, uid: str, record: ServiceRecord) -> bool:
        """False once the service was forgotten (deleted) while a pass held its record."""
        return self.services.get(uid) is record

    def submit(self, uid: str, record: ServiceRecord, view: tuple[Mapping[str, Any], Children]) -> \
            asyncio.Task[None] | None:
        """The service's newest view waits for its next pass: started now on a free slot, folded into the
        pass already due, or queued. Returns the task it started, if it started one."""
        if record.latest is None:
            metrics.BACKLOG.inc()
        record.latest = view
        if trace.ENABLED:
            meta = view[0]["metadata"]
            trace.mark(meta["namespace"], meta["name"], f"submit:{record.passes.name.lower()}")
        if record.passes is not PassState.IDLE:
            metrics.COALESCED.inc()
            return None
        if self.free_passes <= 0 or self.closing:  # its turn comes in order (none once closing)
            record.passes = PassState.QUEUED
            self.queued.append(uid)
            self.lend()
            return None
        return self._start(uid, record)

    def forgotten(self, record: ServiceRecord) -> None:
        """The service was deleted: a queued uid of it stays in the queue, skipped when its turn comes."""
        if record.passes is PassState.QUEUED:
            drop_latest(record)

    def _start(self, uid: str, record: ServiceRecord) -> asyncio.Task[None]:
        """A pass slot taken for the service, its passes as a task of the operator's own."""
        self.free_passes -= 1
        record.passes = PassState.RUNNING
        task = asyncio.get_running_loop().create_task(self._drain(uid, record))
        self.drains.add(task)
        task.add_done_callback(self.drains.discard)
        return task

    async def _drain(self, uid: str, record: ServiceRecord) -> None:
        """The passes of one service, on the slot taken for it: the latest view each time, until no event
        came during the last one, or until other services wait for a slot: then it queues behind them with its
        latest view (round robin). Else in a burst the first services would keep their slots through every echo
        of their own children until their pods are ready, and the next services' first passes, their
        Deployments, would wait for that. The slot then goes to the longest-queued service."""
        requeue = False
        try:
            while record.latest is not None and self.known(uid, record):
                body, children = record.latest  # the view is taken once it may run: the newest event's
                record.latest = None
                metrics.BACKLOG.dec()
                trace.mark(body["metadata"]["namespace"], body["metadata"]["name"], "pass")
                await self.run(uid, body, children, record)
                trace.mark(body["metadata"]["namespace"], body["metadata"]["name"], "pass-end")
                self.lendable.pop(uid, None)
                if self._next_pass_queues(uid, record):
                    requeue = True  # its newest view waits in line, folded with what comes meanwhile
                    return
        finally:
            self._release(uid, record, requeue)

    def _release(self, uid: str, record: ServiceRecord, requeue: bool) -> None:
        """The service's passes left their slot: queued again (`requeue`) or idle; the slot goes on."""
        self.lendable.pop(uid, None)
        finishing = record.passes is PassState.FINISHING
        if requeue:
            record.passes = PassState.QUEUED
            self.queued.append(uid)
        else:
            record.passes = PassState.IDLE
            drop_latest(record)  # forgotten meanwhile, or cancelled: nothing runs it
        if finishing:
            self.free_finishing += 1
        else:
            self.free_passes += 1
        self._start_queued()
        self.lend()  # a finishing slot came free: a pass past its Deployments may give its slot away

    def deployments_written(self, uid: str, record: ServiceRecord) -> None:
        """A pass wrote its Deployments: from now on, while services queue for a slot, its slot may go to the
        longest-queued one (lend)."""
        if record.passes is not PassState.FINISHING:
            self.lendable[uid] = record
            self.lend()

    def lend(self) -> None:
        """While services queue for a slot, passes past their Deployments give theirs away (the oldest first)
        and finish their other children and status on a finishing slot, while one is free. A queued service's
        first Deployment so waits for other services' Deployments, not for their Services. A pass on a
        finishing slot runs once: the service's next pass queues for a slot of its own."""
        while self.queued and self.lendable and self.free_passes <= 0 and self.free_finishing > 0 \
                and not self.closing:
            uid = next(iter(self.lendable))
            record = self.lendable.pop(uid)
            record.passes = PassState.FINISHING
            self.free_finishing -= 1
            self.free_passes += 1
            self._start_queued()

    def _next_pass_queues(self, uid: str, record: ServiceRecord) -> bool:
        """The service has another pass due while other services wait for a slot, or its pass ran on a
        finishing slot (which carries one pass)."""
        return record.latest is not None and (bool(self.queued) or record.passes is PassState.FINISHING) \
            and self.known(uid, record)

    def _start_queued(self) -> None:
        while self.free_passes > 0 and self.queued and not self.closing:
            uid = self.queued.popleft()
            record = self.services.get(uid)
            if record is None or record.passes is not PassState.QUEUED:
                continue  # forgotten (deleted) while queued: forget_service settled its backlog
            record.passes = PassState.IDLE
            if record.latest is None or self.refused(record.latest[0]["metadata"]):
                drop_latest(record)
                continue
            self._start(uid, record)

    async def settled(self) -> None:
        """Until no pass runs or waits."""
        while self.drains:
            await asyncio.gather(*list(self.drains), return_exceptions=True)
