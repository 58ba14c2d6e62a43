"""Invocation counts from every gateway pod into status.invocationTimes / failedTimes, exactly.

Each gateway process counts, per service, the requests it sent to a model since it started, under a
random instance id (X-Gateway-Instance). The operator reads every gateway process and keeps a ledger:
per instance, the last counts read per service; plus a base per service (counts of instances long
gone, and what status held before the ledger existed). A service's totals are its base plus the sum
over instances, a pure function of the ledger, so:

- reading a process twice counts nothing twice (a reading replaces the instance's entry; counts of one
  process only grow, so an older reading never lowers it);
- a restarted gateway is a new instance whose counts start at zero: all of them are new;
- scaling adds or removes instances; a stopping gateway waits for one last read (--final-read-seconds),
  so what it served is in the ledger before it exits;
- the ledger is stored (a ConfigMap) before the totals are written to status, so an operator restart or
  failover resumes from it: nothing is dropped or repeated.

Only a gateway killed without its last read loses the requests it answered since the previous read.
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

FIELDS = ("invocationTimes", "failedTimes")
RETIRE_AFTER_SECONDS = 3600.0  # an instance unseen this long is folded into the base (the ledger stays small)
DATA_KEY = "ledger.json"


def _pair(counts: Mapping[str, Any]) -> list[int]:
    return [max(0, int(counts.get(f, 0))) for f in FIELDS]


@dataclass
class Ledger:
    base: dict[str, list[int]] = field(default_factory=dict)
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {"seen": t, "counts": {sid: [n, f]}}

    @classmethod
    def start(cls, stored: Mapping[str, Mapping[str, int]], readings: Iterable[tuple[str, Mapping[str, Any]]],
              now: float) -> Ledger:
        """The first ledger (none stored yet): status already holds what the live gateways counted, so the
        base is the stored totals minus their current readings."""
        ledger = cls()
        for instance, reading in readings:
            ledger.merge(instance, reading, now)
        counted = ledger.totals()
        for sid, totals in stored.items():
            have = counted.get(sid, {})
            base = [max(0, int(totals.get(f) or 0) - have.get(f, 0)) for f in FIELDS]
            if any(base):
                ledger.base[sid] = base
        return ledger

    def merge(self, instance: str, reading: Mapping[str, Mapping[str, Any]], now: float,
              live: Container[str] | None = None) -> bool:
        """Take one gateway process's cumulative reading (only of `live` services, when known); True when a
        count changed."""
        entry = self.instances.setdefault(instance, {"seen": now, "counts": {}})
        entry["seen"] = now
        changed = False
        for sid, counts in reading.items():
            if live is not None and sid not in live:
                continue  # deleted (a gateway counts it until it restarts), or not listed yet: read again next time
            new = _pair(counts)
            old = entry["counts"].get(sid, [0, 0])
            best = [max(a, b) for a, b in zip(old, new, strict=True)]
            if best != old:
                entry["counts"][sid] = best
                changed = True
        return changed

    def retire(self, now: float, after: float = RETIRE_AFTER_SECONDS) -> bool:
        """Fold instances not seen for `after` seconds into the base; True if any was."""
        gone = [i for i, e in self.instances.items() if now - float(e.get("seen", 0)) > after]
        for instance in gone:
            for sid, pair in self.instances.pop(instance)["counts"].items():
                base = self.base.setdefault(sid, [0, 0])
                self.base[sid] = [a + b for a, b in zip(base, pair, strict=True)]
        return bool(gone)

    def prune(self, live: Container[str]) -> bool:
        """Forget services that no longer exist (uids are never reused), so the ledger, a ConfigMap of at
        most 1 MiB, does not grow with every service ever deleted; True if any was."""
        gone = {sid for sid in self.base if sid not in live}
        for entry in self.instances.values():
            gone.update(sid for sid in entry["counts"] if sid not in live)
        for sid in gone:
            self.base.pop(sid, None)
            for entry in self.instances.values():
                entry["counts"].pop(sid, None)
        return bool(gone)

    def totals(self) -> dict[str, dict[str, int]]:
        """Per service: base plus every instance's counts."""
        sums: dict[str, list[int]] = {sid: list(pair) for sid, pair in self.base.items()}
        for entry in self.instances.values():
            for sid, pair in entry["counts"].items():
                total = sums.setdefault(sid, [0, 0])
                sums[sid] = [a + b for a, b in zip(total, pair, strict=True)]
        return {sid: dict(zip(FIELDS, pair, strict=True)) for sid, pair in sums.items()}

    def to_data(self) -> dict[str, str]:
        return {DATA_KEY: json.dumps({"base": self.base, "instances": self.instances}, sort_keys=True,
                                     separators=(",", ":"))}

    @classmethod
    def from_data(cls, data: Mapping[str, str] | None) -> Ledger | None:
        """The stored ledger of a ConfigMap's data; None when there is none (or it is unreadable)."""
        try:
            raw = json.loads((data or {})[DATA_KEY])
            return cls({sid: _pair(dict(zip(FIELDS, pair, strict=True))) for sid, pair in raw["base"].items()},
                       {i: {"seen": float(e["seen"]), "counts": {sid: _pair(dict(zip(FIELDS, p, strict=True)))
                                                                 for sid, p in e["counts"].items()}}
                        for i, e in raw["instances"].items()})
        except (KeyError, TypeError, ValueError):
            return None


def counts_urls(slices: Iterable[Mapping[str, Any]], port: int | str) -> list[str]:
    """The /-/counts URL of every endpoint of a Service's EndpointSlices, ready or not (a stopping gateway
    still has counts to give); `port` is the port number, or the name of the slice's port."""
    urls = set()
    for body in slices:
        ports = body.get("ports") or []
        number = next((p.get("port") for p in ports if str(p.get("name")) == str(port)), None)
        number = number or (int(port) if str(port).isdigit() else None)
        if not number:
            continue
        for endpoint in body.get("endpoints") or []:
            for address in endpoint.get("addresses") or []:
                host = f"[{address}]" if ":" in address else address
                urls.add(f"http://{host}:{number}/-/counts")
    return sorted(urls)
