#!/usr/bin/env python3
"""The cost of one routing decision (gateway/picker.py) at 1,000 endpoints: p50/p99 per policy, in µs.

What a request adds when its model is routed by load or prefix: reading its prompt's leading words from the
decoded body, and the pick among the model's endpoints, each with requests in flight and an engine reading.
The target is p99 <= 1 ms. Both wall time and the thread's CPU time are printed: on a shared machine the
wall time's tail is mostly the process waiting for a core.
Usage: python hack/bench_picker.py [--endpoints 1000] [--decisions 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
from inference_operator.api.states import Routing  # noqa: E402
from inference_operator.gateway.entries import Endpoint, ModelRoute  # noqa: E402
from inference_operator.gateway.picker import Picker, prompt_prefix  # noqa: E402

BACKEND = ("bench", "svc")


def measure(policy: Routing, endpoints: tuple[Endpoint, ...], decisions: int) -> dict[str, float]:
    rng, picker = random.Random(7), Picker()
    for endpoint in endpoints:
        for _ in range(rng.randrange(4)):
            picker.begin(endpoint, BACKEND)
        picker.loads.record(endpoint, f"vllm:num_requests_running {rng.randrange(8)}\n", picker.own(endpoint))
    model = ModelRoute("m", 100, "svc", "m", True, routing=policy)
    bodies = [{"messages": [{"role": "system", "content": " ".join(f"g{g}w{i}" for i in range(2048))},
                            {"role": "user", "content": " ".join(f"q{g}x{i}" for i in range(256))}]}
              for g in range(32)]
    picker.pick(model, BACKEND, endpoints, prompt_prefix(bodies[0]), rng)  # the ring is built once per endpoint set
    costs, cpu = [], []
    for n in range(decisions):
        document = bodies[n % len(bodies)]
        started, used = time.perf_counter(), time.thread_time()
        chosen = picker.pick(model, BACKEND, endpoints, prompt_prefix(document), rng)
        cpu.append(time.thread_time() - used)
        costs.append(time.perf_counter() - started)
        assert chosen is not None
        picker.begin(chosen, BACKEND)
        picker.end(rng.choice(endpoints), BACKEND)
    return {"wall": percentiles(costs), "cpu": percentiles(cpu)}


def percentiles(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"p50_us": round(values[len(values) // 2] * 1e6, 1),
            "p99_us": round(values[int(len(values) * 0.99)] * 1e6, 1), "max_us": round(values[-1] * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--decisions", type=int, default=20000)
    args = parser.parse_args()
    endpoints = tuple(Endpoint(f"10.{i // 250}.{i % 250}.1", 8000) for i in range(args.endpoints))
    result = {policy.value: measure(policy, endpoints, args.decisions)
              for policy in (Routing.LEAST_LOAD, Routing.PREFIX)}
    print(json.dumps({"endpoints": args.endpoints, "decisions": args.decisions, "load": os.getloadavg(),
                      "decision_cost": result}))


if __name__ == "__main__":
    main()
