"""The gateway's watch layer against the local cluster: the RouteTable follows the API within a second.

No operator runs here: the test writes an InferenceService, its model Services and EndpointSlices
(addresses in 10.244.0.0/16, as a pod network would give) and an app Secret by hand, runs the
gateway's Watcher in-process (its own event loop in a thread, KUBECONFIG from the cluster fixture),
and times how long each change takes to reach the table.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from inference_operator.gateway.client import Signer
from inference_operator.gateway.entries import Endpoint
from inference_operator.gateway.routes import RouteTable
from inference_operator.gateway.watch import Watcher, load_api_client

REPO = Path(__file__).resolve().parents[2]

GROUP, VERSION, PLURAL = "inference.io", "v1alpha1", "inferenceservices"
WITHIN = 1.0  # seconds from an API write to the table


class WatchInThread:
    """A Watcher on its own event loop; `read` runs a function on that loop (the table is not thread-safe)."""

    def __init__(self, namespaces: list[str] | None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.namespaces = namespaces
        self.table = RouteTable()

    def _run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        self.api = await load_api_client()
        self.watcher = Watcher(self.table, self.api, self.namespaces)
        self.watcher.start()
        await self.watcher.wait_synced(30)

    async def _stop(self) -> None:
        await self.watcher.stop()
        await self.api.close()

    def start(self) -> None:
        self.thread.start()
        self._run(self._start())

    def stop(self) -> None:
        self._run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def read(self, fn: Callable[[RouteTable], Any]) -> Any:
        async def call() -> Any:
            return fn(self.table)
        return self._run(call(), 5)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def model(name: str, weight: int) -> dict[str, Any]:
    return {"name": name, "modelName": f"{name}-model", "modelVersion": "1.0.0",
            "image": f"registry.example/{name}:1.0.0", "weight": weight, "specification": "modelarts.vm.cpu.2u"}


def model_service(name: str, service: str, model_name: str) -> dict[str, Any]:
    """A model's Service as the operator builds it, minus the selector (no pods: its slices are written here)."""
    labels = {"inference.io/service": service, "inference.io/model": model_name}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def endpoint_slice(service: str, model_name: str, address: str, ready: bool) -> dict[str, Any]:
    address_type = "IPv4" if address[:1].isdigit() else "FQDN"
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": address_type,
            "metadata": {"name": f"{service}-{model_name}-1", "labels": {
                "kubernetes.io/service-name": f"{service}-{model_name}", "inference.io/service": service,
                "inference.io/model": model_name, "endpointslice.kubernetes.io/managed-by": "e2e-test"}},
            "endpoints": [{"addresses": [address], "conditions": {"ready": ready}}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


class World:
    """What the test writes to the API, in its namespace."""

    def __init__(self, api: client.ApiClient, ns: str) -> None:
        self.ns = ns
        self.crd, self.core, self.discovery = (client.CustomObjectsApi(api), client.CoreV1Api(api),
                                               client.DiscoveryV1Api(api))

    def secret(self, name: str, key: str, secret: str, code: str, create: bool = True) -> None:
        body = {"metadata": {"name": name}, "data": {"appKey": b64(key), "appSecret": b64(secret),
                                                     "appCode": b64(code)}}
        if create:
            self.core.create_namespaced_secret(self.ns, body)
        else:
            self.core.replace_namespaced_secret(name, self.ns, body)

    def service(self, name: str, models: list[dict[str, Any]], **spec: Any) -> str:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService", "metadata": {"name": name},
                "spec": {"models": models, **spec}}
        created = self.crd.create_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, body)
        return str(created["metadata"]["uid"])

    def patch_service(self, name: str, spec: dict[str, Any]) -> None:
        self.crd.patch_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name, {"spec": spec})

    def model_backend(self, service: str, model_name: str, address: str, ready: bool) -> None:
        self.core.create_namespaced_service(self.ns, model_service(f"{service}-{model_name}", service, model_name))
        self.discovery.create_namespaced_endpoint_slice(self.ns, endpoint_slice(service, model_name, address, ready))

    def set_ready(self, service: str, model_name: str, address: str, ready: bool) -> None:
        body = endpoint_slice(service, model_name, address, ready)
        self.discovery.replace_namespaced_endpoint_slice(body["metadata"]["name"], self.ns, body)


@pytest.fixture
def world(api: client.ApiClient, namespace: str, crds: None, alone: None) -> World:
    """The test writes the objects an operator would (and the EndpointSlices): no operator runs meanwhile,
    or the session's would add its own Services and kwok pods' endpoints to the ones the test routes to."""
    return World(api, namespace)


@pytest.fixture
def watching(namespace: str, crds: None) -> Iterator[WatchInThread]:
    gateway = WatchInThread([namespace])
    gateway.start()
    yield gateway
    gateway.stop()


def timed(wait_for: Callable[..., Any], check: Callable[[], Any], what: str) -> float:
    """Seconds until check() holds; fails after WITHIN seconds."""
    started = time.monotonic()
    wait_for(check, WITHIN, what, 0.01)
    return time.monotonic() - started


def test_route_table_follows_the_api(world: World, watching: WatchInThread, wait_for, namespace: str) -> None:
    world.secret("app-a", "KEY-1", "SECRET-1", "CODE-1")
    world.model_backend("demo", "v1", "10.244.1.10", ready=True)
    world.model_backend("demo", "v2", "10.244.2.10", ready=False)
    uid = world.service("demo", [model("v1", 70), model("v2", 30)],
                        auth={"appAuth": True, "apps": [{"secretName": "app-a"}]})

    def weights() -> dict[str, int] | None:
        route = watching.read(lambda t: t.services.get(uid))
        return {m.name: m.weight for m in route.models} if route else None

    def endpoints(model_name: str) -> tuple[Endpoint, ...]:
        return watching.read(lambda t: t.endpoints(namespace, f"demo-{model_name}"))

    def app_codes() -> list[str]:
        return watching.read(lambda t: [a.code for a in t.apps(t.services[uid])] if uid in t.services else [])

    timed(wait_for, lambda: weights() == {"v1": 70, "v2": 30}, "the new service's weights")
    assert endpoints("v1") == (Endpoint("10.244.1.10", 8080),)
    assert endpoints("v2") == ()
    wait_for(lambda: app_codes() == ["CODE-1"], 5, "the app Secret", 0.01)  # its watch starts with the service

    world.patch_service("demo", {"models": [model("v1", 20), model("v2", 80)]})
    timed(wait_for, lambda: weights() == {"v1": 20, "v2": 80}, "a weight change")

    world.set_ready("demo", "v2", "10.244.2.10", ready=True)
    timed(wait_for, lambda: endpoints("v2") == (Endpoint("10.244.2.10", 8080),), "an endpoint becoming ready")

    world.secret("app-a", "KEY-2", "SECRET-2", "CODE-2", create=False)
    timed(wait_for, lambda: app_codes() == ["CODE-2"], "a rotated Secret")

    world.patch_service("demo", {"stopped": True})
    timed(wait_for, lambda: "stopped" in (watching.read(lambda t: t.services[uid].unavailable) or ""),
          "the service being stopped")

    world.crd.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "demo")
    timed(wait_for, lambda: not watching.read(lambda t: uid in t.services), "the service's deletion")
    wait_for(lambda: not watching.read(lambda t: t.credentials), 5, "the Secret to be forgotten", 0.01)


def test_cluster_wide_watch_sees_every_namespace(world: World, wait_for) -> None:
    gateway = WatchInThread(None)
    gateway.start()
    try:
        world.model_backend("wide", "v1", "10.244.3.10", ready=True)
        uid = world.service("wide", [model("v1", 100)])
        timed(wait_for, lambda: gateway.read(lambda t: uid in t.services), "a service in any namespace")
        timed(wait_for, lambda: gateway.read(lambda t: t.endpoints(world.ns, "wide-v1")), "its endpoints")
    finally:
        gateway.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def model_server() -> Iterator[tuple[str, int]]:
    """The gateway tests' model server on loopback; ("localhost", port). EndpointSlices refuse loopback IPs,
    so the test's slice is an FQDN slice whose name the gateway resolves to 127.0.0.1 (--resolve)."""
    address = "model.e2e.test"  # answered with 127.0.0.1 by the gateway's --resolve
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "gateway" / "model_server.py"), "--name", "v1",
                             "--host", "127.0.0.1"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("PORT "), line
    yield address, int(line.split()[1])
    proc.terminate()
    proc.wait(10)


def test_gateway_process_serves_what_it_watches(world: World, model_server: tuple[str, int], cluster: str, wait_for,
                                                namespace: str) -> None:
    """`python -m inference_operator.gateway` as users run it: watch, route to the model process, count."""
    world.secret("app-a", "KEY-1", "SECRET-1", "CODE-1")
    world.core.create_namespaced_service(namespace, model_service("proc-v1", "proc", "v1"))
    body = endpoint_slice("proc", "v1", model_server[0], True)
    body["ports"][0]["port"] = model_server[1]
    world.discovery.create_namespaced_endpoint_slice(namespace, body)
    uid = world.service("proc", [model("v1", 100)], auth={"appAuth": True, "apps": [{"secretName": "app-a"}]})
    # Port 0: the gateway binds a free port itself and logs it (a port picked here and released could be
    # taken by another process before the gateway binds it). Metrics port 0: /-/counts on the same port.
    log_path = REPO / ".cluster" / "logs" / f"gateway-{namespace}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the child's
    proc = subprocess.Popen([sys.executable, "-m", "inference_operator.gateway", "--host", "127.0.0.1",
                             "--port", "0", "--metrics-port", "0", "-n", namespace,
                             "--kubeconfig", cluster, "--resolve", "model.e2e.test=127.0.0.1"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        listening = re.compile(r"gateway listening on 127\.0\.0\.1:(\d+)")
        port = int(wait_for(lambda: (m := listening.search(log_path.read_text(errors="replace"))) and m.group(1),
                            60, "the gateway's listening line"))
        metrics_port = port
        url = f"http://127.0.0.1:{port}/v1/infers/{uid}/predict"

        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an HTTP proxy

        def post(headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
            request = urllib.request.Request(url, data=b'{"x": 1}', headers=headers, method="POST")
            try:
                with direct.open(request, timeout=30) as resp:  # bounds a failure only (a loaded machine is slow)
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as err:
                try:
                    return err.code, json.loads(err.read())
                except ValueError:  # not the gateway's answer (before it listens, another process may hold the port)
                    return err.code, {}
            except OSError:
                return 0, {}

        wait_for(lambda: post({"X-Apig-AppCode": "CODE-1"})[0] == 200, 30, "the gateway to serve the service")
        status, echo = post({"X-Apig-AppCode": "CODE-1"})
        assert (status, echo.get("server"), echo.get("path")) == (200, "v1", "/predict")
        assert post({})[1]["error_code"] == "ModelArts.0205"
        signed = Signer("KEY-1", "SECRET-1").sign("POST", url, {"Content-Type": "application/json"}, b'{"x": 1}')
        assert post(signed)[0] == 200
        with direct.open(f"http://127.0.0.1:{metrics_port}/-/counts", timeout=5) as resp:
            counts = json.loads(resp.read())[uid]
        assert counts["failedTimes"] == 0 and counts["invocationTimes"] >= 3  # the 401 is not an invocation
    finally:
        proc.terminate()
        assert proc.wait(35) == 0
        log.close()
