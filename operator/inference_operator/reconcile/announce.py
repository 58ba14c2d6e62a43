"""A status transition's Event, posted beside the passes rather than inside one.

An Event waits last for a connection (kube.gate.EVENTS): a pass that waited for it would hold its slot and its
service's next pass (pods ready -> running would wait behind the report of `deploying`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inference_operator import metrics
from inference_operator.api.states import WARNING
from inference_operator.ports import KubePort, NamespaceTerminating

log = logging.getLogger(__name__)
# Transition Events waiting to be posted, a few KB each: bounds what a burst of transitions holds while the
# Events' connections are busy. Beyond it an Event is dropped and counted: status and the log say the same.
ANNOUNCEMENTS_AT_ONCE = 1000


@dataclass
class Announcer:
    """The transition Events being posted; a namespace that refuses one is reported to `on_terminating`."""

    on_terminating: Callable[[Mapping[str, Any]], None]  # the service's metadata
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def announce(self, kube: KubePort, body: Mapping[str, Any], before: str | None,
                 status: Mapping[str, Any]) -> None:
        """The Event of the transition from `before` (None: a new service) to the status written."""
        state = status["status"]
        event_type = "Warning" if state in WARNING else "Normal"
        message = status.get("errorMsg") or f"status {before or 'new'} -> {state}, progress {status['progress']}%"
        meta = body["metadata"]
        log.info("%s/%s: %s -> %s %s", meta["namespace"], meta["name"], before or "new", state,
                 status.get("errorMsg", ""))
        if len(self.tasks) >= ANNOUNCEMENTS_AT_ONCE:
            metrics.EVENTS_DROPPED.inc()
            return
        task = asyncio.get_running_loop().create_task(self._post(kube, body, event_type, state.capitalize(), message))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _post(self, kube: KubePort, body: Mapping[str, Any], event_type: str, reason: str,
                    message: str) -> None:
        try:
            await kube.post_event(body, event_type, reason, message)
        except NamespaceTerminating:  # the namespace goes, its Events with it: no more passes of its services
            self.on_terminating(body["metadata"])
        except Exception as exc:  # best effort (kube.post_event logs refusals): a lost connection, not leading
            log.warning("could not post event %s on %s: %s", reason, body["metadata"]["name"], exc)

    async def announced(self) -> None:
        """Until the Events of transitions so far are posted."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
