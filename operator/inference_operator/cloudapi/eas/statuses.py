"""An InferenceService's state as an EAS Service Status (docs/cloud-api.md has the table).

EAS's clients wait for Running and stop waiting at Running, Stopped or Failed (the PAI SDK), so a status
that is on its way somewhere must never read as one of those: a stop not yet finished is Stopping, a
start of a stopped service is Starting, a new generation not yet observed is Updating.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from inference_operator.api.states import ServiceState
from inference_operator.status.causes import WAITING_SCHEDULER_WORDS

# The Ready condition's reasons that mean "waiting for the cluster" (a node or a volume), EAS's Waiting.
WAITING_REASONS = frozenset({*WAITING_SCHEDULER_WORDS.values(), "Preempting", "Unschedulable"})


class EasStatus(enum.StrEnum):
    CREATING = "Creating"
    WAITING = "Waiting"
    RUNNING = "Running"
    UPDATING = "Updating"
    STARTING = "Starting"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    FAILED = "Failed"
    DELETING = "Deleting"
    COMPLETE = "Complete"


def _ready(status: Mapping[str, Any]) -> Mapping[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})


def _stopped_or_not(stopped: bool, state: str | None) -> EasStatus | None:
    if stopped:
        return EasStatus.STOPPED if state == ServiceState.STOPPED else EasStatus.STOPPING
    if state == ServiceState.STOPPED:
        return EasStatus.STARTING
    return None


def eas_status(obj: Mapping[str, Any]) -> EasStatus:
    """The EAS Status of an InferenceService object as read from the API."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return EasStatus.DELETING
    state = status.get("status")
    lifecycle = _stopped_or_not(bool(spec.get("stopped")), state)
    if lifecycle is not None:
        return lifecycle
    if not state:
        return EasStatus.CREATING
    behind = (status.get("observedGeneration") or 0) < (meta.get("generation") or 0)
    if state == ServiceState.FAILED:
        return EasStatus.UPDATING if behind else EasStatus.FAILED
    if state == ServiceState.FINISHED:
        return EasStatus.COMPLETE
    if state in (ServiceState.RUNNING, ServiceState.CONCERNING):
        return EasStatus.UPDATING if behind else EasStatus.RUNNING
    if _ready(status).get("reason") in WAITING_REASONS:
        return EasStatus.WAITING
    return EasStatus.UPDATING if status.get("publishAt") and (meta.get("generation") or 1) > 1 else EasStatus.CREATING


def reason_and_message(obj: Mapping[str, Any]) -> tuple[str, str]:
    """EAS's Reason (upper-case, e.g. RUNNING) and Message: the Ready condition's, else the status."""
    status = obj.get("status") or {}
    ready = _ready(status)
    reason = str(ready.get("reason") or status.get("status") or "creating")
    message = str(status.get("errorMsg") or ready.get("message") or "")
    return reason.upper(), message
