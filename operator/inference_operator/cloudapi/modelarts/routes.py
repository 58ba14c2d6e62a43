"""The ModelArts dialect's route table: /v1/{project_id}/services[...] and /v1/{project_id}/models[...]."""

from __future__ import annotations

from inference_operator.cloudapi.dialect import Route
from inference_operator.cloudapi.modelarts import models, services

P = "/v1/{project_id}"
ROUTES = (
    Route("GET", f"{P}/services/specifications", services.specifications),  # before {service_id}
    Route("POST", f"{P}/services", services.create_service),
    Route("GET", f"{P}/services", services.list_services),
    Route("GET", f"{P}/services/{{service_id}}", services.show_service),
    Route("PUT", f"{P}/services/{{service_id}}", services.update_service),
    Route("DELETE", f"{P}/services/{{service_id}}", services.delete_services),
    Route("GET", f"{P}/services/{{service_id}}/events", services.service_events),
    Route("POST", f"{P}/models", models.create_model),
    Route("GET", f"{P}/models", models.list_models),
    Route("GET", f"{P}/models/{{model_id}}", models.show_model),
    Route("DELETE", f"{P}/models/{{model_id}}", models.delete_model),
)
