#!/usr/bin/env python3
"""bench-lora: adapter-aware against adapter-blind routing of LoRA requests on simulated engines (tests/enginesim).

The multi-adapter workload of bench-llm (hack/bench_llm.py, whose gateway, engines and measures it shares):
`--engines` engine processes, each with `--max-loras` GPU slots, behind one gateway process routing by least
load. Two starting points (`--preloaded`): all, every one of `--adapters` adapters registered on every engine
first (as the operator's loop leaves them); none, no engine holds any, and the gateway loads an adapter on the
engine it sends it to (gateway/adapter_loads.py; `--lora-register-seconds` per load), as when the operator's loop
is off or has not run yet on new replicas. Streaming
chat completions at `--rate` per second (open loop) for `--seconds`, each for one adapter drawn with Zipf
popularity (adapter i with weight 1 / (i + 1) ** `--zipf`) and a short prompt of its own (no shared prefix).
An engine brings an adapter that is not in a slot in (`--lora-load-seconds`) before the request runs, and a
request for an adapter waits while every slot runs others (tests/enginesim/lora.py).

Modes, the engines restarted between them: aware (the gateway's adapter affinity, gateway/adapters.py: engines
running the adapter, else with a free slot) and blind (the same gateway with that step skipped: least load
alone). Per mode: TTFT p50/p99 (seconds from sending to the first streamed token), adapter loads per minute
(adapters brought into a slot, summed over the engines, per minute of the stage) and the share of requests that
waited for a load (their adapter brought in for them or while they arrived); the gateway's own loads, the share
of requests that waited for one and their mean wait, and the share held while every slot ran other adapters (its
metrics, gateway/metrics.py). Writes bench/results/lora-<time>.json with provenance, prints the table.

Usage: python hack/bench_lora.py [--engines 4] [--adapters 16] [--max-loras 4] [--rate 8] [--seconds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO / "hack"))
import provenance  # noqa: E402
from bench_gateway import start  # noqa: E402
from bench_llm import engine_counters, pct, stop  # noqa: E402

SERVICE_ID = "lora-bench-000-0000-000000000001"
BASE = "sim"
MODES = ("aware", "blind")
PRELOADED = ("all", "none")


def adapter_names(count: int) -> list[str]:
    return [f"tune-{i:02d}" for i in range(count)]


async def serve_gateway(mode: str, ports: list[int], adapters: int) -> None:
    """The gateway: one vllm model with the adapters, routed by least load, one EndpointSlice per engine."""
    from inference_operator.gateway import adapters as affinity
    from inference_operator.gateway.core import Gateway
    from inference_operator.gateway.routes import RouteTable
    from inference_operator.gateway.server import build_app, start_site

    if mode == "blind":  # the affinity step skipped: every endpoint stays a candidate (loaded there if it lacks it)
        affinity.choose = lambda endpoints, *_, **__: affinity.Choice(affinity.Step.SEND, tuple(endpoints))
    table = RouteTable()
    table.upsert_service({"metadata": {"name": "llm", "namespace": "bench", "uid": SERVICE_ID}, "spec": {
        "routing": "least-load", "models": [{
            "name": "m", "modelName": BASE, "modelVersion": "1", "runtime": "vllm", "weight": 100,
            "adapters": [{"name": n, "source": f"pvc://adapters/{n}"} for n in adapter_names(adapters)]}]}})
    assert table.lookup(SERVICE_ID).unavailable is None, table.lookup(SERVICE_ID).unavailable
    for i, port in enumerate(ports):
        table.upsert_slice({"metadata": {"name": f"llm-m-{i}", "namespace": "bench", "labels": {
            "kubernetes.io/service-name": "llm-m"}}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.0.1"]}], "ports": [{"name": "http", "port": port}]})
    gateway = Gateway(table)
    await gateway.open()
    _runner, port = await start_site(build_app(gateway, with_metrics=True), "127.0.0.1", 0)
    print(f"PORT {port}", flush=True)
    await asyncio.Event().wait()


async def one(session: aiohttp.ClientSession, url: str, adapter: str, prompt: str, tokens: int) -> dict[str, Any]:
    body = {"model": adapter, "stream": True, "max_tokens": tokens, "messages": [{"role": "user", "content": prompt}]}
    started, first = time.monotonic(), None
    try:
        async with session.post(url, json=body) as resp:
            if resp.status != 200:
                return {"ok": False, "status": resp.status}
            async for line in resp.content:
                if first is None and line.startswith(b"data: {"):
                    first = time.monotonic()
    except aiohttp.ClientError as err:
        return {"ok": False, "status": str(err)}
    return {"ok": first is not None, "ttft": (first or started) - started, "end": time.monotonic()}


async def register(session: aiohttp.ClientSession, ports: list[int], names: list[str]) -> None:
    """Every adapter on every engine, as the operator's loop loads them (runtime/adapters.py)."""
    for port in ports:
        for name in names:
            async with session.post(f"http://127.0.0.1:{port}/v1/load_lora_adapter",
                                    json={"lora_name": name, "lora_path": f"/mnt/adapters/adapters/{name}"}) as resp:
                assert resp.status == 200, await resp.text()


async def gateway_waits(session: aiohttp.ClientSession, port: int) -> dict[str, float]:
    """The gateway's own LoRA counts (gateway/metrics.py), summed over their labels but `reason` (waits) and
    `result` (loads)."""
    async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    found: dict[str, float] = {}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if not name.startswith(("inference_gateway_adapter_loads_total", "inference_gateway_adapter_wait_seconds_")):
            continue
        label = "reason" if 'reason="' in line else "result"
        value = line.split(f'{label}="', 1)[1].split('"', 1)[0] if f'{label}="' in line else ""
        key = f"{name}:{value}" if value else name
        found[key] = found.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


async def run_mode(mode: str, preloaded: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(REPO / "tests" / "enginesim" / "server.py"), "--model", BASE, "--max-loras",
           str(args.max_loras), "--lora-load-seconds", str(args.lora_load_seconds), "--itl", str(args.itl),
           "--max-num-seqs", str(args.max_num_seqs), "--lora-register-seconds", str(args.lora_register_seconds)]
    engines = [start(cmd, None) for _ in range(args.engines)]
    ports = [port for _, port in engines]
    try:
        gateway, gw_port = start([sys.executable, __file__, "--serve-gateway", mode, "--engine-ports",
                                  ",".join(map(str, ports)), "--adapters", str(args.adapters)], None)
    except BaseException:
        stop([proc for proc, _ in engines])  # a gateway that did not start leaves no engine behind
        raise
    names = adapter_names(args.adapters)
    rng = random.Random(7)
    weights = [1 / (i + 1) ** args.zipf for i in range(len(names))]
    try:
        url = f"http://127.0.0.1:{gw_port}/v1/infers/{SERVICE_ID}/v1/chat/completions"
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
            if preloaded == "all":
                await register(session, ports, names)
            await asyncio.sleep(2.5)  # the gateway's first engine-metrics readings (every second)
            before = await engine_counters(session, ports)
            count, started, tasks = int(args.rate * args.seconds), time.monotonic(), []
            for i in range(count):
                await asyncio.sleep(max(0.0, started + i / args.rate - time.monotonic()))
                adapter = rng.choices(names, weights)[0]
                prompt = " ".join(f"r{i}w{j}" for j in range(args.prompt_words))
                tasks.append(asyncio.create_task(one(session, url, adapter, prompt, args.output_tokens)))
            results = await asyncio.gather(*tasks)
            minutes = (time.monotonic() - started) / 60
            after = await engine_counters(session, ports)
            waits = await gateway_waits(session, gw_port)
    finally:
        stop([gateway, *(proc for proc, _ in engines)])
    delta = {key: sum(a.get(key, 0) - b.get(key, 0) for a, b in zip(after, before, strict=True))
             for key in ("enginesim:lora_loads_total", "enginesim:lora_waited_requests_total")}
    ttft = [r["ttft"] for r in results if r["ok"]]
    row = {"mode": mode, "preloaded": preloaded, "requests": count, "failed": count - len(ttft),
           "ttft_p50": pct(ttft, 0.5), "ttft_p99": pct(ttft, 0.99),
           "loads_per_minute": delta["enginesim:lora_loads_total"] / minutes,
           "waited_for_load": delta["enginesim:lora_waited_requests_total"] / count if count else 0.0,
           "failures": dict(Counter(str(r.get("status", "no token")) for r in results if not r["ok"])),
           "gateway_loads": sum(v for k, v in waits.items() if k.startswith("inference_gateway_adapter_loads_total")),
           "waited_for_gateway_load": waits.get("inference_gateway_adapter_wait_seconds_count:load", 0.0) / count,
           "gateway_load_wait_mean": waits.get("inference_gateway_adapter_wait_seconds_sum:load", 0.0)
           / max(1.0, waits.get("inference_gateway_adapter_wait_seconds_count:load", 0.0)),
           "held_for_room": waits.get("inference_gateway_adapter_wait_seconds_count:room", 0.0) / count,
           "gateway_counts": waits}
    print(f"{mode:6} {preloaded:4} TTFT p50 {row['ttft_p50']:.3f} p99 {row['ttft_p99']:.3f} s  loads/min "
          f"{row['loads_per_minute']:.0f}  waited for a slot load {row['waited_for_load']:.0%}  gateway loads "
          f"{row['gateway_loads']:.0f}, waited for one {row['waited_for_gateway_load']:.0%} (mean "
          f"{row['gateway_load_wait_mean']:.3f} s), held for room {row['held_for_room']:.0%}  failed {row['failed']}",
          flush=True)
    return row


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", type=int, default=4)
    parser.add_argument("--adapters", type=int, default=16)
    parser.add_argument("--max-loras", type=int, default=4)
    parser.add_argument("--zipf", type=float, default=1.0, help="popularity exponent of the adapters")
    parser.add_argument("--rate", type=float, default=8.0, help="requests per second, open loop")
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--prompt-words", type=int, default=64)
    parser.add_argument("--output-tokens", type=int, default=32)
    parser.add_argument("--itl", type=float, default=0.02)
    parser.add_argument("--max-num-seqs", type=int, default=16)
    parser.add_argument("--lora-load-seconds", type=float, default=0.3, help="bringing an adapter into a slot")
    parser.add_argument("--lora-register-seconds", type=float, default=0.2,
                        help="an engine's POST /v1/load_lora_adapter (reading the adapter's files)")
    parser.add_argument("--modes", type=lambda s: s.split(","), default=list(MODES))
    parser.add_argument("--preloaded", type=lambda s: s.split(","), default=list(PRELOADED),
                        help="all: every adapter registered on every engine first (the operator's loop); none: "
                             "the gateway loads each where it sends it")
    parser.add_argument("--serve-gateway", help=argparse.SUPPRESS)
    parser.add_argument("--engine-ports", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    return parser.parse_args()


async def main(args: argparse.Namespace) -> None:
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "serve_gateway", "engine_ports")}
    started = provenance.begin(settings=settings)
    rows = [await run_mode(mode, preloaded, args) for preloaded in args.preloaded for mode in args.modes]
    results = {"provenance": provenance.finish(started), "settings": settings, "modes": rows}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"lora-{stamp}.json"
    path.write_text(json.dumps(results, indent=1, default=str))
    print(f"wrote {path}; load {results['provenance']['load_average_before']} -> "
          f"{results['provenance']['load_average_after']}")


if __name__ == "__main__":
    parsed = parse()
    if parsed.serve_gateway:
        from inference_operator.gateway.__main__ import run_loop
        run_loop(serve_gateway(parsed.serve_gateway, [int(p) for p in parsed.engine_ports.split(",")],
                               parsed.adapters), True)
    else:
        asyncio.run(main(parsed))
