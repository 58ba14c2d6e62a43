"""What one operator process remembers of one service between passes, and where its passes stand."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Any

from inference_operator.ports import Children
from inference_operator.reconcile.child_memory import ChildMemory


class PassState(Enum):
    """Where a service's passes stand (slots.py moves it). A service is in one of these at every await:
    a pass slot is taken for it (RUNNING, or FINISHING once its pass gave that slot away), or it waits in
    the queue for one (QUEUED), or neither (IDLE). A pass that has more to do goes from RUNNING or
    FINISHING straight to QUEUED: it is never queued and running at once."""

    IDLE = auto()
    RUNNING = auto()  # a pass slot is taken for it: its passes run, or its task is about to start them
    FINISHING = auto()  # its pass wrote its Deployments and finishes on a finishing slot (slots.py)
    QUEUED = auto()  # its uid waits in PassSlots.queued for a pass slot


@dataclass(slots=True)
class Wake:
    """A model woken from idle (wakes.py): when the request that woke it came (epoch s) and, once it is ready,
    its cold start. Kept until a status carrying that cold start is written: a pass whose status write fails
    is retried, and the retry must write the same figure, not a ready model without one."""

    started: float
    seconds: float | None = None


@dataclass(slots=True)
class ServiceRecord:
    """What one operator process remembers of one service between passes. Reconciler._record makes
    it, Reconciler.forget_service drops it whole (its timers cancelled, its status uncounted)."""

    passes: PassState = PassState.IDLE
    latest: tuple[Mapping[str, Any], Children] | None = None  # the newest event's view, for the next pass
    children: ChildMemory = field(default_factory=ChildMemory)  # what sync.py applied, judged, handed over
    # The status last written (the watch may not show it yet), as compact JSON: a third of the size of the same
    # status as dicts, kept for every service as long as the process runs; it is read once a pass.
    written: str | None = None
    written_version: str | None = None  # the resourceVersion that write produced
    stored: Mapping[str, Any] | None = None  # that write as the watch brought it back (the API server's form)
    counts: Mapping[str, int] = field(default_factory=dict)  # gateway counts for status (state.py)
    state: str | None = None  # the status counted in inference_operator_services
    failures: int = 0  # consecutive failed passes (the retry backoff)
    due_timer: asyncio.TimerHandle | None = None  # a pass at the schedule's next due time
    retry_timer: asyncio.TimerHandle | None = None  # a pass retrying a failed one
    wakes: dict[str, Wake] = field(default_factory=dict)  # model -> its wake, until its cold start is written

    def cancel_timers(self) -> None:
        for timer in (self.due_timer, self.retry_timer):
            if timer is not None:
                timer.cancel()
        self.due_timer = self.retry_timer = None
