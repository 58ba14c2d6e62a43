"""A/B of two checkouts' gateways in the same minutes: each round attacks the Go proxy, gateway A and gateway B
in turn, with bench_gateway.py's pinning (proxies on CPU 0, model and vegeta on CPU 1) and its max-rate attack
(64 connections); requests per CPU-second of each hop. On a shared, loaded machine the load moves between
runs more than the code does: alternating within one run puts both under the same load.

Usage: .venv/bin/python bench/gateway-candidates/ab.py ROUNDS SECONDS DIR_A DIR_B
Writes bench/results/gateway-ab-<time>.json with each checkout's commit and dirty flag.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "hack"))
import bench_gateway as bg  # noqa: E402
import provenance  # noqa: E402


def main() -> None:
    rounds, seconds = provenance.odd_runs(sys.argv[1]), float(sys.argv[2])
    dirs = {"a": Path(sys.argv[3]).resolve(), "b": Path(sys.argv[4]).resolve()}
    started = provenance.begin()
    body = Path("/tmp/gateway-ab-body.json")
    body.write_text(json.dumps({"inputs": "x" * 242}))
    model, model_port = bg.start([str(bg.TOOLS / "goproxy"), "-model"], "1")
    procs = [model]
    try:
        hops = {"go-proxy": bg.start([str(bg.TOOLS / "goproxy"), "-target", f"http://127.0.0.1:{model_port}"], "0")}
        for name, where in dirs.items():
            hops[name] = bg.start([sys.executable, str(where / "hack" / "bench_gateway.py"), "--serve-gateway",
                                   str(model_port)], "0")
        procs += [p for p, _ in hops.values()]
        urls = {name: f"http://127.0.0.1:{port}" + ("/predict" if name == "go-proxy" else
                                                   f"/v1/infers/{bg.SERVICE_ID}/predict")
                for name, (_, port) in hops.items()}
        os.environ["GOMAXPROCS"] = "1"
        for url in urls.values():
            bg.attack(url, body, 1, 0, 8, "1")
        per_cpu: dict[str, list[float]] = {name: [] for name in urls}
        for _ in range(rounds):
            for name, url in urls.items():
                before = bg.cpu_seconds(hops[name][0].pid)
                result = bg.attack(url, body, seconds, 0, 64, "1")
                per_cpu[name].append(result["requests"] / max(1e-9, bg.cpu_seconds(hops[name][0].pid) - before))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    figures = {name: provenance.median_spread(values, 0) for name, values in per_cpu.items()}
    ratios = {name: provenance.median_spread([g / p for g, p in zip(per_cpu[name], per_cpu["go-proxy"], strict=True)])
              for name in dirs}
    result = {"provenance": provenance.finish(started),
              "checkouts": {name: {"dir": str(where), **provenance.git_state(where)} for name, where in dirs.items()},
              "requests_per_cpu_second": figures, "over_go_proxy_per_cpu_second": ratios}
    path = bg.RESULTS / f"gateway-ab-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("requests_per_cpu_second", "over_go_proxy_per_cpu_second")}, indent=1))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
