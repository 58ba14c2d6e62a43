"""Replicas from requests in flight (policies/concurrency.py): steady under a steady load, quick in a burst,
slow and bounded on the way down."""

from __future__ import annotations

from inference_operator.policies.concurrency import ConcurrencyScaler, Settings


def run(scaler: ConcurrencyScaler, loads: list[float], start: int, step: float = 2.0) -> list[int]:
    replicas, seen, now = start, [], 0.0
    for load in loads:
        now += step
        replicas = scaler.decide(now, load, replicas)
        seen.append(replicas)
    return seen


def test_a_constant_load_holds_the_replica_count():
    scaler = ConcurrencyScaler(Settings(target=4, low=1, high=10))
    seen = run(scaler, [10.0] * 200, start=3)
    assert seen == [3] * 200


def test_a_steady_noisy_load_does_not_flap():
    scaler = ConcurrencyScaler(Settings(target=4, low=1, high=10))
    noisy = [9.0, 11.0, 10.0, 12.0, 8.0, 10.0] * 40
    seen = run(scaler, noisy, start=3)
    assert set(seen[30:]) == {3}


def test_a_burst_panics_up_within_seconds_and_holds_until_a_stable_window_passes():
    scaler = ConcurrencyScaler(Settings(target=4, low=1, high=10))
    seen = run(scaler, [3.0] * 40 + [32.0] * 5 + [3.0] * 60, start=1)
    assert seen[39] == 1
    assert seen[40] > 1  # the first decision in the burst scales up
    assert seen[43] == 8  # within the panic window (6 s): the burst's whole count
    assert min(seen[43:45 + 25]) == 8  # not given back within the stable window after the burst
    assert seen[-1] == 1


def test_scaling_down_halves_at_most_per_decision_and_stays_in_bounds():
    scaler = ConcurrencyScaler(Settings(target=1, low=2, high=6))
    assert scaler.decide(1.0, 100.0, 6) == 6
    fresh = ConcurrencyScaler(Settings(target=1, low=2, high=16))
    assert fresh.decide(1.0, 0.0, 16) == 8
    assert fresh.decide(2.0, 0.0, 8) == 4
    assert fresh.decide(3.0, 0.0, 4) == 2
    assert fresh.decide(4.0, 0.0, 2) == 2


def test_a_load_drifting_a_few_percent_across_a_boundary_keeps_its_count():
    """Hysteresis: 8.4 in flight needs 3 replicas of 4; 7.6, a few minutes later, would fit 2 exactly at the
    target, but not with the band's headroom (2 x 4 x 0.9 = 7.2): the count holds instead of flapping."""
    scaler = ConcurrencyScaler(Settings(target=4, low=1, high=10))
    drifting = ([8.4] * 45 + [7.6] * 45) * 4  # 90 s each way at a decision every 2 s: past the stable window
    seen = run(scaler, drifting, start=3)
    assert set(seen) == {3}


def test_past_the_band_the_count_comes_down():
    scaler = ConcurrencyScaler(Settings(target=4, low=1, high=10))
    seen = run(scaler, [8.4] * 45 + [7.0] * 60, start=3)
    assert seen[44] == 3 and seen[-1] == 2
