"""The local cluster as a pytest fixture: brought up once per session (or reused), a namespace per test.

It never skips: if the cluster cannot start, every e2e test errors with the reason.
"""

from __future__ import annotations

import importlib.util
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[2]


def _localcluster() -> Any:
    spec = importlib.util.spec_from_file_location("localcluster", REPO / "hack" / "localcluster.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cluster() -> str:
    """Start (or reuse) the local cluster; its kubeconfig path. SystemExit from the script = a failure."""
    lc = _localcluster()
    try:
        lc.up()
    except SystemExit as exc:  # the script reports why it could not start
        pytest.fail(f"local cluster could not start: {exc}", pytrace=False)
    os.environ["KUBECONFIG"] = str(lc.KUBECONFIG)
    return str(lc.KUBECONFIG)


@pytest.fixture(scope="session")
def api(cluster: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=cluster)


@pytest.fixture
def namespace(api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (children go with it)."""
    name = f"t-{request.node.name[:40].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    name = "".join(ch for ch in name if ch.isalnum() or ch == "-")
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    _wait(lambda: _has_default_sa(core, name), 30, f"default service account in {name}")
    yield name
    core.delete_namespace(name, propagation_policy="Background")


def _has_default_sa(core: client.CoreV1Api, ns: str) -> bool:
    try:
        core.read_namespaced_service_account("default", ns)
        return True
    except client.ApiException:
        return False


def _wait(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """wait_for(check, timeout, what): poll check() until truthy; fail with `what` otherwise."""
    return _wait
