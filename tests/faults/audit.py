"""The API server's audit log as evidence: which replica wrote what, when, and when it held the Lease.

The local cluster's policy (hack/localcluster.py AUDIT_POLICY) records every write at Metadata level
and Lease writes with their request body, so a Lease update says who it made the holder. A replica is
known by its user agent, `inference-operator/<version> (<identity>)`, its identity being the Lease's
holderIdentity.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

AGENT = re.compile(r"^inference-operator/\S+ \((?P<identity>[^)]+)\)")
WRITES = {"create", "update", "patch", "delete", "deletecollection"}


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Write:
    identity: str
    verb: str
    resource: str
    namespace: str
    name: str
    code: int
    received: datetime
    completed: datetime
    holder: str | None = None  # for a Lease write: the holderIdentity it wrote

    def __str__(self) -> str:
        return (f"{self.received.time()}..{self.completed.time()} {self.identity} {self.verb} {self.resource} "
                f"{self.namespace}/{self.name} -> {self.code}")


def audit_files(path: Path) -> list[Path]:
    """The log and the backups the API server rotated it into (`audit-<time>.log` beside `audit.log`; a
    maximum size of 0 does not turn rotation off, it means lumberjack's 100 MB default), oldest first."""
    backups = sorted(path.parent.glob(f"{path.stem}-*{path.suffix}"))
    return [*backups, path] if path.exists() else backups


def _lines(path: Path, since: datetime | None) -> Iterable[str]:
    for file in audit_files(path):
        if since is not None and datetime.fromtimestamp(file.stat().st_mtime, since.tzinfo) < since:
            continue  # a backup last written before `since` holds nothing after it
        with file.open(errors="replace") as lines:
            yield from lines


def operator_writes(path: Path, since: datetime | None = None) -> list[Write]:
    """Completed writes sent by operator replicas (by user agent), in the order they were received, from the
    log at `path` and its rotated backups."""
    out = []
    for line in _lines(path, since):
        if '"inference-operator/' not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue  # the last line may be half written
        match = AGENT.match(event.get("userAgent") or "")
        if not match or event.get("stage") != "ResponseComplete" or event.get("verb") not in WRITES:
            continue
        received = _time(event["requestReceivedTimestamp"])
        if since is not None and received < since:
            continue
        ref: dict[str, Any] = event.get("objectRef") or {}
        resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        holder = None
        if ref.get("resource") == "leases":
            holder = ((event.get("requestObject") or {}).get("spec") or {}).get("holderIdentity") or ""
        out.append(Write(match["identity"], event["verb"], resource, ref.get("namespace", ""),
                         ref.get("name", ""), int((event.get("responseStatus") or {}).get("code", 0)),
                         received, _time(event["stageTimestamp"]), holder))
    return sorted(out, key=lambda w: w.received)


@dataclass(frozen=True)
class Window:
    identity: str
    start: datetime  # the acquiring Lease write completed
    end: datetime  # the next holder's acquiring write was received, the release, or renewal + duration

    def holds(self, write: Write) -> bool:
        return self.start <= write.received and write.completed <= self.end


def lease_windows(writes: Sequence[Write], lease: str, lease_duration: float, until: datetime) -> list[Window]:
    """When each replica held the Lease, as the API server recorded it: from the successful write that made
    it the holder to the first of: another holder's successful write received, its release, or its last
    renewal plus the Lease duration (the time a standby may take over after)."""
    changes = [w for w in writes if w.resource == "leases" and w.name == lease and 200 <= w.code < 300]
    windows: list[Window] = []
    current: tuple[str, datetime, datetime] | None = None  # holder, start, last renewal received

    def close(at: datetime) -> None:
        if current is not None:
            holder, start, renewed = current
            windows.append(Window(holder, start, min(at, renewed + timedelta(seconds=lease_duration))))

    for change in changes:
        if current is not None and change.holder == current[0]:
            current = (current[0], current[1], change.received)
            continue
        close(change.received)
        current = (change.holder, change.completed, change.received) if change.holder else None
    close(until)
    return windows


def violations(writes: Iterable[Write], windows: Sequence[Window], lease: str) -> list[str]:
    """Every non-Lease write made outside its replica's windows, and every pair of replicas (processes)
    whose writing spans, first write to last, overlap. Empty: one writer at a time, proved by the API
    server's record."""
    problems = []
    others = [w for w in writes if not (w.resource == "leases" and w.name == lease)]
    for write in others:
        if not any(window.identity == write.identity and window.holds(write) for window in windows):
            problems.append(f"outside its Lease window: {write}")
    spans: dict[str, tuple[Write, Write]] = {}  # per replica (process): its first and its last write
    for write in others:
        first, last = spans.get(write.identity, (write, write))
        spans[write.identity] = (first, write if write.completed >= last.completed else last)
    for a, (a_first, a_last) in spans.items():
        for b, (b_first, b_last) in spans.items():
            if a < b and a_first.received < b_last.completed and b_first.received < a_last.completed:
                problems.append(f"overlapping writers: {a} wrote from {a_first.received.time()} to "
                                f"{a_last.completed.time()}, {b} from {b_first.received.time()} to "
                                f"{b_last.completed.time()}")
    return problems
