#!/usr/bin/env python3
"""bench-autoscale: a load step up and down on a vllm model scaled on concurrency, replicas and TTFT over time.

On the local cluster (started or reused): the operator (reading the gateway's in-flight counts every second),
the gateway, and one InferenceService (runtime vllm, `scaling.metric: concurrency`, --target per replica,
minReplicas 1, --max-replicas) whose kwok pods are "hostlocal": ready, with this machine's address at the
model's port. Every such pod has the same address, so the gateway sees one endpoint however many replicas
there are; behind that address a fleet process (this script, --serve-fleet) keeps one simulated engine
(tests/enginesim/model.py) per endpoint the Service's EndpointSlices list as ready and sends each request to
the least busy of them. Capacity therefore follows the ready replicas as the Kubernetes objects say; the
choice among them is the fleet's least-busy pick, not the gateway's routing (bench-llm measures that). A new
pod's engine is ready as soon as kwok marks the pod ready: no model load time.

Load: closed loop, --low / --high / --low clients, each sending one streamed chat completion after the other
(--prompt-words unique words, --output-tokens tokens), for --low-seconds, --high-seconds, --after-seconds.
Sampled every second: the Deployment's spec.replicas and readyReplicas, requests in flight; per request its
start, TTFT (first streamed token) and end. Writes bench/results/autoscale-<time>.json (with provenance) and
.png, prints a summary.

Usage: python hack/bench_autoscale.py [--low 2] [--high 10] [--target 2] [--max-replicas 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hack"))
sys.path.insert(0, str(REPO / "tests"))
import provenance  # noqa: E402
from bench_gateway import start  # noqa: E402

SERVICE, MODEL_ENTRY, MODEL = "autoscale", "m", "sim"
CHILD = f"{SERVICE}-{MODEL_ENTRY}"  # the model's Deployment and Service
FLEET_POLL_SECONDS = 0.5
BAND = 0.1  # policies/concurrency.py's tolerance on the way down


# -- the fleet behind the pods' one address -------------------------------------------------------------------

async def serve_fleet(args: argparse.Namespace) -> None:
    """One engine per ready endpoint of the model's Service; a request goes to the least busy one."""
    from aiohttp import web
    from kubernetes import client, config

    from enginesim.model import Engine, Params
    from enginesim.server import _chunk, prompt_words

    params = Params(max_num_seqs=args.max_num_seqs, itl=args.itl, prefill_per_token=args.prefill_per_token)
    discovery = client.DiscoveryV1Api(config.new_client_from_config(config_file=args.kubeconfig))
    engines: dict[str, Engine] = {}
    ready: list[str] = []

    async def follow() -> None:
        while True:
            try:
                slices = await asyncio.to_thread(discovery.list_namespaced_endpoint_slice, args.namespace,
                                                 label_selector=f"kubernetes.io/service-name={CHILD}")
                names = sorted({(e.target_ref.name if e.target_ref else ",".join(e.addresses))
                                for s in slices.items for e in s.endpoints or []
                                if e.conditions is None or e.conditions.ready is not False})
                for name in names:
                    engines.setdefault(name, Engine(params))
                ready[:] = names
            except Exception as err:  # noqa: BLE001 - a failed poll keeps the last view
                print(f"fleet: poll failed: {err!r}", file=sys.stderr, flush=True)
            await asyncio.sleep(FLEET_POLL_SECONDS)

    async def complete(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        pool = [engines[n] for n in ready if n in engines] or [engines.setdefault("none-ready", Engine(params))]
        engine = min(pool, key=lambda e: e.running + e.waiting)
        max_tokens = int(body.get("max_tokens") or 16)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            async for index in engine.generate(prompt_words(body), max_tokens):
                last = "length" if index == max_tokens - 1 else None
                await response.write(f"data: {json.dumps(_chunk(True, 'cmpl-fleet', MODEL, f'tok{index} ', last))}\n\n"
                                     .encode())
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionResetError:  # a client cancelled at the step down: its engine slot is freed
            pass
        return response

    async def fleet(_: web.Request) -> web.Response:
        return web.json_response({"ready": list(ready), "engines": {
            n: {"running": e.running, "waiting": e.waiting} for n, e in engines.items()}})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", complete)
    app.router.add_get("/-/fleet", fleet)
    app.router.add_get("/health", lambda _: web.Response(text="ok"))  # type: ignore[arg-type,return-value]
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "0.0.0.0", 0)
    await site.start()
    asyncio.get_running_loop().create_task(follow())
    print(f"PORT {site._server.sockets[0].getsockname()[1]}", flush=True)  # type: ignore[union-attr]
    await asyncio.Event().wait()


# -- the load and the samples ---------------------------------------------------------------------------------

class Load:
    def __init__(self, url: str, args: argparse.Namespace, t0: float) -> None:
        self.url, self.args, self.t0 = url, args, t0
        self.in_flight, self.requests, self.failures = 0, [], 0
        self.clients: list[asyncio.Task] = []

    async def client(self, session: aiohttp.ClientSession, number: int) -> None:
        while True:
            prompt = " ".join(f"c{number}r{uuid.uuid4().hex[:6]}w{i}" for i in range(self.args.prompt_words))
            body = {"model": MODEL, "stream": True, "max_tokens": self.args.output_tokens,
                    "messages": [{"role": "user", "content": prompt}]}
            started, first = time.monotonic(), None
            self.in_flight += 1
            try:
                async with session.post(self.url, json=body) as resp:
                    async for line in resp.content:
                        if first is None and line.startswith(b"data: {"):
                            first = time.monotonic()
                    ok = resp.status == 200 and first is not None
            except aiohttp.ClientError:
                ok = False
            finally:
                self.in_flight -= 1
            if ok:
                assert first is not None
                self.requests.append({"start": round(started - self.t0, 3), "ttft": round(first - started, 4),
                                      "end": round(time.monotonic() - self.t0, 3)})
            else:
                self.failures += 1
                await asyncio.sleep(0.5)

    def resize(self, session: aiohttp.ClientSession, clients: int) -> None:
        """Closed loop: `clients` requests in flight; extra clients are cancelled (their request cut off)."""
        while len(self.clients) < clients:
            self.clients.append(asyncio.create_task(self.client(session, len(self.clients))))
        while len(self.clients) > clients:
            self.clients.pop().cancel()


async def sample(apps: Any, namespace: str, load: Load, fleet_url: str, samples: list[dict[str, Any]],
                 session: aiohttp.ClientSession) -> None:
    while True:
        at = time.monotonic()
        dep = await asyncio.to_thread(apps.read_namespaced_deployment, CHILD, namespace)
        try:
            async with session.get(fleet_url) as resp:
                engines = len((await resp.json())["ready"])
        except aiohttp.ClientError:
            engines = -1
        samples.append({"t": round(at - load.t0, 2), "desired": dep.spec.replicas,
                        "ready": dep.status.ready_replicas or 0, "in_flight": load.in_flight,
                        "engines": engines})
        await asyncio.sleep(max(0.0, at + 1.0 - time.monotonic()))


def pct(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else None


def summarize(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    samples, requests = result["samples"], result["requests"]
    up, down, end = args.low_seconds, args.low_seconds + args.high_seconds, result["ended_at"]
    need_high = min(args.max_replicas, math.ceil(args.high / args.target))
    # on the way down the policy keeps a count until the fewer replicas would be loaded below 90 % of the target
    # (policies/concurrency.py's 10 % band): 2 in flight at target 2 settles at 2 replicas, not 1
    need_low = max(1, min(args.max_replicas, math.ceil(args.low / (args.target * (1 - BAND)))))

    def first(cond: Any, after: float) -> float | None:
        return next((s["t"] - after for s in samples if s["t"] >= after and cond(s)), None)

    enough = first(lambda s: s["ready"] >= need_high, up)
    back = first(lambda s: s["desired"] <= need_low and s["ready"] <= need_low, down)
    high = [s for s in samples if up <= s["t"] < down]
    steady = [s for s in high if enough is not None and s["t"] >= up + enough]
    changes = sum(1 for a, b in zip(steady, steady[1:], strict=False) if a["desired"] != b["desired"])
    # a capacity dip: fewer ready than asked for while the count was not rising (a rise waits for new pods)
    dips = [s for i, s in enumerate(samples) if s["ready"] < s["desired"]
            and all(p["desired"] >= s["desired"] for p in samples[max(0, i - 10):i])]

    def p99(lo: float, hi: float) -> float | None:
        return pct([r["ttft"] for r in requests if lo <= r["start"] < hi], 0.99)

    return {"replicas_needed_high": need_high, "replicas_needed_low": need_low,
            "seconds_step_up_to_enough_ready": enough, "peak_desired": max(s["desired"] for s in samples),
            "peak_ready": max(s["ready"] for s in samples),
            "ttft_p99_before": p99(0, up), "ttft_p99_high": p99(up, down),
            "ttft_p99_high_once_enough_ready": p99(up + enough, down) if enough is not None else None,
            "ttft_p99_after": p99(down, end),
            "seconds_step_down_to_low_count": back, "min_ready": min(s["ready"] for s in samples),
            "capacity_dip_samples": len(dips), "replica_changes_steady_high": changes,
            "requests": len(requests), "failures": result["failures"]}


# -- the cluster side -----------------------------------------------------------------------------------------

def service_manifest(args: argparse.Namespace, port: int) -> dict[str, Any]:
    scaling = {"enabled": True, "metric": "concurrency", "targetConcurrency": args.target, "minReplicas": 1,
               "maxReplicas": args.max_replicas}
    return {"apiVersion": "inference.io/v1alpha1", "kind": "InferenceService", "metadata": {"name": SERVICE},
            "spec": {"models": [{"name": MODEL_ENTRY, "modelName": MODEL, "modelVersion": "1", "runtime": "vllm",
                                 "image": "example.invalid/hostlocal-engine:1", "port": port, "weight": 100,
                                 "specification": "modelarts.vm.cpu.2u", "scaling": scaling}]}}


async def wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = await asyncio.to_thread(check)
        except Exception:  # noqa: BLE001 - not there yet
            found = None
        if found:
            return found
        await asyncio.sleep(0.5)
    raise SystemExit(f"timed out after {timeout}s waiting for {what}")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from kubernetes import client, config

    import localcluster

    localcluster.up()
    kubeconfig = str(localcluster.KUBECONFIG)
    localcluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    localcluster.kubectl("wait", "--for=condition=Established", "crd/inferenceservices.inference.io")
    api = config.new_client_from_config(config_file=kubeconfig)
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    namespace = f"bench-autoscale-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    logs = localcluster.STATE / "logs"
    procs: list[subprocess.Popen] = []
    try:
        fleet, fleet_port = start([sys.executable, __file__, "--serve-fleet", "--namespace", namespace,
                                   "--kubeconfig", kubeconfig, "--max-num-seqs", str(args.max_num_seqs),
                                   "--itl", str(args.itl), "--prefill-per-token", str(args.prefill_per_token)],
                                  None)
        procs.append(fleet)
        gw_port, gw_metrics = free_port(), free_port()
        with open(logs / "gateway-bench-autoscale.log", "ab") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "inference_operator.gateway", "--host", "127.0.0.1", "--port", str(gw_port),
                 "--metrics-port", str(gw_metrics), "-n", namespace, "--kubeconfig", kubeconfig],
                stdout=log, stderr=subprocess.STDOUT))
        env = {**os.environ, "KUBECONFIG": kubeconfig, "POD_NAMESPACE": namespace,
               "INFERENCE_OPERATOR_GATEWAY_BASE_URL": "http://gateway.bench.local",
               "INFERENCE_OPERATOR_GATEWAY_COUNTS_URL": f"http://127.0.0.1:{gw_metrics}/-/counts",
               "INFERENCE_OPERATOR_COUNTS_INTERVAL_SECONDS": "1"}
        with open(logs / "operator-bench-autoscale.log", "ab") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "inference_operator", "--metrics-port", str(free_port()), "--liveness", "",
                 "--namespace", namespace], env=env, stdout=log, stderr=subprocess.STDOUT))
        svc = client.CustomObjectsApi(api).create_namespaced_custom_object(
            "inference.io", "v1alpha1", namespace, "inferenceservices", service_manifest(args, fleet_port))
        url = f"http://127.0.0.1:{gw_port}/v1/infers/{svc['metadata']['uid']}/v1/chat/completions"

        def at_min() -> bool:
            dep = apps.read_namespaced_deployment(CHILD, namespace)
            return bool(dep.spec.replicas == 1 and dep.status.ready_replicas == 1)
        await wait(at_min, 120, f"{CHILD} at 1 replica, ready")
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
            async def serves() -> bool:
                body = {"model": MODEL, "stream": True, "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]}
                async with session.post(url, json=body) as resp:
                    await resp.read()
                    return resp.status == 200
            deadline = time.monotonic() + 60
            while not await _ok(serves):
                if time.monotonic() > deadline:
                    raise SystemExit("the gateway does not serve the model")
                await asyncio.sleep(0.5)
            load, samples = Load(url, args, time.monotonic()), []
            sampler = asyncio.create_task(sample(apps, namespace, load, f"http://127.0.0.1:{fleet_port}/-/fleet",
                                                 samples, session))
            for clients, seconds in ((args.low, args.low_seconds), (args.high, args.high_seconds),
                                     (args.low, args.after_seconds)):
                print(f"{time.monotonic() - load.t0:6.1f}s: {clients} in flight for {seconds:.0f}s", flush=True)
                load.resize(session, clients)
                await asyncio.sleep(seconds)
            ended = time.monotonic() - load.t0
            load.resize(session, 0)
            sampler.cancel()
        return {"namespace": namespace, "samples": samples, "requests": load.requests, "failures": load.failures,
                "ended_at": round(ended, 2)}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        core.delete_namespace(namespace, propagation_policy="Background")


async def _ok(check: Any) -> bool:
    try:
        return bool(await check())
    except aiohttp.ClientError:
        return False


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def plot(result: dict[str, Any], args: argparse.Namespace, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    samples, requests = result["samples"], result["requests"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    times = [s["t"] for s in samples]
    top.step(times, [s["desired"] for s in samples], where="post", label="desired (spec.replicas)")
    top.step(times, [s["ready"] for s in samples], where="post", label="ready", linestyle="--")
    top.plot(times, [s["in_flight"] for s in samples], color="grey", alpha=0.5, label="requests in flight")
    top.set(ylabel="count", title=f"bench-autoscale at {provenance.commit_label(result['provenance'])}: "
            f"{args.low} -> {args.high} -> {args.low} in flight, target {args.target}/replica, "
            f"load {result['provenance']['load_average_before'][0]}")
    top.legend(loc="upper right")
    edges = range(0, int(result["ended_at"]) + 5, 5)
    mids, p50, p99 = [], [], []
    for lo in edges:
        window = [r["ttft"] for r in requests if lo <= r["start"] < lo + 5]
        if window:
            mids.append(lo + 2.5)
            p50.append(pct(window, 0.5))
            p99.append(pct(window, 0.99))
    bottom.plot(mids, p50, marker=".", label="TTFT p50")
    bottom.plot(mids, p99, marker=".", label="TTFT p99")
    bottom.set(xlabel="seconds (requests by start time, 5 s windows)", ylabel="TTFT, seconds", yscale="log")
    bottom.legend(loc="upper right")
    for ax in (top, bottom):
        ax.axvspan(args.low_seconds, args.low_seconds + args.high_seconds, color="orange", alpha=0.15)
    fig.tight_layout()
    fig.savefig(path)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--low", type=int, default=2, help="requests in flight before and after the step")
    parser.add_argument("--high", type=int, default=10, help="requests in flight during the step")
    parser.add_argument("--low-seconds", type=float, default=30)
    parser.add_argument("--high-seconds", type=float, default=60)
    parser.add_argument("--after-seconds", type=float, default=90, help="past the 60 s stable window")
    parser.add_argument("--target", type=int, default=2, help="scaling.targetConcurrency")
    parser.add_argument("--max-replicas", type=int, default=6)
    parser.add_argument("--prompt-words", type=int, default=200)
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--max-num-seqs", type=int, default=4, help="running sequences per engine")
    parser.add_argument("--itl", type=float, default=0.02)
    parser.add_argument("--prefill-per-token", type=float, default=0.0005)
    parser.add_argument("--serve-fleet", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--namespace", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    return parser.parse_args()


async def main(args: argparse.Namespace) -> None:
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "serve_fleet", "namespace", "kubeconfig")}
    started = provenance.begin(settings=settings, cluster=provenance.cluster_settings())
    result = await run(args)
    result = {"provenance": provenance.finish(started), "settings": settings, **result}
    result["summary"] = summarize(result, args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"autoscale-{stamp}.json").write_text(json.dumps(result, indent=1, default=str))
    plot(result, args, args.out / f"autoscale-{stamp}.png")
    for key, value in result["summary"].items():
        print(f"{key:36} {value}")
    print(f"wrote {args.out / f'autoscale-{stamp}.json'} and .png; load {result['provenance']['load_average_before']}"
          f" -> {result['provenance']['load_average_after']}")


if __name__ == "__main__":
    parsed = parse()
    if parsed.serve_fleet:
        sys.path.insert(0, str(REPO / "tests"))
        asyncio.run(serve_fleet(parsed))
    else:
        sys.path.insert(0, str(REPO / "operator"))
        asyncio.run(main(parsed))
