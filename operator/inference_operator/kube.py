"""The only module that talks to the Kubernetes API (kubernetes_asyncio, no discovery round-trips).

Every write is server-side apply with the operator's field manager, so the operator owns only the
fields it sets and never fights GitOps tools over the rest. Deletes tolerate 404. Each request is
counted in the metrics module by kind and verb.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from inference_operator import metrics
from inference_operator.errors import NamespaceTerminating

log = logging.getLogger(__name__)
APPLY = "application/apply-patch+yaml"
PLURALS = {
    "Deployment": "deployments", "Service": "services", "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "HTTPRoute": "httproutes", "InferenceService": "inferenceservices", "Job": "jobs",
    "ConfigMap": "configmaps", "PersistentVolumeClaim": "persistentvolumeclaims",
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


def _message(data: bytes) -> str:
    """The API's own message from a Status body, if it sent one."""
    try:
        return str(json.loads(data).get("message", ""))
    except (ValueError, AttributeError):
        return data.decode(errors="replace")[:500]


class Kube:
    """Async API port used by reconcile; one shared connection pool."""

    def __init__(self, api: client.ApiClient, field_manager: str) -> None:
        self.api = api
        self.field_manager = field_manager

    @classmethod
    async def connect(cls, field_manager: str) -> Kube:
        """KUBECONFIG (or ~/.kube/config) when present, else the in-cluster service account."""
        try:
            config.load_incluster_config()
        except config.ConfigException:
            await config.load_kube_config()
        return cls(client.ApiClient(), field_manager)

    async def close(self) -> None:
        await self.api.close()

    async def _call(self, method: str, path: str, *, body: Any = None, query: list | None = None,
                    content_type: str = "application/json") -> dict[str, Any]:
        response = await self.api.call_api(
            path, method, {}, query or [], {"Content-Type": content_type, "Accept": "application/json"},
            body=body, auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True)
        data = await response.read()
        if response.status >= 400:
            message = _message(data) or response.reason
            if response.status == 403 and "because it is being terminated" in message:
                raise NamespaceTerminating(message)
            raise ApiException(status=response.status, reason=message)
        return json.loads(data) if data else {}

    async def apply(self, manifest: Mapping[str, Any], subresource: str | None = None) -> dict[str, Any]:
        """Server-side apply (force: the operator is the authority for the fields it sets)."""
        meta = manifest["metadata"]
        path = resource_path(manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"],
                             subresource)
        metrics.API_WRITES.labels(kind=manifest["kind"], verb="apply").inc()
        return await self._call("PATCH", path, body=dict(manifest), content_type=APPLY,
                                query=[("fieldManager", self.field_manager), ("force", "true")])

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete in the background (the garbage collector takes the grandchildren); 404 is success."""
        metrics.API_WRITES.labels(kind=kind, verb="delete").inc()
        try:
            await self._call("DELETE", resource_path(api_version, kind, namespace, name),
                             body={"propagationPolicy": "Background"})
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return await self._call("GET", resource_path(api_version, kind, namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def watch_one(self, api_version: str, kind: str, namespace: str, name: str,
                        ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(event type, object) for one named object, forever: list+watch with a field selector, so
        RBAC needs only list/watch in that namespace and no other object's events are streamed."""
        path = resource_path(api_version, kind, namespace)
        selector = ("fieldSelector", f"metadata.name={name}")
        while True:
            try:
                listed = await self._call("GET", path, query=[selector])
                for item in listed.get("items", []):
                    yield "ADDED", item
                if not listed.get("items"):
                    yield "DELETED", {}
                version = listed.get("metadata", {}).get("resourceVersion", "")
                query = [selector, ("watch", "true"), ("resourceVersion", version), ("timeoutSeconds", "300")]
                response = await self.api.call_api(
                    path, "GET", {}, query, {"Accept": "application/json"}, auth_settings=["BearerToken"],
                    _preload_content=False, _return_http_data_only=True, _request_timeout=330)
                if response.status >= 400:
                    raise ApiException(status=response.status, reason=response.reason)
                async for line in response.content:
                    event = json.loads(line)
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        yield event["type"], event["object"]
            except (TimeoutError, ApiException, OSError, ValueError) as exc:
                log.warning("watch of %s %s/%s interrupted (%s); retrying", kind, namespace, name, exc)
                await asyncio.sleep(2)

    async def served(self, group_version: str, plural: str) -> bool:
        """Whether the API serves a resource (e.g. Gateway API's httproutes) right now."""
        try:
            found = await self._call("GET", f"/apis/{group_version}")
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return any(r.get("name") == plural for r in found.get("resources", []))

    async def post_event(self, parent: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        """A core/v1 Event on the parent, as `kubectl describe` and `kubectl get events` show it."""
        meta = parent["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": parent["apiVersion"], "kind": parent["kind"], "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"]},
            "type": event_type, "reason": reason, "message": message[:1024],
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "source": {"component": self.field_manager}, "reportingComponent": self.field_manager,
        }
        metrics.API_WRITES.labels(kind="Event", verb="create").inc()
        try:
            await self._call("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=event)
        except NamespaceTerminating:
            pass
        except ApiException as exc:  # an event is best effort; never fail a reconcile over it
            log.warning("could not post event %s on %s: %s", reason, meta["name"], exc.reason)
