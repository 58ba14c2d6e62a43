"""Scale to zero: which models are idle, from the gateway's per-model activity.

Every gateway process reports, per service and model, a cumulative count of the requests it routed to or
held for the model, and how many it holds or forwards right now (`/-/counts`: `models: {name: {requests,
inflight}}`); state.py reads them every interval and hands them to the ActivityTracker. A model whose
`scaling.minReplicas` is 0 goes idle once nothing moved for its `scaleToZeroAfter` and nothing is in flight;
an idle model wakes as soon as a request moves or waits (the gateway holds it meanwhile).

The evidence is what this process observed itself, so a restart never idles or wakes anything by mistake:
the first complete reading is a baseline, not activity; an awake model gets a whole window from then; a
model the status shows idle stays idle until a request moves. A round in which some gateway did not answer
proves nothing, and idles nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from inference_operator.api.conventions import parse_rfc3339, rfc3339
from inference_operator.api.states import ModelState
from inference_operator.api.v1alpha1 import InferenceService

ModelKey = tuple[str, str]  # (service uid, model entry name)


@dataclass
class ModelActivity:
    since: float  # when this process began to watch it (its first complete reading)
    active_at: float | None = None  # the last time a request moved or was in flight
    inflight: int = 0  # held or forwarded right now, over every gateway process


def _models(reading: Mapping[str, Any]) -> Iterable[tuple[ModelKey, int, int]]:
    """(uid, model), requests, inflight of one gateway process's reading; odd values count as 0."""
    for uid, counts in reading.items():
        models = counts.get("models") if isinstance(counts, Mapping) else None
        if not isinstance(models, Mapping):
            continue
        for name, entry in models.items():
            if isinstance(entry, Mapping):
                yield (str(uid), str(name)), _int(entry.get("requests")), _int(entry.get("inflight"))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass
class ActivityTracker:
    """Per model: when a request last moved. Fed one round of readings (every gateway process) at a time."""

    models: dict[ModelKey, ModelActivity] = field(default_factory=dict)
    last: dict[str, dict[ModelKey, int]] = field(default_factory=dict)  # instance -> requests per model
    trusted: bool = False  # the last round read every gateway process (and one before it: a baseline)
    started: bool = False
    watching_since: float | None = None  # the first complete round

    def observe(self, readings: Iterable[tuple[str, Mapping[str, Any]]], now: float, complete: bool) -> set[str]:
        """One round: (instance id, reading) of each process that answered, `complete` when all did. Returns
        the uids of services with a model in use now (a request moved or is in flight)."""
        busy: set[str] = set()
        inflight: dict[ModelKey, int] = {}
        seen: dict[str, dict[ModelKey, int]] = {}
        for instance, reading in readings:
            before = self.last.get(instance)
            now_counts = seen[instance] = {}
            for key, requests, held in _models(reading):
                now_counts[key] = requests
                inflight[key] = inflight.get(key, 0) + held
                moved = requests > before.get(key, 0) if before is not None else (self.started and requests > 0)
                activity = self.models.setdefault(key, ModelActivity(since=self.watching_since or now))
                if moved or held:
                    activity.active_at = now
                    busy.add(key[0])
        for key, activity in self.models.items():
            activity.inflight = inflight.get(key, 0)
        self.last = seen if complete else {**self.last, **seen}
        self.trusted = complete and self.started
        if complete and not self.started:
            self.started, self.watching_since = True, now
        return busy

    def forget(self, uid: str) -> None:
        """The service is gone."""
        for key in [k for k in self.models if k[0] == uid]:
            del self.models[key]

    def get(self, uid: str, model: str) -> ModelActivity | None:
        return self.models.get((uid, model))


def _stamp(text: Any) -> float | None:
    moment = parse_rfc3339(text)
    return moment.timestamp() if moment is not None else None


def stamp(now: float) -> str:
    return rfc3339(datetime.fromtimestamp(now, UTC))


def model_states(status: Mapping[str, Any]) -> dict[str, str]:
    """model name -> its status.models[].status, of a status as stored (odd entries left out)."""
    models = status.get("models")
    return {str(m.get("name")): str(m.get("status")) for m in models if isinstance(m, Mapping)} \
        if isinstance(models, list) else {}


def idle_models(svc: InferenceService, uid: str, previous: Mapping[str, Any], tracker: ActivityTracker | None,
                now: float) -> dict[str, str]:
    """The models of `svc` that are idle now, each with its idleSince: those the status shows idle and no
    request moved since, and awake ones quiet for their whole window with nothing in flight."""
    if tracker is None or svc.spec.stopped or svc.spec.infer_type == "batch":
        return {}  # without the gateway's counts nothing can wake a model: none sleeps
    before = {m.get("name"): m for m in previous.get("models") or [] if isinstance(m, Mapping)}
    idle: dict[str, str] = {}
    for model in svc.spec.models:
        if not model.scales_to_zero or model.scaling is None:
            continue
        entry = before.get(model.name) or {}
        activity = tracker.get(uid, model.name)
        if entry.get("status") == ModelState.IDLE:
            since = _still_idle(entry, activity, now)
        else:
            since = _goes_idle(tracker, activity, model.scaling.idle_seconds, now)
        if since is not None:
            idle[model.name] = since
    return idle


def _still_idle(entry: Mapping[str, Any], activity: ModelActivity | None, now: float) -> str | None:
    """A model the status shows idle stays so (its idleSince kept) until a request moved since it went
    idle, or one is in flight: None then, it wakes."""
    since = str(entry.get("idleSince") or stamp(now))
    went = _stamp(since)
    woken = activity is not None and (activity.inflight > 0 or (
        activity.active_at is not None and (went is None or activity.active_at >= went)))
    return None if woken else since


def _goes_idle(tracker: ActivityTracker, activity: ModelActivity | None, window: int, now: float) -> str | None:
    """An awake model goes idle now (its idleSince) once quiet for its whole window with nothing in flight;
    only a round that read every gateway process counts (None: it stays awake)."""
    if not tracker.trusted or tracker.watching_since is None:
        return None
    if activity is None:  # no gateway has seen a request for it since this process began to watch
        activity = ModelActivity(since=tracker.watching_since)
    if activity.inflight > 0:
        return None
    quiet = now - (activity.active_at if activity.active_at is not None else activity.since)
    return stamp(now) if quiet >= window else None


def waking_models(svc: InferenceService, idle: Mapping[str, str], previous: Mapping[str, Any],
                  started: Collection[str]) -> frozenset[str]:
    """Models coming back from idle: idle or waking in the last status (or woken by this process, `started`)
    and not idle now. Status keeps them `waking` until ready."""
    before = model_states(previous)
    return frozenset(m.name for m in svc.spec.models if m.scales_to_zero and m.name not in idle
                     and (before.get(m.name) in (ModelState.IDLE, ModelState.WAKING) or m.name in started))


def may_sleep(body: Mapping[str, Any]) -> bool:
    """A service body with a model whose scaling.minReplicas is 0 (a cheap look at the raw spec, no parsing:
    the counts loop asks it of every service each round)."""
    models = (body.get("spec") or {}).get("models")
    return isinstance(models, list) and any(
        isinstance(m, Mapping) and isinstance(m.get("scaling"), Mapping) and m["scaling"].get("minReplicas") == 0
        for m in models)


def shown_idle(body: Mapping[str, Any]) -> set[str]:
    """The models a service's stored status shows idle."""
    return {name for name, state in model_states(body.get("status") or {}).items() if state == ModelState.IDLE}


def pass_due(svc: InferenceService, uid: str, previous: Mapping[str, Any], tracker: ActivityTracker,
             now: float) -> bool:
    """Whether a pass would idle or wake a model of this service now (`previous`: the status last written)."""
    shown = {name for name, state in model_states(previous).items() if state == ModelState.IDLE}
    return set(idle_models(svc, uid, previous, tracker, now)) != shown


@dataclass
class SpecCache:
    """Parsed specs of the services that may sleep, by uid and generation: the counts loop asks every
    round (every second while a model sleeps), and parsing is the expensive part."""

    specs: dict[str, tuple[int, InferenceService | None]] = field(default_factory=dict)

    def get(self, body: Mapping[str, Any]) -> InferenceService | None:
        meta = body.get("metadata") or {}
        uid, generation = str(meta.get("uid")), int(meta.get("generation") or 0)
        cached = self.specs.get(uid)
        if cached is None or cached[0] != generation:
            try:
                parsed: InferenceService | None = InferenceService.from_body(body)
            except ValueError:
                parsed = None  # its passes report it failed
            cached = self.specs[uid] = (generation, parsed)
        return cached[1]

    def keep(self, uids: set[str]) -> None:
        """Forget services gone (or no longer able to sleep)."""
        for uid in [u for u in self.specs if u not in uids]:
            del self.specs[uid]
