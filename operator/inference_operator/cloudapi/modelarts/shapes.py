"""InferenceServices as ModelArts shows services (seed 001, research 1.4), list filters and paging (pure)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from inference_operator.api.states import ServiceState
from inference_operator.cloudapi.errors import CloudError, Problem

ORIGINAL_NAME = "inference.io/modelarts-service-name"  # the service_name as sent, when it is not a DNS name
KEPT_FIELDS = "inference.io/modelarts-fields"  # fields with no Kubernetes meaning, kept and shown back
SORT_KEYS = ("publish_at", "service_name", "transition_at")
MAX_LIMIT = 1000


def namespace_of_project(project: str) -> str:
    """project_id is the namespace: a DNS label, else 400 naming it."""
    if not project or len(project) > 63 or not all(c.isascii() and (c.isalnum() or c == "-") for c in project) \
            or project != project.lower() or project.startswith("-") or project.endswith("-"):
        raise CloudError(Problem.BAD_REQUEST, "project_id: must be a Kubernetes namespace name (the project is "
                                              "the namespace)", "ModelArts.0101")
    return project


def millis(stamp: Any) -> int | None:
    """An RFC 3339 time as ModelArts' milliseconds since the epoch."""
    if not stamp:
        return None
    try:
        return int(datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def service_name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return str((meta.get("annotations") or {}).get(ORIGINAL_NAME) or meta.get("name") or "")


def kept_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(KEPT_FIELDS)
    try:
        kept = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return kept if isinstance(kept, dict) else {}


def state(obj: Mapping[str, Any]) -> str:
    """The service's ModelArts status: the operator's; before its first summary, deploying (or stopped, when
    created stopped). A stop not carried out yet still shows the status the operator last saw."""
    status = (obj.get("status") or {}).get("status")
    if status:
        return str(status)
    return ServiceState.STOPPED.value if (obj.get("spec") or {}).get("stopped") else ServiceState.DEPLOYING.value


def _config(model: Mapping[str, Any], observed: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"model_id": model.get("modelId") or model.get("name"),
                             "model_name": model.get("modelName") or model.get("name"),
                             "model_version": model.get("modelVersion") or "", "weight": model.get("weight", 100),
                             "specification": model.get("specification") or "custom",
                             "instance_count": model.get("instanceCount", 1), "envs": dict(model.get("envs") or {}),
                             "scaling": bool((model.get("scaling") or {}).get("enabled"))}
    if custom := model.get("customSpec"):
        entry["custom_spec"] = {"cpu": custom.get("cpu"), "memory": custom.get("memory"),
                                "gpu_p4": custom.get("gpu", 0), "ascend_a310": custom.get("ascend", 0)}
    if observed.get("status"):
        entry["status"] = observed["status"]
    return entry


def _batch_config(entry: dict[str, Any], batch: Mapping[str, Any]) -> None:
    entry.update({"src_path": batch.get("srcPath"), "dest_path": batch.get("destPath"), "req_uri": batch.get("reqUri"),
                  "mapping_type": batch.get("mappingType")})
    if batch.get("mappingRule"):
        entry["mapping_rule"] = batch["mappingRule"]


def service_object(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The seed's service object, as far as the cluster knows it."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    observed = {m.get("name"): m for m in status.get("models") or []}
    config = [_config(m, observed.get(m.get("name"), {})) for m in spec.get("models") or []]
    if spec.get("batch") and config:
        _batch_config(config[0], spec["batch"])
    kept = kept_fields(obj)
    extra = kept.pop("config_extra", None)
    for entry, more in zip(config, extra if isinstance(extra, list) else [], strict=False):
        if isinstance(more, dict):
            entry.update({k: v for k, v in more.items() if k not in entry})
    out: dict[str, Any] = {
        **kept,
        "service_id": meta.get("uid"), "service_name": service_name(obj), "description": spec.get("description", ""),
        "project": meta.get("namespace"), "infer_type": spec.get("inferType", "real-time"), "status": state(obj),
        "progress": status.get("progress", 0), "config": config,
        "invocation_times": status.get("invocationTimes", 0), "failed_times": status.get("failedTimes", 0),
        "publish_at": millis(status.get("publishAt") or meta.get("creationTimestamp")),
        "update_time": millis(status.get("updateTime") or meta.get("creationTimestamp")),
        "transition_at": millis(status.get("transitionAt")), "is_shared": False, "shared_count": 0,
    }
    if status.get("errorMsg"):
        out["error_msg"] = status["errorMsg"]
    if status.get("accessAddress"):
        out["access_address"] = status["accessAddress"]
    if spec.get("schedule"):
        out["schedule"] = [{"type": s.get("type", "stop"), "time_unit": s.get("timeUnit"),
                            "duration": s.get("duration")} for s in spec["schedule"]]
    if status.get("dueTime"):
        out["due_time"] = millis(status["dueTime"])
    return out


def int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise CloudError(Problem.BAD_REQUEST, f"{name}: {raw[:32]!a} is not an integer", "ModelArts.0101") from None
    if not low <= value <= high:
        raise CloudError(Problem.BAD_REQUEST, f"{name}: must be within {low}..{high}", "ModelArts.0101")
    return value


def _matches(service: Mapping[str, Any], query: Mapping[str, str]) -> bool:
    for name in ("service_id", "infer_type", "status"):
        if query.get(name) and service.get(name) != query[name]:
            return False
    if query.get("model_id") and not any(c.get("model_id") == query["model_id"] for c in service["config"]):
        return False
    # ModelArts matches service_name by substring (fuzzy search), case-insensitive
    return not query.get("service_name") or query["service_name"].lower() in str(service["service_name"]).lower()


def page(services: Sequence[dict[str, Any]], query: Mapping[str, str]) -> dict[str, Any]:
    """{total_count, count, services} after the filters, sort_by/order and offset/limit of the list API."""
    sort_by = query.get("sort_by") or "publish_at"
    order = query.get("order") or "desc"
    if sort_by not in SORT_KEYS:
        raise CloudError(Problem.BAD_REQUEST, f"sort_by: must be one of {', '.join(SORT_KEYS)}", "ModelArts.0101")
    if order not in ("asc", "desc"):
        raise CloudError(Problem.BAD_REQUEST, "order: must be asc or desc", "ModelArts.0101")
    offset = int_param(query, "offset", 0, 0, 10**9)
    limit = int_param(query, "limit", MAX_LIMIT, 1, MAX_LIMIT)
    found = [s for s in services if _matches(s, query)]
    found.sort(key=lambda s: (False, s["service_name"], "") if sort_by == "service_name"
               else (s.get(sort_by) is None, s.get(sort_by) or 0, s["service_name"]), reverse=order == "desc")
    chosen = found[offset:offset + limit]
    return {"total_count": len(found), "count": len(chosen), "services": chosen}
