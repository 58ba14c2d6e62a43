"""The ModelArts dialect's route table: /v1/{project_id}/services[...] and /v1/{project_id}/models[...]."""

from __future__ import annotations

from inference_operator.cloudapi.dialect import Route
from inference_operator.cloudapi.modelarts import services

P = "/v1/{project_id}"
ROUTES = (
    Route("GET", f"{P}/services", services.list_services),
    Route("GET", f"{P}/services/{{service_id}}", services.show_service),
)
