"""The audit-log checker of the leader tests finds what it must find (it runs on records written here)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from audit import lease_windows, operator_writes, violations

T0 = datetime(2026, 12, 1, 8, 0, 0, tzinfo=UTC)
LEASE = "op"


def record(agent: str, verb: str, resource: str, name: str, at: float, took: float = 0.01, code: int = 200,
           holder: str | None = None) -> str:
    event = {"kind": "Event", "stage": "ResponseComplete", "verb": verb, "userAgent": agent,
             "objectRef": {"resource": resource, "namespace": "ns", "name": name},
             "responseStatus": {"code": code},
             "requestReceivedTimestamp": (T0 + timedelta(seconds=at)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
             "stageTimestamp": (T0 + timedelta(seconds=at + took)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    if holder is not None:
        event["requestObject"] = {"spec": {"holderIdentity": holder}}
    return json.dumps(event)


def agent(who: str) -> str:
    return f"inference-operator/0.1.0 ({who})"


def check(tmp_path: Path, lines: list[str]) -> list[str]:
    path = tmp_path / "audit.log"
    path.write_text("\n".join(lines) + "\n")
    writes = operator_writes(path)
    return violations(writes, lease_windows(writes, LEASE, 8, T0 + timedelta(seconds=100)), LEASE)


def handover(extra: list[str]) -> list[str]:
    """a leads from 0 s (renewing at 1 s), b takes over at 20 s."""
    return [record(agent("a"), "update", "leases", LEASE, 0, holder="a"),
            record(agent("a"), "update", "leases", LEASE, 1, holder="a"),
            record(agent("a"), "patch", "deployments", "x", 2),
            record(agent("b"), "update", "leases", LEASE, 20, holder="b"),
            record(agent("b"), "patch", "deployments", "x", 21),
            record("kube-controller-manager/v1.35.4", "update", "deployments", "x", 5), *extra]


def test_clean_handover_passes(tmp_path: Path) -> None:
    assert check(tmp_path, handover([])) == []


def test_a_write_after_the_lease_expired_is_found(tmp_path: Path) -> None:
    found = check(tmp_path, handover([record(agent("a"), "patch", "deployments", "y", 9.5)]))
    assert len(found) == 1 and "outside its Lease window" in found[0] and " a patch " in found[0]


def test_a_write_by_the_old_leader_after_the_takeover_is_found(tmp_path: Path) -> None:
    found = check(tmp_path, handover([record(agent("a"), "delete", "services", "y", 22)]))
    assert any("outside its Lease window" in f for f in found)
    assert any("overlapping writers" in f for f in found)


def test_a_write_before_leading_is_found(tmp_path: Path) -> None:
    found = check(tmp_path, handover([record(agent("b"), "create", "events", "e", 3)]))
    assert any("outside its Lease window" in f and " b create " in f for f in found)


def test_a_slow_write_completing_after_the_takeover_is_found(tmp_path: Path) -> None:
    found = check(tmp_path, handover([record(agent("a"), "patch", "deployments", "z", 8.5, took=12)]))
    assert any("outside its Lease window" in f for f in found)


def test_records_rotated_into_a_backup_are_read(tmp_path: Path) -> None:
    """The API server rotates its audit log at 100 MB (`audit-<time>.log`): a Lease taken in the backup
    still opens the window of writes recorded in the current file."""
    lines = handover([])
    (tmp_path / "audit-2026-12-01T08-00-10.000.log").write_text("\n".join(lines[:3]) + "\n")
    (tmp_path / "audit-2026-12-01T07-00-00.000.log").write_text(
        record(agent("z"), "update", "leases", LEASE, -100, holder="z") + "\n")
    assert check(tmp_path, lines[3:]) == []
    writes = operator_writes(tmp_path / "audit.log")
    assert [w.identity for w in writes if w.resource == "leases"] == ["z", "a", "a", "b"]
