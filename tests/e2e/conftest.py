"""The local cluster as a pytest fixture: brought up once per session (or reused), a namespace per test.

It never skips: if the cluster cannot start, every e2e test errors with the reason.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
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


def free_port() -> int:
    """A loopback port nobody listens on (several local clusters and test runs may share a machine)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """The operator as users run it (`python -m inference_operator`), against the local cluster."""

    def __init__(self, kubeconfig: str, metrics_port: int, namespace: str, extra_args: tuple[str, ...] = (),
                 log_name: str = "operator-e2e.log", env: dict[str, str] | None = None) -> None:
        self.kubeconfig, self.metrics_port, self.namespace = kubeconfig, metrics_port, namespace
        self.extra_args, self.extra_env = extra_args, env or {}
        self.proc: subprocess.Popen | None = None
        self.log_path = REPO / ".cluster" / "logs" / log_name

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": self.kubeconfig, "POD_NAMESPACE": self.namespace,
               "INFERENCE_OPERATOR_GATEWAY_BASE_URL": "http://gateway.test.local", **self.extra_env}
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "inference_operator", "--metrics-port", str(self.metrics_port),
             "--liveness", "", *self.extra_args], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:  # a loaded machine may take long to start Python, kopf and the login: the timeout only bounds failure
            _wait(self._metrics_up, 90, "the operator's /metrics endpoint")
        except AssertionError:
            self.stop()  # never leave a process behind that keeps working (and writing) after its test
            raise

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def _metrics_up(self) -> bool:
        try:
            return bool(self.metrics())
        except OSError:
            return False

    def metrics(self) -> dict[str, float]:
        """Samples of /metrics as {'name{labels}': value}."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                samples[key] = float(value)
        return samples

    def writes(self) -> float:
        """Every write the operator has sent to the API since it started."""
        return sum(v for k, v in self.metrics().items() if k.startswith("inference_operator_api_writes_total{"))


@pytest.fixture(scope="session")
def crds(cluster: str) -> None:
    lc = _localcluster()
    lc.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    lc.kubectl("wait", "--for=condition=Established", "crd/inferenceservices.inference.io", "--timeout=60s")


@pytest.fixture
def gateway_api(cluster: str) -> Iterator[None]:
    """Gateway API's and the InferencePool's real CRDs, as cluster-up installs them (again, if a test
    removed them), and left installed."""
    lc = _localcluster()
    lc.install_gateway_crds()
    yield
    lc.install_gateway_crds()


SESSION_OPERATORS: list[OperatorProcess] = []  # the session's operator, once a test asked for it


@pytest.fixture
def alone() -> Iterator[None]:
    """The test runs operators of its own (own settings, replicas, a Lease): the session's operator watches
    every namespace and would reconcile the test's services too, with other settings. It is stopped for
    the test and started again after it."""
    running = [proc for proc in SESSION_OPERATORS if proc.proc is not None]
    for proc in running:
        proc.stop()
    yield
    for proc in running:
        proc.start()


@pytest.fixture(scope="session")
def operator(cluster: str, crds: None, api: client.ApiClient) -> Iterator[OperatorProcess]:
    """One operator process for the session; tests that restart it get it back running."""
    ns = "inference-system"
    try:
        client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    proc = OperatorProcess(cluster, metrics_port=free_port(), namespace=ns)
    proc.start()
    SESSION_OPERATORS.append(proc)
    yield proc
    proc.stop()
    SESSION_OPERATORS.remove(proc)


@pytest.fixture(scope="session")
def cloudapi(cluster: str, crds: None, api: client.ApiClient) -> Iterator[Any]:
    """The cloud API server for the session (tests/e2e/cloudapi_fixtures.py)."""
    from cloudapi_fixtures import serve
    yield from serve(cluster, api)


@pytest.fixture
def access_key(cloudapi: Any, api: client.ApiClient) -> Iterator[Any]:
    """access_key(namespace, sa="deployer", grant=True, rules=...): a key acting as a new ServiceAccount."""
    from cloudapi_fixtures import key_factory
    yield from key_factory(cloudapi, api)
