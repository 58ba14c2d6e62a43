#!/usr/bin/env python3
"""bench-gateway: what the gateway costs, against a model called directly and a minimal Go reverse proxy.

One run, three targets, the same load (vegeta, compiled; hack/build-bench-tools.sh):

  direct     vegeta -> model
  go-proxy   vegeta -> hack/goproxy (net/http/httputil: the ceiling of one proxy hop here) -> model
  gateway    vegeta -> the gateway (app auth on: X-Apig-AppCode) -> model

The model is hack/goproxy -model (Go, answers a small JSON body), so it is never the bottleneck. The
proxy under test is pinned to core 0 (taskset); the model and vegeta share the other cores. For each
target: the maximum rate (vegeta -rate=0, --workers connections), then latency at half of the gateway's
maximum rate; repeated --rounds times, printed as median [min-max]. The gateway runs its real HTTP stack
with a RouteTable filled directly (no cluster needed).

Usage: python hack/bench_gateway.py [--seconds 5] [--rounds 3] [--workers 64] [--body 256]
Writes bench/results/gateway-<time>.json: every round's figures, their medians and spread, and where they
come from (hack/provenance.py: commit, machine, load average before and after, the command).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO / "hack"))
import provenance  # noqa: E402

RESULTS = REPO / "bench" / "results"
SERVICE_ID = "bench-0000-0000-0000-000000000001"
APP_CODE = "bench-app-code"
CACHE = Path(os.environ.get("INFERENCE_OPERATOR_CACHE", Path.home() / ".cache" / "inference-operator"))
TOOLS = CACHE / "bin" / "bench"


def start(cmd: list[str], cpus: str | None) -> tuple[subprocess.Popen, int]:
    """Start a process that prints "PORT <n>" when it listens; pinned to `cpus` with taskset when given."""
    if cpus and shutil.which("taskset"):
        cmd = ["taskset", "-c", cpus, *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"could not start {cmd}: {line!r}")
    return proc, int(line.split()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def serve_gateway(backend_port: int) -> None:
    """The gateway with one app-auth service, one model, one endpoint: the backend."""
    from inference_operator.gateway.core import Gateway
    from inference_operator.gateway.routes import RouteTable
    from inference_operator.gateway.server import build_app, start_site

    table = RouteTable()
    table.upsert_service({"metadata": {"name": "bench", "namespace": "bench", "uid": SERVICE_ID}, "spec": {
        "auth": {"appAuth": True, "apps": [{"secretName": "bench-app"}]},
        "models": [{"name": "v1", "modelName": "bench", "modelVersion": "1", "image": "bench:1", "weight": 100}]}})
    assert table.lookup(SERVICE_ID).unavailable is None, table.lookup(SERVICE_ID).unavailable
    table.set_secret("bench", "bench-app", {k: base64.b64encode(v.encode()).decode() for k, v in
                                            {"appKey": "k", "appSecret": "s", "appCode": APP_CODE}.items()})
    table.upsert_slice({"metadata": {"name": "bench-v1-1", "namespace": "bench", "labels": {
        "kubernetes.io/service-name": "bench-v1"}}, "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"]}], "ports": [{"name": "http", "port": backend_port}]})
    _runner, port = await start_site(build_app(Gateway(table)), "127.0.0.1", 0)
    print(f"PORT {port}", flush=True)
    await asyncio.Event().wait()


def attack(url: str, body: Path, seconds: float, rate: int, workers: int, cpus: str) -> dict:
    """One vegeta attack; its JSON report (latencies in ns)."""
    target = f"POST {url}\nContent-Type: application/json\nX-Apig-AppCode: {APP_CODE}\n@{body}\n"
    vegeta = str(TOOLS / "vegeta")
    cmd = [vegeta, "attack", f"-duration={seconds}s", f"-rate={rate}", "-keepalive=true", "-timeout=10s"]
    # At a fixed rate vegeta opens more connections whenever answers come late; on a loaded machine it went past
    # the gateway's connection cap (384), and measured its refusals, not its latency: at most 64 here.
    cmd += [f"-workers={workers}", f"-max-workers={workers}"] if rate == 0 else ["-workers=16", "-max-workers=64"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", cpus, *cmd]
    attacked = subprocess.run(cmd, input=target.encode(), capture_output=True, check=True,
                              env={**os.environ, "GOMAXPROCS": "1"})
    report = subprocess.run([vegeta, "report", "-type=json"], input=attacked.stdout, capture_output=True, check=True)
    result = json.loads(report.stdout)
    if result["success"] < 0.999:
        raise SystemExit(f"{url}: only {result['success']:.1%} succeeded: {result.get('errors')[:3]}")
    return result


def spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=provenance.odd_runs, default=3, help="an odd number: medians of rounds")
    parser.add_argument("--workers", type=int, default=64, help="connections of the max-rate attack")
    parser.add_argument("--body", type=int, default=256, help="request body bytes")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                        help="the gateway's event loop (uvloop, as `python -m inference_operator.gateway` runs)")
    parser.add_argument("--serve-gateway", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_gateway:
        from inference_operator.gateway.__main__ import run_loop
        run_loop(serve_gateway(args.serve_gateway), args.loop == "uvloop")
        return
    started = provenance.begin(settings={k: v for k, v in vars(args).items() if k != "serve_gateway"})
    for tool in ("vegeta", "goproxy"):
        if not (TOOLS / tool).exists():
            raise SystemExit(f"{TOOLS / tool} missing: run hack/build-bench-tools.sh")
    cores = os.cpu_count() or 1
    proxy_cpu, load_cpus = "0", ("1" if cores == 2 else f"1-{cores - 1}") if cores > 1 else "0"
    procs = []
    try:
        model, model_port = start([str(TOOLS / "goproxy"), "-model"], load_cpus)
        procs.append(model)
        goproxy, goproxy_port = start([str(TOOLS / "goproxy"), "-target", f"http://127.0.0.1:{model_port}"],
                                      proxy_cpu)
        procs.append(goproxy)
        gateway, gateway_port = start([sys.executable, __file__, "--loop", args.loop, "--serve-gateway",
                                       str(model_port)], proxy_cpu)
        procs.append(gateway)
        os.environ["GOMAXPROCS"] = "1"
        urls = {"direct": f"http://127.0.0.1:{model_port}/predict",
                "go-proxy": f"http://127.0.0.1:{goproxy_port}/predict",
                "gateway": f"http://127.0.0.1:{gateway_port}/v1/infers/{SERVICE_ID}/predict"}
        with tempfile.NamedTemporaryFile(suffix=".json") as body:
            body.write(json.dumps({"inputs": "x" * max(0, args.body - 14)}).encode()[:args.body])
            body.flush()
            path = Path(body.name)
            for url in urls.values():  # warm up connections and code paths
                attack(url, path, 1, 0, 8, load_cpus)
            rates: dict[str, list[float]] = {name: [] for name in urls}
            per_cpu: dict[str, list[float]] = {name: [] for name in urls}  # requests per CPU-second of the hop
            hop = {"direct": model.pid, "go-proxy": goproxy.pid, "gateway": gateway.pid}
            p50: dict[str, list[float]] = {name: [] for name in urls}
            p99: dict[str, list[float]] = {name: [] for name in urls}
            for _ in range(args.rounds):
                for name, url in urls.items():
                    before = cpu_seconds(hop[name])
                    result = attack(url, path, args.seconds, 0, args.workers, load_cpus)
                    rates[name].append(result["throughput"])
                    per_cpu[name].append(result["requests"] / max(1e-9, cpu_seconds(hop[name]) - before))
                half = max(1, int(rates["gateway"][-1] / 2))
                for name, url in urls.items():
                    latencies = attack(url, path, args.seconds, half, 0, load_cpus)["latencies"]
                    p50[name].append(latencies["50th"] / 1e6)
                    p99[name].append(latencies["99th"] / 1e6)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    added50 = [g - d for g, d in zip(p50["gateway"], p50["direct"], strict=True)]
    added99 = [g - d for g, d in zip(p99["gateway"], p99["direct"], strict=True)]
    go_added50 = [g - d for g, d in zip(p50["go-proxy"], p50["direct"], strict=True)]
    go_added99 = [g - d for g, d in zip(p99["go-proxy"], p99["direct"], strict=True)]
    print(f"bench-gateway: {args.rounds} rounds x {args.seconds:g} s per attack, {args.body}-byte POST with "
          f"X-Apig-AppCode, {args.workers} connections at max rate; proxy on CPU {proxy_cpu}, model and vegeta on "
          f"CPU {load_cpus}; median [min-max]")
    print(f"{'target':10} {'max req/s':>22} {'req per CPU-second':>22} {'p50 ms @ half':>22} {'p99 ms @ half':>22}")
    for name in urls:
        print(f"{name:10} {spread(rates[name]):>22} {spread(per_cpu[name]):>22} {spread(p50[name], '{:.2f}'):>22} "
              f"{spread(p99[name], '{:.2f}'):>22}")
    print("(req per CPU-second: requests served per second of CPU the hop itself used (the model's for direct):")
    print(" its rate on one whole core, less sensitive to other processes sharing the machine than max req/s)")
    ratio = [g / p for g, p in zip(rates["gateway"], rates["go-proxy"], strict=True)]
    cpu_ratio = [g / p for g, p in zip(per_cpu["gateway"], per_cpu["go-proxy"], strict=True)]
    print(f"gateway / go-proxy throughput: {spread(ratio, '{:.2f}')}, per CPU-second {spread(cpu_ratio, '{:.2f}')} "
          f"(target >= 0.5); gateway per core: {spread(rates['gateway'])} req/s, per CPU-second "
          f"{spread(per_cpu['gateway'])} (target >= 3,000)")
    print(f"added over direct at half the gateway's max rate: gateway p50 {spread(added50, '{:.2f}')} ms "
          f"(target <= 0.5), p99 {spread(added99, '{:.2f}')} ms (target <= 2); go-proxy p50 "
          f"{spread(go_added50, '{:.2f}')} ms, p99 {spread(go_added99, '{:.2f}')} ms")
    figures = {"max_requests_per_s": rates, "requests_per_cpu_second": per_cpu, "p50_ms_at_half": p50,
               "p99_ms_at_half": p99, "added_p50_ms_at_half": {"gateway": added50, "go-proxy": go_added50},
               "added_p99_ms_at_half": {"gateway": added99, "go-proxy": go_added99},
               "gateway_over_go_proxy": {"max_requests_per_s": ratio, "requests_per_cpu_second": cpu_ratio}}
    pinning = {"proxy_cpu": proxy_cpu, "model_and_vegeta_cpus": load_cpus, "taskset": bool(shutil.which("taskset"))}
    print(f"results: {write_result(started, figures, pinning)}")


def write_result(started: dict, figures: dict[str, dict[str, list[float]]], pinning: dict) -> Path:
    """bench/results/gateway-<time>.json: each figure's median and spread over the rounds, every round kept."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"gateway-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    result = {"provenance": provenance.finish(started), "pinning": pinning,
              "targets": {"gateway_over_go_proxy.requests_per_cpu_second": ">= 0.5",
                          "requests_per_cpu_second.gateway": ">= 3000", "added_p50_ms_at_half.gateway": "<= 0.5",
                          "added_p99_ms_at_half.gateway": "<= 2"},
              "figures": {name: {target: provenance.median_spread(values) for target, values in by_target.items()}
                          for name, by_target in figures.items()}}
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


if __name__ == "__main__":
    main()
