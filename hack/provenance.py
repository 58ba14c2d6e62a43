"""Where a result comes from: the one helper every result writer uses (hack/bench*.py, tests/faults/chaos.py).

A result file carries `provenance`: the commit and whether the tree differed from it, when the run began and
ended, the machine (cores, memory in MiB), the load average before and after (the machine is shared: a
reader judges a figure by the load it ran under), the cluster's settings and the exact command. Figures
repeated over runs are the median of an odd number of runs, with their spread (`median_spread`).
"""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
CLUSTER_PORTS = ("CLUSTER_ETCD_PORT", "CLUSTER_APISERVER_PORT", "CLUSTER_SCHEDULER_PORT", "CLUSTER_KWOK_PORT")


def git_state(repo: Path = REPO) -> dict[str, Any]:
    """The commit checked out and whether tracked files differ from it (untracked files are not counted:
    result files being written are untracked)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def memory_mib(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """The machine's memory in MiB (MemTotal, which /proc gives in KiB)."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    return {"cores": os.cpu_count(), "memory_mib": memory_mib(), "platform": platform.platform(),
            "python": platform.python_version()}


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def versions(path: Path = REPO / "hack" / "versions.env") -> dict[str, str]:
    """The pinned component versions (hack/versions.env)."""
    pinned: dict[str, str] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            pinned[key.strip()] = value.strip()
    return pinned


def cluster_settings(extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The local cluster's settings: pinned versions, ports given in the environment, and what the caller adds
    (nodes, the operator's settings)."""
    ports = {name: os.environ[name] for name in CLUSTER_PORTS if name in os.environ}
    return {"versions": versions(), "ports": ports, **(extra or {})}


def begin(command: Sequence[str] | None = None, settings: Mapping[str, Any] | None = None,
          cluster: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Provenance at the start of a run; `finish` completes it. `command` defaults to this process's argv,
    `settings` are the run's own (flags and environment that shape it)."""
    return {**git_state(), "started": now(), "machine": machine(), "load_average_before": load_average(),
            "command": shlex.join(command if command is not None else [sys.executable, *sys.argv]),
            "settings": dict(settings or {}), "cluster": dict(cluster) if cluster is not None else None}


def finish(provenance: Mapping[str, Any]) -> dict[str, Any]:
    """The provenance of a run at its end: the load average after and the end time added."""
    return {**provenance, "ended": now(), "load_average_after": load_average()}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def odd_runs(text: str) -> int:
    """An argparse type: a positive odd number of runs (the median is then one run's figure, not a pick)."""
    runs = int(text)
    if runs < 1 or runs % 2 == 0:
        raise ValueError(f"runs must be a positive odd number, not {runs}")
    return runs


def median_spread(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """The median of an odd number of runs' values, their min and max, and every value in run order."""
    if not values or len(values) % 2 == 0:
        raise ValueError(f"a median needs an odd number of runs, got {len(values)}")
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "runs": [round(v, digits) for v in values]}


def commit_label(provenance: Mapping[str, Any]) -> str:
    """The commit as a plot's title names it: 12 hex digits, `+dirty` when the tree differed."""
    commit = provenance.get("commit")
    return f"{commit[:12]}{'+dirty' if provenance.get('dirty') else ''}" if commit else "unknown commit"
