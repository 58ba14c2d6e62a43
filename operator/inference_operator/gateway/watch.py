"""How the gateway learns the world: by watching the Kubernetes API (the only gateway module that talks to it).

Three kinds of objects fill the RouteTable: InferenceServices (weights, stopped, auth, annotations),
EndpointSlices carrying the inference.io/service label (the EndpointSlice controller copies a
Service's labels onto its slices; each slice names its Service in kubernetes.io/service-name), and
the Secrets that services name in spec.auth.apps, each followed by its own watch (field selector
metadata.name) so the gateway reads only those Secrets and a rotation applies without a restart.

Each watch is an Informer over Kube.watch: list (a full, authoritative replace of what the table
holds for that scope), then watch from the list's resourceVersion with bookmarks, events of any size;
after any interruption it resumes from the last version seen, a 410 Gone means list again, each
restart is logged with its cause, and /healthz fails once a service or slice watch has been down for
30 s (a Secret's watch does not count: a tenant may name a Secret the gateway was not granted).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from inference_operator.api.v1alpha1 import GROUP, PLURAL, VERSION
from inference_operator.builders.labels import SERVICE_LABEL
from inference_operator.gateway.entries import Key
from inference_operator.gateway.routes import RouteTable
from inference_operator.kube.client import Connection, Kube
from inference_operator.kube.watch import HEALTHY_DOWNTIME, WATCHES

log = logging.getLogger(__name__)
Body = Mapping[str, Any]


async def load_api_client(kubeconfig: str | None = None) -> Kube:
    """An API client from --kubeconfig, else $KUBECONFIG (several files merged as kubectl does), else
    the pod's service account, else ~/.kube/config; exec credential plugins are run as kubectl would."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    connection = Connection.from_kubeconfig(path) if path else Connection.discover()
    return Kube(connection, field_manager="inference-gateway", pool_limit=0)


def collection(group_version: str, plural: str, namespace: str | None) -> str:
    """REST path of a collection, namespaced or across all namespaces."""
    base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    return f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"


class Informer:
    """List, then watch from the list's resourceVersion, forever; the callbacks keep the table current."""

    # Eight parameters: what one informer watches and its three callbacks, which is all informers differ by.
    def __init__(self, what: str, kube: Kube, path: str, query: list[tuple[str, str]],
                 on_list: Callable[[list[Body]], None], on_upsert: Callable[[Body], None],
                 on_delete: Callable[[Body], None], essential: bool = True) -> None:
        self.what, self.kube, self.path, self.query = what, kube, path, query
        self.essential = essential
        self.on_list, self.on_upsert, self.on_delete = on_list, on_upsert, on_delete
        self.synced = asyncio.Event()

    async def run(self) -> None:
        async for kind, body in self.kube.watch(self.what, self.path, self.query, self.essential):
            if kind == "LISTED":
                self._call(self.on_list, body)
                self.synced.set()
            elif kind in ("ADDED", "MODIFIED"):
                self._call(self.on_upsert, body)
            elif kind == "DELETED":
                self._call(self.on_delete, body)

    def _call(self, callback: Callable[[Any], None], arg: Any) -> None:
        try:
            callback(arg)
        except Exception:  # one odd object must not stop the watch
            log.exception("watching %s: could not apply an object", self.what)


class Watcher:
    """Keeps a RouteTable current: services and endpoint slices per namespace (or cluster-wide), named Secrets."""

    def __init__(self, table: RouteTable, api: Kube, namespaces: list[str] | None = None,
                 grace_seconds: float = HEALTHY_DOWNTIME) -> None:
        self.table, self.api = table, api
        self.namespaces: list[str | None] = [*namespaces] if namespaces else [None]
        self.grace_seconds = grace_seconds
        self.informers: list[Informer] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.secrets: dict[Key, tuple[Informer, asyncio.Task[None]]] = {}

    def start(self) -> None:
        table = self.table
        for ns in self.namespaces:
            where = ns or "all namespaces"
            self.informers.append(Informer(
                f"InferenceServices in {where}", self.api, collection(f"{GROUP}/{VERSION}", PLURAL, ns), [],
                partial(table.replace_services, namespace=ns), table.upsert_service, table.remove_service))
            self.informers.append(Informer(
                f"EndpointSlices in {where}", self.api, collection("discovery.k8s.io/v1", "endpointslices", ns),
                [("labelSelector", SERVICE_LABEL)],
                partial(table.replace_slices, namespace=ns), table.upsert_slice, table.remove_slice))
        self.tasks = [asyncio.create_task(informer.run()) for informer in self.informers]
        table.listeners.append(self.follow_secrets)
        self.follow_secrets()

    def follow_secrets(self) -> None:
        """Start a watch for every Secret a service names, stop those no service names any more."""
        wanted = self.table.wanted_secrets()
        for key in set(self.secrets) - wanted:
            self.secrets.pop(key)[1].cancel()
            self.table.set_secret(*key, None)
        for ns, name in wanted - set(self.secrets):
            informer = self._secret_informer(ns, name)
            self.secrets[(ns, name)] = (informer, asyncio.create_task(informer.run()))

    def _secret_informer(self, ns: str, name: str) -> Informer:
        """One named Secret's watch: its data in the table while it exists."""
        set_secret = partial(self.table.set_secret, ns, name)

        def listed(items: list[Body]) -> None:
            set_secret((items[0].get("data") or {}) if items else None)

        def upserted(body: Body) -> None:
            set_secret(body.get("data") or {})

        def deleted(body: Body) -> None:
            set_secret(None)

        return Informer(f"Secret {ns}/{name}", self.api, collection("v1", "secrets", ns),
                        [("fieldSelector", f"metadata.name={name}")], listed, upserted, deleted,
                        essential=False)  # a Secret not granted is the tenant's problem: its app stays unknown (401)

    def synced(self) -> bool:
        """True once the service and slice watches have listed once: the gateway can answer."""
        return all(informer.synced.is_set() for informer in self.informers)

    def healthy(self) -> bool:
        """Synced, and no watch of this process down for longer than the grace (30 s; /healthz)."""
        failing = WATCHES.failing(self.grace_seconds)
        if failing:
            log.warning("unhealthy: watches down: %s", ", ".join(failing))
        return self.synced() and not failing

    async def wait_synced(self, timeout: float = 30) -> None:
        """Until services, slices and every named Secret have been listed once."""
        async with asyncio.timeout(timeout):
            while not (self.synced() and all(i.synced.is_set() for i, _ in self.secrets.values())):
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.follow_secrets in self.table.listeners:
            self.table.listeners.remove(self.follow_secrets)
        tasks = self.tasks + [task for _, task in self.secrets.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.tasks, self.secrets = [], {}
