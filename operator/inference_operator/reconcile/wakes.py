"""A service's scale-to-zero bookkeeping between passes: models going idle, woken models' cold starts.

Times are epoch seconds from the Reconciler's clock (the gateways' activity is read on the same scale).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from inference_operator import metrics
from inference_operator.api.states import ModelState
from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.policies.idle import ActivityTracker, idle_models, model_states
from inference_operator.reconcile.record import ServiceRecord, Wake

log = logging.getLogger(__name__)


def idle_now(svc: InferenceService, meta: Mapping[str, Any], previous: Mapping[str, Any], record: ServiceRecord,
             activity: ActivityTracker | None, now: float) -> dict[str, str]:
    """The models scaled to zero now (idle.py), each with its idleSince; a model leaving idle starts its cold
    start's clock, at the request that woke it when the gateways saw one."""
    idle = idle_models(svc, meta["uid"], previous, activity, now)
    before = model_states(previous)
    for name in idle:
        record.wakes.pop(name, None)
        if before.get(name) != ModelState.IDLE:
            log.info("%s/%s: model %s idle for its scaleToZeroAfter: scaling it to zero", meta["namespace"],
                     meta["name"], name)
    for model in svc.spec.models:
        if before.get(model.name) == ModelState.IDLE and model.name not in idle and model.name not in record.wakes:
            seen = activity.get(meta["uid"], model.name) if activity is not None else None
            record.wakes[model.name] = Wake(min(now, seen.active_at or now) if seen else now)
            log.info("%s/%s: waking model %s for a request", meta["namespace"], meta["name"], model.name)
    return idle


def cold_starts(record: ServiceRecord, status: dict[str, Any], now: float) -> None:
    """A woken model that is ready: its cold start in its status entry, measured the first time it is seen
    ready; the same figure on every pass until a status carrying it is written (cold_starts_written)."""
    for entry in status.get("models") or []:
        wake = record.wakes.get(entry["name"])
        if wake is not None and entry.get("status") == ModelState.READY:
            if wake.seconds is None:
                wake.seconds = round(max(0.0, now - wake.started), 3)
            entry["coldStartSeconds"] = wake.seconds


def cold_starts_written(record: ServiceRecord, status: Mapping[str, Any]) -> None:
    """`status` is stored (written now, or equal to the status written before): the cold starts it carries
    are done with, counted in the histogram once."""
    for entry in status.get("models") or []:
        wake = record.wakes.get(entry["name"])
        if wake is not None and wake.seconds is not None and entry.get("coldStartSeconds") == wake.seconds:
            metrics.COLD_START_SECONDS.observe(wake.seconds)
            del record.wakes[entry["name"]]
