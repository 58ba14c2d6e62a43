"""The only module that talks to the Kubernetes API: plain aiohttp (kopf's own HTTP stack), no client library.

Every write is server-side apply with the operator's field manager, so the operator owns only the
fields it sets and never fights GitOps tools over the rest. Deletes tolerate 404. Each request is
counted in the metrics module by kind and verb. Where the API is and who we are comes from
kubeconfig.py (service account, or kubeconfig files merged and exec plugins run by the `kubernetes`
package's loader). Watches (`watch`, `watch_one`) read events of any size, resume from their last
resourceVersion, list again on 410 Gone, log why they restarted, and report to WATCHES, which the
/healthz endpoints read. The generated client models of the libraries cost 19 to 38 MB per process
(README, "Kubernetes client"), so requests and watches stay on aiohttp.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp

from inference_operator import metrics
from inference_operator.api.conventions import rfc3339
from inference_operator.builders.service import HEADLESS
from inference_operator.kube.identity import user_agent
from inference_operator.kube.kubeconfig import SERVICE_ACCOUNT, Connection, shared_connection
from inference_operator.ports import ApiError, NamespaceTerminating

log = logging.getLogger(__name__)
APPLY = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
PLURALS = {
    "Deployment": "deployments", "Service": "services", "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "HTTPRoute": "httproutes", "InferenceService": "inferenceservices", "Job": "jobs",
    "ConfigMap": "configmaps", "PersistentVolumeClaim": "persistentvolumeclaims", "InferencePool": "inferencepools",
}
# The API server refuses requests over 3 MiB and etcd objects over 1.5 MiB; a watch event carries one
# object (plus managedFields). A line longer than this is not an event we can use: the watch restarts.
MAX_EVENT_BYTES = 16 * 1024 * 1024
WATCH_SECONDS = 240  # the server ends each watch request after this; we resume from the last version
RETRY_SECONDS = (0.5, 1, 2, 5, 10)
HEALTHY_DOWNTIME = 30.0  # /healthz fails once a watch has been down this long
REPEAT_WARNING_SECONDS = 300.0  # a watch failing the same way again is logged at debug level in between
__all__ = ["APPLY", "ApiError", "Connection", "Kube", "SERVICE_ACCOUNT", "WATCHES", "WatchHealth",
           "json_lines", "resource_path"]


class WriteRefused(Exception):
    """A write stopped before it was sent (Kube.write_gate said no)."""


class EventTooLarge(ValueError):
    """A watch line over MAX_EVENT_BYTES."""


class WatchHealth:
    """Since when each watch of this process has been down (None: streaming). /healthz reads it."""

    def __init__(self) -> None:
        self.down_since: dict[str, float | None] = {}

    def up(self, name: str) -> None:
        self.down_since[name] = None

    def down(self, name: str) -> None:
        if self.down_since.get(name) is None:
            self.down_since[name] = time.monotonic()

    def forget(self, name: str) -> None:
        self.down_since.pop(name, None)

    def failing(self, longer_than: float = HEALTHY_DOWNTIME) -> list[str]:
        """Watches down for more than `longer_than` seconds, with how long."""
        now = time.monotonic()
        return [f"{name} (down {now - since:.0f}s)" for name, since in sorted(self.down_since.items())
                if since is not None and now - since > longer_than]


WATCHES = WatchHealth()


async def json_lines(content: aiohttp.StreamReader, limit: int = MAX_EVENT_BYTES) -> AsyncIterator[bytes]:
    """The lines of a watch response, whatever their size up to `limit` (aiohttp's own readline stops
    at its buffer's high-water mark, far below the size of a large object)."""
    buffer = bytearray()
    searched = 0
    async for chunk in content.iter_any():
        buffer += chunk
        while (end := buffer.find(b"\n", searched)) >= 0:
            line = bytes(buffer[:end])
            del buffer[:end + 1]
            searched = 0
            if line.strip():
                yield line
        searched = len(buffer)
        if len(buffer) > limit:
            raise EventTooLarge(f"a watch event over {limit} bytes")
    if buffer.strip():
        yield bytes(buffer)


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


# Requests to the API server at once: enough to keep it busy (a Service apply waits 1.7 s inside a loaded API
# server for its ClusterIP: at 10 new services a second, 16 were a queue), few because each TLS connection
# holds asyncio's 256 KiB read buffer (64 of them were 18 MB of a 1,000-service operator's memory, make bench
# phase profile). The pool has room beyond them for the long-lived watches.
POOL_LIMIT = 32
WATCH_CONNECTIONS = 8
# Who goes first when requests wait for one of those: what starts instances (Deployments), then the other
# children and reads, then status, then Events. In a burst every service's Deployment is out before the Services,
# routes and reports of the services before it.
DEPLOYMENTS, CHILDREN, STATUS, EVENTS = 0, 1, 2, 3
PRIORITY_NAMES = ("deployments", "children", "status", "events")
# How long a lower priority than Deployments may wait behind higher ones: then it goes in order of arrival. In a
# burst every request waits seconds for a connection; with 1 s all had waited their patience and the order was
# arrival's: a new service's Deployment waited behind the Services and status of the services before it.
PATIENCE_SECONDS = 5.0
# Service applies at once. kube-apiserver allocates every new ClusterIP under one lock, held across the create
# of its IPAddress object (MetaAllocator.AllocateNextService, pkg/registry/core/service/ipallocator, 1.33+): in
# a busy API server one Service apply waited 5 s (audit log, 10 new services a second) while its IPAddress took
# 79 ms. More of them in flight only queue at that lock, each on one of the POOL_LIMIT connections that
# Deployments and status writes wait for. 8 keep the lock busy (a burst of 200: ratio 0.85; with 4: 0.68).
# Headless Services (OperatorConfig.headless_model_services) allocate nothing and do not take the lane.
SERVICE_APPLIES_AT_ONCE = 8


def allocates_cluster_ip(manifest: Mapping[str, Any]) -> bool:
    """A Service apply that may wait for the API server's cluster IP lock (a headless one never does: the lane
    would only hold it back; a burst of 1,000 headless services waited 20 s in it for their Service applies)."""
    return manifest["kind"] == "Service" and (manifest.get("spec") or {}).get("clusterIP") != HEADLESS


def priority_of(method: str, path: str) -> int:
    if path.endswith("/status"):
        return STATUS
    if method == "POST" and path.endswith("/events"):
        return EVENTS
    if method == "PATCH" and "/deployments/" in path:
        return DEPLOYMENTS
    return CHILDREN


class PriorityGate:
    """At most `slots` holders at once; waiters are let in by priority (lowest first), then by arrival, except
    that one who has waited `patience` seconds goes before every younger waiter but a Deployment: at a steady
    rate the queue of children never empties, and status must not wait behind it for ever. A Deployment starts
    instances and waits for nothing: at 50 new services a second (more than this machine's API server takes)
    the writes that had waited their patience went first, and every Deployment waited 5 s with them."""

    def __init__(self, slots: int, patience: float = PATIENCE_SECONDS) -> None:
        self.free = slots
        self.patience = patience
        self.waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self.arrived: collections.deque[tuple[float, asyncio.Future[None]]] = collections.deque()  # by arrival
        self.arrivals = itertools.count()

    @contextlib.asynccontextmanager
    async def slot(self, priority: int) -> AsyncIterator[None]:
        if self.free > 0 and not self.waiting:
            self.free -= 1
        else:
            loop = asyncio.get_running_loop()
            turn: asyncio.Future[None] = loop.create_future()
            heapq.heappush(self.waiting, (priority, next(self.arrivals), turn))
            self.arrived.append((loop.time(), turn))
            started = loop.time()
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():  # given the slot as it was cancelled: pass it on
                    self._release()
                raise  # a cancelled waiter stays queued, done: _release skips it
            finally:
                metrics.API_QUEUE_SECONDS.labels(priority=PRIORITY_NAMES[priority]).observe(loop.time() - started)
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self.arrived and self.arrived[0][1].done():  # let in by the other queue, or cancelled
            self.arrived.popleft()
        while self.waiting and self.waiting[0][2].done():  # let in by the other queue, or cancelled
            heapq.heappop(self.waiting)
        deployment_waits = bool(self.waiting) and self.waiting[0][0] == DEPLOYMENTS
        if not deployment_waits and self.arrived \
                and asyncio.get_running_loop().time() - self.arrived[0][0] >= self.patience:
            self.arrived.popleft()[1].set_result(None)  # its entry in the heap is now done: skipped there
            return
        while self.waiting:
            turn = heapq.heappop(self.waiting)[2]
            if not turn.done():
                turn.set_result(None)
                return
        self.free += 1


class Kube:
    """Async API port used by reconcile; one shared connection pool."""

    def __init__(self, connection: Connection, field_manager: str, pool_limit: int = POOL_LIMIT) -> None:
        self.connection = connection
        self.field_manager = field_manager
        self.gate = PriorityGate(pool_limit) if pool_limit else None  # 0: no limit (the gateway's many watches)
        self.service_lane = asyncio.Semaphore(SERVICE_APPLIES_AT_ONCE)
        # Leader election sets it: checked once the connection is ready and again in the same step that hands
        # the request's bytes to the socket (aiohttp coalesces the headers with the first body chunk, written by
        # a task of its own a loop turn later): a process frozen after any earlier check, between it and the
        # send, must not write on waking up.
        self.write_gate: Callable[[], bool] | None = None
        gate = aiohttp.TraceConfig()
        gate.on_request_start.append(self._note_method)
        for signal in (gate.on_connection_create_end, gate.on_connection_reuseconn, gate.on_connection_queued_end,
                       gate.on_request_headers_sent, gate.on_request_chunk_sent):
            signal.append(self._check_gate)
        self.session = aiohttp.ClientSession(  # pool_limit 0: no limit (one long-lived connection per watch)
            connector=aiohttp.TCPConnector(ssl=connection.ssl_context,
                                           limit=pool_limit + WATCH_CONNECTIONS if pool_limit else 0),
            trace_configs=[gate],
            headers={"User-Agent": user_agent()},  # the audit log attributes each write to one replica
            # No total limit: a slow answer is bounded by sock_read. The gate queues requests before the pool, so
            # a wait for a pooled connection is short, and bounded (connect) in case a connection is never given back.
            timeout=aiohttp.ClientTimeout(total=None, connect=30, sock_connect=10, sock_read=60))

    async def _note_method(self, _: Any, context: Any, params: Any) -> None:
        context.write = params.method not in ("GET", "HEAD")

    async def _check_gate(self, _: Any, context: Any, __: Any) -> None:
        if getattr(context, "write", False) and self.write_gate is not None and not self.write_gate():
            raise WriteRefused("write refused: this replica's Lease may have expired")

    @classmethod
    async def connect(cls, field_manager: str) -> Kube:
        """In-cluster service account inside a pod, else KUBECONFIG (or ~/.kube/config); the process's
        one Connection, so kopf's login and this client share exec tokens."""
        return cls(await asyncio.to_thread(shared_connection), field_manager)

    async def close(self) -> None:
        await self.session.close()

    async def _headers(self, content_type: str, refresh: bool = False) -> dict[str, str]:
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        token = await self.connection.bearer(refresh)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def _call(self, method: str, path: str, *, body: Any = None, query: list[tuple[str, str]] | None = None,
                    content_type: str = "application/json", counted: tuple[str, str] | None = None) -> dict[str, Any]:
        """One request, once the gate lets it go (its bytes made then: a burst's passes wait there with theirs,
        their children's writes together); a write (`counted`: kind, verb) is counted as it is sent."""
        async with self.gate.slot(priority_of(method, path)) if self.gate is not None else contextlib.nullcontext():
            data = (apply_json(body) if content_type == APPLY else json.dumps(body)) if body is not None else None
            if counted is not None:
                metrics.API_WRITES.labels(kind=counted[0], verb=counted[1]).inc()
            return await self._send(method, path, data, query, content_type)

    @staticmethod
    @contextlib.asynccontextmanager
    async def _refusals_kept() -> AsyncIterator[None]:
        """A gate refusal raised in aiohttp's body-writing task comes back wrapped as a connection error: unwrap."""
        try:
            yield
        except aiohttp.ClientConnectionError as exc:
            if isinstance(exc.__cause__, WriteRefused):
                raise exc.__cause__ from None
            raise

    async def _send(self, method: str, path: str, data: str | None, query: list[tuple[str, str]] | None,
                    content_type: str) -> dict[str, Any]:
        for attempt in (0, 1):  # a 401 with a refreshable token: once more with a fresh one
            async with self._refusals_kept(), \
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
        async with lane if lane is not None else contextlib.nullcontext():
            return await self._call("PATCH", path, body=dict(manifest), content_type=APPLY,
                                    counted=(manifest["kind"], "apply"),
                                    query=[("fieldManager", field_manager or self.field_manager), ("force", "true")])

    async def write_status(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the status of the object named by `manifest` if, and only if, it still has the manifest's
        metadata.uid: a JSON patch whose first operation tests the uid (422 when it differs). Not a
        server-side apply: that ignores metadata.uid (a deleted-and-re-created namesake would take the
        write), and it cannot type an object stored under a looser schema than the one served now."""
        meta = manifest["metadata"]
        path = resource_path(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"], "status")
        patch = [{"op": "test", "path": "/metadata/uid", "value": meta["uid"]},
                 {"op": "add", "path": "/status", "value": dict(manifest["status"])}]
        return await self._call("PATCH", path, body=patch, content_type=JSON_PATCH, counted=(manifest["kind"], "patch"),
                                query=[("fieldManager", self.field_manager)])

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

    async def stream_events(self, path: str, query: list[tuple[str, str]], timeout: float,
                            on_open: Callable[[], None] | None = None) -> AsyncIterator[dict[str, Any]]:
        """The events of one watch request ({"type", "object"}), of any size up to MAX_EVENT_BYTES; an
        ERROR event (410 Gone: the version expired) raises ApiError. `on_open`: called once the API
        has accepted the watch (a quiet watch is still a working one)."""
        async with self.session.get(self.connection.server + path, params=[*query, ("watch", "true")],
                                    headers=await self._headers("application/json"),
                                    timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=10)) as response:
            if response.status >= 400:
                raise ApiError(response.status, _message(await response.read()) or response.reason or "")
            if on_open is not None:
                on_open()
            async for line in json_lines(response.content):
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise ApiError(int(status.get("code", 500)), str(status.get("message", "watch error")))
                yield event

    async def watch(self, what: str, path: str, query: list[tuple[str, str]], essential: bool = True,
                    ) -> AsyncIterator[tuple[str, Any]]:
        """("LISTED", items) after every (re)list, then ("ADDED"|"MODIFIED"|"DELETED", object), forever.

        List, then watch from the list's resourceVersion with bookmarks; when a watch request ends
        (server timeout, dropped connection, any error) resume from the last version seen; on 410 Gone
        (that version expired) list again. Every restart but the server's routine timeout is logged
        with its cause, once per cause (again after REPEAT_WARNING_SECONDS; at debug level in between);
        WATCHES knows since when an `essential` watch has been down, for /healthz. A watch that is not
        essential (an app Secret a tenant names, which the gateway may not have been granted) never
        makes the process unhealthy: a restart would not grant it and would cut off every other tenant.
        """
        version: str | None = None
        failures = 0
        warned: tuple[str, float] | None = None  # the cause last logged as a warning, and when

        def opened() -> None:
            nonlocal failures, warned
            failures, warned = 0, None
            if essential:
                WATCHES.up(what)

        try:
            while True:
                try:
                    if version is None:
                        listed = await self._call("GET", path, query=query or None)
                        version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
                        opened()
                        yield "LISTED", listed.get("items") or []
                    watch_query = [*query, ("resourceVersion", version), ("allowWatchBookmarks", "true"),
                                   ("timeoutSeconds", str(WATCH_SECONDS))]
                    started = time.monotonic()
                    async for event in self.stream_events(path, watch_query, timeout=WATCH_SECONDS + 30,
                                                          on_open=opened):
                        kind, body = event.get("type"), event.get("object") or {}
                        version = str((body.get("metadata") or {}).get("resourceVersion") or version)
                        if kind in ("ADDED", "MODIFIED", "DELETED"):
                            yield kind, body
                    if time.monotonic() - started < 1:  # ended at once, cleanly: do not spin
                        await asyncio.sleep(1)
                    continue  # the server's timeout: resume from `version`, nothing to log
                except ApiError as exc:
                    if exc.status == 410:
                        log.info("watch of %s: resourceVersion %s expired (410 Gone); listing again", what, version)
                        version = None
                        continue
                    reason = f"API error {exc.status}: {exc.message}"
                    if exc.status == 401 and self.connection.refreshable:
                        try:  # the next attempt with a new token
                            await self.connection.bearer(refresh=True)
                        except Exception as refresh_error:
                            reason += f"; no new token: {refresh_error}"
                except Exception as exc:  # whatever it is (a dropped connection, a bad line): log, go on
                    reason = f"{type(exc).__name__}: {exc}"
                if essential:
                    WATCHES.down(what)
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                now = time.monotonic()
                repeat = warned is not None and warned[0] == reason and now - warned[1] < REPEAT_WARNING_SECONDS
                if not repeat:
                    warned = (reason, now)
                log.log(logging.DEBUG if repeat else logging.WARNING,
                        "watch of %s interrupted (%s); resuming from resourceVersion %s in %ss", what, reason,
                        version or "(list)", delay)
                await asyncio.sleep(delay)
        finally:
            if essential:
                WATCHES.forget(what)

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
                             counted=("Event", "create"))
        except NamespaceTerminating:
            raise  # the pass ends here, and the reconciler skips the namespace's services from now on
        except ApiError as exc:  # an event is best effort; never fail a reconcile over it
            log.warning("could not post event %s on %s: %s", reason, meta["name"], exc.message)
