"""Phase `latency` of hack/bench.py (`make bench-latency`): a new service's latency at steady rates, ours beside
the reflex floor on the same cluster, quiet and while another namespace's services are deleted.

For each rate (--latency-rates, services per rate --latency-services), each run (--runs):
  quiet          ours: services created at the rate, nothing else going on
  floor          the reflex client (Bench.latency_ceiling) at the same rate: the least a controller can do
  churn          ours again while namespace bench-doomed, --churn-services running services made just before
                 (a burst through the operator), is deleted
  floor churn    the reflex client while another bench-doomed is deleted (the operator running, as in churn)
Each figure (create -> Deployment seen, pods ready -> `running`, p50 / p90 / p99) is the median of the runs,
every run beside it, and p99 / floor's p99 per run. With --trace the operator logs its stages
(INFERENCE_OPERATOR_TRACE=1, operator/inference_operator/trace.py) and each case's per-service moments go to
.cluster/latency-trace/ for hack/latency_trace.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


CASES = ("quiet", "floor", "churn", "floor_churn")
TRACE_DIR_NAME = "latency-trace"
FIGURES = ("create_to_deployment_ms", "pods_ready_to_running_ms")


async def phase_latency(args: Any, bench: Any, operator: Any, trace_dir: Path | None) -> dict[str, Any]:
    rates = [float(r) for r in str(args.latency_rates).split(",") if r.strip()]
    counts = [int(n) for n in str(args.latency_services).split(",") if n.strip()]
    if len(counts) == 1:
        counts *= len(rates)
    if len(counts) != len(rates):
        raise SystemExit("--latency-services: one count, or one per rate of --latency-rates")
    out: dict[str, Any] = {"churn_services": args.churn_services, "by_rate": {}}
    for rate, n in zip(rates, counts, strict=True):
        runs = []
        for run in range(1, args.runs + 1):
            runs.append(await one_run(args, bench, operator, rate, n, run, trace_dir))
        out["by_rate"][f"{rate:g}"] = summary(runs) | {"services": n}
    return out


async def one_run(args: Any, bench: Any, operator: Any, rate: float, n: int, run: int,
                  trace_dir: Path | None) -> dict[str, Any]:
    seconds = n / rate
    result: dict[str, Any] = {}
    for case in CASES:
        ns = f"bench-lat-{case.replace('_', '-')}"
        doomed: asyncio.Task[None] | None = None
        started = time.monotonic()
        if case.endswith("churn"):
            await bench.namespace("bench-doomed")
            print(f"  {rate:g}/s run {run}: {args.churn_services} services to delete ...", flush=True)
            await bench.burst("bench-doomed", args.churn_services)
        await operator.wait_quiet()
        await bench.namespace(ns)
        print(f"  {rate:g}/s run {run}: {case}, {n} services ...", flush=True)
        if case.endswith("churn"):
            doomed = asyncio.create_task(bench.delete_namespace("bench-doomed"))
        cpu_before, wall_before = cpu_seconds(operator.proc.pid), time.monotonic()
        if case.startswith("floor"):
            figures = await bench.latency_ceiling(ns, rate, seconds)
        else:
            figures = await bench.latency(ns, rate, seconds)
        # the operator's share of a core meanwhile: its own work (the floor's cases: the deletion's events alone)
        figures["operator_cpu_share"] = round((cpu_seconds(operator.proc.pid) - cpu_before)
                                              / (time.monotonic() - wall_before), 3)
        if doomed is not None:
            figures |= {"deletion_finished_first": doomed.done(),
                        "seconds_since_deletion_began": round(time.monotonic() - started, 1)}
            await doomed
        print("   ", json.dumps(figures), flush=True)
        result[case] = figures
        if trace_dir is not None:
            trace_dir.mkdir(parents=True, exist_ok=True)
            (trace_dir / f"{rate:g}-{run}-{case}.json").write_text(json.dumps(
                {"namespace": ns, "case": case, "rate": rate, "run": run, **bench.last_moments}))
        await bench.delete_namespace(ns)
    return result


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each case's figures as the median of the runs, the runs' values beside them; p99 against the floor."""
    out: dict[str, Any] = {}
    for case in CASES:
        out[case] = {figure: {q: statistics.median(r[case][figure][q] for r in runs) for q in (50, 90, 99)}
                     for figure in FIGURES}
        out[case]["runs"] = [{figure: r[case][figure] for figure in FIGURES} for r in runs]
    for case, floor in (("quiet", "floor"), ("churn", "floor_churn"), ("churn", "floor")):
        key = f"p99_{case}_over_{floor}"
        out[key] = {figure: [round(r[case][figure][99] / r[floor][figure][99], 2) if r[floor][figure][99] else None
                             for r in runs] for figure in FIGURES}
    return out


def table(latency: dict[str, Any]) -> str:
    """The phase as a Markdown table: p50 / p99 (median of the runs, [each run's p99]) per case and rate."""
    lines = ["| rate | case | create -> Deployment p50 / p99 ms [runs' p99] | pods ready -> running p50 / p99 ms "
             "[runs' p99] |", "|---|---|---|---|"]
    for rate, by_case in latency["by_rate"].items():
        for case in CASES:
            cells = []
            for figure in FIGURES:
                median = by_case[case][figure]
                spread = ", ".join(f"{r[figure][99]:g}" for r in by_case[case]["runs"])
                cells.append(f"{median[50]:g} / {median[99]:g} [{spread}]")
            lines.append(f"| {rate}/s | {case} | {cells[0]} | {cells[1]} |")
        for key in ("p99_quiet_over_floor", "p99_churn_over_floor_churn", "p99_churn_over_floor"):
            ratios = by_case[key]
            lines.append(f"| {rate}/s | {key} (target <= 2) | {ratios['create_to_deployment_ms']} | "
                         f"{ratios['pods_ready_to_running_ms']} |")
    return "\n".join(lines)
