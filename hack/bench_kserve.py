"""`make bench` phase `compare`: our operator and KServe's controller manager side by side.

The same client creates the same services (one predictor, same image, resources, one replica) for each
controller in a namespace of its own, one controller running at a time on the same local cluster:
time until every Deployment exists and until every service is ready, writes per service (the API
server's audit log, by user agent), the controller's peak RSS, and create -> Deployment at a steady rate.

KServe runs as built by hack/build-kserve.sh (`kserve-manager` from the module at KSERVE_VERSION), with
its CRDs and its `inferenceservice-config` ConfigMap from the same module's config/ directory, set for
raw Deployments ("Standard") without Knative, Istio or ingress creation (bench_compare.kserve_config_map).
No admission webhook is registered with the API server: the manager's webhook server listens on a free
port with the local cluster's serving certificate and is never called. README "Benchmarks" says how.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

import bench_compare as bc
import localcluster
from benchproc import ChildProcess, audit_lines_since, audit_mark

REPO = Path(__file__).resolve().parent.parent
KSERVE_NAMESPACE = "kserve"
# KServe's manager as users run it, beside every figure of it: cmd/manager/main.go (v0.16.0) builds its config
# with controller-runtime's config.GetConfig(), which sets 20 requests/s and burst 30 when the kubeconfig gives
# none (a kubeconfig cannot: clientcmd reads no QPS), and its clientset from the same config; the manager has
# no flag or environment variable for them, nor for the InferenceService controller's workers (one, the
# controller-runtime default). Raising them would mean patching KServe's code, which this benchmark does not.
AS_SHIPPED = "KServe v0.16.0 as shipped: 1 InferenceService worker, client limits 20 requests/s, burst 30"
KSERVE_CRDS = ("inferenceservices", "trainedmodels", "clusterservingruntimes", "servingruntimes",
               "inferencegraphs", "clusterstoragecontainers", "localmodelcaches", "localmodelnodegroups",
               "localmodelnodes")  # config/crd/full, the manager's controllers watch several of them


def kserve_version() -> str:
    return localcluster.versions()["KSERVE_VERSION"]


def kserve_dir() -> Path:
    cache = Path(os.environ.get("INFERENCE_OPERATOR_CACHE", Path.home() / ".cache" / "inference-operator"))
    return cache / "bin" / f"kserve-{kserve_version()}"


def build_kserve() -> Path:
    """The cached build (hack/build-kserve.sh builds it once, nice'd)."""
    out = kserve_dir()
    if not (out / "kserve-manager").exists() or not (out / "config").is_dir():
        subprocess.run(["bash", str(REPO / "hack" / "build-kserve.sh")], check=True)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def install_kserve(home: Path) -> dict[str, Any]:
    """KServe's CRDs and its ConfigMap (in namespace `kserve`) from the module; returns what was set."""
    crds = home / "config" / "crd" / "full"
    for plural in KSERVE_CRDS:
        localcluster.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                             str(crds / f"serving.kserve.io_{plural}.yaml"))
    localcluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                         *(f"crd/{p}.serving.kserve.io" for p in KSERVE_CRDS))
    localcluster.kubectl("create", "namespace", KSERVE_NAMESPACE, check=False)
    module_cm = yaml.safe_load((home / "config" / "configmap" / "inferenceservice.yaml").read_text())
    cm = bc.kserve_config_map(module_cm, KSERVE_NAMESPACE)
    localcluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump(cm))
    return {"deploy": cm["data"]["deploy"], "ingress": cm["data"]["ingress"]}


class KServe(ChildProcess):
    """KServe's controller manager as a subprocess: admin kubeconfig, free ports, no leader election."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.proc: subprocess.Popen | None = None
        self.args: list[str] = []
        self.probe_port = 0
        self.metrics_port = 0

    def start(self) -> None:
        # controller-runtime's webhook server reads its pair from $TMPDIR/k8s-webhook-server/serving-certs.
        tmp = localcluster.STATE / "kserve-tmp"
        certs = tmp / "k8s-webhook-server" / "serving-certs"
        certs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(localcluster.PKI / "apiserver.crt", certs / "tls.crt")
        shutil.copyfile(localcluster.PKI / "apiserver.key", certs / "tls.key")
        self.probe_port, self.metrics_port = free_port(), free_port()
        self.args = [f"--metrics-addr=127.0.0.1:{self.metrics_port}", f"--webhook-port={free_port()}",
                     f"--health-probe-addr=127.0.0.1:{self.probe_port}", "--leader-elect=false"]
        env = {**os.environ, "KUBECONFIG": str(localcluster.KUBECONFIG), "POD_NAMESPACE": KSERVE_NAMESPACE,
               "TMPDIR": str(tmp)}
        log = open(localcluster.LOGS / "kserve-bench.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([str(self.home / "kserve-manager"), *self.args], env=env, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        for _ in range(600):
            if self.proc and self.proc.poll() is not None:
                break
            try:
                async with session.get(f"http://127.0.0.1:{self.probe_port}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise SystemExit("KServe's manager did not start; see .cluster/logs/kserve-bench.log")


    async def metrics(self, session: aiohttp.ClientSession) -> dict[str, float]:
        async with session.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as resp:
            return bc.parse_metrics(await resp.text())


@dataclass
class Side:
    """One controller and how its services look: the benchmark is the same for both."""

    name: str
    controller: Any  # start(), kill(), peak_rss_mb(), async wait_ready(session)
    agent: str  # user-agent prefix of its writes in the audit log
    group: str
    version: str
    plural: str
    manifest: Callable[[str], dict]
    owner_label: str  # the Deployment's label naming its service
    ready: Callable[[dict], bool]
    pass_ms: Callable[[dict[str, float]], float | None]  # mean reconcile duration from its metrics


async def apiserver_metrics(bench) -> str:
    response = await bench.api.call_api("/metrics", "GET", auth_settings=["BearerToken"],
                                        _preload_content=False, _return_http_data_only=True)
    return (await response.read()).decode()


async def create(bench, side: Side, ns: str, name: str) -> None:
    await bench.crd.create_namespaced_custom_object(side.group, side.version, ns, side.plural, side.manifest(name))


async def burst(bench, side: Side, ns: str, n: int, timeout: float) -> dict[str, float]:
    deployments: set[str] = set()
    ready: set[str] = set()
    times: dict[str, float] = {}
    t0 = time.monotonic()

    def on_deployment(obj) -> bool:
        deployments.add(obj.metadata.name)
        if len(deployments) >= n:
            times.setdefault("deployments_s", time.monotonic() - t0)
        return len(deployments) >= n

    def on_service(obj) -> bool:
        if side.ready(obj):
            ready.add(obj["metadata"]["name"])
        if len(ready) >= n:
            times.setdefault("ready_s", time.monotonic() - t0)
        return len(ready) >= n

    watchers = [asyncio.create_task(bench.watch_until(bench.apps.list_namespaced_deployment, (ns,),
                                                      on_deployment, timeout)),
                asyncio.create_task(bench.watch_until(bench.crd.list_namespaced_custom_object,
                                                      (side.group, side.version, ns, side.plural), on_service,
                                                      timeout))]
    await asyncio.sleep(0.5)
    t0 = time.monotonic()
    await bench.gather_bounded([lambda i=i: create(bench, side, ns, f"s{i:05d}") for i in range(n)])
    times["create_calls_s"] = time.monotonic() - t0
    try:
        await asyncio.gather(*watchers)
    except TimeoutError:
        times["timed_out_s"] = timeout
        times["deployments_seen"], times["ready_seen"] = len(deployments), len(ready)
    return {k: round(v, 3) for k, v in times.items()}


async def latency(bench, side: Side, ns: str, rate: float, seconds: float) -> dict[str, Any]:
    """Services created at a steady rate: create returned -> its Deployment observed (client watch)."""
    total = int(rate * seconds)
    created: dict[str, float] = {}
    seen: dict[str, float] = {}

    def on_deployment(obj) -> bool:
        owner = (obj.metadata.labels or {}).get(side.owner_label)
        if owner and owner.startswith("l"):
            seen.setdefault(owner, time.monotonic())
        return len(seen) >= total

    watcher = asyncio.create_task(bench.watch_until(bench.apps.list_namespaced_deployment, (ns,), on_deployment,
                                                    seconds + 600))
    await asyncio.sleep(0.5)
    start = time.monotonic()
    for i in range(total):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        name = f"l{i:05d}"
        await create(bench, side, ns, name)
        created[name] = time.monotonic()
    out: dict[str, Any] = {"services": total, "rate_per_s": rate}
    try:
        await watcher
    except TimeoutError:
        out["timed_out"] = True
    ms = [1000 * (seen[k] - created[k]) for k in created if k in seen]
    out["create_to_deployment_ms"] = {str(q): round(bc.percentile(ms, q), 1) for q in (50, 90, 99)}
    return out


async def measure(bench, side: Side, session: aiohttp.ClientSession, n: int, rate: float,
                  seconds: float) -> dict[str, Any]:
    """One controller alone: burst of n, writes, peak RSS, then the steady rate; its namespace removed
    while it still runs (KServe's finalizer on its services needs the controller)."""
    ns = f"bench-vs-{side.name}"
    side.controller.start()
    try:
        await side.controller.wait_ready(session)
        await bench.delete_namespace(ns)
        await bench.namespace(ns)
        mark = audit_mark()
        before = bc.request_totals(await apiserver_metrics(bench))
        print(f"compare/{side.name}: burst of {n} services ...", flush=True)
        result: dict[str, Any] = {"burst": await burst(bench, side, ns, n, timeout=600 + 1.0 * n)}
        await asyncio.sleep(3)  # as hack/bench.py: the last transitions' writes land
        writes = bc.audit_writes(audit_lines_since(mark), side.agent)
        result["writes"] = {"per_service": round(writes["total"] / n, 2),
                            "per_service_by_resource": {k: round(v / n, 2) for k, v in writes["by_resource"].items()},
                            "refused": writes["refused"], "dry_run_not_counted": writes["dry_run"],
                            "agent": side.agent,
                            "apiserver_request_total_by_resource": bc.counter_delta(
                                bc.request_totals(await apiserver_metrics(bench)), before)}
        result["memory"] = {"peak_rss_mb_after_burst": round(side.controller.peak_rss_mb(), 1)}
        result["burst"]["pass_ms_mean"] = side.pass_ms(await side.controller.metrics(session))
        print(f"compare/{side.name}: {rate}/s for {seconds}s ...", flush=True)
        result["latency"] = await latency(bench, side, ns, rate, seconds)
        result["memory"]["peak_rss_mb"] = round(side.controller.peak_rss_mb(), 1)
        await bench.delete_namespace(ns)
        return result
    finally:
        side.controller.kill()


def kserve_side(kserve: KServe) -> Side:
    return Side("kserve", kserve, "kserve-manager/", bc.KSERVE_GROUP, bc.KSERVE_VERSION, bc.KSERVE_PLURAL,
                bc.kserve_service, bc.KSERVE_LABEL, bc.kserve_ready,
                lambda m: bc.mean_pass_ms(m, "controller_runtime_reconcile_time_seconds",
                                          controller="inferenceservice"))


async def growth_point(bench, side: Side, session: aiohttp.ClientSession, n: int,
                       measured: Callable[[dict[str, Any]], None] = lambda _: None) -> dict[str, Any]:
    """A fresh controller, a burst of n running services: how long until all are ready, its peak RSS (and its
    RSS once all are), and the mean duration of one of its reconcile passes (as its own metrics report it).
    `measured` gets the point before the namespace is deleted (KServe takes long over 10,000 finalizers)."""
    ns = f"bench-grow-{side.name}"
    side.controller.start()
    try:
        await side.controller.wait_ready(session)
        await bench.delete_namespace(ns)
        await bench.namespace(ns)
        print(f"growth/{side.name}: burst of {n} services ...", flush=True)
        point: dict[str, Any] = dict(await burst(bench, side, ns, n, timeout=600 + 1.0 * n))
        point["pass_ms_mean"] = side.pass_ms(await side.controller.metrics(session))
        point["peak_rss_mb"] = round(side.controller.peak_rss_mb(), 1)
        # What stays once every service is ready, beside the burst's peak: held per service, or passing.
        point["rss_mb_when_ready"] = round(side.controller.peak_rss_mb("VmRSS"), 1)
        print(f"growth/{side.name} {n}: {point}", flush=True)
        measured(point)
        await bench.delete_namespace(ns)
        return point
    finally:
        side.controller.kill()


async def phase_growth(bench, session: aiohttp.ClientSession, ours: Side, scales: list[int],
                       results: dict[str, Any], sides: tuple[str, ...] = ("ours", "kserve"),
                       checkpoint: Callable[[dict[str, Any]], None] = lambda _: None) -> None:
    """RSS and pass time of the controllers named in `sides` as running services grow (each scale a fresh
    process). `checkpoint` gets the results so far after each point is measured: a run ended during a long
    deletion keeps what it measured."""
    home = build_kserve()
    install_kserve(home)
    growth: dict[str, Any] = {name: {} for name in sides}
    results["growth"] = growth
    for n in scales:
        for side in (ours, kserve_side(KServe(home))):
            if side.name in sides:
                def keep(point: dict[str, Any], name: str = side.name, scale: str = str(n)) -> None:
                    growth[name][scale] = point
                    checkpoint(results)

                await growth_point(bench, side, session, n, keep)


async def phase_compare(bench, session: aiohttp.ClientSession, ours: Side, n: int, rate: float, seconds: float,
                        results: dict[str, Any]) -> None:
    home = build_kserve()
    config = install_kserve(home)
    kserve = KServe(home)
    sides = [ours, kserve_side(kserve)]
    compare: dict[str, Any] = {"services": n, "rate_per_s": rate, "seconds": seconds, "kserve_as_shipped": AS_SHIPPED}
    for side in sides:
        compare[side.name] = await measure(bench, side, session, n, rate, seconds)
    compare["kserve_run"] = {"version": kserve_version(), "binary": str(home / "kserve-manager"),
                             "flags": kserve.args, "env": {"POD_NAMESPACE": KSERVE_NAMESPACE},
                             "configmap": config, "crds": [f"{p}.serving.kserve.io" for p in KSERVE_CRDS],
                             "service": bc.kserve_service("<name>"), "as_shipped": AS_SHIPPED}
    results["compare"] = compare
    print(bc.side_by_side(compare), flush=True)
