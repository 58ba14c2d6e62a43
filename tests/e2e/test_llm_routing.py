"""Routing within an OpenAI-speaking model through real EndpointSlices, to simulated engines (tests/enginesim).

Every engine is a real process on this machine behind a kwok pod whose image says "hostlocal" (kwok gives it
this machine's address, hack/kwok-stages.yaml): the model's Deployment runs one, and more pods with the same
labels (the ones the model's Service selects) and each its own port for "http" run the others, so the real
EndpointSlice controller writes one endpoint per engine and the gateway reads them from its watch.
Nothing sleeps to synchronise: each step waits for what the engines report.
"""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from gateways import DIRECT, start_gateway
from kubernetes import client
from services import Cluster, manifest, model

from conftest import REPO

HOSTLOCAL = "example.invalid/hostlocal-engine:1"
SYSTEM = " ".join(f"sys{i}" for i in range(300))


class Engine:
    def __init__(self, speed: float = 1.0) -> None:
        self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "enginesim" / "server.py"), "--model",
                                      "sim", "--host", "0.0.0.0", "--speed", str(speed), "--itl", "0.01"],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])

    def served(self) -> int:
        with DIRECT.open(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        return int(float(next(line.rsplit(" ", 1)[1] for line in text.splitlines()
                              if line.startswith("vllm:request_success_total"))))


@pytest.fixture
def engines(request: pytest.FixtureRequest) -> Iterator[list[Engine]]:
    found = [Engine(speed) for speed in request.param]
    yield found
    for engine in found:
        engine.proc.terminate()
        engine.proc.wait(10)


def fleet(api: client.ApiClient, kube: Cluster, engines: list[Engine], routing: str) -> str:
    """The service (its Deployment runs engine 0) and a pod for each other engine; its uid once all are
    endpoints of the model's Service."""
    engine = model("m", image=HOSTLOCAL, port=engines[0].port, openaiCompatible=True)
    engine["modelName"] = "sim"
    uid: str = kube.create(manifest("llm", engine, routing=routing))["metadata"]["uid"]
    kube.wait_for(lambda: _service(api, kube.ns), 60, "the model's Service")
    selector = _service(api, kube.ns).spec.selector
    for i, other in enumerate(engines[1:], start=1):
        client.CoreV1Api(api).create_namespaced_pod(kube.ns, {"metadata": {"name": f"engine-{i}", "labels": selector},
            "spec": {"containers": [{"name": "engine", "image": HOSTLOCAL,
                                     "ports": [{"name": "http", "containerPort": other.port}]}]}})
    kube.wait_for(lambda: len(_ports(api, kube.ns)) == len(engines), 90, "an endpoint per engine")
    return uid


def _service(api: client.ApiClient, namespace: str) -> Any:
    found = client.CoreV1Api(api).list_namespaced_service(namespace).items
    return found[0] if found else None


def _ports(api: client.ApiClient, namespace: str) -> set[int]:
    slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(namespace).items
    return {p.port for s in slices for p in s.ports or [] for e in s.endpoints or []
            if e.conditions and e.conditions.ready}


def chat(url: str, uid: str, question: str, tokens: int = 4) -> int:
    body = json.dumps({"model": "sim", "max_tokens": tokens, "stream": True, "messages": [
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]}).encode()
    request = urllib.request.Request(f"{url}/v1/infers/{uid}/v1/chat/completions", body,
                                     {"Content-Type": "application/json"})
    with DIRECT.open(request, timeout=60) as resp:
        resp.read()
        return int(resp.status)


@pytest.mark.parametrize("engines", [[1.0] * 4], indirect=True)
def test_a_shared_prefix_stays_on_one_engine_until_it_is_busy(api, cluster, crds, namespace, wait_for, engines,
                                                              operator):
    kube = Cluster(api, namespace, wait_for)
    uid = fleet(api, kube, engines, "prefix")
    gateway = start_gateway(cluster, namespace, "routing-prefix", wait_for)
    try:
        wait_for(lambda: chat(gateway.url, uid, "warm") == 200, 30, "the gateway to reach an engine")
        for i in range(8):
            assert chat(gateway.url, uid, f"question {i}") == 200
        served = [e.served() for e in engines]
        assert sorted(served) == [0, 0, 0, 9], served  # one after the other: all on the prefix's engine
        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            assert set(pool.map(lambda i: chat(gateway.url, uid, f"burst {i}", 40), range(24))) == {200}
        burst = [e.served() - s for e, s in zip(engines, served, strict=True)]
        assert sum(burst) == 24 and sum(1 for n in burst if n) >= 3, burst  # busy: spread over the others
        home = served.index(9)  # ... and the prefix's engine, over its share after its 9, takes the fewest
        assert burst[home] <= min(n for i, n in enumerate(burst) if i != home), burst
    finally:
        gateway.proc.terminate()
        gateway.proc.wait(40)


@pytest.mark.parametrize("engines", [[1.0, 1.0, 6.0]], indirect=True)
def test_a_slow_engine_gets_fewer_requests(api, cluster, crds, namespace, wait_for, engines, operator):
    kube = Cluster(api, namespace, wait_for)
    uid = fleet(api, kube, engines, "least-load")
    gateway = start_gateway(cluster, namespace, "routing-slow", wait_for)
    try:
        wait_for(lambda: chat(gateway.url, uid, "warm") == 200, 30, "the gateway to reach an engine")
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            assert set(pool.map(lambda i: chat(gateway.url, uid, f"q{i}", 20), range(60))) == {200}
        fast, other, slow = (e.served() for e in engines)
        assert slow * 2 < min(fast, other), (fast, other, slow)
    finally:
        gateway.proc.terminate()
        gateway.proc.wait(40)
