"""The leader of two operator replicas is killed, frozen, or cut off from the API server while services
change; the standby takes over, and the API server's audit log shows one writer at a time: no write by
a replica outside the window in which it held the Lease, never two replicas writing at once."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from audit import lease_windows, operator_writes, violations
from e2e_conftest import OperatorProcess, free_port
from e2e_conftest import _localcluster as localcluster
from kubernetes import client
from toxiproxy import Proxy, Toxiproxy, proxied_kubeconfig

LEASE_SECONDS = 8  # renew deadline 5.3 s, retry period 1.07 s
SERVICES = 6
GROUP, VERSION, PLURAL = "inference.io", "v1alpha1", "inferenceservices"


def service(name: str, instances: int) -> dict:
    model = {"name": "m", "modelName": "m", "modelVersion": "1", "image": "registry.example/m:1", "weight": 100,
             "specification": "modelarts.vm.cpu.2u", "instanceCount": instances}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService", "metadata": {"name": name},
            "spec": {"models": [model]}}


@dataclass
class Replica:
    operator: OperatorProcess
    proxy: Proxy
    name: str

    @property
    def identity(self) -> str:
        assert self.operator.proc is not None
        return f"{self.name}-{self.operator.proc.pid}"


class Churn(threading.Thread):
    """Keeps the leader writing: every service's instance count changes in turn until stopped."""

    def __init__(self, api: client.ApiClient, ns: str) -> None:
        super().__init__(daemon=True)
        self.crd, self.ns = client.CustomObjectsApi(api), ns
        self.halt, self.changes = threading.Event(), 0

    def run(self) -> None:
        while not self.halt.is_set():
            name = f"svc-{self.changes % SERVICES}"
            patch = {"spec": {"models": [service(name, 1 + self.changes % 3)["spec"]["models"][0]]}}
            with contextlib.suppress(client.ApiException):
                self.crd.patch_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name, patch)
            self.changes += 1
            self.halt.wait(0.15)

    def stop(self) -> None:
        self.halt.set()
        self.join(10)


def landed(replica: Replica, since: datetime) -> bool:
    """Whether the API server's audit log holds a write of `replica` other than its Lease's."""
    return any(w.identity == replica.identity and w.resource != "leases"
               for w in operator_writes(localcluster().AUDIT_LOG, since))


def holder(api: client.ApiClient, ns: str, lease: str) -> str:
    try:
        return client.CoordinationV1Api(api).read_namespaced_lease(lease, ns).spec.holder_identity or ""
    except client.ApiException:
        return ""


@pytest.fixture
def pair(cluster: str, crds: None, namespace: str, toxiproxy: Toxiproxy, tmp_path: Path) -> Iterator[tuple]:
    """Two replicas sharing one Lease, each reaching the API server through its own proxy."""
    lease = f"lease-{uuid.uuid4().hex[:6]}"
    apiserver = localcluster().PORTS["apiserver"]
    replicas = []
    for i in range(2):
        proxy = toxiproxy.proxy(f"{namespace}-{i}", free_port(), apiserver)
        config = proxied_kubeconfig(cluster, proxy.listen, tmp_path / f"kubeconfig-{i}")
        args = ("--namespace", namespace, "--leader-elect", "--lease-name", lease, "--lease-namespace", namespace,
                "--lease-duration", str(LEASE_SECONDS))
        name = f"replica-{i}"
        operator = OperatorProcess(config, free_port(), namespace, args, log_name=f"faults-{name}.log",
                                   env={"POD_NAME": name})
        replicas.append(Replica(operator, proxy, name))
    started = datetime.now(UTC) - timedelta(seconds=1)  # the Lease's whole record is from here on
    try:
        for replica in replicas:
            replica.operator.start()
        yield lease, replicas, started
    finally:
        for replica in replicas:
            replica.proxy.enable(True)
            if replica.operator.proc is not None and replica.operator.proc.poll() is None:
                os.kill(replica.operator.proc.pid, signal.SIGCONT)
            replica.operator.stop()


@pytest.mark.parametrize("fault", ["kill", "freeze", "cut-off"])
def test_one_writer_through_a_leader_fault(fault: str, api, namespace, wait_for, pair) -> None:
    lease, replicas, started = pair
    crd = client.CustomObjectsApi(api)
    for i in range(SERVICES):
        crd.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, service(f"svc-{i}", 1))
    identities = {r.identity: r for r in replicas}
    leader = identities[wait_for(lambda: holder(api, namespace, lease) in identities and holder(api, namespace, lease),
                                 30, "a leader")]
    standby = next(r for r in replicas if r is not leader)
    churn = Churn(api, namespace)
    churn.start()
    try:
        # Its own counter moves as a write is sent; the API server's record shows it landed (a pass sends its
        # children together: killed at once, the leader might have sent ten writes and landed none).
        wait_for(lambda: leader.operator.writes() >= 10 and landed(leader, started), 60, "the leader's writes to land")
        assert leader.operator.proc is not None
        if fault == "kill":
            leader.operator.proc.kill()
        elif fault == "freeze":
            os.kill(leader.operator.proc.pid, signal.SIGSTOP)
        else:
            leader.proxy.enable(False)
        wait_for(lambda: holder(api, namespace, lease) == standby.identity, 4 * LEASE_SECONDS, "the standby to lead")
        wait_for(lambda: standby.operator.writes() > 0, 120, "the new leader to write")
        if fault == "freeze":
            os.kill(leader.operator.proc.pid, signal.SIGCONT)  # it wakes up believing it leads
        if fault in ("freeze", "cut-off"):
            code = wait_for(lambda: leader.operator.proc.poll(), 2 * LEASE_SECONDS, "the old leader to exit")
            assert code == 1, "a leader that lost its Lease exits with status 1"
    finally:
        churn.stop()
    assert churn.changes > 20

    def converged() -> bool:
        items = crd.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        return len(items) == SERVICES and all(
            (o.get("status") or {}).get("observedGeneration") == o["metadata"]["generation"]
            and (o.get("status") or {}).get("status") == "running" for o in items)

    wait_for(converged, 120, "every service running at its last generation")
    # From the replicas' start: a window begins with the Lease write that made its holder the leader, which
    # may come before this test's first write (taken from a later point, the leader's first writes would
    # seem to precede its window).
    writes = [w for w in operator_writes(localcluster().AUDIT_LOG, started) if w.identity in identities]
    until = datetime.now(UTC)  # the record read so far ends before this
    windows = lease_windows(writes, lease, LEASE_SECONDS, until)
    assert [w.identity for w in windows][:2] == [leader.identity, standby.identity], windows
    mine = [w for w in writes if w.resource != "leases"]
    assert {w.identity for w in mine} == set(identities), "both replicas wrote, each in its own window"
    assert violations(writes, windows, lease) == []
