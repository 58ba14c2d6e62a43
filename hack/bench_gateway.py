#!/usr/bin/env python3
"""bench-gateway: what the gateway adds, measured against calling the model directly, in one run.

Starts the tests' model server (tests/gateway/model_server.py) and a gateway process on loopback
(the gateway's real HTTP stack with a RouteTable filled directly, so no cluster is needed), then
sends the same bounded series of POST requests both ways:

  latency     one request at a time: p50 and p99, and what the gateway adds
  throughput  --concurrency requests in flight: requests per second

and prints gateway/direct ratios. Usage: python hack/bench_gateway.py [--requests 2000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
SERVICE_ID = "bench-0000-0000-0000-000000000001"


def start(args: list[str]) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"could not start {args}: {line!r}")
    return proc, int(line.split()[1])


async def serve_gateway(backend_port: int) -> None:
    """The gateway with one service, one model, one endpoint: the backend."""
    from inference_operator.gateway.routes import RouteTable
    from inference_operator.gateway.server import Gateway, build_app, start_site

    table = RouteTable()
    table.upsert_service({"metadata": {"name": "bench", "namespace": "bench", "uid": SERVICE_ID}, "spec": {
        "models": [{"name": "v1", "modelName": "bench", "modelVersion": "1", "image": "bench:1", "weight": 100}]}})
    assert table.lookup(SERVICE_ID).unavailable is None, table.lookup(SERVICE_ID).unavailable
    table.upsert_slice({"metadata": {"name": "bench-v1-1", "namespace": "bench", "labels": {
        "kubernetes.io/service-name": "bench-v1"}}, "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"]}], "ports": [{"name": "http", "port": backend_port}]})
    runner, port = await start_site(build_app(Gateway(table)), "127.0.0.1", 0)
    print(f"PORT {port}", flush=True)
    await asyncio.Event().wait()


async def run_series(url: str, n: int, concurrency: int, body: bytes) -> tuple[list[float], float]:
    """Latencies of n POSTs with `concurrency` in flight, and the wall time of the whole series."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        queue = iter(range(n))

        async def worker() -> None:
            for _ in queue:
                started = time.perf_counter()
                async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{url}: HTTP {resp.status}: {(await resp.text())[:200]}")
                latencies.append(time.perf_counter() - started)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def bench(args: argparse.Namespace, direct: str, gateway: str) -> dict[str, dict[str, float]]:
    body = json.dumps({"data": "x" * args.payload_bytes}).encode()
    results: dict[str, dict[str, float]] = {}
    for name, url in (("direct", direct), ("gateway", gateway)):
        await run_series(url, min(200, args.requests), 4, body)  # warm up connections and code paths
        lat, _ = await run_series(url, max(100, args.requests // 4), 1, body)
        _, wall = await run_series(url, args.requests, args.concurrency, body)
        results[name] = {"p50_ms": percentile(lat, 50) * 1000, "p99_ms": percentile(lat, 99) * 1000,
                         "rps": args.requests / wall}
    return results


def report(results: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    d, g = results["direct"], results["gateway"]
    print(f"bench-gateway: {args.requests} requests, concurrency {args.concurrency}, "
          f"{args.payload_bytes} B payload, loopback")
    print(f"{'':12}{'direct':>12}{'gateway':>12}{'ratio':>10}{'added':>12}")
    for key, label in (("p50_ms", "p50 ms"), ("p99_ms", "p99 ms")):
        print(f"{label:12}{d[key]:12.3f}{g[key]:12.3f}{g[key] / d[key]:10.2f}{g[key] - d[key]:+12.3f}")
    print(f"{'req/s':12}{d['rps']:12.0f}{g['rps']:12.0f}{g['rps'] / d['rps']:10.2f}")
    if args.json:
        print(json.dumps(results))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per throughput series (default 2000)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    parser.add_argument("--payload-bytes", type=int, default=1024, help="request body size (default 1024)")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--serve-gateway", type=int, metavar="BACKEND_PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_gateway:
        asyncio.run(serve_gateway(args.serve_gateway))
        return 0
    backend, backend_port = start([str(REPO / "tests" / "gateway" / "model_server.py"), "--name", "bench"])
    gateway, gateway_port = start([__file__, "--serve-gateway", str(backend_port)])
    try:
        results = asyncio.run(bench(args, f"http://127.0.0.1:{backend_port}/predict",
                                    f"http://127.0.0.1:{gateway_port}/v1/infers/{SERVICE_ID}/predict"))
        report(results, args)
    finally:
        for proc in (gateway, backend):
            proc.terminate()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
