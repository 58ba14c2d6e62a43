"""Scheduled stop (spec.schedule, type stop): when a service stops by itself.

dueTime = startedAt + duration, where startedAt is when the service last started running. It lives
in status, so an operator restart keeps it; a changed schedule moves dueTime from the same start;
`stopped: true` clears both, so starting again begins a new period. Pure: `now` is a parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from inference_operator.api.conventions import parse_rfc3339, rfc3339
from inference_operator.api.states import ServiceState
from inference_operator.api.v1alpha1 import InferenceService

UNITS = {"MINUTES": timedelta(minutes=1), "HOURS": timedelta(hours=1), "DAYS": timedelta(days=1)}


def parse_time(text: str) -> datetime:
    """A time the status holds (startedAt, dueTime); ValueError when it is not RFC 3339."""
    moment = parse_rfc3339(text)
    if moment is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    return moment


def stop_after(svc: InferenceService) -> timedelta | None:
    """The earliest stop entry of the schedule, as a duration."""
    entries = [UNITS[e.time_unit] * e.duration for e in svc.spec.schedule or [] if e.type == "stop"]
    return min(entries) if entries else None


def due_time(svc: InferenceService, started_at: str | None) -> datetime | None:
    after = stop_after(svc)
    if after is None or not started_at or svc.spec.stopped:
        return None
    return parse_time(started_at) + after


def is_due(svc: InferenceService, previous: Mapping[str, Any], now: datetime) -> bool:
    """Whether the schedule has stopped the service (judged from the start time already recorded)."""
    due = due_time(svc, previous.get("startedAt"))
    return due is not None and now >= due


def schedule_fields(svc: InferenceService, state: str, previous: Mapping[str, Any], now: datetime) -> dict[str, str]:
    """startedAt and dueTime for this pass: set on the first pass that finds the service running."""
    if svc.spec.stopped:
        return {}
    started = previous.get("startedAt")
    if not started and state == ServiceState.RUNNING:
        started = rfc3339(now)
    if not started:
        return {}
    fields = {"startedAt": started}
    due = due_time(svc, started)
    if due is not None:
        fields["dueTime"] = rfc3339(due)
    return fields


def seconds_until_due(fields: Mapping[str, str], now: datetime) -> float | None:
    """When to wake up for a pending stop (None when nothing is pending)."""
    due = fields.get("dueTime")
    if not due:
        return None
    remaining = (parse_time(due) - now).total_seconds()
    return remaining if remaining > 0 else None
