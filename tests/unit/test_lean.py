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


def test_kopf_takes_the_blanked_clients_as_absent() -> None:
    """lean.py blanks the clients in sys.modules (docs/architecture.md, "Where the operator goes around kopf"):
    kopf must still import, and fall back to its stand-ins for their model classes, as if not installed."""
    probe = """
import json
from inference_operator.lean import skip_optional_clients
skip_optional_clients()
import kopf
from kopf._cogs.helpers import thirdparty
print(json.dumps({"settings": type(kopf.OperatorSettings()).__name__,
                  "stand_ins": [thirdparty.V1ObjectMetaSync is None, thirdparty.V1ObjectMetaAsync is None]}))
"""
    assert run(probe) == {"settings": "OperatorSettings", "stand_ins": [True, True]}
