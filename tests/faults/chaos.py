"""Chaos runs: a seeded random workload of InferenceServices while one fault hits the local cluster, then
the truth is checked service by service against what the builders say it must be.

A run: a batch of random operations (create, update, stop, start, delete, delete-and-recreate) on a pool
of service names, the fault injected after a random operation, then wait until every service has
converged: each live service has exactly its desired children (by the fingerprint of their desired
manifest, owned by its current uid), no child is left of a deleted service, status is true to the spec
at its generation, and once converged the operator writes nothing more. Double writes are the
audit-log violations of tests/faults/audit.py among the run's operator processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from audit import Window, lease_windows, operator_writes, violations
from kubernetes import client

import provenance
from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.builders.children import build_children
from inference_operator.builders.labels import MANAGED_BY_LABEL, MANAGER, MODEL_LABEL, SERVICE_LABEL
from inference_operator.catalog.flavors import load_catalog
from inference_operator.config import OperatorConfig
from inference_operator.reconcile.sync import FINGERPRINT, fingerprint

GROUP, VERSION, PLURAL = "inference.io", "v1alpha1", "inferenceservices"
GATEWAY_URL = "http://gateway.test.local"  # what OperatorProcess gives the operator
FAULTS = ["operator-kill", "apiserver-restart", "etcd-restart", "apiserver-freeze", "slow-lossy-link",
          "leader-kill", "leader-freeze", "leader-cut-off"]
LEASE_SECONDS = 8


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 2)


# ---------------------------------------------------------------- the workload


def model(name: str, weight: int, instances: int) -> dict[str, Any]:
    return {"name": name, "modelName": f"{name}-model", "modelVersion": "1.0.0", "image": f"registry.example/{name}:1",
            "weight": weight, "specification": "modelarts.vm.cpu.2u", "instanceCount": instances}


def random_spec(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.7:
        return {"models": [model("a", 100, rng.choice([1, 1, 2]))]}
    first = rng.choice([10, 30, 50, 70, 90])
    return {"models": [model("a", first, 1), model("b", 100 - first, rng.choice([1, 2]))]}


@dataclass
class Workload:
    """The seeded operations on a pool of names; applies them with a steady pace from a thread."""

    api: client.ApiClient
    namespace: str
    services: int
    rng: random.Random
    done: int = 0
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.crd = client.CustomObjectsApi(self.api)
        self.names = [f"svc-{i:03d}" for i in range(self.services)]

    def existing(self) -> dict[str, dict[str, Any]]:
        items = self.crd.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)["items"]
        return {o["metadata"]["name"]: o for o in items}

    def create_all(self) -> None:
        for name in self.names:
            self._create(name)

    def _create(self, name: str) -> None:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService", "metadata": {"name": name},
                "spec": random_spec(self.rng)}
        self._call(lambda: self.crd.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body))

    def _patch(self, name: str, spec: dict[str, Any]) -> None:
        self._call(lambda: self.crd.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name,
                                                                   {"spec": spec}))

    def _delete(self, name: str) -> None:
        self._call(lambda: self.crd.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name))

    def _call(self, request: Callable[[], Any]) -> None:
        """Retried while the API server is down (a user's kubectl would be retried by the user)."""
        for _ in range(120):
            try:
                request()
                return
            except client.ApiException as exc:
                if exc.status in (404, 409):
                    return  # the random plan met a name being deleted or re-created: skip that step
                if exc.status < 500 and exc.status != 429:
                    self.errors.append(f"{exc.status}: {exc.reason}")
                    return
            except Exception:  # noqa: BLE001 - connection refused while the API server restarts
                pass
            time.sleep(0.5)  # poll interval of a wait for the API (bounded by the minute above)
        self.errors.append("API unreachable for a minute")

    def step(self, present: set[str]) -> None:
        name = self.rng.choice(self.names)
        if name not in present:
            self._create(name)
            present.add(name)
            return
        op = self.rng.choice(["update", "update", "stop", "start", "delete", "recreate"])
        if op == "update":
            self._patch(name, random_spec(self.rng))
        elif op in ("stop", "start"):
            self._patch(name, {"stopped": op == "stop"})
        else:
            self._delete(name)
            present.discard(name)
            if op == "recreate":
                self._create(name)
                present.add(name)

    def run(self, operations: int, fault_at: int, fault: Callable[[], None], pace: float = 0.05) -> None:
        """`operations` steps; `fault` is called (in this thread) before step `fault_at`."""
        present = set(self.existing())
        for i in range(operations):
            if i == fault_at:
                fault()
            self.step(present)
            self.done += 1
            time.sleep(pace)  # the workload's pace (operations per second), not a synchronisation
        if fault_at >= operations:
            fault()


# ---------------------------------------------------------------- the truth


@dataclass
class Verdict:
    lost: int = 0  # desired children missing
    stale: int = 0  # children there but not as desired (fingerprint)
    duplicated: int = 0  # children no live service wants (extra, of an old uid, or of a deleted service)
    status_wrong: int = 0  # a status the children do not bear out
    behind: int = 0  # status not yet "running" because a Deployment is not available by its own status
    problems: list[str] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return self.operator_true and not self.behind

    @property
    def operator_true(self) -> bool:
        """Nothing the operator is answerable for is wrong (the control plane may still be catching up)."""
        return not (self.lost or self.stale or self.duplicated or self.status_wrong)


def deployment_state(obj: Any) -> tuple[bool, str]:
    """(settled by its own status, a summary), for a Deployment as the client returns it. Settled as kstatus
    judges a Deployment Current: the controller has seen this generation and every pod is of the current
    template and available, none left over (old pods of a rollout still terminating, or surplus ones of a
    scale-down, still move the status the operator writes: a verdict before they are gone is early)."""
    spec, status = obj.spec.replicas or 0, obj.status
    ready, available, updated, total = (status.ready_replicas or 0), (status.available_replicas or 0), (
        status.updated_replicas or 0), (status.replicas or 0)
    current = (status.observed_generation or 0) >= (obj.metadata.generation or 0)
    text = (f"{obj.metadata.name}: replicas {spec}, total {total}, updated {updated}, ready {ready}, "
            f"available {available}, observed generation {status.observed_generation}/{obj.metadata.generation}")
    return current and total == updated == spec and available >= spec and ready >= spec, text


def model_counts_wrong(status: dict[str, Any], deployments: dict[str, Any]) -> list[str]:
    """Models whose status counts disagree with their settled Deployment (desired replicas, ready ones):
    what `kubectl get infsvc -o yaml` shows a user beside `kubectl get deploy`."""
    wrong = []
    for entry in status.get("models") or []:
        obj = deployments.get(entry.get("name"))
        if obj is None or not deployment_state(obj)[0]:
            continue  # not settled: the Deployment's own verdict covers it
        spec = obj.spec.replicas or 0
        if entry.get("replicas") != spec or entry.get("readyReplicas") != spec:
            wrong.append(f"model {entry.get('name')}: status replicas {entry.get('replicas')}, ready "
                         f"{entry.get('readyReplicas')}; Deployment {obj.metadata.name} settled at {spec}")
    return wrong


CHILD_LISTS = {
    "Deployment": lambda api, ns, sel: client.AppsV1Api(api).list_namespaced_deployment(ns, label_selector=sel),
    "Service": lambda api, ns, sel: client.CoreV1Api(api).list_namespaced_service(ns, label_selector=sel),
    "HorizontalPodAutoscaler": lambda api, ns, sel: client.AutoscalingV2Api(
        api).list_namespaced_horizontal_pod_autoscaler(ns, label_selector=sel),
    "Job": lambda api, ns, sel: client.BatchV1Api(api).list_namespaced_job(ns, label_selector=sel),
}


def gateway_api_served(api: client.ApiClient) -> bool:
    try:
        resources = client.CustomObjectsApi(api).get_api_resources("gateway.networking.k8s.io", "v1")
    except client.ApiException:
        return False
    return any(r.name == "httproutes" for r in (resources.resources if resources else []))


def children(api: client.ApiClient, ns: str, gateway_api: bool) -> list[tuple[str, Any]]:
    selector = f"{MANAGED_BY_LABEL}={MANAGER}"
    found = [(kind, item) for kind, lister in CHILD_LISTS.items() for item in lister(api, ns, selector).items]
    if gateway_api:
        routes = client.CustomObjectsApi(api).list_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", ns, "httproutes", label_selector=selector)["items"]
        found += [("HTTPRoute", route) for route in routes]
    return found


def _meta(kind: str, obj: Any) -> tuple[str, dict[str, str], dict[str, str], list[str], bool]:
    if isinstance(obj, dict):
        meta = obj["metadata"]
        owners = [o["uid"] for o in meta.get("ownerReferences") or []]
        return meta["name"], meta.get("labels") or {}, meta.get("annotations") or {}, owners, bool(
            meta.get("deletionTimestamp"))
    meta = obj.metadata
    owners = [o.uid for o in meta.owner_references or []]
    return meta.name, meta.labels or {}, meta.annotations or {}, owners, meta.deletion_timestamp is not None


def judge(api: client.ApiClient, ns: str, cfg: OperatorConfig, gateway_api: bool) -> Verdict:
    """Every service against its desired children and its status, every child against a live owner."""
    verdict = Verdict()
    services = {o["metadata"]["name"]: o for o in client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL)["items"]}
    observed: dict[str, dict[tuple[str, str], tuple[str, list[str]]]] = defaultdict(dict)
    deployments: dict[str, list[tuple[bool, str]]] = defaultdict(list)
    by_model: dict[str, dict[str, Any]] = defaultdict(dict)
    for kind, obj in children(api, ns, gateway_api):
        name, labels, annotations, owners, deleting = _meta(kind, obj)
        if kind == "Deployment" and not deleting:
            deployments[labels.get(SERVICE_LABEL, "")].append(deployment_state(obj))
            by_model[labels.get(SERVICE_LABEL, "")][labels.get(MODEL_LABEL, "")] = obj
        if deleting:
            observed[labels.get(SERVICE_LABEL, "")][(kind, name)] = ("<deleting>", owners)
        else:
            observed[labels.get(SERVICE_LABEL, "")][(kind, name)] = (annotations.get(FINGERPRINT, ""), owners)
    catalog = load_catalog()
    for service_name, found in observed.items():
        if service_name not in services:
            verdict.duplicated += len(found)
            verdict.problems.append(f"{service_name}: {len(found)} children left after its delete")
    for name, body in services.items():
        meta, status = body["metadata"], body.get("status") or {}
        if meta.get("deletionTimestamp"):
            continue
        desired = {(m["kind"], m["metadata"]["name"]): fingerprint(m) for m in build_children(
            InferenceService.from_body(body), cfg, catalog, gateway_api=gateway_api)}
        found = observed.get(name, {})
        for key, digest in desired.items():
            if key not in found:
                verdict.lost += 1
                verdict.problems.append(f"{name}: {key[0]} {key[1]} missing")
            elif found[key][0] != digest:
                verdict.stale += 1
                verdict.problems.append(f"{name}: {key[0]} {key[1]} not as desired")
            elif meta["uid"] not in found[key][1]:
                verdict.duplicated += 1
                verdict.problems.append(f"{name}: {key[0]} {key[1]} owned by an older {name}")
        for key in set(found) - set(desired):
            verdict.duplicated += 1
            verdict.problems.append(f"{name}: {key[0]} {key[1]} not wanted")
        want = "stopped" if (body.get("spec") or {}).get("stopped") else "running"
        counts = model_counts_wrong(status, by_model.get(name, {}))
        if counts:
            verdict.status_wrong += 1
            verdict.problems.append(f"{name}: {'; '.join(counts)}")
        if status.get("observedGeneration") != meta.get("generation") or status.get("status") != want:
            states = deployments.get(name, [])
            unavailable = [text for ok, text in states if not ok]
            said = (f"{name}: status {status.get('status')} at generation {status.get('observedGeneration')}, "
                    f"want {want} at {meta.get('generation')}")
            if want == "running" and unavailable and status.get("observedGeneration") == meta.get("generation") \
                    and status.get("status") in ("deploying", "concerning"):
                verdict.behind += 1  # true to its children: the control plane has not made them available
                verdict.problems.append(f"{said}; control plane behind: {'; '.join(unavailable)}")
            else:
                verdict.status_wrong += 1
                verdict.problems.append(f"{said}; {'; '.join(text for _, text in states) or 'no Deployment'}")
    return verdict


def statuses(api: client.ApiClient, ns: str) -> dict[str, dict[str, Any]]:
    """Every service's status by name: what a write after convergence changed is read from two of these."""
    return {o["metadata"]["name"]: o.get("status") or {} for o in client.CustomObjectsApi(
        api).list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]}


def status_changes(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[str]:
    """Which status fields moved, service by service (a write after convergence names what it wrote)."""
    notes = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name, {}), after.get(name, {})
        moved = {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}
        if moved:
            notes.append(f"{name} status changed: " + "; ".join(
                f"{k}: {json.dumps(a, sort_keys=True)[:300]} -> {json.dumps(b, sort_keys=True)[:300]}"
                for k, (a, b) in moved.items()))
    return notes


# ---------------------------------------------------------------- one run


@dataclass
class RunResult:
    fault: str
    run: int
    seed: int
    survived: bool
    converge_seconds: float | None
    lost: int
    duplicated: int
    stale: int
    status_wrong: int
    double_writes: int
    writes_after_convergence: float
    unexpected_exits: int
    tracebacks: int
    operations: int
    notes: list[str] = field(default_factory=list)
    control_plane_behind: int = 0  # services whose Deployments were still unavailable at the timeout


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


RESYNC_AFTER_SECONDS = 20.0
RESYNC_ANNOTATION = "test.inference.io/kubelet-resync"


def resync_pods(api: client.ApiClient, ns: str) -> int:
    """Touch every pod not Ready yet, as a kubelet's periodic status sync would reach it; how many.

    kwok (the local cluster's kubelet) plays a pod's next stage on a watch event and retries a failed
    step only for the errors its shouldRetry() names (connection refused, 429, 503, timeouts). While
    etcd restarts the API server answers 500 "etcdserver: ... Unavailable": the pod-ready step is dropped
    and the pod stays not Ready for ever (kwok #816 for the general case), which no kubelet would do. An
    annotation change is an event that makes kwok play the stage again; nothing the operator watches for
    changes (it reads pod status, not annotations)."""
    core, touched = client.CoreV1Api(api), 0
    for pod in core.list_namespaced_pod(ns).items:
        ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
        if ready or pod.metadata.deletion_timestamp is not None:
            continue
        with contextlib.suppress(client.ApiException):
            core.patch_namespaced_pod(pod.metadata.name, ns, {"metadata": {"annotations": {
                RESYNC_ANNOTATION: datetime.now(UTC).strftime("%H:%M:%S.%f")}}})
            touched += 1
    return touched


def converge(api: client.ApiClient, ns: str, cfg: OperatorConfig, gateway_api: bool, timeout: float,
             ) -> tuple[Verdict, float | None]:
    """Until every service and child is as desired (the verdict, seconds taken), or the timeout (None).
    When only the control plane is behind for RESYNC_AFTER_SECONDS, pods not Ready are resynced once
    per that period (resync_pods): a pod kwok dropped is the fake kubelet's fault, not the operator's."""
    started = behind_since = time.monotonic()
    while True:
        try:
            verdict = judge(api, ns, cfg, gateway_api)
        except Exception as exc:  # noqa: BLE001 - the API server may still be coming back
            verdict = Verdict(status_wrong=1, problems=[f"cannot read: {exc}"])
        if verdict.converged:
            return verdict, time.monotonic() - started
        if time.monotonic() - started > timeout:
            return verdict, None
        if not (verdict.behind and verdict.operator_true):
            behind_since = time.monotonic()
        elif time.monotonic() - behind_since > RESYNC_AFTER_SECONDS:
            with contextlib.suppress(Exception):  # the API may be failing again: the next poll judges
                resync_pods(api, ns)
            behind_since = time.monotonic()
        time.sleep(1)  # poll interval of the wait for convergence (bounded by timeout)


def summary(results: list[RunResult]) -> list[dict[str, Any]]:
    rows = []
    for fault in dict.fromkeys(r.fault for r in results):
        mine = [r for r in results if r.fault == fault]
        times = [r.converge_seconds for r in mine if r.converge_seconds is not None]
        # A handful of runs has no p99: the median and the slowest run, and how many never converged.
        rows.append({"fault": fault, "runs": len(mine), "survived": sum(r.survived for r in mine),
                     "not_converged": sum(r.converge_seconds is None for r in mine),
                     "lost": sum(r.lost for r in mine), "duplicated": sum(r.duplicated for r in mine),
                     "double_writes": sum(r.double_writes for r in mine),
                     "converge_p50_s": percentile(times, 0.5), "converge_max_s": max(times) if times else None,
                     "writes_after_convergence": sum(r.writes_after_convergence for r in mine),
                     "control_plane_behind": sum(r.control_plane_behind for r in mine)})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| fault | runs | survived | not converged | lost children | duplicated children | double writes "
            "| converge p50 / max | control plane behind at timeout |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['fault']} | {r['runs']} | {r['survived']} | {r['not_converged']} | {r['lost']} | "
                     f"{r['duplicated']} | {r['double_writes']} | {r['converge_p50_s']} / {r['converge_max_s']} s | "
                     f"{r.get('control_plane_behind', 0)} |")
    return "\n".join(lines)


def write_report(results: list[RunResult], settings: dict[str, Any], directory: Path, started: dict[str, Any],
                 stamp: str | None = None) -> Path:
    """The report of the runs so far (rewritten after each run under one stamp: a run stopped half way
    still leaves what it measured); `started`: the provenance taken when the session began (hack/provenance.py),
    its load average after taken now."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = stamp or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"chaos-{stamp}.json"
    path.write_text(json.dumps({"when": stamp, "provenance": provenance.finish(started), "settings": settings,
                                "summary": summary(results), "runs": [asdict(r) for r in results]}, indent=2) + "\n")
    return path


def double_writes(audit_log: Path, since: datetime, identities: set[str], lease: str | None,
                  lease_since: datetime) -> list[str]:
    """Audit violations among the run's operator processes in writes received since `since`: without a
    Lease (one process at a time, restarted) only overlapping processes count; with one, also any write
    outside the writer's Lease windows (rebuilt from `lease_since`, when the replicas started)."""
    every = [w for w in operator_writes(audit_log, lease_since) if w.identity in identities]
    until = datetime.now(UTC)  # the record read so far ends before this
    writes = [w for w in every if w.received >= since]
    if lease is None:
        spans = [Window(identity, min(w.received for w in writes if w.identity == identity),
                        max(w.completed for w in writes if w.identity == identity))
                 for identity in {w.identity for w in writes}]
        return violations(writes, spans, "")
    windows = lease_windows(every, lease, LEASE_SECONDS, until)
    return violations(writes, windows, lease)


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def since_now() -> datetime:
    return datetime.now(UTC) - timedelta(seconds=1)
