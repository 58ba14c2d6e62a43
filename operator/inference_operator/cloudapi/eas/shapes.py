"""The Service struct as alibabacloud_eas20210701's models read it (models.Service: names and types), from
an InferenceService object; the create answer; a page of the list."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from inference_operator.api.v1alpha1 import ModelSpec
from inference_operator.catalog.flavors import FlavorError, load_catalog
from inference_operator.catalog.specification import resolve_flavor
from inference_operator.cloudapi.eas import bodies
from inference_operator.cloudapi.eas.errors import invalid
from inference_operator.cloudapi.eas.statuses import eas_status, reason_and_message

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def service_name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return str((meta.get("annotations") or {}).get(bodies.NAME_ANNOTATION) or meta.get("name") or "")


def endpoints(obj: Mapping[str, Any], gateway_url: str) -> tuple[str, str]:
    """(InternetEndpoint, IntranetEndpoint): the gateway's /api/predict/<namespace>.<name>, as EAS's
    /api/predict/<service>; one gateway serves both."""
    meta = obj.get("metadata") or {}
    if not gateway_url:
        return "", ""
    url = f"{gateway_url.rstrip('/')}/api/predict/{meta.get('namespace')}.{meta.get('name')}"
    return url, url


def _instances(obj: Mapping[str, Any]) -> tuple[int, int]:
    """(RunningInstance, TotalInstance) over the models: ready, and wanted now (else the spec's count)."""
    spec_models = (obj.get("spec") or {}).get("models") or []
    status_models = (obj.get("status") or {}).get("models") or []
    running = sum(int(m.get("readyReplicas") or 0) for m in status_models)
    if status_models:
        total = sum(int(m.get("replicas") or 0) for m in status_models)
    else:
        total = 0 if (obj.get("spec") or {}).get("stopped") else sum(int(m.get("instanceCount") or 1)
                                                                    for m in spec_models)
    return running, max(total, running)


def _resources(models: list[Mapping[str, Any]]) -> dict[str, int]:
    """Cpu (cores, rounded up: the struct holds an int), Memory (MiB, as metadata.memory carries it) and Gpu of
    one instance of the first model, as EAS reports a service's per-instance resources. The built-in catalog
    sizes a named specification (a cluster's flavor ConfigMap is the operator's, not read here); an
    object that does not parse, or a flavor not known, shows none rather than a guess."""
    try:
        flavor = resolve_flavor(ModelSpec.model_validate(models[0]), load_catalog())
    except (ValidationError, FlavorError, IndexError):
        return {}
    return {"Cpu": math.ceil(flavor.cpu), "Memory": flavor.memory_mib, "Gpu": flavor.gpu}


def _config(obj: Mapping[str, Any]) -> str:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    stored = annotations.get(bodies.CONFIG_ANNOTATION)
    if stored:
        return str(stored)
    return json.dumps({"metadata": {"name": service_name(obj)}, "spec": obj.get("spec") or {}},
                      separators=(",", ":"))


def _app_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if annotations.get(bodies.FORMAT_ANNOTATION) != bodies.APP:
        return {}
    try:
        data = json.loads(annotations.get(bodies.CONFIG_ANNOTATION) or "{}")
    except ValueError:
        return {}
    return {"AppType": data.get("AppType") or "LLM", "AppVersion": data.get("AppVersion") or "",
            "AppSpecName": data.get("ServiceSpec") or "",
            "AppConfig": json.dumps(data.get("Config") or {}, separators=(",", ":"))}


def _message(obj: Mapping[str, Any], message: str) -> str:
    notes = ((obj.get("metadata") or {}).get("annotations") or {}).get(bodies.NOTES_ANNOTATION)
    if not notes:
        return message
    kept = "carried differently: " + "; ".join(str(notes).splitlines())
    return f"{message} ({kept})" if message else kept


def service(obj: Mapping[str, Any], region: str, gateway_url: str) -> dict[str, Any]:
    """models.Service's map (the keys its from_map reads, with its types)."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    models = (obj.get("spec") or {}).get("models") or [{}]
    running, total = _instances(obj)
    reason, message = reason_and_message(obj)
    internet, intranet = endpoints(obj, gateway_url)
    created = str(meta.get("creationTimestamp") or "")
    return {
        "ServiceName": service_name(obj), "ServiceId": str(meta.get("uid") or ""),
        "ServiceUid": str(meta.get("uid") or ""), "Region": region, "Namespace": str(meta.get("namespace") or ""),
        "Status": str(eas_status(obj)), "Reason": reason, "Message": _message(obj, message),
        "RunningInstance": running, "PendingInstance": total - running, "TotalInstance": total,
        "Image": str(models[0].get("image") or ""), "InternetEndpoint": internet, "IntranetEndpoint": intranet,
        "ServiceConfig": _config(obj), "CreateTime": created, "UpdateTime": str(status.get("updateTime") or created),
        "CurrentVersion": int(status.get("observedGeneration") or 0), "LatestVersion": int(meta.get("generation") or 0),
        "Labels": [{"LabelKey": k, "LabelValue": v} for k, v in sorted((meta.get("labels") or {}).items())],
        "Source": "inference-operator", **_resources(models), **_app_fields(obj),
    }


def created(obj: Mapping[str, Any], region: str, gateway_url: str, request_id: str) -> dict[str, Any]:
    """CreateServiceResponseBody / CreateAppServiceResponseBody."""
    full = service(obj, region, gateway_url)
    return {"RequestId": request_id, **{k: full[k] for k in ("ServiceId", "ServiceName", "Status", "Region",
                                                                "InternetEndpoint", "IntranetEndpoint")}}


def _positive(query: Mapping[str, str], name: str, default: int, limit: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= limit:
        raise invalid(name, f"must be an integer from 1 to {limit}")
    return int(raw)


SORT_KEYS = {"CreateTime": "CreateTime", "ServiceName": "ServiceName", "UpdateTime": "UpdateTime",
             "RunningInstance": "RunningInstance", "TotalInstance": "TotalInstance"}


def page(services: list[dict[str, Any]], query: Mapping[str, str], request_id: str) -> dict[str, Any]:
    """ListServicesResponseBody: ServiceName (substring) and ServiceStatus filters, Sort/Order, paging."""
    number = _positive(query, "PageNumber", 1, 1_000_000)
    size = _positive(query, "PageSize", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    name = query.get("ServiceName") or query.get("Filter") or ""
    wanted_status = query.get("ServiceStatus") or ""
    sort = query.get("Sort") or "CreateTime"
    if sort not in SORT_KEYS:
        raise invalid("Sort", f"must be one of {', '.join(SORT_KEYS)}")
    order = (query.get("Order") or "desc").lower()
    if order not in ("asc", "desc"):
        raise invalid("Order", "must be asc or desc")
    chosen = [s for s in services if name in s["ServiceName"] and (not wanted_status or s["Status"] == wanted_status)]
    chosen.sort(key=lambda s: (s[SORT_KEYS[sort]], s["ServiceName"]), reverse=order == "desc")
    start = (number - 1) * size
    return {"RequestId": request_id, "Services": chosen[start:start + size], "TotalCount": len(chosen),
            "PageNumber": number, "PageSize": size}
