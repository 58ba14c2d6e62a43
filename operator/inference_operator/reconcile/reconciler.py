"""One reconcile pass for create, update, resume and child events: build -> apply -> observe -> summarize.

No kopf here: handlers hand in the parent body and its children as the watch caches (kopf indices)
hold them, and a Kube port that writes. Writes are minimal: children are applied only when they
differ or drifted (sync.py), and status is written only when it differs from the last status
written or stored.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from inference_operator import metrics
from inference_operator.api.states import WARNING, ModelState
from inference_operator.api.v1alpha1 import API_VERSION, KIND, InferenceService, InvalidSpecError
from inference_operator.builders.batch import BATCH_RUNNER, COMPONENT_LABEL
from inference_operator.builders.children import build_children, stopped_copy
from inference_operator.builders.labels import MODEL_LABEL
from inference_operator.catalog.flavors import Flavor, FlavorError, UnknownFlavorError
from inference_operator.catalog.presets import PresetTooLargeError
from inference_operator.config import OperatorConfig
from inference_operator.policies.idle import ActivityTracker, idle_models, model_states, waking_models
from inference_operator.policies.schedule import is_due, schedule_fields, seconds_until_due
from inference_operator.ports import ApiError, Children, KubePort, NamespaceTerminating
from inference_operator.reconcile.sync import ChildMemory, ChildSync, behind_in
from inference_operator.status import Cause, Observed, ParentMeta, summarize
from inference_operator.status.batch import job_succeeded

log = logging.getLogger(__name__)
RETRY_DELAYS = (1, 2, 5, 10, 30, 60)  # seconds before retrying a failed pass, by consecutive failures


def observe(children: Children, job_name: str | None = None) -> Observed:
    """Children grouped by model name for status; the batch Job of the current spec and its pods."""
    deployments = {o["metadata"].get("labels", {}).get(MODEL_LABEL, ""): o
                   for o in children.objects if o["kind"] == "Deployment"}
    pods: dict[str, list[Mapping[str, Any]]] = {}
    runners: list[Mapping[str, Any]] = []
    for pod in children.pods:
        labels = pod["metadata"].get("labels", {})
        if labels.get(COMPONENT_LABEL) == BATCH_RUNNER:
            if labels.get("batch.kubernetes.io/job-name", labels.get("job-name")) == job_name:
                runners.append(pod)
            continue
        pods.setdefault(labels.get(MODEL_LABEL, ""), []).append(pod)
    job = next((o for o in children.objects if o["kind"] == "Job" and o["metadata"]["name"] == job_name), None)
    pool = next((o for o in children.objects if o["kind"] == "InferencePool"), None)
    return Observed(deployments=deployments, pods=pods, job=job, runner_pods=runners, pool=pool)


PASSES_AT_ONCE = 1024
# Passes past their Deployments that gave their slot to a queued service and finish (Services, route, status) on
# one of these. Passes wait for their Service (the API server's ClusterIP lock, kube.SERVICE_APPLIES_AT_ONCE):
# in a burst beyond PASSES_AT_ONCE, a queued service's Deployment waited for a slot, and slots freed as fast as
# the Services went out (5-12 a second while the burst is created), so at 2,000 services every Deployment came
# after 97 s (14 s at 1,000). Bounded so that passes alive (what they hold) stay bounded: at most the sum.
FINISHING_PASSES_AT_ONCE = 1024
ANNOUNCEMENTS_AT_ONCE = 1000  # transition Events waiting to be posted (a few KB each); beyond: dropped, counted


def spec_error_reason(exc: Exception) -> str:
    """The Ready condition's reason for a spec the builders refused."""
    if isinstance(exc, UnknownFlavorError):
        return "UnknownFlavor"
    if isinstance(exc, PresetTooLargeError):
        return "InsufficientGPUMemory"
    return "InvalidSpec"


def current_only(observed: Observed, behind: set[str]) -> Observed:
    """Forget Deployments the watch still shows with an older spec: until it shows the new one, their
    ready counts say nothing about the spec being reconciled (no `running` before a rollout starts);
    status marks their models pending (it keeps the last status until they catch up)."""
    if not behind:
        return observed
    deployments = {model: d for model, d in observed.deployments.items() if d["metadata"]["name"] not in behind}
    pending = frozenset(model for model in observed.deployments if model not in deployments)
    return replace(observed, deployments=deployments, pending=observed.pending | pending)


def newer_children(record: ServiceRecord, meta: Mapping[str, Any]) -> Children | None:
    """The children of an event that came while this pass wrote, if it is of the same spec: pods that became
    ready meanwhile count in this pass's status (`running` at once: one status write and one Event, where
    the folded pass used to follow `deploying` with `running`). The folded pass still runs, and finds it so."""
    if record.latest is None:
        return None
    body, children = record.latest
    return children if body["metadata"].get("generation") == meta.get("generation") else None


def job_name_of(desired: Sequence[Mapping[str, Any]]) -> str | None:
    return next((m["metadata"]["name"] for m in desired if m["kind"] == "Job"), None)


def body_spec_service(effective: InferenceService, body: Mapping[str, Any]) -> InferenceService:
    """The service as the user wrote it (not stopped by the schedule), for the schedule's own fields."""
    stopped = bool((body.get("spec") or {}).get("stopped", False))
    if effective.spec.stopped == stopped:
        return effective
    return effective.model_copy(update={"spec": effective.spec.model_copy(update={"stopped": stopped})})


class ServiceGone(Exception):
    """The service's status could not be written because the service is gone (404): deleted while the pass
    ran, its DELETED event not here yet (a watch away on a lossy link)."""


def status_delta(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    return any(current.get(k) != v for k, v in desired.items())


def previous_status(record: ServiceRecord, body: Mapping[str, Any]) -> dict[str, Any]:
    """The status a pass compares its own with. This process's last write until the watch shows it (the
    body may be older than that write); once the watch has brought that write back, a later body whose
    status differs from it was written by someone else (`kubectl edit --subresource=status`, a second
    operator): that body is the truth now, so the pass puts the operator's status back."""
    observed = body.get("status") or {}
    if record.written is None:
        return dict(observed)
    if record.written_version is not None and body["metadata"].get("resourceVersion") == record.written_version:
        record.stored = observed  # the index's own dict (the body's), not a copy: one per service
    elif record.stored is not None and observed != record.stored:
        record.written = record.written_version = record.stored = None
        return dict(observed)
    written: dict[str, Any] = json.loads(record.written)
    return written


@dataclass
class ServiceRecord:
    """What one operator process remembers of one service between passes. Reconciler._record makes
    it, Reconciler.forget_service drops it whole (its timers cancelled, its status uncounted)."""

    running: bool = False  # a pass of this service is under way (parent and child events arrive together)
    queued: bool = False  # waiting in Reconciler.queued for a pass slot
    finishing: bool = False  # its pass wrote its Deployments and gave its slot away (FINISHING_PASSES_AT_ONCE)
    latest: tuple[Mapping[str, Any], Children] | None = None  # the newest event's view, for the next pass
    children: ChildMemory = field(default_factory=ChildMemory)  # what sync.py applied, judged, handed over
    # The status last written (the watch may not show it yet), as compact JSON: a third of the same status as dicts,
    # one per service for as long as the process runs (issue 14, memory at 10,000 services); read once a pass.
    written: str | None = None
    written_version: str | None = None  # the resourceVersion that write produced
    stored: Mapping[str, Any] | None = None  # that write as the watch brought it back (the API server's form)
    counts: Mapping[str, int] = field(default_factory=dict)  # gateway counts for status (state.py)
    state: str | None = None  # the status counted in inference_operator_services
    failures: int = 0  # consecutive failed passes (the retry backoff)
    due_timer: asyncio.TimerHandle | None = None  # a pass at the schedule's next due time
    retry_timer: asyncio.TimerHandle | None = None  # a pass retrying a failed one
    wakes: dict[str, float] = field(default_factory=dict)  # model -> when a request woke it (cold start)

    def cancel_timers(self) -> None:
        for timer in (self.due_timer, self.retry_timer):
            if timer is not None:
                timer.cancel()
        self.due_timer = self.retry_timer = None


@dataclass
class Reconciler:
    """Holds what one operator process remembers between passes: a ServiceRecord per service uid."""

    kube: KubePort
    cfg: OperatorConfig
    catalog: Callable[[], Mapping[str, Flavor]]
    gateway_api: Callable[[], bool] = lambda: False
    inference_pool: Callable[[], bool] = lambda: False
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    wakeup: Callable[[str, str], Awaitable[None]] | None = None
    retry_delays: Sequence[float] = RETRY_DELAYS
    activity: ActivityTracker | None = None  # the gateways' per-model activity (scale to zero); None: not read
    services: dict[str, ServiceRecord] = field(default_factory=dict)
    children: ChildSync = field(init=False)
    # Passes at once (PASSES_AT_ONCE). Every pass holds its built children and requests until its writes are
    # answered, so not a pass per service of a burst; but a pass that wrote its Deployments waits for its
    # Service (kube.SERVICE_APPLIES_AT_ONCE, the API server's ClusterIP lock), and with 128 slots the next
    # services' Deployments waited for those Services (a burst of 1,000: ratio 0.83; with 512: 1.00, peak RSS
    # 116 -> 121 MB). With headless Services (no lock) the API connections became the queue: a pass waits for
    # each of its writes there, Deployments first (kube.DEPLOYMENTS), and with 512 slots the last 500 services of
    # a burst could not start a pass to have theirs written (every Deployment after 31 s; 1,024 slots: 18 s,
    # peak RSS about +15 MB). Services beyond it wait as a uid in `queued` (their later events fold into their one
    # next pass), not as a suspended event handler each: 10,000 of those held kopf's per-event state.
    free_passes: int = PASSES_AT_ONCE
    free_finishing: int = FINISHING_PASSES_AT_ONCE
    lendable: dict[str, ServiceRecord] = field(default_factory=dict)  # passes past their Deployments, on a slot
    queued: collections.deque[str] = field(default_factory=collections.deque)
    drains: set[asyncio.Task[None]] = field(default_factory=set)  # the passes running (submit, the queue)
    announcements: set[asyncio.Task[None]] = field(default_factory=set)  # transition Events being posted
    refused: set[str] = field(default_factory=set)  # uids of services whose namespace refused a write
    services_of: Callable[[str], Iterable[str]] = lambda namespace: ()  # uids of a namespace's known services
    closing: bool = False  # close() was called: no pass starts any more

    def __post_init__(self) -> None:
        self.children = ChildSync(self.kube, self.cfg.field_manager)

    def _record(self, uid: str) -> ServiceRecord:
        """The one place a service's record is made."""
        record = self.services.get(uid)
        if record is None:
            record = self.services[uid] = ServiceRecord()
        return record

    def _known(self, uid: str, record: ServiceRecord) -> bool:
        """False once the service was forgotten (deleted) while a pass held its record."""
        return self.services.get(uid) is record

    def forget_child(self, owner_uid: str, obj: Mapping[str, Any]) -> None:
        """A child is gone (deleted by hand or by us): the next pass must not trust its fingerprint."""
        record = self.services.get(owner_uid)
        if record is not None:
            record.children.forget(obj)

    def forget_kind(self, kind: str) -> None:
        """Every child of a kind is gone (its CRD was removed): no service remembers applying one."""
        for record in self.services.values():
            record.children.forget_kind(kind)

    def forget_service(self, uid: str) -> None:
        """The service is deleted: drop everything this process remembers of it."""
        record = self.services.pop(uid, None)
        self.refused.discard(uid)
        if self.activity is not None:
            self.activity.forget(uid)
        if record is not None:
            record.cancel_timers()
            self._count_state(record, None)
            if record.queued and record.latest is not None:  # its uid stays queued, skipped when its turn comes
                record.latest = None
                metrics.BACKLOG.dec()

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
        returns at once. The events of a service and its children that arrive while a pass of it runs (its own
        writes' echoes, pods moving) are folded into one more pass with the latest of them, run when this one
        ends, instead of a pass each (a burst's events are many times its services). Level-triggered, so the
        latest view is all a pass needs. Beyond PASSES_AT_ONCE running passes the service queues as its uid.
        Not awaited by the handler: a handler that awaited its pass kept kopf's state of that event (its raw
        body, patch and the events queued behind it for the same object) until the pass ended; 1,000 headless
        services after history: RSS 156-159 MB that way. Returns the task it started, if it started one."""
        uid = body["metadata"]["uid"]
        if body["metadata"].get("deletionTimestamp"):
            return None  # being deleted: the garbage collector removes the children
        if self._in_terminating_namespace(body["metadata"]):
            return None  # its namespace is being deleted, children, status and all: nothing to write
        record = self._record(uid)
        if record.latest is None:
            metrics.BACKLOG.inc()
        record.latest = (body, children)
        if record.running or record.queued:
            metrics.COALESCED.inc()
            return None
        if self.free_passes <= 0 or self.closing:  # its turn comes in order (none once closing)
            record.queued = True
            self.queued.append(uid)
            self._lend()
            return None
        return self._start(uid, record)

    async def reconcile(self, body: Mapping[str, Any], children: Children) -> None:
        """submit, then wait for the passes it started (the folded ones included): for callers that must
        see a pass's writes (tests, a caller that reports them)."""
        task = self.submit(body, children)
        if task is not None:
            await asyncio.shield(task)

    async def settled(self) -> None:
        """Until no pass runs or waits (tests; a caller that must see every pass's writes)."""
        while self.drains:
            await asyncio.gather(*list(self.drains), return_exceptions=True)

    def _start(self, uid: str, record: ServiceRecord) -> asyncio.Task[None]:
        """A pass slot taken for the service, its passes as a task of the operator's own."""
        self.free_passes -= 1
        task = asyncio.get_running_loop().create_task(self._run(uid, record))
        self.drains.add(task)
        task.add_done_callback(self.drains.discard)
        return task

    async def _run(self, uid: str, record: ServiceRecord) -> None:
        """The passes of one service, on a pass slot taken for it: the latest view each time, until no event
        came during the last one, or until other services wait for a slot: then it queues behind them with its
        latest view (round robin). Else in a burst the first PASSES_AT_ONCE services kept their slots through
        every echo of their own children until their pods were ready, and the next services' first passes, their
        Deployments, waited for that (1,000 headless services: the last Deployments 20 s after their creates).
        The slot then goes to the longest-queued service."""
        record.running = True
        try:
            while record.latest is not None and self._known(uid, record):
                body, children = record.latest  # the view is taken once it may run: the newest event's
                record.latest = None
                metrics.BACKLOG.dec()
                await self._guarded_pass(uid, body, children, record)
                self.lendable.pop(uid, None)
                if self._next_pass_queues(uid, record):
                    record.queued = True  # its newest view waits in line, folded with what comes meanwhile
                    self.queued.append(uid)
                    return
        finally:
            self.lendable.pop(uid, None)
            record.running = False
            if record.latest is not None and not record.queued:  # forgotten meanwhile: nothing runs it
                record.latest = None
                metrics.BACKLOG.dec()
            if record.finishing:
                record.finishing = False
                self.free_finishing += 1
            else:
                self.free_passes += 1
            self._start_queued()
            self._lend()  # a finishing slot came free: a pass past its Deployments may give its slot away

    def _deployments_written(self, uid: str, record: ServiceRecord) -> None:
        """A pass wrote its Deployments: from now on, while services queue for a slot, its slot may go to the
        longest-queued one (_lend)."""
        if not record.finishing:
            self.lendable[uid] = record
            self._lend()

    def _lend(self) -> None:
        """While services queue for a slot, passes past their Deployments give theirs away (the oldest first)
        and finish their other children and status on a finishing slot, while one is free. A queued service's
        first Deployment so waits for other services' Deployments, not for their Services. A pass on a
        finishing slot runs once: the service's next pass queues for a slot of its own."""
        while self.queued and self.lendable and self.free_passes <= 0 and self.free_finishing > 0 \
                and not self.closing:
            uid = next(iter(self.lendable))
            record = self.lendable.pop(uid)
            record.finishing = True
            self.free_finishing -= 1
            self.free_passes += 1
            self._start_queued()

    def _next_pass_queues(self, uid: str, record: ServiceRecord) -> bool:
        """The service has another pass due while other services wait for a slot, or its pass ran on a
        finishing slot (which carries one pass)."""
        return record.latest is not None and (bool(self.queued) or record.finishing) and self._known(uid, record)

    def _start_queued(self) -> None:
        while self.free_passes > 0 and self.queued and not self.closing:
            uid = self.queued.popleft()
            record = self.services.get(uid)
            if record is None or not record.queued:
                continue  # forgotten (deleted) while queued: forget_service settled its backlog
            record.queued = False
            if record.latest is None or self._in_terminating_namespace(record.latest[0]["metadata"]):
                if record.latest is not None:
                    record.latest = None
                    metrics.BACKLOG.dec()
                continue
            self._start(uid, record)

    async def close(self) -> None:
        """Stop the passes and the Events not yet posted (shutting down). No pass starts after this: a pass
        cancelled here frees its slot, and the queued service that slot would go to stays queued."""
        self.closing = True
        tasks = [*self.drains, *self.announcements]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _guarded_pass(self, uid: str, body: Mapping[str, Any], children: Children,
                            record: ServiceRecord) -> None:
        """A pass, its failures turned into a retry (or into forgetting a service that is gone)."""
        started = time.perf_counter()
        try:
            await self._pass(body, children, record)
        except NamespaceTerminating:
            log.debug("namespace of %s is terminating; nothing to do", body["metadata"]["name"])
            self._note_terminating(body["metadata"])
            return
        except ServiceGone:  # nothing to retry: forget it now (its DELETED event would do the same)
            log.debug("%s is gone; forgetting it", body["metadata"]["name"])
            self.forget_service(uid)
            return
        except Exception as exc:
            metrics.RECONCILES.labels(result="error").inc()
            if self._known(uid, record):  # else the service was deleted (forgotten) meanwhile
                self._retry_later(record, body, exc)
            else:
                log.debug("%s: pass failed after its service was deleted (%s)", body["metadata"]["name"], exc)
            return
        finally:
            metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
        record.failures = 0
        metrics.RECONCILES.labels(result="ok").inc()

    def _note_terminating(self, meta: Mapping[str, Any]) -> None:
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

    def _retry_later(self, record: ServiceRecord, body: Mapping[str, Any], exc: Exception) -> None:
        """A pass that failed (API unreachable, timeouts, a refused write) is retried with backoff: no
        event may come to start it again, and a level-triggered operator must converge anyway."""
        meta = body["metadata"]
        record.failures += 1
        delay = self.retry_delays[min(record.failures, len(self.retry_delays)) - 1]
        log.warning("%s/%s: pass failed (%s: %s); retrying in %ss", meta["namespace"], meta["name"],
                    type(exc).__name__, exc, delay)
        if self.wakeup is not None:  # kept in the record: forget_service cancels it (a deleted one is not retried)
            wakeup, namespace, name = self.wakeup, meta["namespace"], meta["name"]
            if record.retry_timer is not None:
                record.retry_timer.cancel()

            def fire() -> None:
                record.retry_timer = None
                asyncio.ensure_future(wakeup(namespace, name))

            record.retry_timer = asyncio.get_running_loop().call_later(delay, fire)

    async def _pass(self, body: Mapping[str, Any], children: Children, record: ServiceRecord) -> None:
        meta = body["metadata"]
        parent = ParentMeta(uid=meta["uid"], generation=meta.get("generation", 1),
                            created=meta.get("creationTimestamp"))
        previous = previous_status(record, body)
        now = self.clock()
        svc, error = self._parse(body)
        if svc is not None and is_due(svc, previous, now):
            svc = stopped_copy(svc)  # the schedule stops it; the user's manifest is left as it is
        observed = observe(children)
        idle: dict[str, str] = {}
        if svc is not None and error is None:
            idle = self._idle(svc, meta, previous, record)
            try:
                desired = build_children(svc, self.cfg, self.catalog(), gateway_api=self.gateway_api(),
                                         inference_pool=self.inference_pool(), idle=frozenset(idle))
                observed = replace(observe(children, job_name_of(desired)), idle=idle,
                                   waking=waking_models(svc, idle, previous, record.wakes))
                if job_succeeded(observed.job):
                    desired = build_children(svc, self.cfg, self.catalog(), gateway_api=self.gateway_api(),
                                             inference_pool=self.inference_pool(), batch_done=True)
            except (FlavorError, ValueError) as exc:
                error = Cause(spec_error_reason(exc), str(exc))
            else:
                behind = await self.children.sync(body, desired, children, record.children,
                                                  lambda: self._deployments_written(meta["uid"], record))
                newer = newer_children(record, meta)
                if newer is not None:
                    observed = replace(observe(newer, job_name_of(desired)), idle=observed.idle,
                                       waking=observed.waking)
                    behind = behind_in(desired, newer)
                observed = current_only(observed, behind)
        status = summarize(parent, svc, observed, previous, now, self.cfg.gateway_base_url, error)
        self._cold_starts(record, status)
        if svc is not None:
            fields = schedule_fields(body_spec_service(svc, body), status["status"], previous, now)
            status.update(fields)
            self._wake_at_due(record, meta["namespace"], meta["name"], seconds_until_due(fields, now))
        status.update(record.counts)
        if self._known(parent.uid, record):  # a forgotten service is no longer counted
            self._count_state(record, status["status"])
        await self._write_status(body, record, previous, status)

    def _idle(self, svc: InferenceService, meta: Mapping[str, Any], previous: Mapping[str, Any],
              record: ServiceRecord) -> dict[str, str]:
        """The models scaled to zero now (idle.py); a model leaving idle starts a cold start's clock."""
        idle = idle_models(svc, meta["uid"], previous, self.activity, time.time())
        before = model_states(previous)
        for name in idle:
            record.wakes.pop(name, None)
            if before.get(name) != ModelState.IDLE:
                log.info("%s/%s: model %s idle for its scaleToZeroAfter: scaling it to zero", meta["namespace"],
                         meta["name"], name)
        for model in svc.spec.models:
            if before.get(model.name) == ModelState.IDLE and model.name not in idle and model.name not in record.wakes:
                activity = self.activity.get(meta["uid"], model.name) if self.activity is not None else None
                record.wakes[model.name] = min(time.time(), activity.active_at or time.time()) if activity \
                    else time.time()
                log.info("%s/%s: waking model %s for a request", meta["namespace"], meta["name"], model.name)
        return idle

    @staticmethod
    def _cold_starts(record: ServiceRecord, status: dict[str, Any]) -> None:
        """A woken model that is ready: its cold start, in its status entry and the histogram."""
        for entry in status.get("models") or []:
            started = record.wakes.get(entry["name"])
            if started is not None and entry.get("status") == ModelState.READY:
                seconds = round(max(0.0, time.time() - started), 3)
                entry["coldStartSeconds"] = seconds
                metrics.COLD_START_SECONDS.observe(seconds)
                del record.wakes[entry["name"]]

    @staticmethod
    def _count_state(record: ServiceRecord, state: str | None) -> None:
        """Keep inference_operator_services{status} equal to the services this process knows."""
        if record.state is not None:
            metrics.SERVICES.labels(status=record.state).dec()
        record.state = state
        if state is not None:
            metrics.SERVICES.labels(status=state).inc()

    def _wake_at_due(self, record: ServiceRecord, namespace: str, name: str, seconds: float | None) -> None:
        """Nothing changes in the cluster when a due time passes: arrange a pass for that moment."""
        if record.due_timer is not None:
            record.due_timer.cancel()
            record.due_timer = None
        if seconds is not None and self.wakeup is not None:
            wakeup = self.wakeup
            record.due_timer = asyncio.get_running_loop().call_later(
                seconds + 0.5, lambda: asyncio.ensure_future(wakeup(namespace, name)))

    @staticmethod
    def _parse(body: Mapping[str, Any]) -> tuple[InferenceService | None, Cause | None]:
        try:
            return InferenceService.from_body(body), None
        except InvalidSpecError as exc:
            return None, Cause("InvalidSpec", f"invalid spec: {exc}")

    async def _write_status(self, body: Mapping[str, Any], record: ServiceRecord, previous: Mapping[str, Any],
                            status: dict[str, Any]) -> None:
        if not status_delta(previous, status):
            return  # unchanged, or written already and the watch has not brought it back yet
        meta = body["metadata"]
        manifest = {"apiVersion": API_VERSION, "kind": KIND,
                    "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
                    "status": status}
        try:
            # a write on the condition that the object still has this uid (kube.write_status): a deleted
            # service's ghost (its DELETED not here yet) never writes the status of its re-created namesake
            answer = await self.kube.write_status(manifest)
        except ApiError as exc:
            if exc.status == 404:
                raise ServiceGone(str(exc)) from exc
            if exc.status == 422:  # the uid test failed, or the status itself was refused: which one?
                live = await self.kube.read(API_VERSION, KIND, meta["namespace"], meta["name"])
                if live is None or (live.get("metadata") or {}).get("uid") != meta["uid"]:
                    raise ServiceGone(f"{meta['name']} was deleted (and maybe created again)") from exc
            raise
        record.written, record.stored = json.dumps(status, separators=(",", ":")), None
        record.written_version = ((answer or {}).get("metadata") or {}).get("resourceVersion")
        if previous.get("status") != status["status"]:
            self._announce(body, previous.get("status"), status)

    def _announce(self, body: Mapping[str, Any], before: str | None, status: Mapping[str, Any]) -> None:
        """The transition's Event, posted beside the passes rather than inside one: an Event waits last for a
        connection (kube.EVENTS), and a pass that waited for it held its slot and its service's next pass
        (pods ready -> running waited behind the report of `deploying`). Beyond ANNOUNCEMENTS_AT_ONCE
        waiting, the Event is dropped and counted: status and the log say the same."""
        state = status["status"]
        event_type = "Warning" if state in WARNING else "Normal"
        message = status.get("errorMsg") or f"status {before or 'new'} -> {state}, progress {status['progress']}%"
        meta = body["metadata"]
        log.info("%s/%s: %s -> %s %s", meta["namespace"], meta["name"], before or "new", state,
                 status.get("errorMsg", ""))
        if len(self.announcements) >= ANNOUNCEMENTS_AT_ONCE:
            metrics.EVENTS_DROPPED.inc()
            return
        task = asyncio.get_running_loop().create_task(self._post(body, event_type, state.capitalize(), message))
        self.announcements.add(task)
        task.add_done_callback(self.announcements.discard)

    async def _post(self, body: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        try:
            await self.kube.post_event(body, event_type, reason, message)
        except NamespaceTerminating:  # the namespace goes, its Events with it: no more passes of its services
            self._note_terminating(body["metadata"])
        except Exception as exc:  # best effort (kube.post_event logs refusals): a lost connection, not leading
            log.warning("could not post event %s on %s: %s", reason, body["metadata"]["name"], exc)

    async def announced(self) -> None:
        """Until the Events of transitions so far are posted (tests; a caller that must see them)."""
        while self.announcements:
            await asyncio.gather(*list(self.announcements), return_exceptions=True)

