"""The only module that talks to the Kubernetes API: plain aiohttp (kopf's own HTTP stack), no client library.

Every write is server-side apply with the operator's field manager, so the operator owns only the
fields it sets and never fights GitOps tools over the rest. Deletes tolerate 404. Each request is
counted in the metrics module by kind and verb. Where the API is and who we are comes from
kubeconfig.py (service account, or kubeconfig files merged and exec plugins run by the `kubernetes`
package's loader); which request gets a connection first, and whether a write may still go out, from
gate.py; the list+watch loop from watch.py. The generated client models of the libraries cost 19 to 38 MB
per process (README, "Kubernetes client"), so requests and watches stay on aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
from multidict import CIMultiDict

from inference_operator import metrics, trace
from inference_operator.api.conventions import rfc3339
from inference_operator.kube.gate import (
    POOL_LIMIT,
    PRIORITY_CONNECTIONS,
    SERVICE_APPLIES_AT_ONCE,
    WATCH_CONNECTIONS,
    PriorityGate,
    allocates_cluster_ip,
    priority_of,
    refusals_kept,
    write_gate_trace,
)
from inference_operator.kube.identity import user_agent
from inference_operator.kube.kubeconfig import Connection, shared_connection
from inference_operator.kube.paths import resource_path
from inference_operator.kube.watch import ListWatch, watch_events
from inference_operator.ports import ApiError, NamespaceTerminating

log = logging.getLogger(__name__)
APPLY = "application/apply-patch+yaml"
JSON_PATCH = "application/json-patch+json"
__all__ = ["APPLY", "ApiError", "Connection", "Kube", "apply_json"]


def apply_json(body: Any) -> str:
    """JSON the API server's YAML parser reads back as written (server-side apply bodies are YAML). Plain
    json.dumps writes a character beyond U+FFFF as a surrogate pair of \\u escapes, which YAML refuses
    ("invalid Unicode character escape code"): such characters get YAML's own \\U escape instead, and every
    other non-printable-ASCII one a \\u escape. Only strings hold such characters, so JSON's syntax is
    untouched (the result is YAML, no longer strict JSON)."""
    text = json.dumps(body, ensure_ascii=False)  # JSON escapes the C0 controls itself
    return "".join(c if " " <= c < "\x7f" else (f"\\U{ord(c):08x}" if ord(c) > 0xFFFF else f"\\u{ord(c):04x}")
                   for c in text)


def trace_key(meta: Mapping[str, Any]) -> tuple[str | None, str | None] | None:
    """The (namespace, service) a child's request is traced under, when tracing (trace.py)."""
    if not trace.ENABLED:
        return None
    return meta.get("namespace"), (meta.get("labels") or {}).get(trace.SERVICE_LABEL, meta.get("name"))


def _message(data: bytes) -> str:
    """The API's own message from a Status body, if it sent one."""
    try:
        return str(json.loads(data).get("message", ""))
    except (ValueError, AttributeError):
        return data.decode(errors="replace")[:500]


class Kube:
    """Async API port used by reconcile; one shared connection pool."""

    def __init__(self, connection: Connection, field_manager: str, pool_limit: int = POOL_LIMIT) -> None:
        self.connection = connection
        self.field_manager = field_manager
        # 0: no limit (the gateway's many watches)
        self.gate = PriorityGate(pool_limit, reserved=PRIORITY_CONNECTIONS) if pool_limit else None
        self.service_lane = asyncio.Semaphore(SERVICE_APPLIES_AT_ONCE)
        # Leader election sets it; gate.write_gate_trace asks it up to the moment a write's bytes go out.
        self.write_gate: Callable[[], bool] | None = None
        # Impersonate-User / -Group pairs every request carries (acting_as); empty: the process's own identity.
        self.impersonation: tuple[tuple[str, str], ...] = ()
        self.session = aiohttp.ClientSession(  # pool_limit 0: no limit (one long-lived connection per watch)
            connector=aiohttp.TCPConnector(ssl=connection.ssl_context,
                                           limit=pool_limit + PRIORITY_CONNECTIONS + WATCH_CONNECTIONS
                                           if pool_limit else 0),
            trace_configs=[write_gate_trace(self._may_write)],
            headers={"User-Agent": user_agent()},  # the audit log attributes each write to one replica
            # No total limit: a slow answer is bounded by sock_read. The gate queues requests before the pool, so
            # a wait for a pooled connection is short, and bounded (connect) in case a connection is never given back.
            timeout=aiohttp.ClientTimeout(total=None, connect=30, sock_connect=10, sock_read=60))

    def _may_write(self) -> bool:
        return self.write_gate is None or self.write_gate()

    @classmethod
    async def connect(cls, field_manager: str) -> Kube:
        """In-cluster service account inside a pod, else KUBECONFIG (or ~/.kube/config); the process's
        one Connection, so kopf's login and this client share exec tokens."""
        return cls(await asyncio.to_thread(shared_connection), field_manager)

    async def close(self) -> None:
        await self.session.close()

    def acting_as(self, user: str, groups: tuple[str, ...] = ()) -> Kube:
        """This client's pool, gate and credentials, every request of it made as `user` (and `groups`):
        the API server decides by that identity's RBAC, and its audit log names both (the cloud API
        server acts for its callers this way). Cheap: nothing is opened, close() only on the original."""
        if not user:
            raise ValueError("an impersonated user must be named")
        view = copy.copy(self)
        view.impersonation = (("Impersonate-User", user), *(("Impersonate-Group", group) for group in groups))
        return view

    async def _headers(self, content_type: str, refresh: bool = False) -> CIMultiDict[str]:
        headers = CIMultiDict({"Content-Type": content_type, "Accept": "application/json"})
        token = await self.connection.bearer(refresh)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        for name, value in self.impersonation:  # Impersonate-Group repeats: one header per group
            headers.add(name, value)
        return headers

    async def _call(self, method: str, path: str, *, body: Any = None, query: list[tuple[str, str]] | None = None,
                    content_type: str = "application/json", counted: tuple[str, str] | None = None,
                    traced: tuple[str | None, str | None] | None = None, ready: bool = False) -> dict[str, Any]:
        """One request, once the gate lets it go (its bytes made then: a burst's passes wait there with theirs,
        their children's writes together); a write (`counted`: kind, verb) is counted as it is sent. `traced`:
        the (namespace, service) whose trace marks it (trace.py); `ready`: a status saying a service became ready
        (gate.READY)."""
        what = counted[0] if counted is not None else method
        if traced is not None:
            trace.mark(*traced, f"queued:{what}")
        gated = self.gate.slot(priority_of(method, path, ready)) if self.gate is not None else contextlib.nullcontext()
        async with gated:
            data = (apply_json(body) if content_type == APPLY else json.dumps(body)) if body is not None else None
            if counted is not None:
                metrics.API_WRITES.labels(kind=counted[0], verb=counted[1]).inc()
            if traced is not None:
                trace.mark(*traced, f"sent:{what}")
            answer = await self._send(method, path, data, query, content_type)
            if traced is not None:
                trace.mark(*traced, f"answered:{what}")
            return answer

    async def _send(self, method: str, path: str, data: str | None, query: list[tuple[str, str]] | None,
                    content_type: str) -> dict[str, Any]:
        for attempt in (0, 1):  # a 401 with a refreshable token: once more with a fresh one
            async with refusals_kept(), \
                    self.session.request(method, self.connection.server + path, params=query or None, data=data,
                                         headers=await self._headers(content_type, refresh=attempt > 0),
                                         ) as response:
                raw = await response.read()
                if response.status == 401 and attempt == 0 and self.connection.refreshable:
                    log.info("API answered 401: refreshing the token")
                    continue
                if response.status >= 400:
                    message = _message(raw) or response.reason or ""
                    if response.status == 403 and "because it is being terminated" in message:
                        raise NamespaceTerminating(message)
                    raise ApiError(response.status, message)
            break
        return json.loads(raw) if raw else {}

    async def apply(self, manifest: Mapping[str, Any], subresource: str | None = None,
                    field_manager: str | None = None) -> dict[str, Any]:
        """Server-side apply (force: the operator is the authority for the fields it sets), as the
        operator's field manager or another one of its own (the replicas handover)."""
        meta = manifest["metadata"]
        path = resource_path(manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"],
                             subresource)
        lane = self.service_lane if allocates_cluster_ip(manifest) and subresource is None else None
        if lane is not None and trace.ENABLED:
            trace.mark_child(manifest, "lane:Service")
        async with lane if lane is not None else contextlib.nullcontext():
            return await self._call("PATCH", path, body=dict(manifest), content_type=APPLY,
                                    counted=(manifest["kind"], "apply"), traced=trace_key(meta),
                                    query=[("fieldManager", field_manager or self.field_manager), ("force", "true")])

    async def write_status(self, manifest: Mapping[str, Any], ready: bool = False) -> dict[str, Any]:
        """Replace the status of the object named by `manifest` if, and only if, it still has the manifest's
        metadata.uid: a JSON patch whose first operation tests the uid (422 when it differs). Not a
        server-side apply: that ignores metadata.uid (a deleted-and-re-created namesake would take the
        write), and it cannot type an object stored under a looser schema than the one served now. `ready`:
        the status says the service became ready: it waits for a connection only behind Deployments."""
        meta = manifest["metadata"]
        path = resource_path(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"], "status")
        patch = [{"op": "test", "path": "/metadata/uid", "value": meta["uid"]},
                 {"op": "add", "path": "/status", "value": dict(manifest["status"])}]
        return await self._call("PATCH", path, body=patch, content_type=JSON_PATCH, counted=(manifest["kind"], "patch"),
                                query=[("fieldManager", self.field_manager)],
                                traced=(meta["namespace"], meta["name"]) if trace.ENABLED else None, ready=ready)

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete in the background (the garbage collector takes the grandchildren); 404 is success."""
        try:
            await self._call("DELETE", resource_path(api_version, kind, namespace, name),
                             body={"propagationPolicy": "Background"}, counted=(kind, "delete"))
        except ApiError as exc:
            if exc.status != 404:
                raise

    async def read(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object, or None when there is none."""
        try:
            return await self._call("GET", resource_path(api_version, kind, namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def send(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """A raw JSON request (Leases, for leader election); errors raise ApiError."""
        return await self._call(method, path, body=body)

    async def get_json(self, path: str, query: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        """A raw GET (lists for informers); errors raise ApiError."""
        return await self._call("GET", path, query=query)

    async def create(self, path: str, body: Mapping[str, Any], kind: str) -> dict[str, Any]:
        """POST a new object (409 if it exists: a create that must not update), as this client's field
        manager; errors raise ApiError."""
        return await self._call("POST", path, body=dict(body), counted=(kind, "create"),
                                query=[("fieldManager", self.field_manager)])

    async def stream_events(self, path: str, query: list[tuple[str, str]], timeout: float,
                            on_open: Callable[[], None] | None = None) -> AsyncIterator[dict[str, Any]]:
        """The events of one watch request ({"type", "object"}), of any size up to watch.MAX_EVENT_BYTES; an
        ERROR event (410 Gone: the version expired) raises ApiError. `on_open`: called once the API
        has accepted the watch (a quiet watch is still a working one)."""
        async with self.session.get(self.connection.server + path, params=[*query, ("watch", "true")],
                                    headers=await self._headers("application/json"),
                                    timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=10)) as response:
            if response.status >= 400:
                raise ApiError(response.status, _message(await response.read()) or response.reason or "")
            if on_open is not None:
                on_open()
            async for event in watch_events(response.content):
                yield event

    def watch(self, what: str, path: str, query: list[tuple[str, str]], essential: bool = True,
              ) -> AsyncGenerator[tuple[str, Any], None]:
        """("LISTED", items) after every (re)list, then ("ADDED"|"MODIFIED"|"DELETED", object), forever.

        List, then watch from the list's resourceVersion with bookmarks; when a watch request ends
        (server timeout, dropped connection, any error) resume from the last version seen; on 410 Gone
        (that version expired) list again. Every restart but the server's routine timeout is logged
        with its cause, once per cause (again after watch.REPEAT_WARNING_SECONDS; at debug level in between);
        watch.WATCHES knows since when an `essential` watch has been down, for /healthz. A watch that is not
        essential (an app Secret a tenant names, which the gateway may not have been granted) never
        makes the process unhealthy: a restart would not grant it and would cut off every other tenant.
        """
        return ListWatch(self, what, path, query, essential).events()  # not wrapped: closing it runs its finally

    async def watch_one(self, api_version: str, kind: str, namespace: str, name: str,
                        ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(event type, object) for one named object, forever: list+watch with a field selector, so
        RBAC needs only list/watch in that namespace and no other object's events are streamed. After
        each (re)list: ADDED with the object, or DELETED with {} when there is none."""
        path = resource_path(api_version, kind, namespace)
        query = [("fieldSelector", f"metadata.name={name}")]
        async for event_type, body in self.watch(f"{kind} {namespace}/{name}", path, query):
            if event_type != "LISTED":
                yield event_type, body
            elif body:
                for item in body:
                    yield "ADDED", item
            else:
                yield "DELETED", {}

    async def post_event(self, parent: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        """A core/v1 Event on the parent, as `kubectl describe` and `kubectl get events` show it."""
        meta = parent["metadata"]
        now = rfc3339(datetime.now(UTC))
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": parent["apiVersion"], "kind": parent["kind"], "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"]},
            "type": event_type, "reason": reason, "message": message[:1024],
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "source": {"component": self.field_manager}, "reportingComponent": self.field_manager,
        }
        try:
            await self._call("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=event,
                             counted=("Event", "create"),
                             traced=(meta["namespace"], meta["name"]) if trace.ENABLED else None)
        except NamespaceTerminating:
            raise  # the pass ends here, and the reconciler skips the namespace's services from now on
        except ApiError as exc:  # an event is best effort; never fail a reconcile over it
            log.warning("could not post event %s on %s: %s", reason, meta["name"], exc.message)
