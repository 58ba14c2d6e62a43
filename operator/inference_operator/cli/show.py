"""`get` and `describe` as text: InferenceService bodies (and their Events) in, what kubectl users read out.

Pure: the objects come from cli/main.py, which reads them through kube/. `get` prints the columns of
`kubectl get infsvc` (the CRD's printer columns: NAME, STATUS, PROGRESS, ADDRESS, MODELS, AGE) and, with
`-A`, NAMESPACE first; `describe` prints the fields in `kubectl describe`'s layout: name, namespace,
status, the address to call, counts, conditions, the models' state, then the Events, oldest first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from inference_operator.api.conventions import parse_rfc3339

NONE = "<none>"


def age(stamp: Any, now: datetime) -> str:
    """kubectl's short age: 42s, 5m, 3h, 12d (the largest unit, two digits for the smaller when under 10)."""
    moment = parse_rfc3339(stamp) if isinstance(stamp, str) else None
    if moment is None:
        return "<unknown>"
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m"
    if days < 2:
        return f"{hours}h"
    return f"{days}d{hours % 24}h" if days < 8 else f"{days}d"


def _status(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return body.get("status") or {}


def _text(value: Any) -> str:
    return NONE if value is None or value == "" else str(value)


def table(rows: Sequence[Sequence[str]]) -> str:
    """Columns left-aligned, three spaces apart, as kubectl prints them."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def get_table(bodies: Iterable[Mapping[str, Any]], now: datetime, all_namespaces: bool = False) -> str:
    head = ["NAME", "STATUS", "PROGRESS", "ADDRESS", "MODELS", "AGE"]
    rows = [["NAMESPACE", *head] if all_namespaces else head]
    for body in bodies:
        meta, status = body.get("metadata") or {}, _status(body)
        models = ",".join(str(m.get("name", "")) for m in (body.get("spec") or {}).get("models") or [])
        row = [meta.get("name", ""), _text(status.get("status")), _text(status.get("progress")),
               _text(status.get("accessAddress")), _text(models), age(meta.get("creationTimestamp"), now)]
        rows.append([meta.get("namespace", ""), *row] if all_namespaces else row)
    if len(rows) == 1:
        return ""
    return table(rows)


def _fields(pairs: Iterable[tuple[str, Any]], indent: str = "") -> list[str]:
    shown = [(name, value) for name, value in pairs if value is not None]
    width = max((len(name) for name, _ in shown), default=0) + 2
    return [f"{indent}{(name + ':').ljust(width)}{value}" for name, value in shown]


def _conditions(status: Mapping[str, Any]) -> list[str]:
    conditions = status.get("conditions") or []
    if not conditions:
        return ["Conditions:  <none>"]
    rows = [["Type", "Status", "Reason", "Message"]]
    rows += [[_text(c.get("type")), _text(c.get("status")), _text(c.get("reason")), _text(c.get("message"))]
             for c in conditions]
    return ["Conditions:", *("  " + line for line in table(rows).splitlines())]


def _models(body: Mapping[str, Any]) -> list[str]:
    """One row per spec.models entry, with what status.models says of it."""
    observed = {m.get("name"): m for m in _status(body).get("models") or []}
    rows = [["Name", "Status", "Ready", "Weight", "Runtime", "Model"]]
    for model in (body.get("spec") or {}).get("models") or []:
        seen = observed.get(model.get("name")) or {}
        ready = f"{seen.get('readyReplicas', 0)}/{seen.get('replicas', 0)}" if seen else NONE
        weight = seen.get("weight", model.get("weight"))
        rows.append([_text(model.get("name")), _text(seen.get("status")), ready, _text(weight),
                     _text(model.get("runtime")), _text(model.get("modelName"))])
    return ["Models:", *("  " + line for line in table(rows).splitlines())]


def _events(events: Sequence[Mapping[str, Any]], now: datetime) -> list[str]:
    if not events:
        return ["Events:  <none>"]
    ordered = sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
    rows = [["Type", "Reason", "Age", "From", "Message"]]
    for event in ordered:
        source = (event.get("source") or {}).get("component") or event.get("reportingComponent")
        rows.append([_text(event.get("type")), _text(event.get("reason")),
                     age(event.get("lastTimestamp") or event.get("eventTime"), now), _text(source),
                     str(event.get("message") or "")])
    return ["Events:", *("  " + line for line in table(rows).splitlines())]


def describe(body: Mapping[str, Any], events: Sequence[Mapping[str, Any]], now: datetime) -> str:
    meta, status, spec = body.get("metadata") or {}, _status(body), body.get("spec") or {}
    auth = spec.get("auth") or {}
    apps = ", ".join(str(a.get("secretName")) for a in auth.get("apps") or []) if auth.get("appAuth") else None
    lines = _fields([
        ("Name", meta.get("name")), ("Namespace", meta.get("namespace")),
        ("Created", meta.get("creationTimestamp")), ("Service ID", status.get("serviceId")),
        ("Status", _text(status.get("status"))), ("Progress", f"{status.get('progress', 0)}%"),
        ("Error", status.get("errorMsg") or None), ("Address", _text(status.get("accessAddress"))),
        ("Infer Type", spec.get("inferType", "real-time")), ("Stopped", str(bool(spec.get("stopped"))).lower()),
        ("App Auth", f"on (apps: {apps})" if apps is not None else "off"),
        ("Invocations", status.get("invocationTimes", 0)), ("Failures", status.get("failedTimes", 0)),
        ("Updated", status.get("updateTime")),
    ])
    return "\n".join([*lines, *_conditions(status), *_models(body), *_events(events, now)])
