"""The operator process does not load the client libraries kopf would import if it could (lean.py)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, runpy, sys
sys.argv = ["inference-operator", "--help"]
try:
    runpy.run_module("inference_operator", run_name="__main__")
except SystemExit:
    pass
print(json.dumps({"kopf": "kopf" in sys.modules,
                  "loaded": sorted({m.split(".")[0] for m, v in sys.modules.items() if v is not None
                                    and m.split(".")[0] in ("kubernetes", "kubernetes_asyncio", "pykube")})}))
"""


def run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_python_m_inference_operator_loads_kopf_without_the_kubernetes_clients() -> None:
    assert run(PROBE) == {"kopf": True, "loaded": []}


def test_the_console_script_is_as_lean() -> None:
    probe = PROBE.replace('runpy.run_module("inference_operator", run_name="__main__")',
                          'from inference_operator.lean import main; main()')
    assert run(probe) == {"kopf": True, "loaded": []}
