"""A service's timers: a pass retrying a failed one (backoff), a pass at the schedule's due time.

Both call `wakeup(namespace, name)`, which submits a pass of the service as the watch caches show it;
they are kept in the service's record, so forgetting a deleted service cancels them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from inference_operator.reconcile.record import ServiceRecord

log = logging.getLogger(__name__)
RETRY_DELAYS = (1, 2, 5, 10, 30, 60)  # seconds before retrying a failed pass, by consecutive failures
DUE_MARGIN = 0.5  # seconds after a due time its pass runs, so that pass finds the time passed (timers fire early)
Wakeup = Callable[[str, str], Awaitable[None]]  # namespace, name


def retry_later(record: ServiceRecord, meta: Mapping[str, Any], exc: Exception, delays: Sequence[float],
                wakeup: Wakeup | None) -> None:
    """A pass that failed (API unreachable, timeouts, a refused write) is retried with backoff: no
    event may come to start it again, and a level-triggered operator must converge anyway."""
    record.failures += 1
    delay = delays[min(record.failures, len(delays)) - 1]
    log.warning("%s/%s: pass failed (%s: %s); retrying in %ss", meta["namespace"], meta["name"],
                type(exc).__name__, exc, delay)
    if wakeup is None:
        return
    namespace, name = meta["namespace"], meta["name"]
    if record.retry_timer is not None:
        record.retry_timer.cancel()

    def fire() -> None:
        record.retry_timer = None
        asyncio.ensure_future(wakeup(namespace, name))

    record.retry_timer = asyncio.get_running_loop().call_later(delay, fire)


def wake_at_due(record: ServiceRecord, namespace: str, name: str, seconds: float | None,
                wakeup: Wakeup | None) -> None:
    """Nothing changes in the cluster when a due time passes: arrange a pass for that moment."""
    if record.due_timer is not None:
        record.due_timer.cancel()
        record.due_timer = None
    if seconds is not None and wakeup is not None:
        record.due_timer = asyncio.get_running_loop().call_later(
            seconds + DUE_MARGIN, lambda: asyncio.ensure_future(wakeup(namespace, name)))
