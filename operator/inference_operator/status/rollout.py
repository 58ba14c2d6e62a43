"""Where a model's Deployment stands in its rollout, and which pods run its current template.

Ready at a generation means what `kubectl rollout status` waits for: the controller has observed the
Deployment's generation, every replica runs the current template (no old pods left) and is available.
The counts come from the Deployment's status; which pods are current comes from their
`pod-template-hash` label and the new ReplicaSet that the Deployment's Progressing condition names
("Created new replica set X", "ReplicaSet X is progressing", "... has timed out progressing"). That
costs no watch of ReplicaSets (one more object per template revision kept, and an event per change).
The condition can name the previous ReplicaSet for a moment after a rollback; current-template counts
are therefore capped by `updatedReplicas`, which the controller computes from the right one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from inference_operator.api.conventions import condition_of, is_true

HASH_LABEL = "pod-template-hash"
_NEW_REPLICA_SET = re.compile(r'(?:ReplicaSet|replica set) "([^"]+)"')


@dataclass(frozen=True)
class Rollout:
    """One Deployment's rollout, from its status and its pods."""

    caught_up: bool  # the controller has observed the latest generation
    complete: bool  # every replica current and available: ready at this generation
    ready: int  # ready instances of the current template
    old: int  # instances of older templates that still exist
    old_ready: int  # ...and still serve
    current_pods: Sequence[Mapping[str, Any]] = field(default_factory=tuple)  # where causes are read

    @property
    def rolling(self) -> bool:
        """A new template is replacing instances of an older one."""
        return self.old > 0 or self.old_ready > 0


def new_replica_set(deployment: Mapping[str, Any]) -> str | None:
    """The new ReplicaSet's name as the Deployment's Progressing condition gives it."""
    cond = condition_of(deployment, "Progressing")
    match = _NEW_REPLICA_SET.search(cond.get("message") or "") if cond is not None else None
    return match.group(1) if match else None


def current_hash(deployment: Mapping[str, Any]) -> str | None:
    """The pod-template-hash of the Deployment's current template, when its status names it."""
    name = deployment.get("metadata", {}).get("name", "")
    replica_set = new_replica_set(deployment)
    if replica_set and replica_set.startswith(name + "-"):
        return replica_set[len(name) + 1:]
    return None


def rollout(deployment: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> Rollout:
    status = deployment.get("status") or {}
    caught_up = status.get("observedGeneration", 0) >= deployment.get("metadata", {}).get("generation", 0)
    desired = (deployment.get("spec") or {}).get("replicas", 1)
    if desired is None:
        desired = 1
    total, updated = status.get("replicas", 0), status.get("updatedReplicas", 0)
    ready_all, available = status.get("readyReplicas", 0), status.get("availableReplicas", 0)
    live = [p for p in pods if not p.get("metadata", {}).get("deletionTimestamp")]
    if not caught_up:  # counts and the named ReplicaSet may describe an older spec: nothing is known
        return Rollout(False, False, 0, 0, 0, live)
    complete = updated >= desired and total <= updated and available >= updated
    old = max(0, total - updated)
    if complete:
        return Rollout(True, True, available, 0, 0, live)
    if old == 0:
        return Rollout(True, False, ready_all, 0, 0, live)
    template = current_hash(deployment)
    if template is None:  # which pods are current is unknown: count only what must be current
        ready = max(0, ready_all - old)
        return Rollout(True, False, ready, old, ready_all - ready, live)
    current = [p for p in live if p.get("metadata", {}).get("labels", {}).get(HASH_LABEL) == template]
    ready = min(sum(is_true(p, "Ready") for p in current), updated)
    return Rollout(True, False, ready, old, max(0, ready_all - ready), current)
