"""REST paths of the objects the operator reads and writes (no discovery: the kinds are known)."""

from __future__ import annotations

PLURALS = {
    "Deployment": "deployments", "Service": "services", "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "HTTPRoute": "httproutes", "InferenceService": "inferenceservices", "Job": "jobs",
    "ConfigMap": "configmaps", "InferencePool": "inferencepools", "Secret": "secrets", "Event": "events",
    "TokenReview": "tokenreviews",
}


def resource_path(api_version: str, kind: str, namespace: str | None, name: str | None = None,
                  subresource: str | None = None) -> str:
    """REST path of an object: /api/v1/... for the core group, /apis/<group>/<version>/... otherwise."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    parts = [base]
    if namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(PLURALS[kind])
    if name:
        parts.append(name)
    if subresource:
        parts.append(subresource)
    return "/".join(parts)
