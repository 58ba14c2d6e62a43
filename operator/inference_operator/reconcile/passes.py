"""One reconcile pass of one service: parse, schedule, build, sync, observe, summarize, write status.

A pass reaches what the process keeps (config, the catalog, the port, the records' bookkeeping) through
a PassHost, the Reconciler; its failures turn into a retry (guarded_pass).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from inference_operator import metrics
from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.builders.children import build_children, stopped_copy
from inference_operator.catalog.flavors import Flavor, FlavorError
from inference_operator.config import OperatorConfig
from inference_operator.policies.concurrency import Decisions
from inference_operator.policies.idle import ActivityTracker, waking_models
from inference_operator.policies.schedule import is_due, schedule_fields, seconds_until_due
from inference_operator.ports import Children, KubePort, NamespaceTerminating
from inference_operator.reconcile.observe import (
    body_spec_service,
    current_only,
    job_name_of,
    newer_children,
    observe,
    parent_of,
    parse,
    spec_error_reason,
)
from inference_operator.reconcile.record import ServiceRecord
from inference_operator.reconcile.scaling import decided_replicas
from inference_operator.reconcile.status_writer import (
    ServiceGone,
    became_ready,
    count_state,
    previous_status,
    write_status,
)
from inference_operator.reconcile.sync import ChildSync, behind_in
from inference_operator.reconcile.timers import Wakeup, retry_later, wake_at_due
from inference_operator.reconcile.wakes import cold_starts, cold_starts_written, idle_now
from inference_operator.status import Cause, Observed, summarize
from inference_operator.status.adapters import ModelAdapters
from inference_operator.status.batch import job_succeeded

log = logging.getLogger(__name__)


class PassHost(Protocol):
    """What a pass reads and calls of the process (the Reconciler); the port is read at each write."""

    kube: KubePort
    cfg: OperatorConfig
    children: ChildSync
    activity: ActivityTracker | None
    decisions: Decisions
    wakeup: Wakeup | None
    retry_delays: Sequence[float]

    def catalog(self) -> Mapping[str, Flavor]: ...
    def adapters(self, uid: str) -> Mapping[str, ModelAdapters]: ...
    def gateway_api(self) -> bool: ...
    def inference_pool(self) -> bool: ...
    def clock(self) -> datetime: ...
    def known(self, uid: str, record: ServiceRecord) -> bool: ...
    def deployments_written(self, uid: str, record: ServiceRecord) -> None: ...
    def announce(self, body: Mapping[str, Any], before: str | None, status: Mapping[str, Any]) -> None: ...
    def note_terminating(self, meta: Mapping[str, Any]) -> None: ...
    def forget_service(self, uid: str) -> None: ...


async def guarded_pass(host: PassHost, uid: str, body: Mapping[str, Any], children: Children,
                       record: ServiceRecord) -> None:
    """A pass, its failures turned into a retry (or into forgetting a service that is gone)."""
    started = time.perf_counter()
    meta = body["metadata"]
    try:
        await OnePass(host, body, children, record).run()
    except NamespaceTerminating:
        log.debug("namespace of %s is terminating; nothing to do", meta["name"])
        host.note_terminating(meta)
        return
    except ServiceGone:  # nothing to retry: forget it now (its DELETED event would do the same)
        log.debug("%s is gone; forgetting it", meta["name"])
        host.forget_service(uid)
        return
    except Exception as exc:
        metrics.RECONCILES.labels(result="error").inc()
        if host.known(uid, record):  # else the service was deleted (forgotten) meanwhile
            retry_later(record, meta, exc, host.retry_delays, host.wakeup)
        else:
            log.debug("%s: pass failed after its service was deleted (%s)", meta["name"], exc)
        return
    finally:
        metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
    record.failures = 0
    metrics.RECONCILES.labels(result="ok").inc()


@dataclass(slots=True)
class OnePass:
    """One pass over one view of a service (its body and children as the watch caches show them)."""

    host: PassHost
    body: Mapping[str, Any]
    children: Children
    record: ServiceRecord

    async def run(self) -> None:
        host, body, record = self.host, self.body, self.record
        previous = previous_status(record, body)
        now = host.clock()
        svc, error = parse(body)
        if svc is not None and is_due(svc, previous, now):
            svc = stopped_copy(svc)  # the schedule stops it; the user's manifest is left as it is
        if svc is None:
            observed = observe(self.children)
        else:
            observed, error = await self._converge(svc, previous, now)
            previous = previous_status(record, body)  # the status `routable` wrote, if it wrote one
        await self._report(svc, observed, previous, now, error)

    async def _report(self, svc: InferenceService | None, observed: Observed, previous: Mapping[str, Any],
                      now: datetime, error: Cause | None, only_ready: bool = False) -> None:
        """The status of what was observed, written when it differs, its transition announced; `only_ready`:
        only when it says the service became running (status_writer.became_ready)."""
        host, body, record = self.host, self.body, self.record
        meta = body["metadata"]
        if svc is not None:
            observed = replace(observed, adapters=host.adapters(meta["uid"]))
        status = summarize(parent_of(meta), svc, observed, previous, now, host.cfg.gateway_base_url, error)
        if only_ready and not became_ready(previous, status):
            return
        cold_starts(record, status, host.clock().timestamp())
        if svc is not None:
            fields = schedule_fields(body_spec_service(svc, body), status["status"], previous, now)
            status.update(fields)
            wake_at_due(record, meta["namespace"], meta["name"], seconds_until_due(fields, now), host.wakeup)
        status.update(record.counts)
        if host.known(meta["uid"], record):  # a forgotten service is no longer counted
            count_state(record, status["status"])
        written = await write_status(host.kube, body, record, previous, status)
        cold_starts_written(record, status)  # only now: a failed write raised, and its retry needs the wake
        if written and previous.get("status") != status["status"]:
            host.announce(body, previous.get("status"), status)

    async def _converge(self, svc: InferenceService, previous: Mapping[str, Any], now: datetime) -> \
            tuple[Observed, Cause | None]:
        """Build the children, apply what differs, and the children's view for status (the newest one when
        an event of the same spec came while this pass wrote); or the spec's error. A service that became
        running is reported as soon as its Services are answered (`routable`), not after its route's write."""
        meta, record = self.body["metadata"], self.record
        idle = idle_now(svc, meta, previous, record, self.host.activity, now.timestamp())
        try:
            desired, observed = self._build(svc, idle, previous)
        except (FlavorError, ValueError) as exc:
            return observe(self.children), Cause(spec_error_reason(exc), str(exc))

        def newest() -> Observed:
            newer = newer_children(record, meta)
            if newer is None:
                return current_only(observed, behind_in(desired, self.children))
            view = replace(observe(newer, job_name_of(desired)), idle=observed.idle, waking=observed.waking)
            return current_only(view, behind_in(desired, newer))

        async def routable() -> None:
            await self._report(svc, newest(), previous, now, None, only_ready=True)

        await self.host.children.sync(self.body, desired, self.children, record.children,
                                      lambda: self.host.deployments_written(meta["uid"], record), routable)
        return newest(), None

    def _build(self, svc: InferenceService, idle: dict[str, str], previous: Mapping[str, Any]) -> \
            tuple[list[dict[str, Any]], Observed]:
        """The desired children and the children's view. A finished batch service is built a second time,
        with its model server stopped (batch_done): whether its Job succeeded is seen in the children by the
        Job's name, and that name (a hash of the Job's pod template) comes out of the first build."""
        host = self.host
        catalog, gateway_api, inference_pool = host.catalog(), host.gateway_api(), host.inference_pool()
        replicas = decided_replicas(svc, self.body["metadata"]["uid"], self.children, host.decisions)
        desired = build_children(svc, host.cfg, catalog, gateway_api=gateway_api, inference_pool=inference_pool,
                                 idle=frozenset(idle), replicas=replicas)
        observed = replace(observe(self.children, job_name_of(desired)), idle=idle,
                           waking=waking_models(svc, idle, previous, self.record.wakes))
        if job_succeeded(observed.job):  # every model stopped: idle changes nothing more
            desired = build_children(svc, host.cfg, catalog, gateway_api=gateway_api, inference_pool=inference_pool,
                                     batch_done=True)
        return desired, observed
