"""The cloud API server under the chart's own ServiceAccount and RBAC (never the admin kubeconfig): a key
whose identity the chart names works, within that identity's RBAC; a key naming any other identity is
refused by the API server's impersonation check, and nothing is written; the server's account itself may
do nothing else (kubectl auth can-i)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cloudapi_fixtures import DEPLOYER_RULES, CloudApi, Key, healthy, modelarts_call
from kubernetes import client

from conftest import REPO, _localcluster, _wait, free_port

CHART = REPO / "charts" / "inference-operator"
RELEASE = "cloudapi-chart"
NAME = f"{RELEASE}-inference-operator-cloud-api"
LC = _localcluster()


def kubectl(*args: str, kubeconfig: Path | None = None, check: bool = True, input: str | None = None) -> str:
    done = subprocess.run([str(LC.bin_dir() / "kubectl"), f"--kubeconfig={kubeconfig or LC.KUBECONFIG}", *args],
                          capture_output=True, text=True, timeout=120, input=input)
    assert not check or done.returncode == 0, done.stderr
    return done.stdout


def rendered(home: str, keys: str, team: str) -> list[dict[str, Any]]:
    out = subprocess.run([str(LC.bin_dir() / "helm"), "template", RELEASE, str(CHART), "-n", home,
                          "--kube-version", "1.35.4", "--set", "cloudApi.enabled=true",
                          "--set", f"cloudApi.credentialsNamespace={keys}",
                          "--set", f"cloudApi.identities={{system:serviceaccount:{team}:deployer}}",
                          "--show-only", "templates/cloudapi-rbac.yaml",
                          "--show-only", "templates/cloudapi-serviceaccount.yaml"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def token_kubeconfig(namespace: str, account: str, path: Path) -> Path:
    token = kubectl("create", "token", account, "-n", namespace, "--duration=1h").strip()
    cluster = yaml.safe_load(LC.KUBECONFIG.read_text())["clusters"][0]["cluster"]
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "l", "cluster": {"server": cluster["server"],
                                               "certificate-authority-data": cluster["certificate-authority-data"]}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "l", "user": "u"}}]}))
    return path


@pytest.fixture(scope="module")
def setup(cluster: str, crds: None, api: client.ApiClient, tmp_path_factory: pytest.TempPathFactory,
          ) -> Iterator[dict[str, Any]]:
    suffix = uuid.uuid4().hex[:5]
    home, keys, team = f"cac-home-{suffix}", f"cac-keys-{suffix}", f"cac-team-{suffix}"
    core = client.CoreV1Api(api)
    for ns in (home, keys, team):
        core.create_namespace({"metadata": {"name": ns}})
    _wait(lambda: kubectl("get", "sa", "default", "-n", home, check=False), 30, "default service account")
    docs = rendered(home, keys, team)
    kubectl("apply", "--server-side", "-f", "-", input="\n---\n".join(json.dumps(d) for d in docs))
    kubeconfig = token_kubeconfig(home, NAME, tmp_path_factory.mktemp("cloudapi") / "kubeconfig")
    port, metrics = free_port(), free_port()
    log = open(REPO / ".cluster" / "logs" / "cloudapi-chart-e2e.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([sys.executable, "-m", "inference_operator.cloudapi", "--host", "127.0.0.1", "--port",
                             str(port), "--metrics-port", str(metrics), "--credentials-namespace", keys],
                            env={**os.environ, "KUBECONFIG": str(kubeconfig)}, stdout=log, stderr=subprocess.STDOUT)
    try:
        server = CloudApi(port, metrics, proc, keys)
        _wait(lambda: healthy(metrics), 60, "the cloud API's /healthz under its own account (the keys listed)")
        yield {"server": server, "home": home, "keys": keys, "team": team, "kubeconfig": kubeconfig, "api": api}
    finally:
        proc.terminate()
        proc.wait(15)
        kubectl("delete", "clusterrole,clusterrolebinding", NAME, "--ignore-not-found")
        for ns in (home, keys, team):
            core.delete_namespace(ns)


def make_key(setup: dict[str, Any], account: str) -> Key:
    core, rbac = client.CoreV1Api(setup["api"]), client.RbacAuthorizationV1Api(setup["api"])
    team, identity = setup["team"], f"system:serviceaccount:{setup['team']}:{account}"
    core.create_namespaced_service_account(team, {"metadata": {"name": account}})
    rbac.create_namespaced_role(team, {"metadata": {"name": account}, "rules": DEPLOYER_RULES})
    rbac.create_namespaced_role_binding(team, {"metadata": {"name": account}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": team}]})
    ak, sk = secrets.token_hex(8).upper(), secrets.token_urlsafe(24)
    core.create_namespaced_secret(setup["keys"], {
        "metadata": {"name": account, "labels": {"inference.io/cloud-credentials": "true"},
                     "annotations": {"inference.io/identity": identity, "inference.io/namespace": team}},
        "data": {"accessKey": base64.b64encode(ak.encode()).decode(),
                 "secretKey": base64.b64encode(sk.encode()).decode()}})
    key = Key(ak, sk, identity, team, account)
    _wait(lambda: "unknown access key" not in modelarts_call(setup["server"], key, "GET", f"/v1/{team}/services").text,
          60, "the server (under its own account) to learn the key")
    return key


def test_a_named_identity_works_within_its_rbac(setup: dict[str, Any]) -> None:
    key, team = make_key(setup, "deployer"), setup["team"]
    model = modelarts_call(setup["server"], key, "POST", f"/v1/{team}/models", {
        "model_name": "m", "model_version": "1", "source_location": "registry.example.com/m:1"})
    assert model.status_code == 200, model.text
    made = modelarts_call(setup["server"], key, "POST", f"/v1/{team}/services", {
        "service_name": "chart-svc", "infer_type": "real-time",
        "config": [{"model_id": model.json()["model_id"], "specification": "modelarts.vm.cpu.2u", "weight": 100}]})
    assert made.status_code == 200, made.text
    elsewhere = modelarts_call(setup["server"], key, "GET", f"/v1/{setup['home']}/services")
    assert elsewhere.status_code == 403  # the deployer's RBAC, not the server's, decides


def test_an_identity_the_chart_does_not_name_cannot_be_impersonated(setup: dict[str, Any]) -> None:
    key, team = make_key(setup, "stranger"), setup["team"]
    answer = modelarts_call(setup["server"], key, "POST", f"/v1/{team}/models", {
        "model_name": "s", "model_version": "1", "source_location": "registry.example.com/s:1"})
    assert answer.status_code == 403 and "impersonate" in answer.json()["error_msg"], answer.text
    assert "model-s-1" not in kubectl("get", "configmaps", "-n", team, "-o", "name")


@pytest.mark.parametrize("verb,what,allowed", [
    ("impersonate", "serviceaccount/deployer", True), ("impersonate", "serviceaccount/stranger", False),
    ("create", "inferenceservices.inference.io", False), ("get", "secrets", False), ("list", "configmaps", False),
    ("impersonate", "users", False), ("impersonate", "groups", False),
])
def test_the_server_account_may_do_nothing_else(setup: dict[str, Any], verb: str, what: str, allowed: bool) -> None:
    out = kubectl("auth", "can-i", verb, what, "-n", setup["team"], kubeconfig=setup["kubeconfig"], check=False)
    assert out.strip() == ("yes" if allowed else "no")


def test_it_reads_secrets_only_in_the_credentials_namespace(setup: dict[str, Any]) -> None:
    can = [kubectl("auth", "can-i", "list", "secrets", "-n", ns, kubeconfig=setup["kubeconfig"], check=False).strip()
           for ns in (setup["keys"], setup["home"], "default")]
    assert can == ["yes", "no", "no"]
