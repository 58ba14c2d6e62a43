"""ModelArts' error JSON, {"error_code", "error_msg"}, with the seed's codes where it has one
(research/seed-systems.md 1.7) and the API Gateway's for what the gateway in front of ModelArts refuses."""

from __future__ import annotations

import json

from inference_operator.cloudapi.errors import CloudError, Problem

SERVICE_NOT_FOUND = "ModelArts.3502"
SERVICE_EXISTS = "ModelArts.3503"
MODEL_NOT_FOUND = "ModelArts.3507"
SAME_MODEL_VERSION = "ModelArts.3516"
NOT_UPDATABLE = "ModelArts.3519"
INVALID_PARAMETER = "ModelArts.0101"

BY_PROBLEM = {
    Problem.BAD_REQUEST: INVALID_PARAMETER,
    Problem.UNAUTHENTICATED: "APIG.0301",  # incorrect IAM authentication information
    Problem.FORBIDDEN: "APIG.0302",  # the identity is not authorized (here: Kubernetes RBAC said no)
    Problem.NOT_FOUND: "APIG.0101",  # no such API
    Problem.METHOD_NOT_ALLOWED: "APIG.0101",
    Problem.TIMEOUT: "APIG.0201",
    Problem.CONFLICT: SERVICE_EXISTS,
    Problem.TOO_LARGE: "APIG.0201",
    Problem.INTERNAL: "APIG.0601",
    Problem.UNAVAILABLE: "APIG.0202",
    Problem.GATEWAY_TIMEOUT: "APIG.0203",
}


def error_body(error: CloudError, request_id: str) -> bytes:
    code = error.code or BY_PROBLEM[error.problem]
    return json.dumps({"error_code": code, "error_msg": error.message, "request_id": request_id}).encode()


def service_not_found(service_id: str) -> CloudError:
    return CloudError(Problem.NOT_FOUND, f"Service {service_id} does not exist", SERVICE_NOT_FOUND)


def model_not_found(model_id: str, where: str = "model_id") -> CloudError:
    return CloudError(Problem.BAD_REQUEST if where != "model_id" else Problem.NOT_FOUND,
                      f"Model {model_id} does not exist ({where})", MODEL_NOT_FOUND)


def invalid(field: str, message: str) -> CloudError:
    return CloudError(Problem.BAD_REQUEST, f"{field}: {message}", INVALID_PARAMETER)
