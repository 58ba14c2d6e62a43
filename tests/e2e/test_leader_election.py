"""Two operator replicas with leader election: one writes, the other waits and takes over."""

from __future__ import annotations

import urllib.request
import uuid

import pytest
from services import Cluster, manifest, model, reconciled_after, restarted_and_reconciled, settled_children

from conftest import OperatorProcess, free_port


def deployment_applies(proc: OperatorProcess) -> float:
    return proc.metrics().get('inference_operator_api_writes_total{kind="Deployment",verb="apply"}', 0.0)


def healthy(proc: OperatorProcess) -> bool:
    try:
        with urllib.request.urlopen(proc.health_url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def reconciles(proc: OperatorProcess) -> float:
    return proc.metrics().get('inference_operator_reconciles_total{result="ok"}', 0.0)


@pytest.fixture
def replicas(cluster, crds, api, namespace, alone):
    """Two operator processes watching only the test's namespace, sharing one Lease (and no other operator:
    the session's would write the test's children too)."""
    lease = f"lease-{uuid.uuid4().hex[:6]}"
    args = ("--namespace", namespace, "--leader-elect", "--lease-name", lease, "--lease-namespace", namespace,
            "--lease-duration", "4")
    procs = []
    for i in range(2):  # free ports: several clusters and test runs share the machine
        health = free_port()
        proc = OperatorProcess(cluster, free_port(), namespace,
                               (*args, "--liveness", f"http://127.0.0.1:{health}/healthz"),
                               log_name=f"operator-replica-{i}.log")
        proc.health_url = f"http://127.0.0.1:{health}/healthz"
        procs.append(proc)
    for proc in procs:
        proc.start()
    yield procs
    for proc in procs:
        proc.stop()


def test_only_the_leader_writes_and_a_standby_takes_over(api, namespace, wait_for, replicas):
    kube = Cluster(api, namespace, wait_for)
    kube.create(manifest("ha", model("a", 60), model("b", 40)))
    kube.wait_status("ha", "running")
    kube.wait_for(lambda: settled_children(kube), 60, "the Deployments rolled out and every pod ready")
    leader = wait_for(lambda: next((p for p in replicas if reconciles(p)), None), 30, "a replica to reconcile")
    reconciled_after(kube, leader, lambda: kube.touch("ha"))  # a late second write would have landed by now
    applies = [deployment_applies(p) for p in replicas]
    assert sorted(applies) == [0.0, 2.0], f"each Deployment written once, by one replica: {applies}"
    leader, standby = (replicas[0], replicas[1]) if applies[0] else (replicas[1], replicas[0])
    assert reconciles(standby) == 0, "the standby must not even reconcile"
    # a standby is healthy: its liveness probe passes (once its endpoint is up: a probe has a startup delay)
    wait_for(lambda: healthy(standby), 60, "the standby's /healthz to answer 200")

    leader.proc.kill()  # no clean release: the standby must wait for the Lease to expire
    leader.proc.wait()
    # the new leader has listed the service and its children and finished a pass for each: then count
    restarted_and_reconciled(kube, standby, "ha", "running")
    assert deployment_applies(standby) == 0, "taking over an unchanged service writes nothing"
    kube.replace_models("ha", [model("a", 60, instanceCount=2), model("b", 40)])
    kube.wait_status("ha", "running")
    assert deployment_applies(standby) == 1
