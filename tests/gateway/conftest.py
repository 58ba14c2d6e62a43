"""Fixtures of the gateway tests: real model-server processes and a real gateway, all on 127.0.0.1.

Nothing is mocked: requests go through sockets to the gateway (in this process, with a RouteTable
filled directly from the same object bodies the watch layer would see) and on to model servers
running as separate processes (tests/gateway/model_server.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from inference_operator.builders.names import child_name
from inference_operator.gateway.core import Gateway
from inference_operator.gateway.limits import Limits
from inference_operator.gateway.routes import RouteTable
from inference_operator.gateway.server import build_app, start_site

MODEL_SERVER = Path(__file__).with_name("model_server.py")
NS = "team-a"


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """test_upstream.py runs each test on both loops: the gateway runs on uvloop, whose transports are not
    asyncio's classes; other tests on asyncio's loop only."""
    factories: dict[str, Any] = {"asyncio": asyncio.new_event_loop}
    if item.path.name != "test_upstream.py":
        return factories
    with contextlib.suppress(ImportError):
        import uvloop
        factories["uvloop"] = uvloop.new_event_loop
    return factories


@dataclass
class Backend:
    name: str
    port: int
    proc: subprocess.Popen


def start_backend(name: str) -> Backend:
    proc = subprocess.Popen([sys.executable, str(MODEL_SERVER), "--name", name], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("PORT "), f"model server {name} did not start: {line!r}"
    return Backend(name, int(line.split()[1]), proc)


@pytest.fixture(scope="session")
def backends() -> Iterator[dict[str, Backend]]:
    """Two model servers, v1 and v2, for the whole session."""
    started = {name: start_backend(name) for name in ("v1", "v2")}
    yield started
    for backend in started.values():
        backend.proc.terminate()
        backend.proc.wait(10)


SCALE_TO_ZERO = {"enabled": True, "minReplicas": 0, "maxReplicas": 2, "scaleToZeroAfter": "10m"}


def service_body(name: str, uid: str, models: list[tuple[str, int]], *, namespace: str = NS, stopped: bool = False,
                 apps: list[str] | None = None, annotations: dict[str, str] | None = None,
                 scale_to_zero: tuple[str, ...] = ()) -> dict[str, Any]:
    """An InferenceService object as the API server returns it; the models named in `scale_to_zero` have
    scaling.minReplicas 0."""
    spec: dict[str, Any] = {"stopped": stopped, "models": [
        {"name": m, "modelName": f"{m}-model", "modelVersion": "1.0.0", "image": f"registry.example/{m}:1",
         "weight": w, **({"scaling": SCALE_TO_ZERO} if m in scale_to_zero else {})} for m, w in models]}
    if apps is not None:
        spec["auth"] = {"appAuth": True, "apps": [{"secretName": s} for s in apps]}
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid, "generation": 1}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "inference.io/v1alpha1", "kind": "InferenceService", "metadata": meta, "spec": spec}


def slice_body(service: str, model: str, addresses: list[str], port: int, *, namespace: str = NS,
               ready: bool = True, suffix: str = "abcde") -> dict[str, Any]:
    """An EndpointSlice of the model's Service, as the EndpointSlice controller writes it."""
    svc = child_name(service, model)
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": f"{svc}-{suffix}", "namespace": namespace, "labels": {
            "kubernetes.io/service-name": svc, "inference.io/service": service, "inference.io/model": model}},
        "endpoints": [{"addresses": [a], "conditions": {"ready": ready}} for a in addresses],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    }


def counted(invocations: int, failures: int = 0, **requests: int) -> dict[str, Any]:
    """A service's entry in GET /-/counts once its requests ended: invocations, failures, and the requests
    each model (by entry name) got, none in flight."""
    return {"invocationTimes": invocations, "failedTimes": failures,
            "models": {model: {"requests": n, "inflight": 0} for model, n in requests.items()}}


@dataclass
class GatewayUnderTest:
    gw: Gateway
    url: str
    http: aiohttp.ClientSession
    runners: list[Any] = field(default_factory=list)

    @property
    def table(self) -> RouteTable:
        return self.gw.table

    def infer_url(self, service_id: str, path: str = "") -> str:
        return f"{self.url}/v1/infers/{service_id}{path}"

    def add_service(self, body: dict[str, Any], backends: dict[str, Backend]) -> str:
        """Register a service and a ready endpoint (the backend of the same name) for each of its models."""
        self.table.upsert_service(body)
        name = body["metadata"]["name"]
        for model in body["spec"]["models"]:
            if backend := backends.get(model["name"]):
                self.table.upsert_slice(slice_body(name, model["name"], ["127.0.0.1"], backend.port,
                                                   namespace=body["metadata"]["namespace"]))
        return str(body["metadata"]["uid"])


@pytest.fixture
async def gateway() -> AsyncIterator[GatewayUnderTest]:
    """A gateway on a free port of 127.0.0.1 with short limits (1 MB, 2 s) so the limit tests are quick; the
    admin's maxima let services raise them to 4 MB and 10 s."""
    gw = Gateway(RouteTable(), limits=Limits(body_limit_bytes=1024 * 1024, timeout_seconds=2.0,
                                             max_body_limit_bytes=4 * 1024 * 1024, max_timeout_seconds=10.0))
    runner, port = await start_site(build_app(gw, with_metrics=True), "127.0.0.1", 0)
    async with aiohttp.ClientSession() as http:
        yield GatewayUnderTest(gw, f"http://127.0.0.1:{port}", http, [runner])
    await runner.cleanup()
