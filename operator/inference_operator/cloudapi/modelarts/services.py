"""Handlers of /v1/{project_id}/services: every answer read from the API server as the caller."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from inference_operator.api.states import ServiceState
from inference_operator.api.v1alpha1 import API_VERSION, KIND
from inference_operator.cloudapi.dialect import Call, reply
from inference_operator.cloudapi.errors import CloudError, Problem
from inference_operator.cloudapi.modelarts import create, errors, events, shapes
from inference_operator.cloudapi.modelarts.models import resolve
from inference_operator.kube.paths import resource_path
from inference_operator.ports import ApiError

STOP_MANAGER = "inference-cloud-api"  # owns spec.stopped (PUT status running|stopped)
CONFIG_MANAGER = "inference-cloud-api-config"  # owns description, models and schedule once a PUT changed them


def namespace_of(call: Call) -> str:
    return shapes.namespace_of_project(call.params["project_id"])


async def list_objects(call: Call, namespace: str) -> list[dict[str, Any]]:
    answer = await call.kube.get_json(resource_path(API_VERSION, KIND, namespace))
    return list(answer.get("items") or [])


async def find(call: Call, namespace: str, service_id: str) -> dict[str, Any]:
    """The InferenceService whose uid is service_id (or, as a convenience, whose name it is); 404 ModelArts.3502."""
    for obj in await list_objects(call, namespace):
        meta = obj.get("metadata") or {}
        if service_id in (meta.get("uid"), meta.get("name")):
            return obj
    raise errors.service_not_found(service_id)


async def list_services(call: Call) -> web.Response:
    namespace = namespace_of(call)
    services = [shapes.service_object(obj) for obj in await list_objects(call, namespace)]
    return reply(shapes.page(services, call.query))


async def show_service(call: Call) -> web.Response:
    namespace = namespace_of(call)
    service_id = call.params["service_id"]
    if not service_id:
        raise CloudError(Problem.BAD_REQUEST, "service_id is empty")
    return reply(shapes.service_object(await find(call, namespace, service_id)))


async def create_service(call: Call) -> web.Response:
    namespace = namespace_of(call)
    body = create.check_body(call.json())
    wanted = create.manifest(body, namespace, await resolve(call, namespace))
    try:
        made = await call.kube.create(resource_path(API_VERSION, KIND, namespace), wanted, KIND)
    except ApiError as err:
        if err.status == 409:
            raise CloudError(Problem.CONFLICT, f"Service {body['service_name']} already exists",
                             errors.SERVICE_EXISTS) from None
        raise
    uid = made["metadata"]["uid"]
    return reply({"service_id": uid, "resource_ids": [f"INF-{uid}"]})


def _identity(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": meta["name"], "namespace": meta["namespace"]}}


async def _set_stopped(call: Call, obj: dict[str, Any], status: Any) -> None:
    """spec.stopped by server-side apply as the cloud API's field manager: `kubectl get -o yaml
    --show-managed-fields` (and GitOps diffs) show who stopped or started the service."""
    if status not in (ServiceState.RUNNING.value, ServiceState.STOPPED.value):
        raise errors.invalid("status", "running or stopped")
    await call.kube.apply({**_identity(obj), "spec": {"stopped": status == ServiceState.STOPPED.value}},
                          field_manager=STOP_MANAGER)


async def _set_config(call: Call, obj: dict[str, Any], body: dict[str, Any]) -> None:
    """description, config and schedule: converted as a create body is, applied together (one field manager
    owning all three, so an update never drops what the last one set)."""
    if shapes.state(obj) == ServiceState.DEPLOYING.value and "config" in body:
        raise CloudError(Problem.BAD_REQUEST, "Services only in one of states in [running, concerning, failed, "
                                              "stopped] can be updated: this one is deploying", errors.NOT_UPDATABLE)
    for key in body:
        if key not in ("description", "config", "schedule", "status"):
            raise errors.invalid(str(key)[:64], "cannot be updated (description, status, config, schedule)")
    current = shapes.service_object(obj)
    merged = {"service_name": current["service_name"], "infer_type": current["infer_type"],
              "description": body.get("description", current.get("description", "")),
              "config": body.get("config", [{k: c[k] for k in ("model_id", "weight", "specification", "instance_count",
                                                                  "envs", "custom_spec") if k in c}
                                            for c in current["config"]])}
    if body.get("schedule", current.get("schedule")):
        merged["schedule"] = body.get("schedule", current.get("schedule"))
    namespace = obj["metadata"]["namespace"]
    wanted = create.manifest(merged, namespace, await resolve(call, namespace))
    spec = {k: wanted["spec"][k] for k in ("description", "models", "schedule") if k in wanted["spec"]}
    await call.kube.apply({**_identity(obj), "spec": spec}, field_manager=CONFIG_MANAGER)


async def update_service(call: Call) -> web.Response:
    namespace = namespace_of(call)
    body = call.json()
    if not isinstance(body, dict):
        raise errors.invalid("body", "expected a JSON object")
    obj = await find(call, namespace, call.params["service_id"])
    if "status" in body:  # status and config are exclusive; with both, only status applies (as ModelArts does)
        await _set_stopped(call, obj, body["status"])
    elif body:
        await _set_config(call, obj, body)
    return reply({})


async def delete_services(call: Call) -> web.Response:
    """DELETE .../services/{id[,id...]}: every id resolved first (a missing one is 404 and nothing is deleted)."""
    namespace = namespace_of(call)
    ids = [i.strip() for i in call.params["service_id"].split(",") if i.strip()]
    if not ids or len(ids) > 100:
        raise errors.invalid("service_id", "one to 100 service ids, comma-separated")
    found = {(o.get("metadata") or {}).get("uid"): o for o in await list_objects(call, namespace)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise errors.service_not_found(missing[0])
    for service_id in ids:
        await call.kube.delete(API_VERSION, KIND, namespace, found[service_id]["metadata"]["name"])
    return reply({})


async def service_events(call: Call) -> web.Response:
    namespace = namespace_of(call)
    obj = await find(call, namespace, call.params["service_id"])
    uid = obj["metadata"]["uid"]
    answer = await call.kube.get_json(resource_path("v1", "Event", namespace),
                                      [("fieldSelector", f"involvedObject.uid={uid}")])
    return reply(events.page(obj, list(answer.get("items") or []), call.query))


async def specifications(call: Call) -> web.Response:
    namespace_of(call)
    return reply(events.specifications(call.query))
