"""Fault tests run on the local cluster like tests/e2e (its fixtures are reused here), plus a Toxiproxy
server for links that are slow, lossy or cut, and helpers to run operator replicas through it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "hack"))  # provenance.py: what every result file records of where it comes from


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_e2e = _load("e2e_conftest", REPO / "tests" / "e2e" / "conftest.py")
# The e2e fixtures, registered here too (pytest collects fixtures found in a conftest's namespace).
cluster, api, namespace, wait_for, crds = _e2e.cluster, _e2e.api, _e2e.namespace, _e2e.wait_for, _e2e.crds
OperatorProcess, free_port, localcluster = _e2e.OperatorProcess, _e2e.free_port, _e2e._localcluster

sys.path.insert(0, str(HERE))
from toxiproxy import Toxiproxy  # noqa: E402


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def toxiproxy_binary() -> Path:
    """Built once from the Go module proxy and cached with the cluster's binaries."""
    binary = localcluster().bin_dir() / "toxiproxy-server"
    if not binary.exists():
        subprocess.run(["bash", str(REPO / "hack" / "build-binaries.sh")], check=True)
    return binary


@pytest.fixture(scope="session")
def toxiproxy(cluster: str) -> Iterator[Toxiproxy]:
    server = Toxiproxy(toxiproxy_binary(), free_port(), REPO / ".cluster" / "logs" / "toxiproxy.log")
    server.start()
    yield server
    server.stop()
