"""The cloud API server as users run it (`python -m inference_operator.cloudapi`) against the local cluster,
access keys as CLOUDAPI.md section 2 defines them, and calls signed by huaweicloudsdkcore's own Signer.

The fixtures `cloudapi` (one server per session) and `access_key` (a factory: a ServiceAccount, the RBAC
it acts with, a credential Secret, and a wait until the server knows the key) are declared in
tests/e2e/conftest.py over `serve` and `key_factory` here.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from kubernetes import client

from conftest import REPO, _wait, free_port

CREDENTIALS_NAMESPACE = "cloudapi-keys"
# What a team's deployer needs to manage services through the cloud API: its InferenceServices, the model
# registry's ConfigMaps, and reading the services' Events.
DEPLOYER_RULES = [
    {"apiGroups": ["inference.io"], "resources": ["inferenceservices"],
     "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "create", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list"]},
]


@dataclass
class CloudApi:
    port: int
    metrics_port: int
    proc: subprocess.Popen[bytes]
    credentials_namespace: str

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _ensure_namespace(core: client.CoreV1Api, name: str) -> None:
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    except client.ApiException as exc:
        if exc.status != 409:
            raise


def serve(cluster: str, api: client.ApiClient) -> Iterator[CloudApi]:
    """One cloud API server for the session, on free ports, with the cluster's admin kubeconfig (its own
    least-privilege RBAC is the chart's test: test_cloudapi_chart.py)."""
    _ensure_namespace(client.CoreV1Api(api), CREDENTIALS_NAMESPACE)
    port, metrics_port = free_port(), free_port()
    log = open(REPO / ".cluster" / "logs" / "cloudapi-e2e.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([sys.executable, "-m", "inference_operator.cloudapi", "--host", "127.0.0.1",
                             "--port", str(port), "--metrics-port", str(metrics_port), "--credentials-namespace",
                             CREDENTIALS_NAMESPACE, "--gateway-url", "http://gateway.test.local"],
                            env={**os.environ, "KUBECONFIG": cluster}, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: healthy(metrics_port), 60, "the cloud API server's /healthz")
        yield CloudApi(port, metrics_port, proc, CREDENTIALS_NAMESPACE)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass(frozen=True)
class Key:
    access_key: str
    secret_key: str
    identity: str
    namespace: str
    secret_name: str


def modelarts_call(server: CloudApi, key: Key | None, method: str, path: str, body: Any = None,
                   query: list[tuple[str, Any]] | None = None, headers: dict[str, str] | None = None,
                   secret_key: str | None = None) -> requests.Response:
    """A request signed by huaweicloudsdkcore's Signer, unchanged (as the SDK's clients sign), sent to the server."""
    data = json.dumps(body).encode() if body is not None else b""
    request = SdkRequest(method=method, schema="http", host=server.host, resource_path=path,
                         query_params=list(query or []),
                         header_params={"Content-Type": "application/json", **(headers or {})}, body=data)
    if key is not None:
        credentials = BasicCredentials(key.access_key, secret_key or key.secret_key)
        request = Signer(credentials).sign(request)
    url = f"{server.url}{request.uri if key is not None else path}"
    return requests.request(method, url, headers=request.header_params, data=request.body or None, timeout=30)


READER_RULES = [{"apiGroups": ["inference.io", ""], "resources": ["inferenceservices", "configmaps", "events"],
                 "verbs": ["get", "list"]}]


def _bind(rbac: client.RbacAuthorizationV1Api, namespace: str, sa: str, identity: str,
          rules: list[dict[str, Any]]) -> None:
    rbac.create_namespaced_role(namespace, {"metadata": {"name": f"{sa}-deployer"}, "rules": rules})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": f"{sa}-deployer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{sa}-deployer"},
        "subjects": [{"kind": "User", "name": identity}]})


def key_factory(cloudapi: CloudApi, api: client.ApiClient) -> Iterator[Callable[..., Key]]:
    """access_key(namespace, sa="deployer", grant=True, rules=DEPLOYER_RULES): a ServiceAccount in `namespace`
    (the key's identity and default namespace), a Role of `rules` bound to it when `grant`, and a credential
    Secret."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    made: list[str] = []

    def make(namespace: str, sa: str = "deployer", grant: bool = True,
             rules: list[dict[str, Any]] | None = None) -> Key:
        identity = f"system:serviceaccount:{namespace}:{sa}"
        core.create_namespaced_service_account(namespace, {"metadata": {"name": sa}})
        if grant:
            _bind(rbac, namespace, sa, identity, rules or DEPLOYER_RULES)
        ak, sk = secrets.token_hex(10).upper(), secrets.token_urlsafe(30)
        name = f"key-{namespace}-{sa}"[:60]
        core.create_namespaced_secret(cloudapi.credentials_namespace, {
            "metadata": {"name": name, "labels": {"inference.io/cloud-credentials": "true"},
                         "annotations": {"inference.io/identity": identity, "inference.io/namespace": namespace}},
            "data": {"accessKey": base64.b64encode(ak.encode()).decode(),
                     "secretKey": base64.b64encode(sk.encode()).decode()}})
        made.append(name)
        key = Key(ak, sk, identity, namespace, name)
        _wait(lambda: "unknown access key" not in modelarts_call(cloudapi, key, "GET",
                                                                  f"/v1/{namespace}/services").text,
              30, f"the server to learn access key {ak}")
        return key

    yield make
    for name in made:
        with contextlib.suppress(client.ApiException):
            core.delete_namespaced_secret(name, cloudapi.credentials_namespace)


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    return _wait(check, timeout, what, interval=0.3)


__all__ = ["CREDENTIALS_NAMESPACE", "DEPLOYER_RULES", "READER_RULES", "CloudApi", "Key", "healthy", "key_factory",
           "modelarts_call", "serve", "wait_until"]
