"""Gateway processes for the e2e tests, each answering for one namespace, and the loopback model server their
services' FQDN EndpointSlices point at; a pass-through that counts the operator's reads of a gateway's counts."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from conftest import REPO, OperatorProcess

MODEL_HOST = "model.counts.e2e.test"  # answered with 127.0.0.1 by each gateway's --resolve
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def host_ip() -> str:
    """This machine's address as seen on its first non-loopback interface (EndpointSlices refuse loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            address = sock.getsockname()[0]
        except OSError:
            address = "127.0.0.1"
    if address.startswith("127."):
        pytest.skip("no non-loopback IPv4 address on this machine for the gateways' EndpointSlices")
    return address


class CountsReads:
    """A pass-through in front of one gateway's /-/counts that counts the operator's reads: the observable
    fact that a counting interval has gone by (the operator reads, stores, writes, then sleeps and reads again,
    so read n+1 means the pass over read n is finished)."""

    def __init__(self, target_port: int) -> None:
        self.reads = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                try:
                    with DIRECT.open(f"http://127.0.0.1:{target_port}{self.path}", timeout=5) as resp:
                        status, headers, body = resp.status, resp.headers, resp.read()
                except urllib.error.HTTPError as exc:
                    status, headers, body = exc.code, exc.headers, exc.read()
                except OSError:
                    self.send_error(502)
                    return
                self.send_response(status)
                for name in ("Content-Type", "X-Gateway-Instance"):
                    if headers.get(name):
                        self.send_header(name, headers[name])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                owner.reads += 1

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("0.0.0.0", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class GatewayProcess:
    port: int
    metrics_port: int
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_gateway(cluster: str, namespace: str, name: str, wait_for, final_read: float = 0) -> GatewayProcess:
    port, metrics_port = free_port(), free_port()
    log = open(REPO / ".cluster" / "logs" / f"gateway-counts-{name}.log", "ab")  # noqa: SIM115 - the child's
    proc = subprocess.Popen([sys.executable, "-m", "inference_operator.gateway", "--host", "0.0.0.0",
                             "--port", str(port), "--metrics-port", str(metrics_port), "-n", namespace,
                             "--kubeconfig", cluster, "--resolve", f"{MODEL_HOST}=127.0.0.1",
                             "--final-read-seconds", str(final_read)], stdout=log, stderr=subprocess.STDOUT)
    log.close()

    def healthy() -> bool:
        try:
            with DIRECT.open(f"http://127.0.0.1:{metrics_port}/healthz", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    wait_for(healthy, 30, f"gateway {name} to list what it serves")
    return GatewayProcess(port, metrics_port, proc)


def counting_operator(cluster: str, namespace: str, counts_port: int, log_name: str) -> OperatorProcess:
    """An operator of the test's namespace reading one gateway's /-/counts (on this host) every second."""
    return OperatorProcess(cluster, free_port(), namespace, ("--namespace", namespace), log_name=log_name,
                           env={"INFERENCE_OPERATOR_GATEWAY_COUNTS_URL": f"http://127.0.0.1:{counts_port}/-/counts",
                                "INFERENCE_OPERATOR_COUNTS_INTERVAL_SECONDS": "1"})


def serve_from_model_server(api: client.ApiClient, namespace: str, service: str, model_name: str, port: int) -> None:
    """An FQDN EndpointSlice of the model's Service, pointing at the model server (the kwok pods never get ready)."""
    client.DiscoveryV1Api(api).create_namespaced_endpoint_slice(namespace, {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "FQDN",
        "metadata": {"name": f"{service}-{model_name}-e2e", "labels": {
            "kubernetes.io/service-name": f"{service}-{model_name}", "inference.io/service": service,
            "inference.io/model": model_name, "endpointslice.kubernetes.io/managed-by": "e2e-test"}},
        "endpoints": [{"addresses": [MODEL_HOST], "conditions": {"ready": True}}],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}]})


def call(base: str, uid: str, path: str = "/predict", headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(f"{base}/v1/infers/{uid}{path}", data=b"{}", method="POST",
                                     headers=headers or {})
    try:
        with DIRECT.open(request, timeout=10) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0  # no answer: refused or cut off


@contextmanager
def host_model_server(name: str) -> Iterator[int]:
    """tests/gateway/model_server.py on every interface, its port: a "hostlocal" pod's address (this
    machine's, at the model's port) reaches it, whether the real EndpointSlice controller or a test's own
    slice lists it."""
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "gateway" / "model_server.py"), "--name", name,
                             "--host", "0.0.0.0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("PORT "), line
    try:
        yield int(line.split()[1])
    finally:
        proc.terminate()
        proc.wait(10)
