"""Where the operator's memory goes, on demand (`make bench` reports it).

With INFERENCE_OPERATOR_TRACEMALLOC=<frames> the process traces its allocations from its first import
(tracemalloc costs time and memory: never in production), and each SIGUSR1 writes the largest
allocation sites, grouped by the innermost frame of this project or of a library, as JSON to
INFERENCE_OPERATOR_TRACEMALLOC_OUT (default /tmp/inference-operator-tracemalloc.json).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import tracemalloc
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

ENV_FRAMES = "INFERENCE_OPERATOR_TRACEMALLOC"
ENV_OUT = "INFERENCE_OPERATOR_TRACEMALLOC_OUT"
DEFAULT_OUT = "/tmp/inference-operator-tracemalloc.json"
TOP = 25


def start_if_asked(environ: Mapping[str, str] = os.environ) -> bool:
    """Trace allocations and answer SIGUSR1 when the environment asks for it; True if it did."""
    frames = environ.get(ENV_FRAMES, "")
    if not frames.isdigit() or int(frames) < 1:
        return False
    tracemalloc.start(min(int(frames), 64))
    out = Path(environ.get(ENV_OUT) or DEFAULT_OUT)

    def dump(_signum: int, _frame: FrameType | None) -> None:
        found = report(tracemalloc.take_snapshot())
        gc.collect()  # what of it was garbage in reference cycles, waiting for the collector
        found["traced_mb_after_gc"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
        out.write_text(json.dumps(found, indent=1))

    signal.signal(signal.SIGUSR1, dump)
    return True


def report(snapshot: tracemalloc.Snapshot, top: int = TOP) -> dict[str, Any]:
    """Traced totals and the `top` allocation sites (file:line of the allocating frame), largest first."""
    current, peak = tracemalloc.get_traced_memory()
    snapshot = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__),
                                       tracemalloc.Filter(False, "<frozen importlib._bootstrap*>")])
    stats = snapshot.statistics("lineno")
    out: dict[str, Any] = {
        "traced_mb": round(current / 2**20, 1), "traced_peak_mb": round(peak / 2**20, 1),
        "top": [{"site": f"{_short(s.traceback[0].filename)}:{s.traceback[0].lineno}",
                 "mb": round(s.size / 2**20, 2), "blocks": s.count} for s in stats[:top]]}
    if tracemalloc.get_traceback_limit() > 1:
        out["top_with_callers"] = with_callers(snapshot, top)
    return out


def with_callers(snapshot: tracemalloc.Snapshot, top: int = TOP) -> list[dict[str, Any]]:
    """Allocation sites grouped with the nearest frame of this project or of kopf that called them (else the
    nearest other line), when traced with more than one frame: the parser's strings and the generated
    `__init__`s of dataclasses (`<string>`) by who made them."""
    sizes: dict[tuple[str, str], list[int]] = {}
    for trace in snapshot.traces:
        frames = list(reversed(trace.traceback))  # the allocating frame first
        site = f"{_short(frames[0].filename)}:{frames[0].lineno}"
        callers = [f"{_short(f.filename)}:{f.lineno}" for f in frames[1:]
                   if "inference_operator/" in f.filename or "/kopf/" in f.filename]
        others = [f"{_short(f.filename)}:{f.lineno}" for f in frames[1:]]
        caller = next(iter(callers), next((other for other in others if other != site), ""))
        entry = sizes.setdefault((site, caller), [0, 0])
        entry[0] += trace.size
        entry[1] += 1
    largest = sorted(sizes.items(), key=lambda item: -item[1][0])[:top]
    return [{"site": site, "caller": caller, "mb": round(size / 2**20, 2), "blocks": blocks}
            for (site, caller), (size, blocks) in largest]


def _short(filename: str) -> str:
    """A path from its package on (site-packages/kopf/... -> kopf/...)."""
    for marker in ("site-packages/", "/operator/", "/lib/python"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename
