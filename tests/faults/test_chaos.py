"""Faults under a random workload (tests/faults/chaos.py): nothing lost, nothing duplicated, nobody writes twice.

`make test` runs a short seeded subset (CHAOS_SERVICES=12, one run per fault); `make chaos` runs the full
set (200 services, 10 runs per fault) and writes bench/results/chaos-<time>.json with the table
(`make test` writes its report to .cluster/chaos/).
Settings: CHAOS_SERVICES, CHAOS_RUNS, CHAOS_SEED, CHAOS_FREEZE_SECONDS, CHAOS_FAULTS (comma list).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audit import operator_writes
from chaos import (
    FAULTS,
    GATEWAY_URL,
    LEASE_SECONDS,
    RunResult,
    Workload,
    converge,
    cpu_seconds,
    double_writes,
    frozen,
    gateway_api_served,
    since_now,
    status_changes,
    statuses,
    summary,
    table,
    write_report,
)
from e2e_conftest import OperatorProcess, free_port
from e2e_conftest import _localcluster as localcluster
from kubernetes import client
from toxiproxy import Proxy, Toxiproxy, proxied_kubeconfig

import provenance
from inference_operator.config import OperatorConfig

REPO = Path(__file__).resolve().parents[2]
SERVICES = int(os.environ.get("CHAOS_SERVICES", "12"))
RUNS = int(os.environ.get("CHAOS_RUNS", "1"))
SEED = int(os.environ.get("CHAOS_SEED", "11"))
FREEZE_SECONDS = float(os.environ.get("CHAOS_FREEZE_SECONDS", "30"))
SELECTED = [f for f in os.environ.get("CHAOS_FAULTS", ",".join(FAULTS)).split(",") if f]
CONVERGE_TIMEOUT = 240.0
QUIET_SECONDS = 5.0
RESULTS: list[RunResult] = []
STAMP = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
SETTINGS = {"services": SERVICES, "runs": RUNS, "seed": SEED, "freeze_seconds": FREEZE_SECONDS,
            "lease_seconds": LEASE_SECONDS}
REPORT_DIR = Path(os.environ.get("CHAOS_REPORT_DIR", REPO / ".cluster" / "chaos"))
STARTED = provenance.begin(settings=SETTINGS | {"faults": SELECTED, "converge_timeout_s": CONVERGE_TIMEOUT,
                                               "quiet_seconds": QUIET_SECONDS},
                           cluster=provenance.cluster_settings({"nodes": "the cluster's own and one dense node"}))


def record(result: RunResult) -> None:
    """Keep a run's result, in the report file at once, and say how it went (a long run shows progress)."""
    RESULTS.append(result)
    write_report(RESULTS, SETTINGS, REPORT_DIR, STARTED, STAMP)
    print(f"\nchaos: {result.fault} run {result.run}: {'survived' if result.survived else 'FAILED'}, "
          f"converged in {result.converge_seconds}s, lost {result.lost}, duplicated {result.duplicated}, "
          f"double writes {result.double_writes}, control plane behind {result.control_plane_behind}"
          f"{'; ' + '; '.join(result.notes[:3]) if result.notes else ''}",
          flush=True)


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    """The table, once every selected fault has run (also when some failed)."""
    yield
    if RESULTS:
        path = write_report(RESULTS, SETTINGS, REPORT_DIR, STARTED, STAMP)
        print(f"\n\nchaos report: {path}\n{table(summary(RESULTS))}\n")


class Replica:
    """One operator process reaching the API server through its own Toxiproxy proxy."""

    def __init__(self, cluster: str, ns: str, proxy: Proxy, config: str, name: str, lease: str | None) -> None:
        self.cluster, self.ns, self.proxy, self.config, self.name, self.lease = cluster, ns, proxy, config, name, lease
        self.operator: OperatorProcess | None = None
        self.starts = 0

    def start(self) -> None:
        args: tuple[str, ...] = ("--namespace", self.ns)
        if self.lease:
            args += ("--leader-elect", "--lease-name", self.lease, "--lease-namespace", self.ns,
                     "--lease-duration", str(LEASE_SECONDS))
        self.starts += 1
        self.operator = OperatorProcess(self.config, free_port(), self.ns, args,
                                        log_name=f"chaos-{self.ns}-{self.name}-{self.starts}.log",
                                        env={"POD_NAME": self.name})
        self.operator.start()

    @property
    def proc(self) -> subprocess.Popen:
        assert self.operator is not None and self.operator.proc is not None
        return self.operator.proc

    @property
    def identity(self) -> str:
        return f"{self.name}-{self.proc.pid}"

    def alive(self) -> bool:
        return self.operator is not None and self.operator.proc is not None and self.proc.poll() is None


class Fleet:
    """The run's operator processes (one, or two behind a Lease) and every identity they have had."""

    def __init__(self, cluster: str, ns: str, toxiproxy: Toxiproxy, tmp: Path, replicas: int) -> None:
        self.lease = f"lease-{uuid.uuid4().hex[:6]}" if replicas > 1 else None
        apiserver = localcluster().PORTS["apiserver"]
        self.replicas = []
        for i in range(replicas):
            proxy = toxiproxy.proxy(f"{ns}-{i}", free_port(), apiserver)
            config = proxied_kubeconfig(cluster, proxy.listen, tmp / f"kubeconfig-{i}")
            self.replicas.append(Replica(cluster, ns, proxy, config, f"op-{i}", self.lease))
        self.identities: set[str] = set()
        self.since = since_now()
        self.logs: list[Path] = []
        self.expected_exits = 0
        self.tracebacks_seen = 0

    def start(self) -> None:
        for replica in self.replicas:
            self.start_one(replica)

    def start_one(self, replica: Replica) -> None:
        replica.start()
        self.identities.add(replica.identity)
        assert replica.operator is not None
        self.logs.append(replica.operator.log_path)

    def stop(self) -> None:
        for replica in self.replicas:
            replica.proxy.clear()
            if replica.alive():
                os.kill(replica.proc.pid, signal.SIGCONT)
                replica.operator.stop()  # type: ignore[union-attr]

    def holder(self, api: client.ApiClient) -> str:
        try:
            lease = client.CoordinationV1Api(api).read_namespaced_lease(self.lease, self.replicas[0].ns)
            return lease.spec.holder_identity or ""
        except Exception:  # noqa: BLE001 - the API may be down
            return ""

    def leader(self, api: client.ApiClient, wait_for: Callable) -> Replica:
        by_identity = {r.identity: r for r in self.replicas if r.alive()}
        return by_identity[wait_for(lambda: self.holder(api) in by_identity and self.holder(api), 60, "a leader")]

    def writes(self) -> float:
        total = 0.0
        for replica in self.replicas:
            if replica.alive():
                with contextlib.suppress(OSError):
                    total += replica.operator.writes()  # type: ignore[union-attr]
        return total

    def unexpected_exits(self) -> int:
        return sum(1 for r in self.replicas if not r.alive())

    def tracebacks(self) -> int:
        return sum(p.read_text(errors="replace").count("Traceback") for p in self.logs if p.exists())


def fault_action(fault: str, fleet: Fleet, api: client.ApiClient, wait_for: Callable, notes: list[str],
                 finished: threading.Event) -> Callable[[], None]:
    """What happens at the fault point; `finished` is set once the fault is over and healed."""
    lc = localcluster()

    def operator_kill() -> None:
        replica = fleet.replicas[0]
        replica.proc.kill()
        replica.proc.wait()
        fleet.start_one(replica)  # as its Deployment would

    def apiserver_freeze() -> None:
        operator = fleet.replicas[0]
        before = cpu_seconds(operator.proc.pid)
        with frozen(lc.pid_of("kube-apiserver")):
            time.sleep(FREEZE_SECONDS)  # the fault's duration, not a synchronisation
        spent = cpu_seconds(operator.proc.pid) - before
        notes.append(f"operator CPU while the API server was frozen {FREEZE_SECONDS:.0f}s: {spent:.2f}s")
        if spent > 0.2 * FREEZE_SECONDS:
            notes.append("SPIN: the operator burnt CPU against a frozen API server")
        if not operator.alive():
            notes.append("EXIT: the operator exited while the API server was frozen")

    def slow_lossy_link() -> None:
        proxy = fleet.replicas[0].proxy
        proxy.toxic("latency-down", "latency", "downstream", latency=300, jitter=250)
        proxy.toxic("latency-up", "latency", "upstream", latency=100, jitter=100)
        proxy.toxic("resets", "reset_peer", "downstream", toxicity=0.15, timeout=800)
        proxy.toxic("half-open", "timeout", "upstream", toxicity=0.1, timeout=0)

        def heal() -> None:
            time.sleep(15)  # the link stays bad while the workload goes on
            proxy.clear()
            finished.set()

        threading.Thread(target=heal, daemon=True).start()

    def leader_fault(kind: str) -> None:
        leader = fleet.leader(api, wait_for)
        standby = next(r for r in fleet.replicas if r is not leader)
        if kind == "kill":
            leader.proc.kill()
            leader.proc.wait()
        elif kind == "freeze":
            os.kill(leader.proc.pid, signal.SIGSTOP)
        else:
            leader.proxy.enable(False)
        wait_for(lambda: fleet.holder(api) == standby.identity, 6 * LEASE_SECONDS, "the standby to lead")
        if kind == "freeze":
            os.kill(leader.proc.pid, signal.SIGCONT)  # wakes believing it leads: must not write, must exit
        if kind in ("freeze", "cut-off"):
            code = wait_for(lambda: leader.proc.poll(), 3 * LEASE_SECONDS, "the old leader to exit")
            if code != 1:
                notes.append(f"old leader exited with {code}, not 1")
            leader.proxy.enable(True)
        fleet.expected_exits += 1
        fleet.start_one(leader)  # back as a standby, as its Deployment would restart it

    actions: dict[str, Callable[[], None]] = {
        "operator-kill": operator_kill,
        "apiserver-restart": lambda: lc.restart("kube-apiserver"),
        "etcd-restart": lambda: lc.restart("etcd"),
        "apiserver-freeze": apiserver_freeze,
        "slow-lossy-link": slow_lossy_link,
        "leader-kill": lambda: leader_fault("kill"),
        "leader-freeze": lambda: leader_fault("freeze"),
        "leader-cut-off": lambda: leader_fault("cut-off"),
    }

    def act() -> None:
        try:
            actions[fault]()
        finally:
            if fault != "slow-lossy-link":
                finished.set()

    return act


@pytest.fixture(scope="module")
def chaos_nodes(cluster: str) -> Iterator[None]:
    """One dense node so that the workload's pods always fit (as the benchmarks do)."""
    lc = localcluster()
    lc.create_nodes([lc.node_manifest("bench", "bench-node-chaos")])
    lc.wait_for("every node Ready", lc.nodes_ready, 60, "kwok")
    yield
    lc.kubectl("delete", "node", "bench-node-chaos", "--wait=false", check=False)  # other tests count nodes


@pytest.mark.parametrize("fault", SELECTED)
def test_fault_under_workload(fault: str, cluster, crds, chaos_nodes, api, namespace, wait_for, toxiproxy,
                              tmp_path: Path) -> None:
    rng = random.Random(f"{SEED}-{fault}")
    fleet = Fleet(cluster, namespace, toxiproxy, tmp_path, replicas=2 if fault.startswith("leader-") else 1)
    cfg = OperatorConfig.from_env({"INFERENCE_OPERATOR_GATEWAY_BASE_URL": GATEWAY_URL})
    gateway_api = gateway_api_served(api)
    try:
        fleet.start()
        workload = Workload(api, namespace, SERVICES, rng)
        workload.create_all()
        verdict, _ = converge(api, namespace, cfg, gateway_api, CONVERGE_TIMEOUT)
        assert verdict.converged, f"the workload never converged before any fault: {verdict.problems[:10]}"
        for run in range(RUNS):
            record(one_run(fault, run, rng, fleet, workload, api, namespace, wait_for, cfg, gateway_api))
    finally:
        fleet.stop()
    mine = [r for r in RESULTS if r.fault == fault]
    failed = [r for r in mine if not r.survived]
    assert not failed, "\n".join(f"run {r.run}: {r}" for r in failed)


def one_run(fault: str, run: int, rng: random.Random, fleet: Fleet, workload: Workload, api: client.ApiClient,
            ns: str, wait_for: Callable, cfg: OperatorConfig, gateway_api: bool) -> RunResult:
    since = since_now()
    notes: list[str] = []
    finished = threading.Event()
    operations = max(10, SERVICES // 4)
    fault_at = rng.randrange(operations + 1)
    workload.run(operations, fault_at, fault_action(fault, fleet, api, wait_for, notes, finished))
    finished.wait(120)
    verdict, seconds = converge(api, ns, cfg, gateway_api, CONVERGE_TIMEOUT)
    quiet_since = datetime.now(UTC)
    before = fleet.writes()
    statuses_before = statuses(api, ns)
    # A quiet window anchored to a fact: converge() saw every service and child as desired just before.
    time.sleep(QUIET_SECONDS)  # a window in which a converged operator must write nothing
    after = fleet.writes() - before
    if after:  # which writes, from the API server's record
        notes += [f"written after convergence: {w}" for w in operator_writes(localcluster().AUDIT_LOG, quiet_since)
                  if w.identity in fleet.identities and w.resource != "leases"][:5]
        notes += status_changes(statuses_before, statuses(api, ns))[:5]
    doubles = double_writes(localcluster().AUDIT_LOG, since, fleet.identities, fleet.lease, fleet.since)
    exits = fleet.unexpected_exits()
    tracebacks = fleet.tracebacks() - fleet.tracebacks_seen
    fleet.tracebacks_seen += tracebacks
    notes += verdict.problems[:20] + doubles[:10] + workload.errors[-5:]
    # A run survived when it converged (every service as desired and running, nothing wrong) and nothing else
    # went wrong. One that did not converge is a failure whatever held it back; its notes say what: a
    # Deployment the control plane has not made available by the timeout ("control plane behind") included.
    if seconds is None:
        notes.insert(0, f"NOT CONVERGED within {CONVERGE_TIMEOUT:.0f}s: {len(verdict.problems)} problems, "
                        f"{verdict.behind} of them the control plane behind")
    survived = (seconds is not None and verdict.converged and not doubles and not after and not exits
                and not tracebacks and not any(n.startswith(("SPIN", "EXIT")) for n in notes))
    return RunResult(fault, run, SEED, survived, round(seconds, 2) if seconds is not None else None, verdict.lost,
                     verdict.duplicated, verdict.stale, verdict.status_wrong, len(doubles), after, exits, tracebacks,
                     operations, notes, verdict.behind)
