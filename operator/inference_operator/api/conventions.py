"""Kubernetes API conventions every part reads or writes the same way: timestamps and conditions.

Timestamps: the API's `date-time` fields (status times, Event times, idleSince) are RFC 3339 in UTC to
the second, `2024-05-01T12:00:00Z`, which is what `rfc3339` writes. `parse_rfc3339` reads any RFC 3339
time (fractions and offsets too, as the apiserver and other controllers may write them) and answers None
for anything else, so a hand-edited status never raises. The Lease's MicroTime and the signer's basic
ISO 8601 date are other formats: they stay with their users (runtime/leader.py, gateway/signing.py).

Conditions: `status.conditions` of any object (Pod, Deployment, Job, CRD) is a list with at most one
entry per `type` (API conventions); `condition_of` finds it, `is_true` asks whether its status is "True".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

RFC3339 = "%Y-%m-%dT%H:%M:%SZ"
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def rfc3339(moment: datetime) -> str:
    """`moment` as the API writes times: UTC, to the second, with a Z (a naive datetime is taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime(RFC3339)


def parse_rfc3339(text: Any) -> datetime | None:
    """An RFC 3339 time as an aware datetime; None when `text` is not one (missing, odd, hand-edited)."""
    if not isinstance(text, str) or not _RFC3339.fullmatch(text):
        return None
    try:
        return datetime.fromisoformat(text.upper())
    except ValueError:  # well-formed but impossible, e.g. month 13
        return None


Conditions = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None  # an object, or its conditions list


def _conditions(source: Conditions) -> Sequence[Any]:
    if isinstance(source, Mapping):
        status = source.get("status")
        source = status.get("conditions") if isinstance(status, Mapping) else None
    return source if isinstance(source, list | tuple) else ()  # a JSON array, or a list built in code


def condition_of(source: Conditions, ctype: str) -> Mapping[str, Any] | None:
    """The condition of type `ctype` of an object (its status.conditions) or of a conditions list."""
    return next((c for c in _conditions(source) if isinstance(c, Mapping) and c.get("type") == ctype), None)


def is_true(source: Conditions, ctype: str) -> bool:
    """The object (or conditions list) has condition `ctype` with status "True"."""
    found = condition_of(source, ctype)
    return found is not None and found.get("status") == "True"
