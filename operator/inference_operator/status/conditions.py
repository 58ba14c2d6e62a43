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
from typing import Any

from inference_operator.api.states import ServiceState
from inference_operator.status.causes import Cause

READY_REASONS = {
    ServiceState.RUNNING: ("True", "Running", "Every model with traffic has all its instances ready."),
    ServiceState.DEPLOYING: ("False", "Deploying", "Instances are being created and started."),
    ServiceState.CONCERNING: ("False", "Concerning", "Some instances are not ready."),
    ServiceState.STOPPED: ("True", "Stopped", "The service is stopped as asked: every model is scaled to 0."),
    ServiceState.FINISHED: ("True", "Finished", "The batch run has completed."),
}


def condition(ctype: str, status: str, reason: str, message: str, generation: int,
               previous: Sequence[Mapping[str, Any]], stamp: str) -> dict[str, Any]:
    """One condition; its lastTransitionTime moves only when its status changes."""
    before = next((c for c in previous if c.get("type") == ctype), None)
    moved = before is None or before.get("status") != status
    return {"type": ctype, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": stamp if moved or before is None else before.get("lastTransitionTime", stamp),
            "observedGeneration": generation}


def ready_conditions(state: ServiceState, causes: Sequence[Cause], generation: int,
                     previous: Sequence[Mapping[str, Any]], stamp: str, *, waiting: Sequence[Cause] = (),
                     detail: str | None = None, rolling: bool = False,
                     scaling_up: bool = False) -> list[dict[str, Any]]:
    """Ready and Stalled for a service state; failure reasons come from the first cause. A deploying
    service is `Progressing` while a new template replaces older instances, and its message names
    what it waits for (`waiting`: causes that clear by themselves). A running service is `ScalingUp`
    (Ready False) while the instances a new generation asked for come up."""
    if state == ServiceState.FAILED:
        reason = causes[0].reason if causes else "Failed"
        message = "; ".join(c.message for c in causes) or "The service failed."
        ready = ("False", reason, message)
    else:
        ready = READY_REASONS[state]
        if state == ServiceState.DEPLOYING and rolling:
            ready = ("False", "Progressing", ready[2])
        if scaling_up:
            ready = ("False", "ScalingUp", ready[2])
        if causes:
            ready = (ready[0], causes[0].reason, "; ".join(c.message for c in causes))
        elif waiting:
            ready = (ready[0], ready[1], "Waiting for what clears by itself: " + "; ".join(c.message for c in waiting))
        elif detail:
            ready = (ready[0], ready[1], detail)
    stalled = ("True", ready[1], ready[2]) if state == ServiceState.FAILED else ("False", "NotStalled", "")
    return [condition("Ready", *ready, generation, previous, stamp),
            condition("Stalled", *stalled, generation, previous, stamp)]
