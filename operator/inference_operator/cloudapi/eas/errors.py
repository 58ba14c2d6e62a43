"""EAS's error JSON, {"RequestId", "Code", "Message"}, with the codes Alibaba Cloud answers with: the OpenAPI
gateway's for signatures (IncompleteSignature, SignatureDoesNotMatch, InvalidAccessKeyId.NotFound,
InvalidTimeStamp.Expired), EAS's own for services (InvalidService.NotFound, Forbidden.PrivilegeCheckFailed).
docs/cloud-api.md lists them with their HTTP statuses."""

from __future__ import annotations

import json

from inference_operator.cloudapi.errors import CloudError, Problem

SERVICE_NOT_FOUND = "InvalidService.NotFound"
SERVICE_EXISTS = "InvalidService.AlreadyExists"
INVALID_PARAMETER = "InvalidParameter"
REGION_NOT_FOUND = "InvalidRegionId.NotFound"

BY_PROBLEM = {
    Problem.BAD_REQUEST: INVALID_PARAMETER,
    Problem.UNAUTHENTICATED: "InvalidAuthorization",
    Problem.FORBIDDEN: "Forbidden.PrivilegeCheckFailed",  # Kubernetes RBAC refused the caller's identity
    Problem.NOT_FOUND: "InvalidAction.NotFound",  # no such API (the router's 404)
    Problem.METHOD_NOT_ALLOWED: "InvalidAction.NotFound",
    Problem.TIMEOUT: "RequestTimeout",
    Problem.CONFLICT: SERVICE_EXISTS,
    Problem.TOO_LARGE: "RequestBodyTooLarge",
    Problem.INTERNAL: "InternalError",
    Problem.UNAVAILABLE: "ServiceUnavailable",
    Problem.GATEWAY_TIMEOUT: "ServiceTimeout",
}


def error_body(error: CloudError, request_id: str) -> bytes:
    code = error.code or BY_PROBLEM[error.problem]
    return json.dumps({"RequestId": request_id, "Code": code, "Message": error.message}).encode()


def service_not_found(name: str, region: str) -> CloudError:
    return CloudError(Problem.NOT_FOUND, f"service [{name[:64]}] does not exist in region [{region[:64]}]",
                      SERVICE_NOT_FOUND)


def region_not_found(cluster_id: str, region: str) -> CloudError:
    return CloudError(Problem.NOT_FOUND, f"region [{ascii(cluster_id[:64])}] is not served here: this server answers "
                                         f"for region [{region}]", REGION_NOT_FOUND)


def invalid(field: str, message: str) -> CloudError:
    return CloudError(Problem.BAD_REQUEST, f"{field}: {message}", INVALID_PARAMETER)
