"""Conditions that kstatus, Flux and Argo CD read (Kubernetes API conventions).

Ready is True when the service has settled where its spec asks: running, or stopped, or (batch)
finished, so kstatus reports Current and `flux wait` / Argo sync waves move on; deploying and
concerning are False (InProgress), deploying with reason Progressing while a new template replaces
older instances, and so is running while a spec change's new instances come up (reason ScalingUp).
Stalled is True when it failed, which kstatus reports as Failed.
lastTransitionTime moves only when a condition's status changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from inference_operator.api.conventions import condition_of
from inference_operator.api.states import ServiceState
from inference_operator.status.causes import Cause

READY_REASONS = {
    ServiceState.RUNNING: ("True", "Running", "Every model with traffic has all its instances ready."),
    ServiceState.DEPLOYING: ("False", "Deploying", "Instances are being created and started."),
    ServiceState.CONCERNING: ("False", "Concerning", "Some instances are not ready."),
    ServiceState.STOPPED: ("True", "Stopped", "The service is stopped as asked: every model is scaled to 0."),
    ServiceState.FINISHED: ("True", "Finished", "The batch run has completed."),
}


Verdict = tuple[str, str, str]  # a condition's status, reason and message


def condition(ctype: str, verdict: Verdict, generation: int, previous: Sequence[Mapping[str, Any]],
              stamp: str) -> dict[str, Any]:
    """One condition; its lastTransitionTime moves only when its status changes."""
    status, reason, message = verdict
    before = condition_of(previous, ctype)
    moved = before is None or before.get("status") != status
    return {"type": ctype, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": stamp if moved or before is None else before.get("lastTransitionTime", stamp),
            "observedGeneration": generation}


@dataclass(frozen=True)
class Progress:
    """How a service that has not failed is getting on, beyond its state: what the Ready condition's
    reason and message say. `waiting`: causes that clear by themselves; `detail`: a message of its own
    (rolling out, waking, scaling up); `rolling`: a new template replaces older instances;
    `scaling_up`: the instances a new generation asked for are coming up."""

    waiting: Sequence[Cause] = ()
    detail: str | None = None
    rolling: bool = False
    scaling_up: bool = False


def ready_verdict(state: ServiceState, causes: Sequence[Cause], progress: Progress) -> Verdict:
    """The Ready condition's status, reason and message; failure reasons come from the first cause. A
    deploying service is `Progressing` while a new template replaces older instances, and its message
    names what it waits for. A running service is `ScalingUp` (Ready False) while the instances a new
    generation asked for come up."""
    if state == ServiceState.FAILED:
        reason = causes[0].reason if causes else "Failed"
        return "False", reason, "; ".join(c.message for c in causes) or "The service failed."
    status, reason, message = READY_REASONS[state]
    if state == ServiceState.DEPLOYING and progress.rolling:
        status, reason = "False", "Progressing"
    if progress.scaling_up:
        status, reason = "False", "ScalingUp"
    if causes:
        return status, causes[0].reason, "; ".join(c.message for c in causes)
    if progress.waiting:
        return status, reason, "Waiting for what clears by itself: " + "; ".join(c.message for c in progress.waiting)
    return status, reason, progress.detail or message


def ready_conditions(state: ServiceState, causes: Sequence[Cause], generation: int,
                     previous: Sequence[Mapping[str, Any]], stamp: str,
                     progress: Progress = Progress()) -> list[dict[str, Any]]:
    """Ready and Stalled for a service state (Stalled True when it failed, with Ready's reason)."""
    ready = ready_verdict(state, causes, progress)
    stalled = ("True", ready[1], ready[2]) if state == ServiceState.FAILED else ("False", "NotStalled", "")
    return [condition("Ready", ready, generation, previous, stamp),
            condition("Stalled", stalled, generation, previous, stamp)]
