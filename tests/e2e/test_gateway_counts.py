"""Gateway counts reach each service's status (invocationTimes, failedTimes) exactly, from one gateway or many.

The services' own pods are kwok pods that never become ready (a "crashloop" image), so the gateway never
routes to their fake addresses; each service's model also has an FQDN EndpointSlice written here, which
the gateway resolves to the tests' model server on loopback (--resolve). So every counted request really
reaches a model: the counts are the requests that passed auth and were answered by the model.

Each test runs an operator of its own (reading the gateways' counts) and no other (`alone`): the session's
operator watches every namespace and, not counting, would write the services' status from its own last
view, invocationTimes included, over the counting operator's (seen in CI: a wait for the counts timed out).
"""

from __future__ import annotations

import concurrent.futures
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from gateways import (
    CountsReads,
    GatewayProcess,
    call,
    counting_operator,
    free_port,
    host_ip,
    serve_from_model_server,
    start_gateway,
)
from kubernetes import client
from services import GROUP, PLURAL, VERSION, Cluster, manifest, model

from conftest import REPO, OperatorProcess


@pytest.fixture(scope="module")
def model_server() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "gateway" / "model_server.py"), "--name", "v1"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("PORT "), line
    yield int(line.split()[1])
    proc.terminate()
    proc.wait(10)


def crashloop(name: str) -> dict[str, Any]:
    return model(name, 100, image="example.invalid/crashloop:1")


def counts_of(kube: Cluster, name: str) -> tuple[int, int]:
    status = kube.status(name)
    return status.get("invocationTimes", 0), status.get("failedTimes", 0)


@dataclass
class Unequal:
    """A falsy answer to wait_for that says what status held (a timeout then names the counts it saw)."""
    seen: tuple[int, int]

    def __bool__(self) -> bool:
        return False


def invocations_are(kube: Cluster, name: str, want: int) -> bool | Unequal:
    seen = counts_of(kube, name)
    return seen[0] == want or Unequal(seen)


def test_invocations_and_failures_reach_status(api, cluster, crds, namespace, wait_for, model_server, alone):
    """Only requests that passed auth and reached the model count; a 5xx of the model is a failure."""
    kube = Cluster(api, namespace, wait_for)
    client.CoreV1Api(api).create_namespaced_secret(namespace, {"metadata": {"name": "app-c"}, "stringData": {
        "appKey": "KEY-C", "appSecret": "SECRET-C", "appCode": "CODE-C"}})
    locked = kube.create(manifest("locked", crashloop("m"), auth={"appAuth": True,
                                                                  "apps": [{"secretName": "app-c"}]}))
    serve_from_model_server(api, namespace, "locked", "m", model_server)
    gateway = start_gateway(cluster, namespace, "single", wait_for)
    reads = CountsReads(gateway.metrics_port)
    operator = counting_operator(cluster, namespace, reads.port, "operator-counts-e2e.log")
    operator.start()
    try:
        uid = locked["metadata"]["uid"]
        wait_for(lambda: call(gateway.url, uid, headers={"X-Apig-AppCode": "CODE-C"}) == 200, 30,
                 "the gateway to serve locked")
        assert [call(gateway.url, uid) for _ in range(3)] == [401] * 3  # not counted
        assert [call(gateway.url, uid, headers={"X-Apig-AppCode": "CODE-C"}) for _ in range(4)] == [200] * 4
        assert call(gateway.url, uid, "/fail", {"X-Apig-AppCode": "CODE-C"}) == 500
        answered = 1 + 4 + 1  # the first 200 of the wait, four more, one 500 of the model
        wait_for(lambda: counts_of(kube, "locked") == (answered, 1), 20, "locked's counts in status")
        writes, seen = operator.writes(), reads.reads
        wait_for(lambda: reads.reads >= seen + 3, 30, "three more reads of unchanged counts")
        assert operator.writes() == writes, "no status write while the counts do not change"
    finally:
        operator.stop()
        reads.close()
        gateway.proc.terminate()
        gateway.proc.wait(40)


def test_three_gateways_one_stopped_mid_traffic_and_an_operator_restart_count_exactly(
        api, cluster, crds, namespace, wait_for, model_server, alone):
    """Three gateway processes behind one internal Service; the operator finds them through its EndpointSlices.
    One is stopped (SIGTERM) while requests flow, the operator is restarted: invocationTimes ends equal to the
    requests the gateways answered, no more, no less.

    Bound for requests in flight at the stop: none is lost, since SIGTERM drains them (up to 30 s) and the
    gateway then waits for its last read (--final-read-seconds). A gateway killed without that (SIGKILL, OOM)
    loses what it answered since the operator's previous read: at most interval x its request rate.
    """
    address = host_ip()
    kube = Cluster(api, namespace, wait_for)
    svc = kube.create(manifest("busy", crashloop("m")))
    uid = svc["metadata"]["uid"]
    serve_from_model_server(api, namespace, "busy", "m", model_server)
    gateways = [start_gateway(cluster, namespace, f"replica-{i}", wait_for, final_read=15) for i in range(3)]
    reads = [CountsReads(gw.metrics_port) for gw in gateways]
    core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    core.create_namespaced_service(namespace, {"metadata": {"name": "gw-internal"}, "spec": {
        "clusterIP": "None", "ports": [{"name": "metrics", "port": 9090}]}})
    for i, proxy in enumerate(reads):  # one slice per process: each has its own metrics port on this host
        discovery.create_namespaced_endpoint_slice(namespace, {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"gw-internal-{i}", "labels": {
                "kubernetes.io/service-name": "gw-internal", "endpointslice.kubernetes.io/managed-by": "e2e-test"}},
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": "metrics", "port": proxy.port, "protocol": "TCP"}]})
    operator = OperatorProcess(cluster, free_port(), namespace, ("--namespace", namespace),
                               log_name="operator-counts-replicas-e2e.log",
                               env={"INFERENCE_OPERATOR_GATEWAY_COUNTS_SERVICE": f"{namespace}/gw-internal",
                                    "INFERENCE_OPERATOR_GATEWAY_COUNTS_PORT": "metrics",
                                    "INFERENCE_OPERATOR_COUNTS_INTERVAL_SECONDS": "1"})
    operator.start()
    answered = [0]
    lock = threading.Lock()

    def send(n: int, targets: list[GatewayProcess]) -> None:
        def one(i: int) -> None:
            if call(targets[i % len(targets)].url, uid) == 200:
                with lock:
                    answered[0] += 1
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(n)))

    try:
        for gw in gateways:
            wait_for(lambda gw=gw: call(gw.url, uid) == 200, 30, "each gateway to serve busy")
        answered[0] += 3
        stopper = threading.Timer(1.0, gateways[1].proc.send_signal, (signal.SIGTERM,))
        stopper.start()
        send(600, gateways)  # the stop lands in the middle: some to replica-1 are refused, none miscounted
        stopper.join()
        assert gateways[1].proc.wait(40) == 0
        wait_for(lambda: invocations_are(kube, "busy", answered[0]), 30,
                 f"invocationTimes to equal the {answered[0]} answered requests")
        ledger = json.loads(core.read_namespaced_config_map("inference-operator-gateway-counts",
                                                            namespace).data["ledger.json"])
        assert len(ledger["instances"]) == 3
        operator.restart()  # failover: the new process resumes from the stored ledger
        send(120, [gateways[0], gateways[2]])
        wait_for(lambda: invocations_are(kube, "busy", answered[0]), 30,
                 f"invocationTimes to equal the {answered[0]} answered requests after the operator restart")
        seen = [reads[0].reads, reads[2].reads]
        wait_for(lambda: reads[0].reads >= seen[0] + 3 and reads[2].reads >= seen[1] + 3, 30,
                 "three more reads of each running gateway")  # nothing may be added twice
        assert counts_of(kube, "busy") == (answered[0], 0)
    finally:
        operator.stop()
        for proxy in reads:
            proxy.close()
        for gw in gateways:
            if gw.proc.poll() is None:
                gw.proc.kill()  # no last read to wait for: the test is over
                gw.proc.wait(10)


def test_a_deleted_service_leaves_the_ledger(api, cluster, crds, namespace, wait_for, model_server, alone):
    """The gateway keeps counting a deleted service until it restarts; the stored ledger must not keep it
    (with churn it would outgrow its ConfigMap), nor take it back at the next reading."""
    kube = Cluster(api, namespace, wait_for)
    core = client.CoreV1Api(api)
    uids = {name: kube.create(manifest(name, crashloop("m")))["metadata"]["uid"] for name in ("stays", "goes")}
    for name in uids:
        serve_from_model_server(api, namespace, name, "m", model_server)
    gateway = start_gateway(cluster, namespace, "pruning", wait_for)
    operator = OperatorProcess(cluster, free_port(), namespace, ("--namespace", namespace),
                               log_name="operator-counts-prune-e2e.log",
                               env={"INFERENCE_OPERATOR_GATEWAY_COUNTS_URL":
                                    f"http://127.0.0.1:{gateway.metrics_port}/-/counts",
                                    "INFERENCE_OPERATOR_COUNTS_INTERVAL_SECONDS": "1"})

    def ledger() -> str:
        try:
            return core.read_namespaced_config_map("inference-operator-gateway-counts", namespace).data["ledger.json"]
        except client.ApiException:
            return ""

    operator.start()
    try:
        for name, uid in uids.items():
            wait_for(lambda uid=uid: call(gateway.url, uid) == 200, 30, f"the gateway to serve {name}")
        wait_for(lambda: all(uid in ledger() for uid in uids.values()), 20, "both services in the ledger")
        kube.crd.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "goes")
        wait_for(lambda: uids["goes"] not in ledger(), 20, "the deleted service gone from the ledger")
        assert call(gateway.url, uids["stays"]) == 200
        wait_for(lambda: counts_of(kube, "stays")[0] == 2, 20, "stays' counts still counted")
        assert uids["goes"] not in ledger()
    finally:
        operator.stop()
        gateway.proc.terminate()
        gateway.proc.wait(40)
