"""Invocation counts from the gateway into status.invocationTimes / failedTimes.

The gateway counts per service since it started; status keeps totals across gateway restarts. The
operator remembers the last reading per service and adds only what is new (a reading lower than the
last one means the gateway restarted, so the whole reading is new). The first reading after the
operator starts is only a baseline: the stored totals already contain it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

FIELDS = ("invocationTimes", "failedTimes")


@dataclass
class CountsLedger:
    last: dict[str, dict[str, int]] = field(default_factory=dict)
    primed: bool = False

    def advance(self, reading: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
        """New counts per service since the previous reading (services with nothing new are left out)."""
        new: dict[str, dict[str, int]] = {}
        for service_id, counts in reading.items():
            before = self.last.get(service_id, {f: 0 for f in FIELDS} if self.primed else None)
            now = {f: int(counts.get(f, 0)) for f in FIELDS}
            self.last[service_id] = now
            if before is None:
                continue
            delta = {f: now[f] - before[f] if now[f] >= before[f] else now[f] for f in FIELDS}
            if any(delta.values()):
                new[service_id] = delta
        self.primed = True
        return new


def add_counts(stored: Mapping[str, int], delta: Mapping[str, int]) -> dict[str, int]:
    return {f: int(stored.get(f, 0)) + int(delta.get(f, 0)) for f in FIELDS}
