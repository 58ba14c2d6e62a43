#!/usr/bin/env python3
"""bench-llm: the gateway's routing policies on a fleet of simulated engines (tests/enginesim).

The shape of the Inference Extension's prefix-cache benchmark, scaled to this machine: `--engines` engine
processes behind one gateway process (its real HTTP stack, a RouteTable filled with the same objects the
watch would give it, one EndpointSlice per engine); streaming chat completions at constant rates (open
loop: request i is sent at i / rate whatever the answers), one stage per rate, the engines' caches warm
from the previous stage as on a real fleet. Workloads:

  shared-prefix  --groups groups x --prompts prompts, each a --prefix-words system prompt shared by its group
                 and a --question-words question of its own; --output-tokens tokens out
  no-prefix      every prompt its own --unique-words words

For each policy (the engines restarted, caches cold, between policies), at the same offered rates:
TTFT p50/p99, inter-token latency (mean gap between streamed tokens) p50/p99, output tokens/s, goodput
(share of requests whose TTFT is within --ttft-slo), the engines' prefix-cache hit rate (cached prompt
tokens / prompt tokens, from vllm:prefix_cache_hits_total and _queries_total) and requests per engine
max/min. Writes bench/results/llm-<time>.json (with provenance) and .png, prints the table.

Usage: python hack/bench_llm.py [--engines 8] [--rates 2,5] [--seconds 20] [--policies ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO / "hack"))
import provenance  # noqa: E402
from bench_gateway import start  # noqa: E402

SERVICE_ID = "llm-bench-0000-0000-000000000001"
MODEL = "sim"
POLICIES = ("weighted-random", "least-load", "prefix")


async def serve_gateway(policy: str, ports: list[int]) -> None:
    """The gateway, one vllm model routed by `policy`, one EndpointSlice per engine."""
    from inference_operator.gateway.core import Gateway
    from inference_operator.gateway.routes import RouteTable
    from inference_operator.gateway.server import build_app, start_site

    table = RouteTable()
    table.upsert_service({"metadata": {"name": "llm", "namespace": "bench", "uid": SERVICE_ID}, "spec": {
        "routing": policy, "models": [{"name": "m", "modelName": MODEL, "modelVersion": "1", "runtime": "vllm",
                                       "weight": 100}]}})
    assert table.lookup(SERVICE_ID).unavailable is None, table.lookup(SERVICE_ID).unavailable
    for i, port in enumerate(ports):
        table.upsert_slice({"metadata": {"name": f"llm-m-{i}", "namespace": "bench", "labels": {
            "kubernetes.io/service-name": "llm-m"}}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.0.1"]}], "ports": [{"name": "http", "port": port}]})
    gateway = Gateway(table)
    await gateway.open()
    _runner, port = await start_site(build_app(gateway), "127.0.0.1", 0)
    print(f"PORT {port}", flush=True)
    await asyncio.Event().wait()


def prompts(args: argparse.Namespace, workload: str) -> list[str]:
    rng = random.Random(11)
    if workload == "no-prefix":
        return [" ".join(f"u{n}x{i}" for i in range(args.unique_words)) for n in range(args.groups * args.prompts)]
    systems = [" ".join(f"s{g}x{i}" for i in range(args.prefix_words)) for g in range(args.groups)]
    found = [systems[g] + " " + " ".join(f"q{g}y{p}x{i}" for i in range(args.question_words))
             for g in range(args.groups) for p in range(args.prompts)]
    rng.shuffle(found)
    return found


async def one(session: aiohttp.ClientSession, url: str, prompt: str, tokens: int) -> dict[str, Any]:
    body = {"model": MODEL, "stream": True, "max_tokens": tokens,
            "messages": [{"role": "user", "content": prompt}]}
    started, stamps = time.monotonic(), []
    try:
        async with session.post(url, json=body) as resp:
            if resp.status != 200:
                return {"ok": False, "status": resp.status}
            async for line in resp.content:
                if line.startswith(b"data: {"):
                    stamps.append(time.monotonic())
    except aiohttp.ClientError as err:
        return {"ok": False, "status": str(err)}
    if not stamps:
        return {"ok": False, "status": "no tokens"}
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    return {"ok": True, "ttft": stamps[0] - started, "itl": statistics.mean(gaps) if gaps else 0.0,
            "tokens": len(stamps), "end": stamps[-1]}


async def engine_counters(session: aiohttp.ClientSession, ports: list[int]) -> list[dict[str, float]]:
    found = []
    for port in ports:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name = line.split("{", 1)[0].split(" ", 1)[0]
                values[name] = float(line.rsplit(" ", 1)[1])
        found.append(values)
    return found


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


async def stage(url: str, ports: list[int], texts: list[str], rate: float, args: argparse.Namespace,
                offset: int) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        before = await engine_counters(session, ports)
        count, started = int(rate * args.seconds), time.monotonic()
        tasks = []
        for i in range(count):
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(session, url, texts[(offset + i) % len(texts)], args.output_tokens)))
        results = await asyncio.gather(*tasks)
        elapsed = max(r["end"] for r in results if r["ok"]) - started if any(r["ok"] for r in results) else 1.0
        after = await engine_counters(session, ports)
    ok = [r for r in results if r["ok"]]
    per_engine = [a.get("vllm:request_success_total", 0) - b.get("vllm:request_success_total", 0)
                  for a, b in zip(after, before, strict=True)]
    hits = sum(a.get("vllm:prefix_cache_hits_total", 0) - b.get("vllm:prefix_cache_hits_total", 0)
               for a, b in zip(after, before, strict=True))
    queries = sum(a.get("vllm:prefix_cache_queries_total", 0) - b.get("vllm:prefix_cache_queries_total", 0)
                  for a, b in zip(after, before, strict=True))
    ttft, itl = [r["ttft"] for r in ok], [r["itl"] for r in ok]
    return {"rate": rate, "requests": count, "failed": count - len(ok),
            "ttft_p50": pct(ttft, 0.5), "ttft_p99": pct(ttft, 0.99),
            "itl_p50": pct(itl, 0.5), "itl_p99": pct(itl, 0.99),
            "output_tokens_per_s": sum(r["tokens"] for r in ok) / elapsed,
            "goodput": sum(1 for t in ttft if t <= args.ttft_slo) / count if count else 0.0,
            "cache_hit_rate": hits / queries if queries else 0.0,
            "per_engine_max": max(per_engine), "per_engine_min": min(per_engine),
            "per_engine": per_engine}


def start_engines(args: argparse.Namespace) -> list[tuple[subprocess.Popen, int]]:
    cmd = [sys.executable, str(REPO / "tests" / "enginesim" / "server.py"), "--model", MODEL,
           "--max-num-seqs", str(args.max_num_seqs), "--num-gpu-blocks", str(args.num_gpu_blocks),
           "--prefill-per-token", str(args.prefill_per_token), "--itl", str(args.itl)]
    return [start(cmd, None) for _ in range(args.engines)]


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(10)


async def run_policy(policy: str, workload: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    engines = start_engines(args)
    ports = [port for _, port in engines]
    gateway, gw_port = start([sys.executable, __file__, "--serve-gateway", policy, "--engine-ports",
                              ",".join(map(str, ports))], None)
    try:
        url = f"http://127.0.0.1:{gw_port}/v1/infers/{SERVICE_ID}/v1/chat/completions"
        texts, stages, offset = prompts(args, workload), [], 0
        for rate in args.rates:
            result = await stage(url, ports, texts, rate, args, offset)
            offset += result["requests"]
            stages.append(result)
            print(f"{workload:13} {policy:15} {rate:5.1f}/s  TTFT p50 {result['ttft_p50']:.3f} p99 "
                  f"{result['ttft_p99']:.3f} s  ITL p50 {result['itl_p50'] * 1000:.0f} ms  "
                  f"{result['output_tokens_per_s']:.0f} tok/s  goodput {result['goodput']:.0%}  "
                  f"hit {result['cache_hit_rate']:.0%}  per engine {result['per_engine_max']:.0f}/"
                  f"{result['per_engine_min']:.0f}  failed {result['failed']}", flush=True)
        return stages
    finally:
        stop([gateway, *(proc for proc, _ in engines)])


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    workloads = list(results["runs"])
    fig, axes = plt.subplots(1, len(workloads), figsize=(6 * len(workloads), 4), squeeze=False)
    for ax, workload in zip(axes[0], workloads, strict=True):
        for policy, stages in results["runs"][workload].items():
            ax.plot([s["rate"] for s in stages], [s["ttft_p99"] for s in stages], marker="o", label=policy)
        ax.set(title=f"{workload}: TTFT p99", xlabel="offered requests/s", ylabel="seconds", yscale="log")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", type=int, default=8)
    parser.add_argument("--rates", type=lambda s: [float(r) for r in s.split(",")], default=[2.0, 5.0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--policies", type=lambda s: s.split(","), default=list(POLICIES))
    parser.add_argument("--workloads", type=lambda s: s.split(","), default=["shared-prefix", "no-prefix"])
    parser.add_argument("--groups", type=int, default=32)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--prefix-words", type=int, default=2048)
    parser.add_argument("--question-words", type=int, default=256)
    parser.add_argument("--unique-words", type=int, default=768)
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--ttft-slo", type=float, default=1.0, help="goodput's TTFT objective, seconds")
    parser.add_argument("--max-num-seqs", type=int, default=16)
    parser.add_argument("--num-gpu-blocks", type=int, default=1024)
    parser.add_argument("--prefill-per-token", type=float, default=0.0005)
    parser.add_argument("--itl", type=float, default=0.02)
    parser.add_argument("--serve-gateway", help=argparse.SUPPRESS)
    parser.add_argument("--engine-ports", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    return parser.parse_args()


async def main(args: argparse.Namespace) -> None:
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "serve_gateway", "engine_ports")}
    started = provenance.begin(settings=settings)
    results: dict[str, Any] = {"settings": settings, "runs": {}}
    for workload in args.workloads:
        results["runs"][workload] = {p: await run_policy(p, workload, args) for p in args.policies}
    results = {"provenance": provenance.finish(started), **results}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"llm-{stamp}.json").write_text(json.dumps(results, indent=1, default=str))
    plot(results, args.out / f"llm-{stamp}.png")
    print(f"wrote {args.out / f'llm-{stamp}.json'} and .png; load {results['provenance']['load_average_before']} -> "
          f"{results['provenance']['load_average_after']}")


if __name__ == "__main__":
    parsed = parse()
    if parsed.serve_gateway:
        from inference_operator.gateway.__main__ import run_loop
        run_loop(serve_gateway(parsed.serve_gateway, [int(p) for p in parsed.engine_ports.split(",")]), True)
    else:
        asyncio.run(main(parsed))
