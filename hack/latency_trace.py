#!/usr/bin/env python3
"""Where a new service's time goes: the operator's trace (INFERENCE_OPERATOR_TRACE=1, `hack/bench.py --phases
latency --trace`) joined with the benchmark client's moments of each service, stage by stage.

    .venv/bin/python hack/latency_trace.py [--log .cluster/logs/operator-bench.log] [--dir .cluster/latency-trace]

For each case (rate, run, quiet or churn) and each stage, the time from the previous stage, p50 / p90 / p99 over
the services, in ms. create -> Deployment: the client's create returned, the operator's watch event parsed (its
stream, before kopf), kopf's handler called, the pass submitted and started, the Deployment's request queued at
the connections, sent, answered, the client's watch showing the Deployment. pods ready -> running: the client
saw the Deployment ready, the operator's watch event of it, the status `running` built by a pass, its request
queued, sent, answered, the client's watch showing `running`; and how many of those passes began before the
pods were ready (they waited for the writes of the service's other children, its Service in the lane).
Both clocks are CLOCK_MONOTONIC of the same machine. A stage before its predecessor (the create's answer after
the operator's watch event) shows as a negative delta.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TRACE = re.compile(r"TRACE (\S+) (\S+) ([0-9.]+)")
Marks = list[tuple[float, str]]


def read_trace(log: Path) -> dict[str, Marks]:
    marks: dict[str, Marks] = {}
    with log.open(errors="replace") as lines:
        for line in lines:
            found = TRACE.search(line)
            if found:
                marks.setdefault(found[1], []).append((float(found[3]), found[2]))
    for stages in marks.values():
        stages.sort()
    return marks


def first(marks: Marks, after: float, test: Callable[[str], bool]) -> float | None:
    return next((t for t, stage in marks if t >= after and test(stage)), None)


def last_before(marks: Marks, before: float, test: Callable[[str], bool]) -> float | None:
    found = [t for t, stage in marks if t <= before and test(stage)]
    return found[-1] if found else None


def deployment_path(marks: Marks, created: float, seen: float | None) -> list[tuple[str, float | None]]:
    start = created - 5.0  # the operator's watch event may come before the create's answer
    event = first(marks, start, lambda s: s.startswith("event:InferenceService:ADDED"))
    handler = first(marks, event or start, lambda s: s.startswith("handler:InferenceService"))
    submit = first(marks, handler or start, lambda s: s.startswith("submit:"))
    pass_ = first(marks, submit or start, lambda s: s == "pass")
    queued = first(marks, pass_ or start, lambda s: s == "queued:Deployment")
    sent = first(marks, queued or start, lambda s: s == "sent:Deployment")
    answered = first(marks, sent or start, lambda s: s == "answered:Deployment")
    return [("created", created), ("watch event", event), ("kopf handler", handler), ("submitted", submit),
            ("pass started", pass_), ("Deployment queued", queued), ("Deployment sent", sent),
            ("Deployment answered", answered), ("client saw Deployment", seen)]


def running_path(marks: Marks, ready: float, running: float | None) -> list[tuple[str, float | None]]:
    start = ready - 5.0
    event = first(marks, start, lambda s: s.startswith("event:Deployment") and not s.endswith("ready=0"))
    status = first(marks, event or start, lambda s: s == "status:running")
    queued = first(marks, status or start, lambda s: s == "queued:InferenceService")
    sent = first(marks, queued or start, lambda s: s == "sent:InferenceService")
    answered = first(marks, sent or start, lambda s: s == "answered:InferenceService")
    return [("client saw ready", ready), ("watch event (ready)", event), ("status built", status),
            ("status queued", queued), ("status sent", sent),
            ("status answered", answered), ("client saw running", running)]


def pass_began_before(marks: Marks, ready: float) -> bool:
    """The pass that wrote `running` began before the pods were ready: it was still waiting for the writes of its
    service's other children (a Service in the lane), and the ready event folded into it."""
    event = first(marks, ready - 5.0, lambda s: s.startswith("event:Deployment") and not s.endswith("ready=0"))
    status = first(marks, event or ready - 5.0, lambda s: s == "status:running")
    began = last_before(marks, status, lambda s: s == "pass") if status is not None else None
    return began is not None and event is not None and began < event


def before_route_answered(marks: Marks, ready: float) -> bool:
    """`running` was written while its pass's HTTPRoute apply was still in flight (sent, not yet answered)."""
    event = first(marks, ready - 5.0, lambda s: s.startswith("event:Deployment") and not s.endswith("ready=0"))
    status = first(marks, event or ready - 5.0, lambda s: s == "status:running")
    if status is None:
        return False
    sent = last_before(marks, status, lambda s: s == "sent:HTTPRoute")
    answered = last_before(marks, status, lambda s: s == "answered:HTTPRoute")
    return sent is not None and (answered is None or answered < sent)


def service_path(marks: Marks, created: float, ready: float | None) -> list[tuple[str, float | None]]:
    """The service's own Service: its Deployment answered, its Service queued in the lane (kube.gate), sent,
    answered; then the client seeing its pods ready (a negative last delta: ready before the Service)."""
    start = created - 5.0
    answered = first(marks, start, lambda s: s == "answered:Deployment")
    lane = first(marks, answered or start, lambda s: s == "lane:Service")
    sent = first(marks, lane or start, lambda s: s == "sent:Service")
    done = first(marks, sent or start, lambda s: s == "answered:Service")
    return [("Deployment answered", answered), ("Service in the lane", lane), ("Service sent", sent),
            ("Service answered", done), ("client saw ready", ready)]


def waited_for_service(marks: Marks, ready: float) -> tuple[float, float] | None:
    """For a service whose Service was answered after its pods were ready: (ready event -> Service answered,
    Service answered -> status `running` built), in ms; else None."""
    event = first(marks, ready - 5.0, lambda s: s.startswith("event:Deployment") and not s.endswith("ready=0"))
    status = first(marks, event or ready - 5.0, lambda s: s == "status:running")
    if event is None or status is None:
        return None
    answered = last_before(marks, status, lambda s: s == "answered:Service")
    if answered is None or answered < event:
        return None
    return 1000 * (answered - event), 1000 * (status - answered)


def in_window(marks: Marks, start: float, end: float) -> Marks:
    """A case's marks: the same namespace and names serve every rate and run."""
    return [(t, stage) for t, stage in marks if start <= t <= end]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def stage_table(paths: list[list[tuple[str, float | None]]]) -> list[str]:
    if not paths:
        return ["(no service)"]
    names = [name for name, _ in paths[0]]
    rows = []
    for i in range(1, len(names)):
        deltas = [1000 * (p[i][1] - p[i - 1][1]) for p in paths if p[i][1] is not None and p[i - 1][1] is not None]
        total = [1000 * (p[i][1] - p[0][1]) for p in paths if p[i][1] is not None and p[0][1] is not None]
        rows.append(f"| {names[i - 1]} -> {names[i]} | {len(deltas)} | "
                    + " / ".join(f"{pct(deltas, q):.1f}" for q in (50, 90, 99))
                    + " | " + " / ".join(f"{pct(total, q):.1f}" for q in (50, 99)) + " |")
    return ["| stage | services | ms p50 / p90 / p99 | since the first, p50 / p99 |", "|---|---|---|---|", *rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", type=Path, default=REPO / ".cluster" / "logs" / "operator-bench.log")
    parser.add_argument("--dir", type=Path, default=REPO / ".cluster" / "latency-trace")
    parser.add_argument("--slowest", type=int, default=0, help="also list the N slowest services' marks")
    args = parser.parse_args()
    marks = read_trace(args.log)
    for path in sorted(args.dir.glob("*.json")):
        case = json.loads(path.read_text())
        if case["case"].startswith("floor"):
            continue
        ns = case["namespace"]
        created, seen = case["created"], case["deployment_seen"]
        ready, running = case["pods_ready"], case["running"]
        window = min(created.values()) - 5.0, max([*running.values(), *seen.values()]) + 5.0
        of = {name: in_window(marks.get(f"{ns}/{name}", []), *window) for name in created}
        to_deployment = [deployment_path(of[name], created[name], seen.get(name)) for name in created]
        to_running = [running_path(of[name], ready[name], running.get(name)) for name in created if name in ready]
        folded = sum(pass_began_before(of[name], ready[name]) for name in created if name in ready)
        print(f"\n## {case['rate']:g}/s run {case['run']} {case['case']}: create -> Deployment")
        print("\n".join(stage_table(to_deployment)))
        print(f"\n## {case['rate']:g}/s run {case['run']} {case['case']}: pods ready -> running")
        print("\n".join(stage_table(to_running)))
        early = sum(before_route_answered(of[name], ready[name]) for name in created if name in ready)
        print(f"\n{folded} of {len(to_running)}: `running` written by a pass begun before the pods were ready "
              "(still waiting for its other children's writes)")
        print(f"\n{early} of {len(to_running)}: `running` written while its pass's HTTPRoute apply was in flight")
        print(f"\n## {case['rate']:g}/s run {case['run']} {case['case']}: the service's own Service")
        print("\n".join(stage_table([service_path(of[name], created[name], ready.get(name)) for name in created])))
        waits = [w for w in (waited_for_service(of[name], ready[name]) for name in created if name in ready) if w]
        print(f"\n{len(waits)} of {len(to_running)}: the Service answered after the pods were ready; ready event -> "
              "Service answered " + " / ".join(f"{pct([w[0] for w in waits], q):.1f}" for q in (50, 90, 99))
              + " ms, Service answered -> `running` built " + " / ".join(f"{pct([w[1] for w in waits], q):.1f}"
                                                                    for q in (50, 90, 99)) + " ms (p50 / p90 / p99)")
        if args.slowest:
            worst = sorted(created, key=lambda n: seen.get(n, 1e18) - created[n])[-args.slowest:]
            for name in worst:
                base = created[name]
                print(f"{name}: " + ", ".join(f"{stage}@{1000 * (t - base):.0f}" for t, stage in of[name]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
