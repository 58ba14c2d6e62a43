"""A model scaled on concurrency grows while the gateway holds more requests than targetConcurrency allows
per replica, and shrinks after, step by step, never below what it had mid-way.

As in test_gateway_counts.py the model's own kwok pods never become ready, and an FQDN EndpointSlice points
its Service at the tests' model server on this machine (--resolve), whose /slow holds each request open.
The operator reads the gateway's counts every second (`alone`: the session's operator, not counting, would
rebuild the Deployment from another view). The decisions are Knative's (policies/concurrency.py): a panic
window scales up within seconds, the 60 s stable window brings the count back after the load.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import json
import random
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
import yaml
from gateways import DIRECT, CountsReads, call, counting_operator, serve_from_model_server, start_gateway
from services import Cluster, manifest, model

from conftest import REPO

HELD = 6
TARGET = 2


@pytest.fixture
def model_server() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "gateway" / "model_server.py"), "--name", "v1"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("PORT "), line
    yield int(line.split()[1])
    proc.terminate()
    proc.wait(10)


def held(base: str, uid: str, seconds: float) -> int:
    request = urllib.request.Request(f"{base}/v1/infers/{uid}/slow?seconds={seconds}", data=b"{}", method="POST")
    with DIRECT.open(request, timeout=seconds + 30) as resp:
        resp.read()
        return resp.status


def test_grows_under_held_requests_and_shrinks_after_without_a_dip(api, cluster, crds, namespace, wait_for,
                                                                   model_server, alone):
    kube = Cluster(api, namespace, wait_for)
    scaling = {"enabled": True, "metric": "concurrency", "targetConcurrency": TARGET,
               "minReplicas": 1, "maxReplicas": 4}
    svc = kube.create(manifest("busy", model("m", 100, image="example.invalid/crashloop:1", scaling=scaling)))
    serve_from_model_server(api, namespace, "busy", "m", model_server)
    gateway = start_gateway(cluster, namespace, "concurrency", wait_for)
    reads = CountsReads(gateway.metrics_port)
    operator = counting_operator(cluster, namespace, reads.port, "operator-concurrency-e2e.log")
    operator.start()
    uid = svc["metadata"]["uid"]

    def replicas() -> int | None:
        found = kube.deployment("busy-m")
        return found.spec.replicas if found is not None else None

    try:
        wait_for(lambda: call(gateway.url, uid) == 200, 30, "the gateway to serve busy")
        wait_for(lambda: replicas() == 1, 30, "busy-m at minReplicas")
        assert kube.hpa("busy-m") is None
        with concurrent.futures.ThreadPoolExecutor(HELD) as pool:
            answers = [pool.submit(held, gateway.url, uid, 15) for _ in range(HELD)]
            wait_for(lambda: replicas() == HELD // TARGET, 20, f"{HELD} held requests: {HELD // TARGET} replicas")
            assert [a.result() for a in answers] == [200] * HELD
        seen = [HELD // TARGET]
        def back_at_one() -> bool:
            count = replicas()
            if count is not None and count != seen[-1]:
                seen.append(count)
            return count == 1
        wait_for(back_at_one, 120, "busy-m back at minReplicas after the load")
        assert seen == sorted(seen, reverse=True) and seen[-1] == 1, seen
    finally:
        operator.stop()
        reads.close()
        gateway.proc.terminate()
        gateway.proc.wait(40)


def _localcluster():
    spec = importlib.util.spec_from_file_location("localcluster_scaling", REPO / "hack" / "localcluster.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_llm_engine_scales_on_concurrency_by_default_and_a_gitops_sync_changes_nothing(api, crds, namespace,
                                                                                          wait_for, operator):
    """vllm with scaling on and no metric: no HPA (the operator sets replicas); the same model with metric
    cpu has one. Applied server-side by a GitOps tool's field manager, a server-side diff then shows nothing:
    the operator never writes the service's spec."""
    kube, kubectl = Cluster(api, namespace, wait_for), _localcluster().kubectl
    llm = {"name": "m", "modelName": "llama", "modelVersion": "1", "runtime": "vllm",
           "scaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 3, "targetConcurrency": 4}}
    on_cpu = {**llm, "scaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 3, "metric": "cpu"}}
    manifests = [manifest("llm", llm), manifest("llm-cpu", on_cpu)]
    text = yaml.safe_dump_all(manifests)
    kubectl("-n", namespace, "apply", "--server-side", "--field-manager=argocd-controller", "-f", "-", input=text)
    kube.wait_status("llm", "running")
    kube.wait_status("llm-cpu", "running")
    assert wait_for(lambda: kube.hpa("llm-cpu-m"), 30, "the HPA of the model on cpu")
    assert kube.hpa("llm-m") is None
    deployment = kube.deployment("llm-m")
    assert deployment is not None and deployment.spec.replicas == 1
    diff = kubectl("-n", namespace, "diff", "--server-side", "--field-manager=argocd-controller", "-f", "-",
                   input=text, check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr


STEADY = 5  # clients, each sending one streamed chat after the other (1 to 3 s each, pauses up to 0.4 s)
OBSERVED_SECONDS = 35


@pytest.fixture
def engine() -> Iterator[int]:
    """One simulated engine on every interface; each replica's "hostlocal" pod has its address."""
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "enginesim" / "server.py"), "--model", "sim",
                             "--host", "0.0.0.0", "--itl", "0.02", "--slowdown", "0"], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("PORT "), line
    yield int(line.split()[1])
    proc.terminate()
    proc.wait(10)


def _steady_client(base: str, uid: str, seed: int, stop: threading.Event, failures: list[str]) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        body = json.dumps({"model": "sim", "stream": True, "max_tokens": rng.randint(50, 150),
                           "messages": [{"role": "user", "content": f"question {rng.random()}"}]}).encode()
        request = urllib.request.Request(f"{base}/v1/infers/{uid}/v1/chat/completions", body,
                                         {"Content-Type": "application/json"})
        try:
            with DIRECT.open(request, timeout=60) as resp:
                resp.read()
        except OSError as err:
            failures.append(repr(err))
        stop.wait(rng.uniform(0, 0.4))


def test_a_steady_load_holds_the_count_and_its_end_scales_down_without_a_dip(api, cluster, crds, namespace,
                                                                             wait_for, engine, alone):
    """A constant load of about 4.5 requests in flight (target 2: ceil(4.5 / 2) = 3 replicas) through the
    gateway to a simulated engine behind every replica's pod. Once the count has reached 3, it holds at every
    observation for OBSERVED_SECONDS although the load moves between about 3 and 5 in flight (with the
    stable window off, the instantaneous count would go 2, 3, 2: flapping). When the load stops the count
    comes down step by step, and the ready replicas never fall below the count asked for at the time."""
    kube = Cluster(api, namespace, wait_for)
    scaling = {"enabled": True, "targetConcurrency": TARGET, "minReplicas": 1, "maxReplicas": 4}
    entry = model("m", image="example.invalid/hostlocal-engine:1", port=engine, runtime="vllm", scaling=scaling)
    entry["modelName"] = "sim"
    svc = kube.create(manifest("steady", entry))
    gateway = start_gateway(cluster, namespace, "steady", wait_for)
    reads = CountsReads(gateway.metrics_port)
    operator = counting_operator(cluster, namespace, reads.port, "operator-steady-e2e.log")
    operator.start()
    uid = svc["metadata"]["uid"]

    def counts() -> tuple[int, int] | None:
        found = kube.deployment("steady-m")
        if found is None or found.spec.replicas is None:
            return None
        return found.spec.replicas, found.status.ready_replicas or 0

    stop, failures = threading.Event(), []
    clients = [threading.Thread(target=_steady_client, args=(gateway.url, uid, i, stop, failures), daemon=True)
               for i in range(STEADY)]
    try:
        wait_for(lambda: counts() == (1, 1), 60, "steady-m at minReplicas, ready")
        assert kube.hpa("steady-m") is None  # vllm: concurrency by default
        for thread in clients:
            thread.start()
        wait_for(lambda: counts() == (3, 3), 60, "3 replicas ready under the steady load")
        seen, ends = [], time.monotonic() + OBSERVED_SECONDS
        while time.monotonic() < ends:
            now = counts()
            assert now is not None
            seen.append(now[0])
            stop.wait(0.5)
        assert set(seen) == {3}, f"the count moved under a steady load: {seen}"
        assert not failures, failures[:3]
        stop.set()
        for thread in clients:
            thread.join(70)
        history: list[tuple[int, int]] = []

        def back_at_one() -> bool:
            now = counts()
            if now is not None and (not history or history[-1] != now):
                history.append(now)
            return now == (1, 1)
        wait_for(back_at_one, 150, "steady-m back at minReplicas after the load")
        asked = [spec for spec, _ in history]
        assert asked == sorted(asked, reverse=True), f"the count went back up on the way down: {history}"
        assert all(ready >= spec for spec, ready in history), f"fewer ready than asked for: {history}"
    finally:
        stop.set()
        operator.stop()
        reads.close()
        gateway.proc.terminate()
        gateway.proc.wait(40)
