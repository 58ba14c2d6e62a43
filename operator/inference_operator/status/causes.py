"""Why a model's instances are not coming up, read from its observed pods and Deployment.

Only causes that will not clear by waiting count (API.md, "Precise rules", 2): the scheduler's
Unschedulable message, image pull errors with the image, crash loops with the container and its last
exit, and a Deployment that the API refused to fill (ReplicaFailure) or gave up on
(ProgressDeadlineExceeded). Messages are the cluster's own words, prefixed with the model's name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

IMAGE_PULL_REASONS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
CRASH_REASONS = {"CrashLoopBackOff", "RunContainerError", "CreateContainerError",
                 "CreateContainerConfigError"}


@dataclass(frozen=True)
class Cause:
    """A permanent reason, with a CamelCase reason for the Ready condition and a message for users."""

    reason: str
    message: str


def _ready(pod: Mapping[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _unschedulable(pod: Mapping[str, Any]) -> Cause | None:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" \
                and cond.get("reason") == "Unschedulable":
            return Cause("Unschedulable", cond.get("message") or "no node can run the instance")
    return None


def _container_cause(status: Mapping[str, Any], init: bool) -> Cause | None:
    waiting = (status.get("state") or {}).get("waiting") or {}
    reason = waiting.get("reason")
    kind = "init container" if init else "container"
    name, image = status.get("name", "?"), status.get("image", "?")
    if reason in IMAGE_PULL_REASONS:
        detail = waiting.get("message") or reason
        return Cause("ImagePullFailed", f'{kind} "{name}" cannot pull image "{image}" ({reason}): {detail}')
    if reason in CRASH_REASONS:
        last = (status.get("lastState") or {}).get("terminated") or {}
        exit_text = f", last exit code {last['exitCode']}" if "exitCode" in last else ""
        why = f" ({last['reason']})" if last.get("reason") else ""
        return Cause("CrashLoop", f'{kind} "{name}" keeps crashing ({reason}{exit_text}{why})')
    return None


def pod_cause(pod: Mapping[str, Any]) -> Cause | None:
    """The permanent reason this (not ready, not terminating) pod gives, if any."""
    if _ready(pod) or pod.get("metadata", {}).get("deletionTimestamp"):
        return None
    cause = _unschedulable(pod)
    if cause:
        return cause
    status = pod.get("status", {})
    for init, statuses in ((True, status.get("initContainerStatuses")), (False, status.get("containerStatuses"))):
        for container in statuses or []:
            cause = _container_cause(container, init)
            if cause:
                return cause
    return None


def deployment_cause(deployment: Mapping[str, Any] | None) -> Cause | None:
    """ReplicaFailure (quota, admission) or ProgressDeadlineExceeded on the Deployment itself."""
    for cond in (deployment or {}).get("status", {}).get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return Cause("ReplicaFailure", cond.get("message") or "pods cannot be created")
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return Cause("ProgressDeadlineExceeded", cond.get("message") or "rollout did not progress")
    return None


def model_cause(model: str, deployment: Mapping[str, Any] | None,
                pods: Iterable[Mapping[str, Any]]) -> Cause | None:
    """The first permanent cause among a model's pods (pods sorted by name for a stable message)."""
    for pod in sorted(pods, key=lambda p: p.get("metadata", {}).get("name", "")):
        cause = pod_cause(pod)
        if cause:
            return Cause(cause.reason, f"model {model}: {cause.message}")
    cause = deployment_cause(deployment)
    return Cause(cause.reason, f"model {model}: {cause.message}") if cause else None
