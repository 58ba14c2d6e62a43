"""The InferencePool's status in the service's conditions.

Each Gateway that routes to a pool writes an entry in the pool's status.parents with its conditions
(Accepted, ResolvedRefs, ...). The service shows one condition per type, named `InferencePool<Type>`:
True when every parent says True, False when one says False (its reason), else Unknown; the message
names each parent. A pool no Gateway references yet shows `InferencePoolAccepted` Unknown. These
conditions say how the pool is taken up; they do not change Ready (the service serves through the
operator's own gateway either way).

The pool's status is written by other controllers: every string is checked and cut to size here, and
only so many parents, conditions and types are read, so the service's status stays within its schema.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from inference_operator.status.conditions import condition

PREFIX = "InferencePool"
MAX_PARENTS = 32  # the pool CRD's own bound
MAX_CONDITIONS = 8  # per parent, the Gateway API bound
MAX_TYPES = 6  # the service's conditions hold at most 16, Ready and Stalled among them
MAX_MESSAGE = 2048
_TYPE = re.compile(r"^[A-Z][A-Za-z0-9]{0,47}$")
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]{0,126}[A-Za-z0-9_])?$")
_ORDER = {"Accepted": 0, "ResolvedRefs": 1}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _parent_name(entry: Mapping[str, Any]) -> str:
    ref = entry.get("parentRef")
    if not isinstance(ref, Mapping):
        ref = {}
    parts = [_text(ref.get("kind")) or "Gateway", _text(ref.get("namespace")), _text(ref.get("name")) or "?"]
    return "/".join(p[:253] for p in parts if p)


def _readings(pool: Mapping[str, Any]) -> dict[str, list[tuple[str, str, str, str]]]:
    """condition type -> [(parent, status, reason, message)], well-formed entries only."""
    parents = ((pool.get("status") or {}) if isinstance(pool.get("status"), Mapping) else {}).get("parents")
    found: dict[str, list[tuple[str, str, str, str]]] = {}
    for entry in parents[:MAX_PARENTS] if isinstance(parents, list) else []:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("conditions"), list):
            continue
        for cond in entry["conditions"][:MAX_CONDITIONS]:
            if not isinstance(cond, Mapping) or not isinstance(cond.get("type"), str) or not _TYPE.match(cond["type"]):
                continue
            status = _text(cond.get("status")) if cond.get("status") in ("True", "False") else "Unknown"
            reason = _text(cond.get("reason"))
            if not _REASON.match(reason):
                reason = status
            message = _text(cond.get("message"))
            found.setdefault(cond["type"], []).append((_parent_name(entry), status, reason, message[:256]))
    return found


def pool_conditions(pool: Mapping[str, Any] | None, generation: int, previous: Sequence[Mapping[str, Any]],
                    stamp: str) -> list[dict[str, Any]]:
    """The service's InferencePool<Type> conditions for the pool as last seen (none without a pool)."""
    if pool is None:
        return []
    readings = _readings(pool)
    if not readings:
        return [condition(f"{PREFIX}Accepted", ("Unknown", "NoParents", "No Gateway routes to the InferencePool yet."),
                          generation, previous, stamp)]
    out = []
    for ctype in sorted(readings, key=lambda t: (_ORDER.get(t, 2), t))[:MAX_TYPES]:
        entries = readings[ctype]
        statuses = {status for _, status, _, _ in entries}
        status = "False" if "False" in statuses else "True" if statuses == {"True"} else "Unknown"
        reason = next((r for _, s, r, _ in entries if s == status), entries[0][2])
        message = "; ".join(f"{parent}: {s} {r}" + (f" ({m})" if m else "") for parent, s, r, m in entries)
        out.append(condition(f"{PREFIX}{ctype}", (status, reason, message[:MAX_MESSAGE]), generation, previous, stamp))
    return out
