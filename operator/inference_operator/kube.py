"""The only module that talks to the Kubernetes API: plain aiohttp, no client library.

Every write is server-side apply with the operator's field manager, so the operator owns only the
fields it sets and never fights GitOps tools over the rest. Deletes tolerate 404. Each request is
counted in the metrics module by kind and verb. Without a Kubernetes client library loaded the
operator stays lean (the generated client models alone cost some 40 MB per process).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from inference_operator import metrics
from inference_operator.errors import NamespaceTerminating
from inference_operator.identity import user_agent

log = logging.getLogger(__name__)
APPLY = "application/apply-patch+yaml"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
PLURALS = {
    "Deployment": "deployments", "Service": "services", "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "HTTPRoute": "httproutes", "InferenceService": "inferenceservices", "Job": "jobs",
    "ConfigMap": "configmaps", "PersistentVolumeClaim": "persistentvolumeclaims",
}


class WriteRefused(Exception):
    """A write stopped before it was sent (Kube.write_gate said no)."""


class ApiError(Exception):
    """A non-2xx answer of the API server, with its status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


@dataclass(frozen=True)
class Connection:
    """Where the API is and how to prove who we are: in-cluster service account or a kubeconfig."""

    server: str
    ssl_context: ssl.SSLContext | bool
    token_file: Path | None = None
    token: str | None = None

    def bearer(self) -> str | None:
        if self.token_file is not None:  # projected tokens rotate: read the current one
            return self.token_file.read_text().strip()
        return self.token

    @classmethod
    def discover(cls) -> Connection:
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
        if host and port and (SERVICE_ACCOUNT / "token").exists():
            context = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt"))
            return cls(f"https://{host}:{port}", context, token_file=SERVICE_ACCOUNT / "token")
        return cls.from_kubeconfig(os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config"))

    @classmethod
    def from_kubeconfig(cls, path: str) -> Connection:
        config = yaml.safe_load(Path(path.split(os.pathsep)[0]).expanduser().read_text()) or {}
        current = {c["name"]: c["context"] for c in config.get("contexts", [])}[config["current-context"]]
        cluster = {c["name"]: c["cluster"] for c in config.get("clusters", [])}[current["cluster"]]
        user = {u["name"]: u.get("user") or {} for u in config.get("users", [])}[current["user"]]
        context: ssl.SSLContext | bool
        if cluster.get("insecure-skip-tls-verify"):
            context = False
        else:
            context = ssl.create_default_context(
                cafile=cluster.get("certificate-authority"),
                cadata=_decoded(cluster.get("certificate-authority-data")))
            cert = _pem_file(user, "client-certificate")
            if cert:
                context.load_cert_chain(cert, _pem_file(user, "client-key"))
        return cls(cluster["server"], context, token=user.get("token"))


def _decoded(data: str | None) -> str | None:
    return base64.b64decode(data).decode() if data else None


def _pem_file(user: Mapping[str, Any], key: str) -> str | None:
    """A kubeconfig's *-data entry written to a private temp file (ssl wants paths)."""
    if user.get(key):
        return str(user[key])
    if not user.get(f"{key}-data"):
        return None
    handle, path = tempfile.mkstemp(prefix="inference-operator-", suffix=".pem")
    with os.fdopen(handle, "wb") as out:
        out.write(base64.b64decode(user[f"{key}-data"]))
    return path


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


def apply_json(body: Any) -> str:
    """JSON the API server's YAML parser reads back as written (server-side apply bodies are YAML). Plain
    json.dumps writes a character beyond U+FFFF as a surrogate pair of \\u escapes, which YAML refuses
    ("invalid Unicode character escape code"): such characters get YAML's own \\U escape instead, and every
    other non-printable-ASCII one a \\u escape. Only strings hold such characters, so JSON's syntax is
    untouched (the result is YAML, no longer strict JSON)."""
    text = json.dumps(body, ensure_ascii=False)  # JSON escapes the C0 controls itself
    return "".join(c if " " <= c < "\x7f" else (f"\\U{ord(c):08x}" if ord(c) > 0xFFFF else f"\\u{ord(c):04x}")
                   for c in text)


def _message(data: bytes) -> str:
    """The API's own message from a Status body, if it sent one."""
    try:
        return str(json.loads(data).get("message", ""))
    except (ValueError, AttributeError):
        return data.decode(errors="replace")[:500]


class Kube:
    """Async API port used by reconcile; one shared connection pool."""

    def __init__(self, connection: Connection, field_manager: str, pool_limit: int = 64) -> None:
        self.connection = connection
        self.field_manager = field_manager
        # Leader election sets it: checked once the connection is ready, just before a write's bytes go out
        # (a process frozen between its own check and the send must not write on waking up).
        self.write_gate: Callable[[], bool] | None = None
        gate = aiohttp.TraceConfig()
        gate.on_request_start.append(self._note_method)
        for signal in (gate.on_connection_create_end, gate.on_connection_reuseconn, gate.on_connection_queued_end):
            signal.append(self._check_gate)
        self.session = aiohttp.ClientSession(  # pool_limit 0: no limit (one long-lived connection per watch)
            connector=aiohttp.TCPConnector(ssl=connection.ssl_context, limit=pool_limit), trace_configs=[gate],
            headers={"User-Agent": user_agent()},  # the audit log attributes each write to one replica
            # No total limit: under a burst, waiting for a pooled connection is not the API being slow.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60))

    async def _note_method(self, _: Any, context: Any, params: Any) -> None:
        context.write = params.method not in ("GET", "HEAD")

    async def _check_gate(self, _: Any, context: Any, __: Any) -> None:
        if getattr(context, "write", False) and self.write_gate is not None and not self.write_gate():
            raise WriteRefused("write refused: this replica's Lease may have expired")

    @classmethod
    async def connect(cls, field_manager: str) -> Kube:
        """In-cluster service account inside a pod, else KUBECONFIG (or ~/.kube/config)."""
        return cls(Connection.discover(), field_manager)

    async def close(self) -> None:
        await self.session.close()

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        token = self.connection.bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def _call(self, method: str, path: str, *, body: Any = None, query: list | None = None,
                    content_type: str = "application/json") -> dict[str, Any]:
        data = (apply_json(body) if content_type == APPLY else json.dumps(body)) if body is not None else None
        async with self.session.request(method, self.connection.server + path, params=query or None, data=data,
                                        headers=self._headers(content_type)) as response:
            raw = await response.read()
            if response.status >= 400:
                message = _message(raw) or response.reason or ""
                if response.status == 403 and "because it is being terminated" in message:
                    raise NamespaceTerminating(message)
                raise ApiError(response.status, message)
        return json.loads(raw) if raw else {}

    async def apply(self, manifest: Mapping[str, Any], subresource: str | None = None,
                    field_manager: str | None = None) -> dict[str, Any]:
        """Server-side apply (force: the operator is the authority for the fields it sets), as the
        operator's field manager or another one of its own (the replicas handover)."""
        meta = manifest["metadata"]
        path = resource_path(manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"],
                             subresource)
        metrics.API_WRITES.labels(kind=manifest["kind"], verb="apply").inc()
        return await self._call("PATCH", path, body=dict(manifest), content_type=APPLY,
                                query=[("fieldManager", field_manager or self.field_manager), ("force", "true")])

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete in the background (the garbage collector takes the grandchildren); 404 is success."""
        metrics.API_WRITES.labels(kind=kind, verb="delete").inc()
        try:
            await self._call("DELETE", resource_path(api_version, kind, namespace, name),
                             body={"propagationPolicy": "Background"})
        except ApiError as exc:
            if exc.status != 404:
                raise

    async def send(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """A raw JSON request (Leases, for leader election); errors raise ApiError."""
        return await self._call(method, path, body=body)

    async def get_json(self, path: str, query: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        """A raw GET (lists for informers); errors raise ApiError."""
        return await self._call("GET", path, query=query)

    async def stream_events(self, path: str, query: list[tuple[str, str]], timeout: float,
                            ) -> AsyncIterator[dict[str, Any]]:
        """The events of one watch request ({"type", "object"}); an ERROR event (410 Gone) raises ApiError."""
        async with self.session.get(self.connection.server + path, params=[*query, ("watch", "true")],
                                    headers=self._headers("application/json"),
                                    timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=10)) as response:
            if response.status >= 400:
                raise ApiError(response.status, _message(await response.read()) or response.reason or "")
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise ApiError(int(status.get("code", 500)), str(status.get("message", "watch error")))
                yield event

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
                async with self.session.get(self.connection.server + path, params=query,
                                            headers=self._headers("application/json"),
                                            timeout=aiohttp.ClientTimeout(total=330)) as response:
                    if response.status >= 400:
                        raise ApiError(response.status, response.reason or "")
                    async for line in response.content:
                        event = json.loads(line)
                        if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                            yield event["type"], event["object"]
            except (TimeoutError, ApiError, aiohttp.ClientError, ValueError) as exc:
                log.warning("watch of %s %s/%s interrupted (%s); retrying", kind, namespace, name, exc)
                await asyncio.sleep(2)

    async def served(self, group_version: str, plural: str) -> bool:
        """Whether the API serves a resource (e.g. Gateway API's httproutes) right now."""
        try:
            found = await self._call("GET", f"/apis/{group_version}")
        except ApiError as exc:
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
        except ApiError as exc:  # an event is best effort; never fail a reconcile over it
            log.warning("could not post event %s on %s: %s", reason, meta["name"], exc.message)
