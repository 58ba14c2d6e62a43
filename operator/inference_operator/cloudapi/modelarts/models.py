"""Handlers of /v1/{project_id}/models: the model registry, ConfigMaps read and written as the caller."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from inference_operator.cloudapi.dialect import Call, reply
from inference_operator.cloudapi.modelarts import registry, shapes
from inference_operator.cloudapi.modelarts.errors import model_not_found
from inference_operator.convert.common import RegisteredModel
from inference_operator.kube.paths import resource_path
from inference_operator.ports import ApiError


def namespace_of(call: Call) -> str:
    return shapes.namespace_of_project(call.params["project_id"])


async def list_configmaps(call: Call, namespace: str) -> list[dict[str, Any]]:
    answer = await call.kube.get_json(resource_path("v1", "ConfigMap", namespace),
                                      [("labelSelector", f"{registry.LABEL}=true")])
    return list(answer.get("items") or [])


async def resolve(call: Call, namespace: str) -> dict[str, RegisteredModel]:
    """The namespace's registered models by model_id (read as the caller: who cannot read them cannot use them)."""
    return {str(cm["metadata"]["uid"]): registry.registered(cm) for cm in await list_configmaps(call, namespace)}


async def create_model(call: Call) -> web.Response:
    namespace = namespace_of(call)
    fields = registry.model_of_body(call.json())
    try:
        made = await call.kube.create(resource_path("v1", "ConfigMap", namespace),
                                      registry.configmap(namespace, fields), "ConfigMap")
    except ApiError as err:
        if err.status == 409:
            raise registry.duplicate(fields) from None
        raise
    return reply({"model_id": made["metadata"]["uid"]})


async def list_models(call: Call) -> web.Response:
    namespace = namespace_of(call)
    models = [registry.model_object(cm) for cm in await list_configmaps(call, namespace)]
    for name in ("model_name", "model_version"):
        if call.query.get(name):
            models = [m for m in models if m.get(name) == call.query[name]]
    models.sort(key=lambda m: (m.get("create_at") or 0, m.get("model_name", "")), reverse=True)
    offset = shapes.int_param(call.query, "offset", 0, 0, 10**9)
    limit = shapes.int_param(call.query, "limit", shapes.MAX_LIMIT, 1, shapes.MAX_LIMIT)
    chosen = models[offset:offset + limit]
    return reply({"total_count": len(models), "count": len(chosen), "models": chosen})


async def show_model(call: Call) -> web.Response:
    namespace = namespace_of(call)
    model_id = call.params["model_id"]
    for cm in await list_configmaps(call, namespace):
        if cm["metadata"].get("uid") == model_id:
            return reply(registry.model_object(cm))
    raise model_not_found(model_id)


async def delete_model(call: Call) -> web.Response:
    namespace = namespace_of(call)
    model_id = call.params["model_id"]
    for cm in await list_configmaps(call, namespace):
        if cm["metadata"].get("uid") == model_id:
            await call.kube.delete("v1", "ConfigMap", namespace, cm["metadata"]["name"])
            return reply({"model_id": model_id})
    raise model_not_found(model_id)
