"""Where the operator's memory goes, on demand (`make bench` reports it; issue 14).

With INFERENCE_OPERATOR_TRACEMALLOC=<frames> the process traces its allocations from its first import
(tracemalloc costs time and memory: never in production), and each SIGUSR1 writes the largest
allocation sites, grouped by the innermost frame of this project or of a library, as JSON to
INFERENCE_OPERATOR_TRACEMALLOC_OUT (default /tmp/inference-operator-tracemalloc.json).
"""

from __future__ import annotations

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
        out.write_text(json.dumps(report(tracemalloc.take_snapshot()), indent=1))

    signal.signal(signal.SIGUSR1, dump)
    return True


def report(snapshot: tracemalloc.Snapshot, top: int = TOP) -> dict[str, Any]:
    """Traced totals and the `top` allocation sites (file:line of the allocating frame), largest first."""
    current, peak = tracemalloc.get_traced_memory()
    snapshot = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__),
                                       tracemalloc.Filter(False, "<frozen importlib._bootstrap*>")])
    stats = snapshot.statistics("lineno")
    return {"traced_mb": round(current / 2**20, 1), "traced_peak_mb": round(peak / 2**20, 1),
            "top": [{"site": f"{_short(s.traceback[0].filename)}:{s.traceback[0].lineno}",
                     "mb": round(s.size / 2**20, 2), "blocks": s.count} for s in stats[:top]]}


def _short(filename: str) -> str:
    """A path from its package on (site-packages/kopf/... -> kopf/...)."""
    for marker in ("site-packages/", "/operator/", "/lib/python"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename
