"""A service's Kubernetes Events as ModelArts shows them, and the flavor catalog as its specifications (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from inference_operator.catalog.flavors import BUILTIN_FLAVORS, Flavor
from inference_operator.cloudapi.errors import CloudError, Problem
from inference_operator.cloudapi.modelarts.errors import INVALID_PARAMETER
from inference_operator.cloudapi.modelarts.shapes import MAX_LIMIT, int_param, millis, service_name


def event_object(event: Mapping[str, Any]) -> dict[str, Any]:
    when = event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") \
        or (event.get("metadata") or {}).get("creationTimestamp")
    return {"event_type": "abnormal" if event.get("type") == "Warning" else "normal",
            "event_info": f"{event.get('reason', '')}: {event.get('message', '')}".strip(": "),
            "occur_time": millis(when) or 0}


def page(obj: Mapping[str, Any], items: Sequence[Mapping[str, Any]], query: Mapping[str, str]) -> dict[str, Any]:
    """{service_name, service_id, total_count, count, events} with the API's filters (event_type, event_info,
    start_time, end_time in ms), order by occur_time and offset/limit."""
    kind = query.get("event_type")
    if kind not in (None, "", "normal", "abnormal"):
        raise CloudError(Problem.BAD_REQUEST, "event_type: normal or abnormal", INVALID_PARAMETER)
    order = query.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise CloudError(Problem.BAD_REQUEST, "order: must be asc or desc", INVALID_PARAMETER)
    start = int_param(query, "start_time", 0, 0, 2**53)
    end = int_param(query, "end_time", 2**53, 0, 2**53)
    found = [event_object(e) for e in items]
    found = [e for e in found if (not kind or e["event_type"] == kind) and start <= e["occur_time"] <= end
             and (not query.get("event_info") or query["event_info"] in e["event_info"])]
    found.sort(key=lambda e: e["occur_time"], reverse=order == "desc")
    offset = int_param(query, "offset", 0, 0, 10**9)
    limit = int_param(query, "limit", MAX_LIMIT, 1, MAX_LIMIT)
    chosen = found[offset:offset + limit]
    return {"service_name": service_name(obj), "service_id": (obj.get("metadata") or {}).get("uid"),
            "total_count": len(found), "count": len(chosen), "events": chosen}


def _category(flavor: Flavor) -> str:
    return "GPU" if flavor.gpu else "ASCEND" if flavor.ascend else "CPU"


def specification(flavor: Flavor) -> dict[str, Any]:
    out: dict[str, Any] = {
        "specification": flavor.name, "billing_spec": flavor.name, "category": _category(flavor),
        "spec_status": "normal", "is_open": True, "is_free": False, "over_quota": False, "source_type": "",
        "display_en": flavor.description or flavor.name, "display_cn": flavor.description or flavor.name,
        "cpu_info": {"arch": "x86", "cpu": flavor.cpu},
        "memory_info": {"unit": "GB", "memory": round(flavor.memory_mib / 1024, 2)},
    }
    if flavor.gpu:
        out["gpu_info"] = {"unit": "GPU", "gpu": flavor.gpu}
    if flavor.ascend:
        out["npu_info"] = {"unit": "NPU", "npu": flavor.ascend}
    return out


def specifications(query: Mapping[str, str]) -> dict[str, Any]:
    """The built-in flavor catalog (catalog/flavors.py) with offset/limit; `custom` takes custom_spec."""
    items = [specification(f) for f in sorted(BUILTIN_FLAVORS.values(), key=lambda f: f.name)]
    offset = int_param(query, "offset", 0, 0, 10**9)
    limit = int_param(query, "limit", MAX_LIMIT, 1, MAX_LIMIT)
    chosen = items[offset:offset + limit]
    return {"total_count": len(items), "count": len(chosen), "specifications": chosen}
