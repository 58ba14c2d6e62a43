"""Replicas from requests in flight, as Knative's autoscaler decides them (KPA: knative.dev/docs, "Autoscaling").

Each decision takes the model's requests in flight now (summed over every gateway's counts) and keeps the
samples of the last `stable_window` seconds. With `target` requests per replica (a model's
scaling.targetConcurrency, for the models with scaling.metric: concurrency):

- stable: ceil(average over the stable window / target): a steady load gives a steady count, and a brief
  spike or lull moves the average little (no flapping). Down with a band (hysteresis, as the HPA's 10 %
  tolerance): n replicas are given back only when the average fits the fewer ones at `1 - tolerance` of the
  target, so a load that drifts a few percent across a boundary (7.6 <-> 8.4 in flight at target 4) keeps
  its count instead of adding and removing a replica every few minutes;
- panic: when the average over the last `panic_window` seconds needs `panic_threshold` times the replicas
  there are, the panic count ceil(panic average / target) is used, and only upwards, until a whole stable
  window passes without that condition (a burst is met within seconds, and the count it reached is not
  given back in the middle of it);
- at most `max_scale_down_rate` times fewer replicas per decision; bounds [low, high] (`low` is 1 for a
  model that scales to zero: going to and from 0 stays with policies/idle.py).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Settings:
    target: float
    low: int
    high: int
    stable_window: float = 60.0
    panic_window: float = 6.0
    panic_threshold: float = 2.0
    max_scale_down_rate: float = 2.0
    tolerance: float = 0.1


@dataclass
class ConcurrencyScaler:
    settings: Settings
    samples: deque[tuple[float, float]] = field(default_factory=deque)  # (time, in flight)
    panic_since: float | None = None
    panic_replicas: int = 0

    def _average(self, now: float, window: float) -> float:
        recent = [value for at, value in self.samples if now - at <= window]
        return sum(recent) / len(recent) if recent else 0.0

    def decide(self, now: float, in_flight: float, current: int) -> int:
        """The replicas for now, given the requests in flight and the replicas the Deployment has."""
        s = self.settings
        self.samples.append((now, max(0.0, in_flight)))
        while self.samples and now - self.samples[0][0] > s.stable_window:
            self.samples.popleft()
        average = self._average(now, s.stable_window)
        stable = math.ceil(average / s.target)
        if stable < current:  # down only past the band: the fewer replicas loaded below (1 - tolerance)
            stable = min(current, math.ceil(average / (s.target * (1 - s.tolerance))))
        panic = math.ceil(self._average(now, s.panic_window) / s.target)
        if panic >= s.panic_threshold * max(1, current):
            if self.panic_since is None:
                self.panic_replicas = current
            self.panic_since = now
        elif self.panic_since is not None and now - self.panic_since > s.stable_window:
            self.panic_since = None
        if self.panic_since is not None:
            self.panic_replicas = max(self.panic_replicas, panic, current)
            wanted = self.panic_replicas
        else:
            wanted = max(stable, math.ceil(current / s.max_scale_down_rate))
        return min(max(wanted, s.low), s.high)


ModelKey = tuple[str, str]  # (service uid, model entry name)


@dataclass
class Decisions:
    """A scaler per concurrency-scaled model and the replicas last decided for it (what its Deployment is
    given). A model's first count is seeded by a pass from the live Deployment, so a model taken over from
    its HPA starts where the HPA left it (no dip); the counts loop then decides from there."""

    scalers: dict[ModelKey, ConcurrencyScaler] = field(default_factory=dict)
    replicas: dict[ModelKey, int] = field(default_factory=dict)

    def get(self, key: ModelKey) -> int | None:
        return self.replicas.get(key)

    def seed(self, key: ModelKey, replicas: int) -> int:
        """The count a model starts from, unless one was decided already."""
        return self.replicas.setdefault(key, replicas)

    def decide(self, key: ModelKey, settings: Settings, now: float, in_flight: float) -> int | None:
        """One round's decision from the requests in flight now; None for a model not seeded yet."""
        current = self.replicas.get(key)
        if current is None:
            return None
        scaler = self.scalers.get(key)
        if scaler is None:
            scaler = self.scalers[key] = ConcurrencyScaler(settings)
        scaler.settings = settings  # new bounds or target apply at once; the samples stay
        self.replicas[key] = scaler.decide(now, in_flight, current)
        return self.replicas[key]

    def keep(self, keys: set[ModelKey]) -> None:
        """Forget models gone, or no longer scaled on concurrency."""
        for key in [k for k in self.replicas if k not in keys]:
            self.replicas.pop(key, None)
            self.scalers.pop(key, None)

    def forget(self, uid: str) -> None:
        self.keep({k for k in self.replicas if k[0] != uid})
