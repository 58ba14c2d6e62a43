"""Gateway counts reach each service's status (invocationTimes, failedTimes), batched by the operator.

Only loopback traffic: requests are refused by the gateway itself (401 without credentials) or find no
ready instance (503, a model that crash-loops), so nothing is forwarded to the fake pods' addresses.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from test_operator import Cluster, manifest, model

from conftest import REPO, OperatorProcess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def gateway(cluster, namespace, wait_for):
    port, metrics_port = free_port(), free_port()
    log = open(REPO / ".cluster" / "logs" / "gateway-counts-e2e.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "inference_operator.gateway", "--host", "127.0.0.1",
                             "--port", str(port), "--metrics-port", str(metrics_port), "-n", namespace,
                             "--kubeconfig", cluster], stdout=log, stderr=subprocess.STDOUT)

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz", timeout=2) as resp:
                return resp.status == 200
        except (OSError, urllib.error.URLError):
            return False

    wait_for(healthy, 30, "the gateway to list what it serves")
    yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/-/counts"
    proc.terminate()
    proc.wait(10)
    log.close()


@pytest.fixture
def counting_operator(cluster, crds, namespace, gateway):
    proc = OperatorProcess(cluster, free_port(), namespace, ("--namespace", namespace),
                           log_name="operator-counts-e2e.log",
                           env={"INFERENCE_OPERATOR_GATEWAY_COUNTS_URL": gateway[1],
                                "INFERENCE_OPERATOR_COUNTS_INTERVAL_SECONDS": "1"})
    proc.start()
    yield proc
    proc.stop()


def call(base: str, uid: str) -> int:
    request = urllib.request.Request(f"{base}/v1/infers/{uid}/predict", data=b"{}", method="POST")
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_invocations_and_failures_reach_status(api, namespace, wait_for, gateway, counting_operator):
    kube = Cluster(api, namespace, wait_for)
    locked = kube.create(manifest("locked", model("m", 100), auth={"appAuth": True, "apps": []}))
    broken = kube.create(manifest("broken", model("m", 100, image="example.invalid/crashloop:1")))
    kube.wait_status("locked", "running")
    kube.wait_status("broken", "failed")

    assert [call(gateway[0], locked["metadata"]["uid"]) for _ in range(3)] == [401] * 3
    assert [call(gateway[0], broken["metadata"]["uid"]) for _ in range(2)] == [503] * 2

    def counts(name: str) -> tuple[int, int]:
        status = kube.status(name)
        return status.get("invocationTimes", 0), status.get("failedTimes", 0)

    wait_for(lambda: counts("locked") == (3, 0), 15, "locked's counts in status")
    wait_for(lambda: counts("broken") == (2, 2), 15, "broken's counts in status")
    writes = counting_operator.writes()
    time.sleep(2.5)
    assert counting_operator.writes() == writes, "no status write while the counts do not change"
