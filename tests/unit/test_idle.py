"""idle.py: which models sleep, from the gateways' per-model activity (scale to zero, issue 13 point 5)."""

from __future__ import annotations

from typing import Any

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.policies.idle import (
    ActivityTracker,
    SpecCache,
    idle_models,
    may_sleep,
    pass_due,
    shown_idle,
    stamp,
    waking_models,
)

UID = "uid-1"
T0 = 1_800_000_000.0  # a Unix time; windows below are 60 s


def body(*models: dict[str, Any], status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "inference.io/v1alpha1", "kind": "InferenceService",
            "metadata": {"name": "chat", "namespace": "team-a", "uid": UID, "generation": 1},
            "spec": {"models": list(models), **spec}, "status": status or {}}


def sleeper(name: str = "m", weight: int = 100, after: str | None = "60s") -> dict[str, Any]:
    scaling: dict[str, Any] = {"minReplicas": 0}
    if after:
        scaling["scaleToZeroAfter"] = after
    return {"name": name, "modelName": "m", "modelVersion": "1", "image": "registry.example/m:1", "weight": weight,
            "scaling": scaling}


def steady(name: str = "s", weight: int = 0) -> dict[str, Any]:
    return {"name": name, "modelName": "m", "modelVersion": "1", "image": "registry.example/m:1", "weight": weight}


def service(*models: dict[str, Any]) -> InferenceService:
    return InferenceService.from_body(body(*(models or (sleeper(),))))


def reading(requests: int = 0, inflight: int = 0, model: str = "m") -> dict[str, Any]:
    return {UID: {"invocationTimes": requests, "failedTimes": 0,
                  "models": {model: {"requests": requests, "inflight": inflight}}}}


def tracked(*rounds: tuple[float, list[tuple[str, dict[str, Any]]]], complete: bool = True) -> ActivityTracker:
    tracker = ActivityTracker()
    for now, readings in rounds:
        tracker.observe(readings, now, complete)
    return tracker


def idle_entry(since: str, name: str = "m") -> dict[str, Any]:
    return {"models": [{"name": name, "status": "idle", "replicas": 0, "readyReplicas": 0, "idleSince": since}]}


class TestTracker:
    def test_the_first_complete_round_is_a_baseline_not_activity(self) -> None:
        tracker = ActivityTracker()
        assert tracker.observe([("gw1", reading(requests=40))], T0, complete=True) == set()
        assert not tracker.trusted and tracker.get(UID, "m").active_at is None  # type: ignore[union-attr]
        assert tracker.observe([("gw1", reading(requests=40))], T0 + 1, complete=True) == set()
        assert tracker.trusted

    def test_a_request_that_moved_or_waits_is_activity(self) -> None:
        tracker = tracked((T0, [("gw1", reading(5))]), (T0 + 1, [("gw1", reading(6))]))
        assert tracker.get(UID, "m").active_at == T0 + 1  # type: ignore[union-attr]
        assert tracker.observe([("gw1", reading(6, inflight=1))], T0 + 2, True) == {UID}
        assert tracker.get(UID, "m").inflight == 1  # type: ignore[union-attr]

    def test_a_new_gateway_process_that_served_requests_is_activity_one_that_did_not_is_not(self) -> None:
        tracker = tracked((T0, [("gw1", reading(5))]))
        assert tracker.observe([("gw1", reading(5)), ("gw2", reading(0))], T0 + 1, True) == set()
        assert tracker.observe([("gw1", reading(5)), ("gw2", reading(0)), ("gw3", reading(2))], T0 + 2, True) == {UID}

    def test_a_restarted_gateway_whose_counts_start_again_is_not_activity(self) -> None:
        tracker = tracked((T0, [("gw1", reading(50))]), (T0 + 1, [("gw1", reading(50))]))
        assert tracker.observe([("gw2", reading(0))], T0 + 2, True) == set()

    def test_a_round_some_gateway_missed_is_not_trusted(self) -> None:
        tracker = tracked((T0, [("gw1", reading(5))]), (T0 + 1, [("gw1", reading(5))]))
        tracker.observe([], T0 + 2, complete=False)
        assert not tracker.trusted

    def test_odd_readings_count_as_nothing(self) -> None:
        tracker = tracked((T0, [("gw1", {UID: {"models": {"m": {"requests": "x", "inflight": -3}}}}),
                                ("gw2", {UID: "garbage"}), ("gw3", {UID: {"models": []}})]))
        assert tracker.get(UID, "m").inflight == 0  # type: ignore[union-attr]


class TestIdleModels:
    def test_a_model_quiet_for_its_window_goes_idle(self) -> None:
        tracker = tracked((T0, [("gw1", reading(5))]), (T0 + 1, [("gw1", reading(6))]))
        assert idle_models(service(), UID, {}, tracker, T0 + 60) == {}
        assert idle_models(service(), UID, {}, tracker, T0 + 61) == {"m": stamp(T0 + 61)}

    def test_a_model_no_gateway_ever_reported_sleeps_a_window_after_watching_began(self) -> None:
        tracker = tracked((T0, [("gw1", {})]), (T0 + 1, [("gw1", {})]))
        assert idle_models(service(), UID, {}, tracker, T0 + 59) == {}
        assert idle_models(service(), UID, {}, tracker, T0 + 60) == {"m": stamp(T0 + 60)}

    def test_a_request_in_flight_keeps_it_awake(self) -> None:
        tracker = tracked((T0, [("gw1", reading(5, inflight=1))]), (T0 + 1, [("gw1", reading(5, inflight=1))]))
        assert idle_models(service(), UID, {}, tracker, T0 + 3600) == {}

    def test_without_trusted_evidence_nothing_sleeps(self) -> None:
        assert idle_models(service(), UID, {}, None, T0 + 3600) == {}
        assert idle_models(service(), UID, {}, tracked((T0, [("gw1", reading(5))])), T0 + 3600) == {}
        incomplete = tracked((T0, [("gw1", reading(5))]), (T0 + 1, [("gw1", reading(5))]))
        incomplete.observe([], T0 + 2, complete=False)
        assert idle_models(service(), UID, {}, incomplete, T0 + 3600) == {}

    def test_an_idle_model_stays_idle_keeping_its_idle_since_until_a_request_moves(self) -> None:
        since = stamp(T0 + 100)
        tracker = tracked((T0, [("gw1", reading(5))]), (T0 + 50, [("gw1", reading(6))]))  # active before it slept
        assert idle_models(service(), UID, idle_entry(since), tracker, T0 + 200) == {"m": since}
        tracker.observe([("gw1", reading(7))], T0 + 201, True)
        assert idle_models(service(), UID, idle_entry(since), tracker, T0 + 201) == {}

    def test_an_idle_model_wakes_for_a_held_request(self) -> None:
        tracker = tracked((T0, [("gw1", reading(5))]), (T0 + 1, [("gw1", reading(5))]))
        tracker.observe([("gw1", reading(5, inflight=1))], T0 + 2, True)
        assert idle_models(service(), UID, idle_entry(stamp(T0 + 2)), tracker, T0 + 2) == {}

    def test_after_a_restart_an_idle_model_stays_idle_and_an_awake_one_gets_a_whole_window(self) -> None:
        tracker = tracked((T0, [("gw1", reading(900))]), (T0 + 1, [("gw1", reading(900))]))
        svc = service(sleeper("a"), sleeper("b", weight=0))
        before = {"models": [{"name": "a", "status": "idle", "idleSince": stamp(T0 - 5000)},
                             {"name": "b", "status": "ready"}]}
        assert idle_models(svc, UID, before, tracker, T0 + 2) == {"a": stamp(T0 - 5000)}
        assert idle_models(svc, UID, before, tracker, T0 + 61) == {"a": stamp(T0 - 5000), "b": stamp(T0 + 61)}

    def test_only_models_with_min_replicas_0_of_a_running_real_time_service_sleep(self) -> None:
        tracker = tracked((T0, [("gw1", {})]), (T0 + 1, [("gw1", {})]))
        later = T0 + 10 * 3600
        assert idle_models(service(sleeper("a"), steady("s")), UID, {}, tracker, later) == {"a": stamp(later)}
        stopped = InferenceService.from_body(body(sleeper("a"), stopped=True))
        assert idle_models(stopped, UID, {}, tracker, later) == {}

    def test_the_default_window_is_ten_minutes(self) -> None:
        tracker = tracked((T0, [("gw1", {})]), (T0 + 1, [("gw1", {})]))
        svc = service(sleeper(after=None))
        assert idle_models(svc, UID, {}, tracker, T0 + 599) == {}
        assert idle_models(svc, UID, {}, tracker, T0 + 600) == {"m": stamp(T0 + 600)}


class TestWaking:
    def test_a_model_leaving_idle_is_waking_until_status_says_otherwise(self) -> None:
        svc = service(sleeper("a"), sleeper("b", weight=0))
        before = {"models": [{"name": "a", "status": "idle"}, {"name": "b", "status": "waking"}]}
        assert waking_models(svc, {}, before, {}) == {"a", "b"}
        assert waking_models(svc, {"a": "x"}, before, {}) == {"b"}
        assert waking_models(svc, {}, {"models": [{"name": "a", "status": "ready"}]}, {"b": T0}) == {"b"}


class TestRoundHelpers:
    def test_may_sleep_looks_at_the_raw_spec(self) -> None:
        assert may_sleep(body(sleeper()))
        assert not may_sleep(body(steady()))
        assert not may_sleep({"spec": {"models": "x"}})

    def test_shown_idle(self) -> None:
        assert shown_idle(body(sleeper(), status=idle_entry("t"))) == {"m"}
        assert shown_idle(body(sleeper(), status={"models": "x"})) == set()

    def test_a_pass_is_due_when_a_model_should_sleep_or_wake(self) -> None:
        tracker = tracked((T0, [("gw1", reading(5))]), (T0 + 1, [("gw1", reading(5))]))
        svc = service()
        assert not pass_due(svc, UID, {}, tracker, T0 + 30)
        assert pass_due(svc, UID, {}, tracker, T0 + 61)
        assert not pass_due(svc, UID, idle_entry(stamp(T0 + 61)), tracker, T0 + 62)
        tracker.observe([("gw1", reading(6))], T0 + 63, True)
        assert pass_due(svc, UID, idle_entry(stamp(T0 + 61)), tracker, T0 + 63)

    def test_specs_are_parsed_once_per_generation(self) -> None:
        cache = SpecCache()
        first = cache.get(body(sleeper()))
        assert first is not None and cache.get(body(sleeper())) is first
        changed = body(sleeper(after="2h"))
        changed["metadata"]["generation"] = 2
        assert cache.get(changed) is not first and cache.get(changed).spec.models[0].scaling.idle_seconds == 7200
        broken = body({"name": 5})
        broken["metadata"]["generation"] = 3
        assert cache.get(broken) is None
        cache.keep(set())
        assert cache.specs == {}
