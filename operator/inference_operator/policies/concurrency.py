"""Replicas from requests in flight, as Knative's autoscaler decides them (KPA: knative.dev/docs, "Autoscaling").

Each decision takes the model's requests in flight now (summed over every gateway's counts) and keeps the
samples of the last `stable_window` seconds. With `target` requests per replica:

- stable: ceil(average over the stable window / target): a steady load gives a steady count, and a brief
  spike or lull moves the average little (no flapping);
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
        stable = math.ceil(self._average(now, s.stable_window) / s.target)
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
