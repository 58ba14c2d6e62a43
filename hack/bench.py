#!/usr/bin/env python3
"""`make bench`: how fast, how lean and how far the operator scales on the local cluster.

Phases (each prints its numbers; results go to bench/results/<stamp>.json, latest.json and a PNG):
  burst    N services created at once (fixed client concurrency): time until every Deployment exists
           and until every service is running; then the ceiling (bench_ceiling.py): the operator's children
           written directly, every Deployment first. ratio_deployments and ratio_running = ceiling / operator
           (targets in TARGETS). Repeated --runs times (an odd number, default 3) with restart
           and latency: each figure is the median, every run's figures are kept beside it (their spread).
  latency  services created at a steady rate: create-returned -> Deployment observed, and pods
           ready -> status running (client-side watches, monotonic clock): p50 / p90 / p99. Then the
           same figures for a reflex client as the controller (latency_ceiling: the floor at that rate).
  writes   kube-apiserver's own apiserver_request_total: writes per service created, and writes per
           minute while nothing changes.
  restart  kill the operator with N services running, start it again: time until it has looked at
           every service, writes meanwhile.
  memory   operator peak RSS with N services, and with --large stopped services.
  compare  our operator and KServe's controller manager (raw Deployments), one at a time, the same
           services through the same client: burst times, writes per service (audit log), peak RSS,
           create -> Deployment at a steady rate, printed side by side (hack/bench_kserve.py).
  growth   both controllers again, a fresh process per scale (--growth, 100,1000,2000 running services
           with their pods): peak RSS and mean reconcile pass time as services grow (a line plot).
Nothing here passes or fails: targets are printed beside the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config, watch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))
import bench_ceiling  # noqa: E402
import bench_kserve  # noqa: E402
import bench_latency  # noqa: E402
import localcluster  # noqa: E402
import provenance  # noqa: E402
from bench_compare import mean_pass_ms, median_of_runs, merge_results, parse_metrics, side_by_side  # noqa: E402
from benchproc import ChildProcess  # noqa: E402
from inference_operator.config import OperatorConfig  # noqa: E402

GROUP, VERSION, PLURAL = "inference.io", "v1alpha1", "inferenceservices"
HTTPROUTES = ("gateway.networking.k8s.io", "v1")
# The operator runs from a venv with only its runtime dependencies (`pip install .`), as in its image:
# the test tools of the dev venv (kubernetes clients) would be loaded by kopf and inflate its memory.
# The operator's setting, read from the same variable: with headless model Services the ceiling client's are too.
HEADLESS = OperatorConfig.from_env(os.environ).headless_model_services
OPERATOR_PYTHON = os.environ.get("OPERATOR_PYTHON", str(REPO / ".venv-operator" / "bin" / "python"))
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY", "CREATE", "UPDATE"}
OUR_RESOURCES = {"inferenceservices", "deployments", "services", "horizontalpodautoscalers", "events",
                 "httproutes"}
DEFAULT_PHASES = "burst,large,others,profile,compare,growth"
IN_PROGRESS = REPO / "bench" / "results" / "in-progress.json"  # a long run's results so far (keep_in_progress)
# ratio_deployments: the ceiling's every Deployment written / the operator's every Deployment seen; ratio_running:
# the ceiling's every child written / the operator's every service running (bench/README.md, the same targets).
TARGETS = {"ratio_deployments": ">= 0.9", "ratio_running": ">= 0.8", "p99_create_to_deployment_ms": "<= 250",
           "idle_writes_per_minute": "0",
           "restart_writes": "0", "rss_mb_at_1000": "<= 150"}


def service(name: str, stopped: bool = False) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService", "metadata": {"name": name},
            "spec": {"stopped": stopped, "models": [{
                "name": "m", "modelName": "bench", "modelVersion": "1", "image": "registry.example/bench:1",
                "weight": 100, "specification": "custom", "customSpec": {"cpu": 0.1, "memory": 256},
                "instanceCount": 1}]}}


def raw_deployment(app: str) -> dict:
    """The ceiling clients' Deployment: one pod of the services' image and requests, labelled app=<app>."""
    labels = {"app": app}
    return {"metadata": {"name": f"{app}-m", "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "model", "image": "registry.example/bench:1",
                                         "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}}}]}}}}


def raw_service(app: str) -> dict:
    spec = {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]}
    return {"metadata": {"name": f"{app}-m"}, "spec": spec | ({"clusterIP": "None"} if HEADLESS else {})}


def raw_route(app: str) -> dict:
    match = {"path": {"type": "PathPrefix", "value": f"/v1/infers/{app}"}}
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": app},
            "spec": {"rules": [{"backendRefs": [{"kind": "Service", "name": f"{app}-m", "port": 80}],
                                "matches": [match]}]}}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (/proc/<pid>/stat, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class Operator(ChildProcess):
    """The operator as a subprocess, with its metrics and its RSS."""

    def __init__(self, metrics_port: int = 19191, env: dict[str, str] | None = None) -> None:
        self.port = metrics_port
        self.proc: subprocess.Popen | None = None
        self.env = env or {}

    def start(self) -> None:
        log = open(localcluster.LOGS / "operator-bench.log", "ab")  # noqa: SIM115
        env = {**os.environ, "KUBECONFIG": str(localcluster.KUBECONFIG), **self.env}
        self.proc = subprocess.Popen([OPERATOR_PYTHON, "-m", "inference_operator", "--metrics-port", str(self.port),
                                      "--liveness", "", "--namespace", "bench-*"], env=env, stdout=log,
                                     stderr=subprocess.STDOUT)

    async def metrics(self, session: aiohttp.ClientSession) -> dict[str, float]:
        async with session.get(f"http://127.0.0.1:{self.port}/metrics") as resp:
            return parse_metrics(await resp.text())

    async def wait_quiet(self, cpu_share: float = 0.05, seconds: float = 3.0, timeout: float = 600.0) -> float:
        """Wait until the operator's CPU use stays under `cpu_share` of a core for `seconds` (it has worked
        through what came before); returns how long that took. A bound on failure, not a synchronisation."""
        assert self.proc is not None
        started = time.monotonic()
        quiet_since = None
        before = cpu_seconds(self.proc.pid)
        while time.monotonic() - started < timeout:
            await asyncio.sleep(0.5)
            now = cpu_seconds(self.proc.pid)
            busy, before = now - before, now
            quiet_since = (quiet_since or time.monotonic()) if busy < cpu_share * 0.5 else None
            if quiet_since is not None and time.monotonic() - quiet_since >= seconds:
                break
        return time.monotonic() - started

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        for _ in range(300):
            try:
                await self.metrics(session)
                return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        raise SystemExit("operator did not start; see .cluster/logs/operator-bench.log")


class Bench:
    def __init__(self, api: client.ApiClient, session: aiohttp.ClientSession, concurrency: int) -> None:
        self.api, self.session, self.concurrency = api, session, concurrency
        self.crd = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.last_moments: dict[str, dict[str, float]] = {}  # the last latency phase's moments, per service

    async def apiserver_writes(self) -> dict[str, float]:
        """Writes by resource from kube-apiserver's own /metrics."""
        response = await self.api.call_api("/metrics", "GET", auth_settings=["BearerToken"],
                                           _preload_content=False, _return_http_data_only=True)
        text = (await response.read()).decode()
        writes: dict[str, float] = {}
        for line in text.splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:line.rindex("}")].split(","))
            verb, resource = labels.get("verb", "").strip('"'), labels.get("resource", "").strip('"')
            if verb in WRITE_VERBS and resource in OUR_RESOURCES:
                writes[resource] = writes.get(resource, 0) + float(line.rsplit(" ", 1)[1])
        return writes

    async def namespace(self, name: str) -> None:
        try:
            await self.core.create_namespace({"metadata": {"name": name}})
        except client.ApiException as exc:
            if exc.status != 409:
                raise
        for _ in range(100):
            try:
                await self.core.read_namespaced_service_account("default", name)
                return
            except client.ApiException:
                await asyncio.sleep(0.1)

    async def delete_namespace(self, name: str) -> None:
        try:
            await self.core.delete_namespace(name)
        except client.ApiException:
            return
        while True:
            try:
                await self.core.read_namespace(name)
                await asyncio.sleep(0.5)
            except client.ApiException:
                return

    async def gather_bounded(self, coros: list) -> None:
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(coro):
            async with semaphore:
                for attempt in range(5):
                    try:
                        return await coro()
                    except client.ApiException as exc:
                        if exc.status not in (429, 500, 503) or attempt == 4:
                            raise
                        await asyncio.sleep(0.2 * (attempt + 1))
        await asyncio.gather(*(one(c) for c in coros))

    async def watch_until(self, list_fn, args: tuple, done, timeout: float) -> None:
        """Watch a collection until done(event_object) says everything arrived."""
        deadline = time.monotonic() + timeout
        async with watch.Watch() as w:  # its own client session, closed here (else: "Unclosed client session")
            while time.monotonic() < deadline:
                try:
                    async for event in w.stream(list_fn, *args,
                                                timeout_seconds=int(max(1, deadline - time.monotonic()))):
                        if done(event["object"]):
                            w.stop()
                            return
                except (client.ApiException, aiohttp.ClientError):
                    await asyncio.sleep(0.2)
        raise TimeoutError(f"watch did not finish in {timeout}s")

    async def burst(self, ns: str, n: int) -> dict[str, float]:
        seen_deployments: set[str] = set()
        running: set[str] = set()
        t0 = time.monotonic()
        times: dict[str, float] = {}

        def deployment_event(obj) -> bool:
            seen_deployments.add(obj.metadata.name)
            if len(seen_deployments) >= n and "deployments" not in times:
                times["deployments"] = time.monotonic() - t0
            return len(seen_deployments) >= n

        def service_event(obj) -> bool:
            if (obj.get("status") or {}).get("status") == "running":
                running.add(obj["metadata"]["name"])
            if len(running) >= n and "running" not in times:
                times["running"] = time.monotonic() - t0
            return len(running) >= n

        watchers = [
            asyncio.create_task(self.watch_until(self.apps.list_namespaced_deployment, (ns,), deployment_event, 900)),
            asyncio.create_task(self.watch_until(self.crd.list_namespaced_custom_object,
                                                 (GROUP, VERSION, ns, PLURAL), service_event, 900)),
        ]
        await asyncio.sleep(0.5)
        t0 = time.monotonic()
        await self.gather_bounded([lambda i=i: self.crd.create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, service(f"s{i:05d}")) for i in range(n)])
        times["create_calls"] = time.monotonic() - t0
        await asyncio.gather(*watchers)
        return times

    async def ceiling(self, ns: str, n: int) -> dict[str, float]:
        """The same services' children written by the ceiling client (bench_ceiling.py): Deployments first."""
        routes = await self.gateway_api_served()
        bodies = [service(f"c{i:05d}") for i in range(n)]
        return await bench_ceiling.ceiling(str(localcluster.KUBECONFIG), ns, bodies, routes)

    async def raw_children(self, ns: str, app: str, routes: bool) -> None:
        """One service's children as the ceiling clients write them: Deployment, Service and, when Gateway API is
        served (the operator then writes one per service too), an HTTPRoute; one after the other."""
        await created(lambda: self.apps.create_namespaced_deployment(ns, raw_deployment(app)))
        await created(lambda: self.core.create_namespaced_service(ns, raw_service(app)))
        if routes:
            await created(lambda: self.crd.create_namespaced_custom_object(*HTTPROUTES, ns, "httproutes",
                                                                          raw_route(app)))

    async def gateway_api_served(self) -> bool:
        try:
            await client.ApiextensionsV1Api(self.api).read_custom_resource_definition(f"httproutes.{HTTPROUTES[0]}")
            return True
        except client.ApiException:
            return False

    async def latency(self, ns: str, rate: float, seconds: float) -> dict[str, Any]:
        created: dict[str, float] = {}
        deployment_seen: dict[str, float] = {}
        pods_ready: dict[str, float] = {}
        running: dict[str, float] = {}
        total = int(rate * seconds)

        def on_deployment(obj) -> bool:
            owner = obj.metadata.labels.get("inference.io/service")
            now = time.monotonic()
            deployment_seen.setdefault(owner, now)
            if (obj.status.ready_replicas or 0) >= 1:
                pods_ready.setdefault(owner, now)
            return len(pods_ready) >= total

        def on_service(obj) -> bool:
            if (obj.get("status") or {}).get("status") == "running":
                running.setdefault(obj["metadata"]["name"], time.monotonic())
            return len(running) >= total

        watchers = [asyncio.create_task(self.watch_until(self.apps.list_namespaced_deployment, (ns,), on_deployment,
                                                         seconds + 300)),
                    asyncio.create_task(self.watch_until(self.crd.list_namespaced_custom_object,
                                                         (GROUP, VERSION, ns, PLURAL), on_service, seconds + 300))]
        await asyncio.sleep(0.5)

        async def create(name: str) -> None:
            await self.crd.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, service(name))
            created[name] = time.monotonic()

        sent = await paced([f"l{i:05d}" for i in range(total)], rate, create)
        await asyncio.gather(*watchers)
        self.last_moments = {"created": created, "deployment_seen": deployment_seen, "pods_ready": pods_ready,
                             "running": running}
        return latency_figures(rate, sent, created, deployment_seen, pods_ready, running)

    async def latency_ceiling(self, ns: str, rate: float, seconds: float) -> dict[str, Any]:
        """The latency phase's two figures for the least a controller can do, on the same cluster at the same
        rate: this client, as a reflex, watches ConfigMaps that stand for services (an InferenceService would
        wake the operator), writes each one's children as the burst ceiling does (Deployment with one pod,
        Service, HTTPRoute when served) when its ADDED event arrives, and marks it `running` once the
        Deployment's watch shows its pod ready and its Service exists (as our status: the gateway routes
        through the Service's endpoints). The hops a controller makes (a watch event in, writes out) and
        nothing else: what the API server, the controllers and the watches cost at this load, the floor
        under our figures."""
        created: dict[str, float] = {}
        deployment_seen: dict[str, float] = {}
        pods_ready: dict[str, float] = {}
        running: dict[str, float] = {}
        reflexes: set[asyncio.Task] = set()
        total = int(rate * seconds)
        routes = await self.gateway_api_served()
        written: set[str] = set()  # services whose children are all written
        marked: set[str] = set()  # services marked running (once)

        def reflex(coro) -> None:
            task = asyncio.get_running_loop().create_task(coro)
            reflexes.add(task)
            task.add_done_callback(reflexes.discard)

        def mark_when_due(name: str) -> None:
            if name in written and name in pods_ready and name not in marked:
                marked.add(name)
                reflex(self.core.patch_namespaced_config_map(name, ns, {"data": {"status": "running"}}))

        async def children(name: str) -> None:
            await self.raw_children(ns, name, routes)
            written.add(name)
            mark_when_due(name)

        names = [f"r{i:05d}" for i in range(total)]
        services, reacted = set(names), set()

        def on_configmap(obj) -> bool:
            name = obj.metadata.name
            if name not in services:
                return False  # the namespace's kube-root-ca.crt
            if (obj.data or {}).get("status") == "running":
                running.setdefault(name, time.monotonic())
            elif name not in reacted:
                reacted.add(name)
                reflex(children(name))
            return len(running) >= total

        def on_deployment(obj) -> bool:
            name = obj.metadata.labels.get("app")
            now = time.monotonic()
            deployment_seen.setdefault(name, now)
            if (obj.status.ready_replicas or 0) >= 1 and name not in pods_ready:
                pods_ready[name] = now
                mark_when_due(name)
            return len(pods_ready) >= total

        watchers = [asyncio.create_task(self.watch_until(self.apps.list_namespaced_deployment, (ns,), on_deployment,
                                                         seconds + 300)),
                    asyncio.create_task(self.watch_until(self.core.list_namespaced_config_map, (ns,), on_configmap,
                                                         seconds + 300))]
        await asyncio.sleep(0.5)

        async def create(name: str) -> None:
            await self.core.create_namespaced_config_map(ns, {"metadata": {"name": name}, "data": {}})
            created[name] = time.monotonic()

        sent = await paced(names, rate, create)
        await asyncio.gather(*watchers)
        await asyncio.gather(*reflexes)
        self.last_moments = {"created": created, "deployment_seen": deployment_seen, "pods_ready": pods_ready,
                             "running": running}
        return latency_figures(rate, sent, created, deployment_seen, pods_ready, running)


async def created(create) -> None:
    """A create, again on the API server's transient refusals (a 504 while a namespace is deleted on a loaded
    machine); one that landed before its answer was lost (409) is done. As a controller would retry."""
    for attempt in range(5):
        try:
            await create()
            return
        except client.ApiException as exc:
            if exc.status == 409:
                return
            if exc.status not in (429, 500, 503, 504) or attempt == 4:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))


async def paced(names: list[str], rate: float, create) -> float:
    """create(name) for each name on its schedule at `rate`, not after the previous one returned: at 50/s a create
    takes longer than 20 ms in a busy API server, and one at a time the rate was the API server's, not --rate.
    Returns the seconds the sending took."""
    start = time.monotonic()
    sends = []
    for i, name in enumerate(names):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        sends.append(asyncio.create_task(create(name)))
    sent = time.monotonic() - start
    await asyncio.gather(*sends)
    return sent


def latency_figures(rate: float, sent: float, created: dict[str, float], deployment_seen: dict[str, float],
                    pods_ready: dict[str, float], running: dict[str, float]) -> dict[str, Any]:
    """A latency phase's figures from each service's moments (monotonic clock): p50 / p90 / p99."""
    total = len(created)
    to_deployment = [1000 * (deployment_seen[k] - created[k]) for k in created if k in deployment_seen]
    to_running = [1000 * (running[k] - pods_ready[k]) for k in created if k in running and k in pods_ready]
    return {"services": total, "rate_per_s": rate,
            "sent_per_s": round((total - 1) / sent, 1) if total > 1 and sent > 0 else None,
            "create_to_deployment_ms": {q: round(pct(to_deployment, q), 1) for q in (50, 90, 99)},
            "pods_ready_to_running_ms": {q: round(pct(to_running, q), 1) for q in (50, 90, 99)}}


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    keys = set(after) | set(before)
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys if after.get(k, 0) != before.get(k, 0)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    await config.load_kube_config(str(localcluster.KUBECONFIG))
    results: dict[str, Any] = {"provenance": provenance.begin(settings=vars(args), cluster=provenance.cluster_settings(
                                   {"headless_model_services": HEADLESS, "kwok_nodes_of_900_pods": args.nodes})),
                               "targets": TARGETS, "headless_model_services": HEADLESS}
    operator = Operator(int(os.environ.get("BENCH_METRICS_PORT", "19191")))  # several clusters share a machine
    async with client.ApiClient() as api, aiohttp.ClientSession() as session:
        bench = Bench(api, session, args.concurrency)
        for ns in ("bench-doomed", *(f"bench-lat-{case.replace('_', '-')}" for case in bench_latency.CASES),
                   "bench-burst", "bench-ceiling", "bench-churn", "bench-latency", "bench-latency-ceiling",
                   "bench-large", "bench-profile", "bench-others"):
            await bench.delete_namespace(ns)
        if "latency" in args.phases.split(","):
            await phase_latency(args, bench, session, results)
        if "burst" in args.phases or (args.large and "large" in args.phases) or \
                (args.others and "others" in args.phases):
            operator.start()
            await operator.wait_ready(session)
            try:
                if "burst" in args.phases:
                    runs: list[dict[str, Any]] = []
                    for run_number in range(1, args.runs + 1):  # the same operator process: its peak RSS is all runs'
                        print(f"burst run {run_number} of {args.runs}", flush=True)
                        runs.append({})
                        await phases_burst_to_latency(args, bench, operator, session, runs[-1])
                    results |= median_of_runs(runs)
                if args.large and "large" in args.phases:
                    await phase_large(args, bench, operator, session, results)
                if args.others and "others" in args.phases:
                    await phase_others(args, bench, operator, session, results)
            finally:
                operator.kill()
        if "profile" in args.phases:
            await phase_profile(args, bench, session, results)
        if "compare" in args.phases:
            await bench_kserve.phase_compare(bench, session, our_side(operator.port), args.compare_services,
                                             args.compare_rate, args.compare_seconds, results)
        if "growth" in args.phases:
            await bench_kserve.phase_growth(bench, session, our_side(operator.port), growth_scales(args), results,
                                            tuple(s.strip() for s in args.growth_sides.split(",") if s.strip()),
                                            checkpoint=keep_in_progress)
    return results


async def phase_latency(args: argparse.Namespace, bench: Bench, session: aiohttp.ClientSession,
                        results: dict[str, Any]) -> None:
    """Steady rates, ours beside the reflex floor, quiet and under a namespace's deletion (bench_latency.py); a
    fresh operator process, traced with --trace."""
    trace_dir = localcluster.STATE / bench_latency.TRACE_DIR_NAME if args.trace else None
    operator = Operator(int(os.environ.get("BENCH_METRICS_PORT", "19191")),
                        env={"INFERENCE_OPERATOR_TRACE": "1"} if args.trace else None)
    if trace_dir is not None:
        for old in trace_dir.glob("*.json"):
            old.unlink()
        (localcluster.LOGS / "operator-bench.log").unlink(missing_ok=True)
    operator.start()
    try:
        await operator.wait_ready(session)
        results["latency_rates"] = await bench_latency.phase_latency(args, bench, operator, trace_dir)
        results["latency_rates"]["rss_mb_peak"] = round(operator.peak_rss_mb(), 1)
    finally:
        operator.kill()


def keep_in_progress(results: dict[str, Any]) -> None:
    """The results so far, rewritten after each long measurement; removed when the run ends and writes its own
    files (a run killed in between, say during the deletion of 10,000 KServe services, leaves this one)."""
    IN_PROGRESS.parent.mkdir(parents=True, exist_ok=True)
    IN_PROGRESS.write_text(json.dumps(results, indent=2) + "\n")


def our_side(port: int) -> bench_kserve.Side:
    return bench_kserve.Side("ours", Operator(port), "inference-operator/", GROUP, VERSION, PLURAL, service,
                             "inference.io/service",
                             lambda obj: (obj.get("status") or {}).get("status") == "running",
                             lambda m: mean_pass_ms(m, "inference_operator_reconcile_duration_seconds"))


def growth_scales(args: argparse.Namespace) -> list[int]:
    return [int(n) for n in args.growth.split(",") if n.strip()]


async def phases_burst_to_latency(args: argparse.Namespace, bench: Bench, operator: Operator,
                                  session: aiohttp.ClientSession, results: dict[str, Any]) -> None:
    """burst + ceiling, writes, idle writes, memory at N, restart, latency (they share the N services)."""
    await bench.namespace("bench-burst")
    before = await bench.apiserver_writes()
    own_before = await operator.metrics(session)  # a process of an earlier run has counted that run's writes
    print(f"burst: creating {args.services} services, concurrency {args.concurrency} ...", flush=True)
    burst = await bench.burst("bench-burst", args.services)
    await asyncio.sleep(3)
    writes = delta(await bench.apiserver_writes(), before)
    own = {k.split("{", 1)[1].rstrip("}"): v for k, v in delta(await operator.metrics(session), own_before).items()
           if k.startswith("inference_operator_api_writes_total{")}
    await bench.namespace("bench-ceiling")
    ceiling = await bench.ceiling("bench-ceiling", args.services)
    burst["ceiling_deployments"], burst["ceiling_children"] = ceiling["deployments"], ceiling["children"]
    burst["ratio_deployments"] = round(ceiling["deployments"] / burst["deployments"], 3)
    burst["ratio_running"] = round(ceiling["children"] / burst["running"], 3)
    results["burst"] = {k: round(v, 3) for k, v in burst.items()} | {"services": args.services}
    results["writes"] = {"per_service_by_resource": {k: round(v / args.services, 2) for k, v in writes.items()},
                         "operator_per_service": {k: round(v / args.services, 2) for k, v in own.items()},
                         "per_service": round(sum(writes.values()) / args.services, 2),
                         "minimum_per_service": 3}
    print(json.dumps(results["burst"]), flush=True)
    await bench.delete_namespace("bench-ceiling")

    before = await bench.apiserver_writes()
    await asyncio.sleep(args.idle_seconds)
    idle = sum(delta(await bench.apiserver_writes(), before).values())
    results["writes"]["idle_writes_per_minute"] = round(idle * 60 / args.idle_seconds, 2)
    results["memory"] = {"rss_mb_at_services": {str(args.services): round(operator.peak_rss_mb(), 1)},
                         "rss_mb_now_idle": {str(args.services): round(operator.peak_rss_mb("VmRSS"), 1)}}
    print(json.dumps(results["writes"]), json.dumps(results["memory"]), flush=True)

    operator.kill()
    before = await bench.apiserver_writes()
    t0 = time.monotonic()
    operator.start()
    await operator.wait_ready(session)
    while (await operator.metrics(session)).get('inference_operator_reconciles_total{result="ok"}', 0) \
            < args.services:
        await asyncio.sleep(0.1)
    seen = time.monotonic() - t0
    await asyncio.sleep(3)
    op_writes = sum(v for k, v in (await operator.metrics(session)).items()
                    if k.startswith("inference_operator_api_writes_total"))
    results["restart"] = {"services": args.services, "seconds_until_all_seen": round(seen, 2),
                          "operator_writes": op_writes,
                          # the restarted process's peak: its listings of N running services and their children
                          "rss_mb_peak": round(operator.peak_rss_mb(), 1),
                          "apiserver_writes": sum(delta(await bench.apiserver_writes(), before).values())}
    print(json.dumps(results["restart"]), flush=True)

    # New services while another namespace's N services are being deleted: they must not wait behind its events.
    await bench.namespace("bench-churn")
    print(f"latency under churn: {args.rate}/s for {args.latency_seconds}s while bench-burst "
          f"({args.services} services) is deleted ...", flush=True)
    deletion_started = time.monotonic()
    deletion = asyncio.create_task(bench.delete_namespace("bench-burst"))
    churn = await bench.latency("bench-churn", args.rate, args.latency_seconds)
    churn |= {"deleting_services": args.services, "deletion_finished_first": deletion.done(),
              "seconds_since_deletion_began": round(time.monotonic() - deletion_started, 1)}
    results["latency_under_churn"] = churn
    print(json.dumps(churn), flush=True)
    await deletion
    await bench.delete_namespace("bench-churn")

    quiet = await operator.wait_quiet()
    await bench.namespace("bench-latency")
    print(f"latency: {args.rate}/s for {args.latency_seconds}s (operator quiet after {quiet:.0f}s) ...", flush=True)
    results["latency"] = await bench.latency("bench-latency", args.rate, args.latency_seconds)
    print(json.dumps(results["latency"]), flush=True)
    await bench.delete_namespace("bench-latency")

    await operator.wait_quiet()
    await bench.namespace("bench-latency-ceiling")
    print(f"latency ceiling: {args.rate}/s for {args.latency_seconds}s, a reflex client as the controller ...",
          flush=True)
    results["latency_ceiling"] = await bench.latency_ceiling("bench-latency-ceiling", args.rate,
                                                             args.latency_seconds)
    print(json.dumps(results["latency_ceiling"]), flush=True)
    await bench.delete_namespace("bench-latency-ceiling")

async def phase_large(args: argparse.Namespace, bench: Bench, operator: Operator,
                      session: aiohttp.ClientSession, results: dict[str, Any]) -> None:
    """Memory with many stopped services (their Deployments at 0 replicas: the fake nodes are no limit)."""
    await bench.namespace("bench-large")
    print(f"memory: {args.large} stopped services ...", flush=True)
    t0 = time.monotonic()
    await bench.gather_bounded([lambda i=i: bench.crd.create_namespaced_custom_object(
        GROUP, VERSION, "bench-large", PLURAL, service(f"x{i:05d}", stopped=True)) for i in range(args.large)])
    while not await _stopped(bench, args.large):
        await asyncio.sleep(5)
    memory = results.setdefault("memory", {})
    memory.setdefault("rss_mb_at_services", {})[str(args.large)] = round(operator.peak_rss_mb(), 1)
    memory.setdefault("rss_mb_now_idle", {})[str(args.large)] = round(operator.peak_rss_mb("VmRSS"), 1)
    memory[f"seconds_until_{args.large}_stopped"] = round(time.monotonic() - t0, 1)
    memory["large_services"] = args.large  # its entry in rss_mb_at_services is of stopped services
    print(json.dumps(results["memory"]), flush=True)
    await bench.delete_namespace("bench-large")


def other_workload(name: str, replicas: int) -> dict[str, Any]:
    """Someone else's Deployment (no label of ours), its pods of a common shape: one container, 20 env vars,
    probes, a volume: about 3 KB of JSON each once running."""
    labels = {"app": name, "team": "others"}
    env = [{"name": f"SETTING_{i}", "value": f"value-{i}-" + "x" * 24} for i in range(20)]
    probe = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10}
    container = {"name": "web", "image": "registry.example/web:1", "env": env, "ports": [{"containerPort": 8080}],
                 "readinessProbe": probe, "livenessProbe": probe,
                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                 "volumeMounts": [{"name": "config", "mountPath": "/etc/web"}]}
    pod = {"containers": [container], "volumes": [{"name": "config", "emptyDir": {}}]}
    return {"metadata": {"name": name, "labels": labels}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": pod}}}


async def phase_others(args: argparse.Namespace, bench: Bench, operator: Operator, session: aiohttp.ClientSession,
                       results: dict[str, Any]) -> None:
    """The operator started in a namespace full of other workloads' pods, none of them its own: how long until
    it is idle, the CPU it spent and its peak RSS. It asks the API server only for its own objects
    (settings.watch_only): neither should grow with pods that are not its own."""
    ns, per = "bench-others", 250
    await bench.namespace(ns)
    print(f"others: {args.others} pods of other workloads ...", flush=True)
    await bench.gather_bounded([lambda i=i: bench.apps.create_namespaced_deployment(
        ns, other_workload(f"web-{i:03d}", per)) for i in range(-(-args.others // per))])
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        items = (await bench.apps.list_namespaced_deployment(ns)).items
        if sum(d.status.ready_replicas or 0 for d in items) >= args.others:
            break
        await asyncio.sleep(5)
    operator.kill()
    operator.start()
    assert operator.proc is not None
    t0 = time.monotonic()
    await operator.wait_ready(session)
    await operator.wait_quiet()  # its CPU under 5% of a core for 3 s
    metrics = await operator.metrics(session)
    results["others"] = {
        "pods": args.others, "seconds_until_quiet": round(time.monotonic() - t0, 1),
        "cpu_seconds": round(cpu_seconds(operator.proc.pid), 2), "peak_rss_mb": round(operator.peak_rss_mb(), 1),
        "pod_events": {k.split('outcome="', 1)[1].split('"', 1)[0]: v for k, v in metrics.items()
                       if k.startswith("inference_operator_watch_events_total{") and 'resource="pods"' in k}}
    print(json.dumps(results["others"]), flush=True)
    await bench.delete_namespace(ns)


async def phase_profile(args: argparse.Namespace, bench: Bench, session: aiohttp.ClientSession,
                        results: dict[str, Any]) -> None:
    """Where the memory goes at the burst's peak: the same burst of N services with tracemalloc on in the operator
    (operator/inference_operator/runtime/memprofile.py; tracing inflates memory and time, so a run of its own), the
    allocation sites taken as the last service runs."""
    out = localcluster.STATE / "tracemalloc.json"
    out.unlink(missing_ok=True)
    traced = Operator(int(os.environ.get("BENCH_METRICS_PORT", "19191")),
                      env={"INFERENCE_OPERATOR_TRACEMALLOC": "1", "INFERENCE_OPERATOR_TRACEMALLOC_OUT": str(out)})
    traced.start()
    try:
        await traced.wait_ready(session)
        await bench.namespace("bench-profile")
        print(f"profile: {args.services} services with tracemalloc on ...", flush=True)
        await bench.burst("bench-profile", args.services)
        assert traced.proc is not None
        traced.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 600  # a snapshot of a traced 1,000-service operator takes minutes
        while time.monotonic() < deadline and not (out.exists() and out.stat().st_size):
            await asyncio.sleep(0.5)
        if not (out.exists() and out.stat().st_size):
            results.setdefault("memory", {})["tracemalloc_at_services"] = {
                str(args.services): {"error": "no tracemalloc dump within 600 s of SIGUSR1"}}
            return
        await asyncio.sleep(1)  # written whole (write_text of one string)
        report = json.loads(out.read_text())
        report["rss_mb_traced"] = round(traced.peak_rss_mb(), 1)
        results.setdefault("memory", {})["tracemalloc_at_services"] = {str(args.services): report}
        print(json.dumps(report)[:2000], flush=True)
    finally:
        traced.kill()
        await bench.delete_namespace("bench-profile")


async def _stopped(bench: Bench, n: int) -> bool:
    items = (await bench.crd.list_namespaced_custom_object(GROUP, VERSION, "bench-large", PLURAL))["items"]
    return sum(1 for i in items if (i.get("status") or {}).get("status") == "stopped") >= n


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    compare = results.get("compare", {})
    growth = growth_points(results)
    fig, grid = plt.subplots(2, 3, figsize=(15, 8))
    axes = list(grid.flat)
    burst = results.get("burst", {})
    axes[0].bar(["operator:\nevery Deployment", "ceiling:\nevery Deployment", "operator:\nevery running",
                 "ceiling:\nevery child"],
                [burst.get("deployments", 0), burst.get("ceiling_deployments", 0), burst.get("running", 0),
                 burst.get("ceiling_children", 0)], color=["#4c72b0", "#c44e52", "#55a868", "#c44e52"])
    axes[0].tick_params(axis="x", labelsize=7)
    axes[0].set_ylabel("seconds (operator: from the first create; ceiling: from its first write)", fontsize=8)
    axes[0].set_title(f"burst of {burst.get('services')} services: ceiling / operator "
                      f"{burst.get('ratio_deployments')} (Deployments), {burst.get('ratio_running')} (running)",
                      fontsize=9)
    lat = results.get("latency", {})
    qs = ["50", "90", "99"]
    churn = results.get("latency_under_churn", {})
    for phase, style, suffix in ((lat, "-", ""), (churn, "--", " (another namespace deleted)")):
        for key, label in (("create_to_deployment_ms", "create -> Deployment"),
                           ("pods_ready_to_running_ms", "pods ready -> running")):
            values = phase.get(key, {})
            if values:
                axes[1].plot(qs, [values.get(q, values.get(int(q), 0)) for q in qs], style, marker="o",
                             label=label + suffix)
    axes[1].set_yscale("log")
    axes[1].set_title("latency percentiles, operator at a steady rate")
    axes[1].set_ylabel("ms")
    axes[1].legend(fontsize=7)
    mem = results.get("memory", {}).get("rss_mb_at_services", {})
    axes[2].bar(list(mem), list(mem.values()), color="#8172b2")
    axes[2].set_title("operator peak RSS by services")
    axes[2].set_ylabel("MiB")
    if compare:
        # seconds only: one unit per panel (writes per service and memory are in the JSON and the README)
        figures = [("every Deployment", "burst", "deployments_s"), ("every service ready", "burst", "ready_s")]
        x = range(len(figures))
        for offset, (side, color) in enumerate((("ours", "#4c72b0"), ("kserve", "#dd8452"))):
            values = [compare.get(side, {}).get(group, {}).get(key) or 0 for _, group, key in figures]
            axes[3].bar([i + 0.4 * offset for i in x], values, width=0.4, label=side, color=color)
        axes[3].set_xticks([i + 0.2 for i in x], [label for label, _, _ in figures], fontsize=8)
        axes[3].set_ylabel("seconds from the first create")
        axes[3].set_title(f"burst: ours vs KServe {compare.get('kserve_run', {}).get('version', '')} as shipped "
                          f"(1 worker, 20 qps / burst 30), {compare.get('services')} services", fontsize=9)
        axes[3].legend()
    else:
        axes[3].axis("off")
    if growth:
        plot_growth(axes[4], axes[5], growth, results.get("memory", {}).get("rss_mb_at_services", {}),
                    results.get("memory", {}).get("large_services"))
    else:
        axes[4].axis("off")
        axes[5].axis("off")
    made = results.get("provenance") or {}
    fig.suptitle(f"make bench on commit {provenance.commit_label(made)}, {made.get('started', '')}, load average "
                 f"{made.get('load_average_before')} before, {made.get('load_average_after')} after", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def growth_points(results: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Phase growth's points, with the compare phase's burst as one more where growth lacks its scale."""
    growth = {side: dict(points) for side, points in results.get("growth", {}).items()}
    compare = results.get("compare", {})
    for side in ("ours", "kserve"):
        measured = compare.get(side, {})
        if compare.get("services") and measured.get("burst", {}).get("ready_s"):
            growth.setdefault(side, {}).setdefault(str(compare["services"]), {
                "peak_rss_mb": measured.get("memory", {}).get("peak_rss_mb_after_burst"),
                "pass_ms_mean": measured["burst"].get("pass_ms_mean"), "ready_s": measured["burst"]["ready_s"]})
    return growth


def plot_growth(rss_axis: Any, pass_axis: Any, growth: dict[str, Any], our_rss: dict[str, float],
                large: Any) -> None:
    """Peak RSS and mean pass time against running services, ours and KServe's; our stopped-services
    memory point (phase large) as a separate marker: it has no pods."""
    for side, color in (("ours", "#4c72b0"), ("kserve", "#dd8452")):
        points = sorted((int(n), p) for n, p in growth.get(side, {}).items())
        xs = [n for n, _ in points]
        rss_axis.plot(xs, [p.get("peak_rss_mb") for _, p in points], "-o", color=color, label=f"{side}, running")
        pass_axis.plot(xs, [p.get("pass_ms_mean") for _, p in points], "-o", color=color, label=side)
    stopped = {n: v for n, v in our_rss.items() if n == str(large)}
    if stopped:
        rss_axis.plot([int(n) for n in stopped], list(stopped.values()), "s", color="#4c72b0", fillstyle="none",
                      label="ours, stopped (no pods)")
    for axis, title, unit in ((rss_axis, "peak RSS by running services", "MiB"),
                              (pass_axis, "mean reconcile pass by running services", "ms")):
        axis.set_xscale("log")
        axis.set_title(title)
        axis.set_ylabel(unit)
        axis.legend(fontsize=7)


def exclusive_run() -> Any:
    """One benchmark at a time on a cluster: a second run's operator could not bind the metrics port, and the
    second run deleted the first one's namespaces under it (both runs' figures lost). The lock goes with the
    process, however it ends."""
    localcluster.STATE.mkdir(parents=True, exist_ok=True)
    path = localcluster.STATE / "bench.lock"
    handle = path.open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(f"another benchmark is running on this cluster ({path}): wait for it to end")
    return handle


def full_default_run(args: argparse.Namespace) -> bool:
    """Every phase at the default scale: the run whose figures the README and latest.* show."""
    return (set(args.phases.split(",")) >= set(DEFAULT_PHASES.split(",")) and args.services >= 1000
            and args.large >= 10000 and args.compare_services >= 1000 and max(growth_scales(args), default=0) >= 2000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=int(os.environ.get("BENCH_SERVICES", 1000)))
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--runs", type=provenance.odd_runs, default=os.environ.get("BENCH_RUNS", "3"),
                        help="runs of the burst phase (burst, ceiling, restart, latency), an odd number: each "
                             "figure the median, every run kept")
    parser.add_argument("--latency-seconds", type=float, default=60.0)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--phases", default=DEFAULT_PHASES,
                        help="burst (with writes, restart, latency), latency (steady rates beside the floor, "
                             "quiet and under a deletion: make bench-latency), large, others (pods of other "
                             "workloads), "
                             "profile (tracemalloc at the burst's peak), compare (ours beside KServe), growth")
    parser.add_argument("--merge", action="store_true", help="update bench/results/latest.json with this run")
    parser.add_argument("--large", type=int, default=int(os.environ.get("BENCH_LARGE", 10000)),
                        help="stopped services for the large memory point (0: skip)")
    parser.add_argument("--others", type=int, default=int(os.environ.get("BENCH_OTHERS", 5000)),
                        help="pods of other workloads the operator starts beside, none its own (phase others; 0: skip)")
    parser.add_argument("--compare-services", type=int,
                        default=int(os.environ.get("BENCH_COMPARE_SERVICES", os.environ.get("BENCH_SERVICES", 1000))),
                        help="services of each controller's burst in the compare phase")
    parser.add_argument("--growth", default=os.environ.get("BENCH_GROWTH", "100,1000,2000"),
                        help="running services (with pods) at which each controller's peak RSS and mean pass "
                             "time are measured, a fresh process each (phase growth)")
    parser.add_argument("--growth-sides", default="ours,kserve",
                        help="the controllers phase growth measures: ours, kserve or both (a scale one of them "
                             "cannot reach in the time at hand, as KServe at 10,000)")
    parser.add_argument("--latency-rates", default="10,50",
                        help="phase latency: the steady rates (services/s), ours beside the reflex floor")
    parser.add_argument("--latency-services", default="300,500",
                        help="phase latency: services created at each rate (one count, or one per rate)")
    parser.add_argument("--churn-services", type=int, default=1000,
                        help="phase latency: running services of the namespace deleted meanwhile")
    parser.add_argument("--trace", action="store_true",
                        help="phase latency: the operator logs each service's stages (hack/latency_trace.py)")
    parser.add_argument("--compare-rate", type=float, default=10.0)
    parser.add_argument("--compare-seconds", type=float, default=30.0)
    args = parser.parse_args()
    _lock = exclusive_run()  # held until the process ends
    if "compare" in args.phases or "growth" in args.phases:
        bench_kserve.build_kserve()  # once, cached; before the cluster is loaded
    localcluster.up()
    # Dense CPU nodes so the fake nodes are not the limit (1000 pods each): burst + ceiling + latency pods.
    pods = max(2 * args.services + int(args.rate * args.latency_seconds),
               args.compare_services + int(args.compare_rate * args.compare_seconds),
               max(growth_scales(args), default=0) if "growth" in args.phases else 0,
               args.others if "others" in args.phases else 0,
               2 * args.churn_services + 4 * max(int(n) for n in args.latency_services.split(","))
               if "latency" in args.phases else 0)
    wanted = -(-pods // 900)
    localcluster.create_nodes([localcluster.node_manifest("bench", f"bench-node-{i}") for i in range(wanted)])
    localcluster.wait_for("every node Ready", localcluster.nodes_ready, 60, "kwok")
    localcluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    localcluster.kubectl("wait", "--for=condition=Established", "crd/inferenceservices.inference.io")
    args.nodes = wanted
    results = asyncio.run(run(args))
    results["provenance"] = provenance.finish(results["provenance"])
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / f"{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")  # this run alone, merged or not
    if args.merge and (out / "latest.json").exists():
        results = merge_results(json.loads((out / "latest.json").read_text()), results)
    # The tracked latest.* change only with the full default run, or with --merge (a phase rerun on purpose).
    name = "latest" if args.merge or full_default_run(args) else stamp
    (out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    chart(results, out / f"{name}.png")
    IN_PROGRESS.unlink(missing_ok=True)
    print(json.dumps(results, indent=2))
    if "compare" in results:
        print(side_by_side(results["compare"]))
    if "latency_rates" in results:
        print(bench_latency.table(results["latency_rates"]))
    print(f"results: {out / (name + '.json')}, chart: {out / (name + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
