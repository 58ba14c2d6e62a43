"""The PAI-EAS dialect's routes (research/seed-systems.md 4.1): every call made as the caller, in the
caller's default namespace; {ClusterId} must be the region this server answers for."""

from __future__ import annotations

import json
from base64 import b64decode
from typing import Any

from aiohttp import web

from inference_operator.api.v1alpha1 import API_VERSION, KIND
from inference_operator.cloudapi.dialect import Call, Route, reply
from inference_operator.cloudapi.eas import bodies, errors, shapes
from inference_operator.cloudapi.errors import CloudError, Problem
from inference_operator.kube.paths import resource_path
from inference_operator.ports import ApiError

FIELD_MANAGER = "inference-cloud-api"
LIFECYCLE_MANAGER = "inference-cloud-api-lifecycle"  # owns spec.stopped alone: an update never resets it


def _namespace(call: Call) -> str:
    assert call.caller.namespace  # auth refuses keys without one
    return call.caller.namespace


def _request_id(call: Call) -> str:
    return str(call.request.get("request_id") or "")


def _shown(call: Call, obj: dict[str, Any]) -> dict[str, Any]:
    return shapes.service(obj, call.settings.region, call.settings.gateway_url)


async def _find(call: Call) -> dict[str, Any]:
    """The service the path names, in the region served; 404 InvalidService.NotFound / InvalidRegionId.NotFound."""
    cluster, name = call.params["ClusterId"], call.params["ServiceName"]
    if cluster != call.settings.region:
        raise errors.region_not_found(cluster, call.settings.region)
    obj = None
    if bodies.SERVICE_NAME.match(name):
        obj = await call.kube.read(API_VERSION, KIND, _namespace(call), bodies.object_name(name))
    if obj is None or shapes.service_name(obj) not in (name, bodies.object_name(name)):
        raise errors.service_not_found(name, call.settings.region)
    return obj


async def _create(call: Call, fmt: str) -> web.Response:
    manifest = bodies.to_manifest(call.json(), fmt, _namespace(call))
    path = resource_path(API_VERSION, KIND, _namespace(call))
    try:
        obj = await call.kube.create(path, manifest, KIND)
    except ApiError as err:
        if err.status == 409:
            name = manifest["metadata"]["annotations"][bodies.NAME_ANNOTATION]
            raise CloudError(Problem.CONFLICT, f"service [{name}] already exists in region "
                                    f"[{call.settings.region}]", errors.SERVICE_EXISTS) from None
        raise
    return reply(shapes.created(obj, call.settings.region, call.settings.gateway_url, _request_id(call)))


async def create_service(call: Call) -> web.Response:
    return await _create(call, bodies.SERVICE)


async def create_app_service(call: Call) -> web.Response:
    return await _create(call, bodies.APP)


async def list_services(call: Call) -> web.Response:
    answer = await call.kube.get_json(resource_path(API_VERSION, KIND, _namespace(call)))
    services = [_shown(call, obj) for obj in answer.get("items") or []]
    return reply(shapes.page(services, call.query, _request_id(call)))


async def _access_token(call: Call, obj: dict[str, Any]) -> str | None:
    """The AppCode of the service's first app, when the caller itself may read that Secret."""
    apps = ((obj.get("spec") or {}).get("auth") or {}).get("apps") or []
    if not apps:
        return None
    try:
        secret = await call.kube.read("v1", "Secret", _namespace(call), str(apps[0].get("secretName")))
    except ApiError:
        return None
    code = ((secret or {}).get("data") or {}).get("appCode")
    return b64decode(code).decode("utf-8", "replace") if code else None


async def describe_service(call: Call) -> web.Response:
    obj = await _find(call)
    shown = {"RequestId": _request_id(call), **_shown(call, obj)}
    token = await _access_token(call, obj)
    if token:
        shown["AccessToken"] = token
    return reply(shown)


def _done(call: Call, message: str) -> web.Response:
    return reply({"RequestId": _request_id(call), "Message": message})


async def update_service(call: Call) -> web.Response:
    obj = await _find(call)
    annotations = obj["metadata"].get("annotations") or {}
    fmt = annotations.get(bodies.FORMAT_ANNOTATION) or bodies.SERVICE
    stored = bodies.merged(_stored(annotations), call.json())
    manifest = bodies.to_manifest(stored, fmt, _namespace(call))
    if manifest["metadata"]["name"] != obj["metadata"]["name"]:
        raise errors.invalid("metadata.name" if fmt == bodies.SERVICE else "ServiceName",
                             "a service cannot be renamed")
    await call.kube.apply(manifest, field_manager=FIELD_MANAGER)
    return _done(call, f"service [{shapes.service_name(obj)}] is updating")


def _stored(annotations: dict[str, Any]) -> Any:
    try:
        return json.loads(annotations.get(bodies.CONFIG_ANNOTATION) or "{}")
    except ValueError:
        return {}


async def _lifecycle(call: Call, stopped: bool) -> web.Response:
    obj = await _find(call)
    meta = obj["metadata"]
    await call.kube.apply({"apiVersion": API_VERSION, "kind": KIND,
                           "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                           "spec": {"stopped": stopped}}, field_manager=LIFECYCLE_MANAGER)
    verb = "stopping" if stopped else "starting"
    return _done(call, f"service [{shapes.service_name(obj)}] is {verb}")


async def start_service(call: Call) -> web.Response:
    return await _lifecycle(call, False)


async def stop_service(call: Call) -> web.Response:
    return await _lifecycle(call, True)


async def delete_service(call: Call) -> web.Response:
    obj = await _find(call)
    meta = obj["metadata"]
    await call.kube.delete(API_VERSION, KIND, meta["namespace"], meta["name"])
    return _done(call, f"service [{shapes.service_name(obj)}] is deleting")


S = "/api/v2/services"
ONE = f"{S}/{{ClusterId}}/{{ServiceName}}"
ROUTES = (
    Route("POST", S, create_service),
    Route("GET", S, list_services),
    Route("GET", ONE, describe_service),
    Route("PUT", ONE, update_service),
    Route("DELETE", ONE, delete_service),
    Route("PUT", f"{ONE}/start", start_service),
    Route("PUT", f"{ONE}/stop", stop_service),
    Route("POST", "/api/v2/app_services", create_app_service),
)
