"""memprofile.py: the operator's allocation sites on SIGUSR1, only when asked (benchmarks)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from inference_operator.runtime.memprofile import start_if_asked

PROBE = """
import os, signal, sys, time
from inference_operator.runtime.memprofile import start_if_asked
assert start_if_asked()
def hoard():
    return [bytes(1000) for _ in range(20000)]  # about 20 MB from this line (6)
kept = hoard()  # its caller (7)
os.kill(os.getpid(), signal.SIGUSR1)
print("done", flush=True)
"""


def test_sigusr1_writes_the_largest_allocation_sites(tmp_path: Path) -> None:
    out = tmp_path / "top.json"
    env = {**os.environ, "INFERENCE_OPERATOR_TRACEMALLOC": "4", "INFERENCE_OPERATOR_TRACEMALLOC_OUT": str(out)}
    subprocess.run([sys.executable, "-c", PROBE], env=env, check=True, timeout=60, capture_output=True)
    report = json.loads(out.read_text())
    assert report["traced_mb"] >= 19
    first = report["top"][0]
    assert first["site"] == "<string>:6" and 19 <= first["mb"] <= 23 and first["blocks"] >= 20000
    assert report["top_with_callers"][0] | {"mb": 0} == {"site": "<string>:6", "caller": "<string>:7", "mb": 0,
                                                         "blocks": first["blocks"]}


def test_nothing_is_traced_unless_asked() -> None:
    assert not start_if_asked({})
    assert not start_if_asked({"INFERENCE_OPERATOR_TRACEMALLOC": "yes"})
    assert signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None)
