"""Handlers of /v1/{project_id}/services: every answer read from the API server as the caller."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from inference_operator.api.v1alpha1 import API_VERSION, KIND
from inference_operator.cloudapi.dialect import Call, reply
from inference_operator.cloudapi.errors import CloudError, Problem
from inference_operator.cloudapi.modelarts import errors, shapes
from inference_operator.kube.paths import resource_path


def namespace_of(call: Call) -> str:
    """project_id is the namespace: a DNS label, else 400 naming it."""
    project = call.params["project_id"]
    if not project or len(project) > 63 or not all(c.isascii() and (c.isalnum() or c == "-") for c in project) \
            or project != project.lower() or project.startswith("-") or project.endswith("-"):
        raise errors.invalid("project_id", "must be a Kubernetes namespace name (the project is the namespace)")
    return project


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
