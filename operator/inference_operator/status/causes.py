"""Why a model's instances are not coming up, read from its observed pods and Deployment.

Two kinds (docs/api.md, "Waiting or failing"): a *failing* cause needs a person (an image that
cannot be pulled, a container that crashes, pods no node can ever take, an admission refusal);
a *waiting* cause is something the cluster is already working on and that clears by itself (a claim
being bound, a node joining, a preemption under way, a quota that is full for now). A waiting cause
becomes failing once the Deployment's own progress deadline (`progressDeadlineSeconds`, 600 s by
default) has passed without progress. Messages are the cluster's own words, prefixed with the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from inference_operator.api.conventions import condition_of, is_true

IMAGE_PULL_REASONS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
CRASH_REASONS = {"CrashLoopBackOff", "RunContainerError", "CreateContainerError",
                 "CreateContainerConfigError"}
# Words of the scheduler's Unschedulable message that mean the cluster is still converging: a claim
# the volume controller has not bound yet, or a node that is joining (not ready / not initialized).
# Any one of them makes the whole message a wait: that node or claim may take the pod once it is ready.
WAITING_SCHEDULER_WORDS = {
    "unbound immediate PersistentVolumeClaims": "VolumeNotBound",
    "node.kubernetes.io/not-ready": "NodeNotReady",
    "node.cloudprovider.kubernetes.io/uninitialized": "NodeNotReady",
    "node.kubernetes.io/network-unavailable": "NodeNotReady",
}
QUOTA_WORDS = "exceeded quota"


@dataclass(frozen=True)
class Cause:
    """A reason, with a CamelCase reason for the Ready condition and a message for users.
    `waiting`: the cluster clears it by itself (the service stays deploying), else it needs a person."""

    reason: str
    message: str
    waiting: bool = False


def _unschedulable(pod: Mapping[str, Any]) -> Cause | None:
    cond = condition_of(pod, "PodScheduled")
    if cond is None or cond.get("status") != "False" or cond.get("reason") != "Unschedulable":
        return None
    message = cond.get("message") or "no node can run the instance"
    for words, reason in WAITING_SCHEDULER_WORDS.items():
        if words in message:
            return Cause(reason, message, waiting=True)
    if pod.get("status", {}).get("nominatedNodeName"):
        return Cause("Preempting", f"lower-priority pods are being evicted from node "
                     f"{pod['status']['nominatedNodeName']} to make room ({message})", waiting=True)
    return Cause("Unschedulable", message)


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
    """The reason this (not ready, not terminating) pod gives, if any, waiting or failing."""
    if is_true(pod, "Ready") or pod.get("metadata", {}).get("deletionTimestamp"):
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


def deadline_exceeded(deployment: Mapping[str, Any] | None) -> str | None:
    """The Deployment controller's message once its progress deadline passed, else None."""
    cond = condition_of(deployment, "Progressing")
    if cond is None or cond.get("reason") != "ProgressDeadlineExceeded":
        return None
    return str(cond.get("message") or "the rollout did not progress")


def deployment_cause(deployment: Mapping[str, Any] | None) -> Cause | None:
    """ReplicaFailure (a full quota waits, an admission refusal fails) or ProgressDeadlineExceeded."""
    failure = condition_of(deployment, "ReplicaFailure")
    if failure is not None and failure.get("status") == "True":
        message = failure.get("message") or "pods cannot be created"
        if QUOTA_WORDS in message:
            return Cause("QuotaExceeded", message, waiting=True)
        return Cause("ReplicaFailure", message)
    deadline = deadline_exceeded(deployment)
    return Cause("ProgressDeadlineExceeded", deadline) if deadline else None


@dataclass(frozen=True)
class ModelCauses:
    """What holds a model back: the first failing cause and the first waiting one (either may be None)."""

    failing: Cause | None = None
    waiting: Cause | None = None


def model_causes(model: str, deployment: Mapping[str, Any] | None,
                 pods: Iterable[Mapping[str, Any]]) -> ModelCauses:
    """Causes of a model's pods (sorted by name for a stable message), then of its Deployment.
    Past the Deployment's progress deadline, a wait that has not cleared is a failure."""
    failing: Cause | None = None
    waiting: Cause | None = None
    for pod in sorted(pods, key=lambda p: p.get("metadata", {}).get("name", "")):
        cause = pod_cause(pod)
        if cause and cause.waiting:
            waiting = waiting or cause
        elif cause:
            failing = cause
            break
    if failing is None:
        cause = deployment_cause(deployment)
        if cause and cause.waiting:
            waiting = waiting or cause
        elif cause and not (waiting and cause.reason == "ProgressDeadlineExceeded"):
            failing = cause
    deadline = deadline_exceeded(deployment)
    if failing is None and waiting is not None and deadline:
        failing, waiting = replace(waiting, message=f"{waiting.message} (still waiting past the progress "
                                                    f"deadline: {deadline})", waiting=False), None
    prefix = f"model {model}: "
    return ModelCauses(*(replace(c, message=prefix + c.message) if c else None for c in (failing, waiting)))
