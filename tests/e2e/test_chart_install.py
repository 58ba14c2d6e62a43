"""The Helm chart on the local cluster, and least privilege proved with its own ServiceAccounts.

`helm lint`, the rendered chart through a server-side dry-run apply (both RBAC shapes), `helm install`
(the pods become Running through kwok but run no code). Then the operator and the gateway run here as
processes, each with a token of the chart's ServiceAccount (TokenRequest API; never the admin
kubeconfig), with the arguments and environment of the installed Deployments, and pass the main
scenario: a three-model weighted service (GPU, NPU, CPU) reaches running with its Deployments, Services
and HPA; the gateway answers for it (the app Secret read with its token) and its counts reach the status;
stopping the service removes the HPA; a child deleted by hand comes back; the Lease is held and released.
A permission the chart lacks fails a step, and any 403 / "not enough permissions" in either log fails
the module.

The processes are installed in namespaced mode (watchNamespaces = the scenario's namespace): an operator
here never touches services of other tests or benchmarks sharing the cluster. Both RBAC shapes come from
the same rule helpers; the cluster-wide shape is dry-run, installed and checked with `kubectl auth can-i`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from conftest import _localcluster, _wait

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "inference-operator"
NS = "inference-system"
RELEASE = "chart-e2e"
FULLNAME = f"{RELEASE}-inference-operator"
GATEWAY = f"{FULLNAME}-gateway"
FIELD_MANAGER = "chart-e2e-operator"  # tells this operator's writes from any other operator's
GROUP, VERSION, PLURAL = "inference.io", "v1alpha1", "inferenceservices"
VALUES = ["--set", "leaderElection.enabled=true", "--set", f"config.fieldManager={FIELD_MANAGER}",
          "--set", "config.countsIntervalSeconds=1", "--set", "gateway.timeoutSeconds=3"]
PERMISSION_ERROR = re.compile(r"\b403\b|forbidden|not enough permissions", re.IGNORECASE)
LOGS = REPO / ".cluster" / "logs"
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an HTTP proxy


LC = _localcluster()
wait = _wait


def run(*cmd: str | Path, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(c) for c in cmd], input=input, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, f"{' '.join(map(str, cmd))}\n{result.stdout}\n{result.stderr}"
    return result


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(LC.bin_dir() / "helm", f"--kubeconfig={LC.KUBECONFIG}", *args, check=check)


def kubectl(*args: str, input: str | None = None, check: bool = True,
            kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run(LC.bin_dir() / "kubectl", f"--kubeconfig={kubeconfig or LC.KUBECONFIG}", *args, input=input,
               check=check)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    try:
        with DIRECT.open(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


REFUSED = {"ModelArts.0205", "APIG.0303", "APIG.0304", "ModelArts.4204", "ModelArts.4201", "ModelArts.4203"}


def gateway_error(body: bytes) -> str | None:
    """error_code of an answer the gateway gave itself (JSON); None for anything else."""
    try:
        return json.loads(body).get("error_code")
    except (ValueError, AttributeError):
        return None


def token_kubeconfig(service_account: str, path: Path) -> Path:
    """A kubeconfig with the admin one's server and CA and a fresh token of the ServiceAccount (nothing else)."""
    token = kubectl("create", "token", service_account, "-n", NS, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(LC.KUBECONFIG.read_text())
    cluster = admin["clusters"][0]["cluster"]
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": service_account,
        "clusters": [{"name": "local", "cluster": {
            "server": cluster["server"], "certificate-authority-data": cluster["certificate-authority-data"]}}],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [{"name": service_account, "context": {"cluster": "local", "user": service_account}}]}))
    path.chmod(0o600)
    return path


def installed_container(name: str) -> dict[str, Any]:
    deployment = json.loads(kubectl("get", "deployment", name, "-n", NS, "-o", "json").stdout)
    (found,) = deployment["spec"]["template"]["spec"]["containers"]
    return found


def replace_arg(args: list[str], flag: str, value: str) -> list[str]:
    assert any(a.startswith(f"{flag}=") for a in args), (flag, args)
    return [f"{flag}={value}" if a.startswith(f"{flag}=") else a for a in args]


class Process:
    """A child process with its log in .cluster/logs; stop() is SIGTERM, then the exit code."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGS / f"{name}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - the child's
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        return self.proc.returncode

    def permission_errors(self) -> list[str]:
        return [line for line in self.text().splitlines() if PERMISSION_ERROR.search(line)]


def model(name: str, weight: int, spec: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "modelName": f"{name}-model", "modelVersion": "1.0.0",
            "image": f"registry.example/{name}:1.0.0", "weight": weight, "specification": spec, **extra}


def ensure_namespace(api: client.ApiClient, name: str) -> bool:
    """Create the namespace if missing; True when this module created it."""
    core = client.CoreV1Api(api)
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        return False
    wait(lambda: _has_sa(core, name), 30, f"the default ServiceAccount in {name}")
    return True


def _has_sa(core: client.CoreV1Api, ns: str) -> bool:
    try:
        return bool(core.read_namespaced_service_account("default", ns))
    except client.ApiException:
        return False


def delete_namespace(api: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(api)
    with contextlib.suppress(client.ApiException):
        core.delete_namespace(name, propagation_policy="Background")

    def gone() -> bool:
        try:
            core.read_namespace(name)
            return False
        except client.ApiException as exc:
            return exc.status == 404
    wait(gone, 120, f"namespace {name} to be deleted")


def cluster_rbac(release: str) -> list[str]:
    out = kubectl("get", "clusterroles,clusterrolebindings", "-l", f"app.kubernetes.io/instance={release}",
                  "-o", "name").stdout
    return out.split()


def uninstall(release: str) -> None:
    """helm uninstall, then remove cluster-scoped RBAC a broken earlier run may have left without a release."""
    helm("uninstall", release, "-n", NS, "--wait", "--timeout=120s", check=False)
    leftovers = cluster_rbac(release)
    if leftovers:
        kubectl("delete", "--ignore-not-found", *leftovers)


@pytest.fixture(scope="module")
def inference_system(cluster: str, crds: None, api: client.ApiClient) -> Iterator[str]:
    """The release namespace; deleted afterwards only if this module created it (other tests share it)."""
    created = ensure_namespace(api, NS)
    yield NS
    if created:
        delete_namespace(api, NS)


@pytest.fixture(scope="module")
def scenario_ns(cluster: str, api: client.ApiClient) -> Iterator[str]:
    """The watched namespace; it must exist before the install (the chart binds Roles in it)."""
    name = f"chart-e2e-{uuid.uuid4().hex[:6]}"
    ensure_namespace(api, name)
    yield name
    delete_namespace(api, name)


def namespaced(ns: str) -> list[str]:
    """Watch only `ns`, and grant the gateway its app Secret app-a there (no Secret is readable by default)."""
    return ["--set", f"watchNamespaces={{{ns}}}", "--set", f"gateway.appSecrets.grants[0].namespace={ns}",
            "--set", "gateway.appSecrets.grants[0].secrets={app-a}"]


class TestRenderAndDryRun:
    def test_helm_lint(self, cluster: str) -> None:
        helm("lint", "--strict", str(CHART), "-n", NS, *VALUES)

    @pytest.mark.parametrize("mode", ["cluster-wide", "namespaced"])
    def test_server_side_dry_run_of_the_rendered_chart(self, inference_system: str, scenario_ns: str,
                                                       mode: str) -> None:
        extra = namespaced(scenario_ns) if mode == "namespaced" else []
        # helm template does not ask the cluster its version unless told: render for the local cluster's.
        rendered = helm("template", RELEASE, str(CHART), "-n", NS, "--kube-version",
                        LC.versions()["KUBERNETES_VERSION"], *VALUES, *extra).stdout
        kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered) if doc}
        assert {"Deployment", "Service", "ServiceAccount", "Role", "RoleBinding", "ClusterRole"} <= kinds
        result = kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", input=rendered)
        assert "(server dry run)" in result.stdout
        assert not cluster_rbac(RELEASE), "a dry run created objects"


class TestClusterWideInstall:
    """The default shape: installed and uninstalled; its grants checked with the tokens (no process runs)."""

    RELEASE = "chart-e2e-cw"

    def test_install_grants_and_uninstall(self, inference_system: str, tmp_path: Path) -> None:
        fullname = f"{self.RELEASE}-inference-operator"
        uninstall(self.RELEASE)
        try:
            helm("install", self.RELEASE, str(CHART), "-n", NS, *VALUES, "--wait", "--timeout=120s")
            assert len(cluster_rbac(self.RELEASE)) == 4  # operator and gateway: ClusterRole + binding each
            operator = token_kubeconfig(fullname, tmp_path / "operator")
            gateway = token_kubeconfig(f"{fullname}-gateway", tmp_path / "gateway")

            def can(kubeconfig: Path, *what: str) -> bool:
                result = kubectl("auth", "can-i", *what, kubeconfig=kubeconfig, check=False)
                return result.stdout.strip() == "yes"

            assert can(operator, "patch", "deployments.apps", "-A")
            assert can(operator, "delete", "horizontalpodautoscalers.autoscaling", "-A")
            assert can(operator, "patch", "inferenceservices.inference.io", "--subresource=status", "-A")
            assert not can(operator, "patch", "inferenceservices.inference.io", "-A")
            assert not can(operator, "list", "secrets", "-A")
            assert can(gateway, "list", "endpointslices.discovery.k8s.io", "-A")
            assert not can(gateway, "watch", "secrets", "-A") and not can(gateway, "get", "secrets", "-A")
            assert not can(gateway, "create", "deployments.apps")
            # The operator finds the gateway pods and keeps its counts ledger in its own namespace only.
            assert can(operator, "list", "endpointslices.discovery.k8s.io", "-n", NS)
            assert can(operator, "patch", "configmaps/inference-operator-gateway-counts", "-n", NS)
            assert not can(operator, "patch", "configmaps/other", "-n", NS)
        finally:
            uninstall(self.RELEASE)
        assert not cluster_rbac(self.RELEASE)


@pytest.fixture(scope="module")
def release(inference_system: str, scenario_ns: str) -> Iterator[str]:
    uninstall(RELEASE)
    helm("install", RELEASE, str(CHART), "-n", NS, *VALUES, *namespaced(scenario_ns), "--wait", "--timeout=120s")
    yield RELEASE
    uninstall(RELEASE)
    # The Lease is the operator's, not Helm's.
    kubectl("delete", "lease", FULLNAME, "-n", NS, "--ignore-not-found")
    assert not cluster_rbac(RELEASE), "cluster-scoped RBAC left behind"


@pytest.fixture(scope="module")
def kubeconfigs(release: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("tokens")
    return {"operator": token_kubeconfig(FULLNAME, tmp / "operator.kubeconfig"),
            "gateway": token_kubeconfig(GATEWAY, tmp / "gateway.kubeconfig")}


@pytest.fixture(scope="module")
def counts_token(release: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart's counts token Secret, written to a file as the pods mount it."""
    encoded = kubectl("get", "secret", f"{GATEWAY}-counts-token", "-n", NS, "-o", "jsonpath={.data.token}").stdout
    path = tmp_path_factory.mktemp("counts") / "token"
    path.write_bytes(base64.b64decode(encoded))
    return path


@pytest.fixture(scope="module")
def chart_gateway(kubeconfigs: dict[str, Path], counts_token: Path) -> Iterator[dict[str, Any]]:
    """`python -m inference_operator.gateway` with the installed Deployment's arguments and the gateway's token
    (the counts token file at a local path; no wait for a last read at the end of the test)."""
    c = installed_container(GATEWAY)
    assert c["command"] == ["python", "-m", "inference_operator.gateway"]
    port, metrics_port = free_port(), free_port()
    args = replace_arg(replace_arg(replace_arg(c["args"], "--host", "127.0.0.1"), "--port", str(port)),
                       "--metrics-port", str(metrics_port))
    args = replace_arg(replace_arg(args, "--counts-token-file", str(counts_token)), "--final-read-seconds", "0")
    env = {**os.environ, "KUBECONFIG": str(kubeconfigs["gateway"])}
    proc = Process("gateway-chart-e2e", [sys.executable, "-m", "inference_operator.gateway", *args,
                                         "--kubeconfig", str(kubeconfigs["gateway"])], env)
    yield {"proc": proc, "url": f"http://127.0.0.1:{port}", "metrics": f"http://127.0.0.1:{metrics_port}",
           "token": counts_token}
    assert proc.stop() == 0, proc.text()[-3000:]
    assert not proc.permission_errors(), proc.permission_errors()


@pytest.fixture(scope="module")
def chart_operator(kubeconfigs: dict[str, Path], chart_gateway: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """`python -m inference_operator` with the installed Deployment's arguments and env and the operator's token.

    Changed for a process outside the cluster: no health port, a free metrics port, the counts token at a
    local path, and the counts URL of the gateway process above instead of the internal Service (whose
    EndpointSlices list the kwok pods' addresses, which serve nothing; the chart's value is checked as
    rendered).
    """
    c = installed_container(FULLNAME)
    metrics_port = free_port()
    args = replace_arg(replace_arg(c["args"], "--liveness", ""), "--metrics-port", str(metrics_port))
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    assert env.pop("INFERENCE_OPERATOR_GATEWAY_COUNTS_SERVICE") == f"{NS}/{GATEWAY}-internal"
    env["INFERENCE_OPERATOR_GATEWAY_COUNTS_URL"] = f"{chart_gateway['metrics']}/-/counts"
    env["INFERENCE_OPERATOR_GATEWAY_COUNTS_TOKEN_FILE"] = str(chart_gateway["token"])
    env = {**os.environ, **env, "POD_NAMESPACE": NS, "KUBECONFIG": str(kubeconfigs["operator"])}
    proc = Process("operator-chart-e2e", [sys.executable, "-m", "inference_operator", *args], env)
    metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    wait(lambda: http(metrics)[0] == 200 or not proc.alive(), 30, "the operator's /metrics")
    assert proc.alive(), proc.text()[-3000:]
    yield {"proc": proc, "metrics": metrics, "args": args, "env": env}
    proc.stop()
    assert not proc.permission_errors(), proc.permission_errors()


class TestWithTheChartsServiceAccounts:
    def test_tokens_are_the_service_accounts_not_admin(self, kubeconfigs: dict[str, Path]) -> None:
        for name, sa in (("operator", FULLNAME), ("gateway", GATEWAY)):
            who = kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}",
                          kubeconfig=kubeconfigs[name]).stdout
            assert who == f"system:serviceaccount:{NS}:{sa}"
            denied = kubectl("auth", "can-i", "create", "clusterroles", kubeconfig=kubeconfigs[name], check=False)
            assert denied.stdout.strip() == "no"

    def test_gateway_becomes_healthy(self, chart_gateway: dict[str, Any]) -> None:
        gateway = chart_gateway
        wait(lambda: http(f"{gateway['metrics']}/healthz")[0] == 200 or not gateway["proc"].alive(), 30,
             "the gateway's /healthz to answer 200 (it listed InferenceServices and EndpointSlices)")
        assert gateway["proc"].alive(), gateway["proc"].text()[-3000:]

    def test_main_scenario(self, api: client.ApiClient, scenario_ns: str, chart_operator: dict[str, Any],
                           chart_gateway: dict[str, Any]) -> None:
        ns, operator, gateway = scenario_ns, chart_operator, chart_gateway
        crd, apps, core = client.CustomObjectsApi(api), client.AppsV1Api(api), client.CoreV1Api(api)
        hpas = client.AutoscalingV2Api(api)
        operator_proc: Process = operator["proc"]

        def get() -> dict[str, Any]:
            return crd.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "weighted")

        def state(wanted: str, timeout: float = 60) -> dict[str, Any]:
            def reached() -> dict[str, Any] | None:
                assert operator_proc.alive(), operator_proc.text()[-3000:]
                body = get()
                status = body.get("status") or {}
                current = status.get("observedGeneration") == body["metadata"]["generation"]
                return status if current and status.get("status") == wanted else None
            try:
                return wait(reached, timeout, f"weighted to be {wanted}")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\nstatus: {get().get('status')}\noperator log:\n"
                                     f"{operator_proc.text()[-3000:]}") from None

        def hpa(name: str) -> Any:
            try:
                return hpas.read_namespaced_horizontal_pod_autoscaler(name, ns)
            except client.ApiException as exc:
                if exc.status == 404:
                    return None
                raise

        core.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name="app-a"), data={
            k: base64.b64encode(v.encode()).decode() for k, v in
            {"appKey": "KEY-1", "appSecret": "SECRET-1", "appCode": "CODE-1"}.items()}))
        scaling = {"enabled": True, "minReplicas": 2, "maxReplicas": 4}
        created = crd.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService", "metadata": {"name": "weighted"},
            "spec": {"models": [
                model("gpu", 50, "modelarts.vm.gpu.a100"),
                model("npu", 30, "modelarts.vm.ascend.a310"),
                model("cpu", 20, "custom", customSpec={"cpu": 1, "memory": 2048}, instanceCount=2, scaling=scaling)],
                "auth": {"appAuth": True, "apps": [{"secretName": "app-a"}]}}})
        uid = created["metadata"]["uid"]

        status = state("running")
        assert status["accessAddress"] == f"http://{GATEWAY}.{NS}.svc/v1/infers/{uid}"  # the chart's wiring
        assert {(m["name"], m["status"], m["weight"]) for m in status["models"]} == {
            ("gpu", "ready", 50), ("npu", "ready", 30), ("cpu", "ready", 20)}
        children = {"weighted-gpu", "weighted-npu", "weighted-cpu"}
        deployments = {d.metadata.name: d for d in apps.list_namespaced_deployment(ns).items}
        assert set(deployments) == children
        assert deployments["weighted-gpu"].spec.template.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
        assert deployments["weighted-npu"].spec.template.spec.containers[0].resources.limits[
            "huawei.com/ascend-310"] == "1"
        assert {s.metadata.name for s in core.list_namespaced_service(ns).items} == children
        assert hpa("weighted-cpu").spec.max_replicas == 4
        # Written by this operator (its field manager, and its replicas handover manager for a scaling
        # model), and by no other operator that could hide a missing grant.
        for obj in [*deployments.values(), *core.list_namespaced_service(ns).items, hpa("weighted-cpu")]:
            appliers = {f.manager for f in obj.metadata.managed_fields if f.operation == "Apply"}
            assert FIELD_MANAGER in appliers <= {FIELD_MANAGER, f"{FIELD_MANAGER}-handover"}, (
                obj.metadata.name, appliers)

        # The gateway, with its token: it knows the service, reads the app Secret, counts; counts reach status.
        url = f"{gateway['url']}/v1/infers/{uid}/predict"
        assert gateway_error(http(url, data=b"{}")[1]) == "ModelArts.0205"
        assert gateway_error(http(url, {"X-Apig-AppCode": "WRONG"}, b"{}")[1]) == "APIG.0303"
        answers: list[tuple[int, bytes]] = []

        def past_auth() -> bool:
            # Past authentication, the request goes to a model pod: whatever answers (kwok's pods serve
            # nothing; this sandbox's network may answer for their addresses) is not one of these.
            answers.append(http(url, {"X-Apig-AppCode": "CODE-1"}, b"{}"))
            return answers[-1][0] != 0 and gateway_error(answers[-1][1]) not in REFUSED
        try:
            wait(past_auth, 30, "the gateway to accept the app's code (the Secret read with its token)")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last answers {answers[-3:]}") from None
        assert gateway_error(http(f"{gateway['url']}/v1/infers/{uuid.uuid4()}/x", data=b"{}")[1]) == "ModelArts.4204"
        wait(lambda: (get().get("status") or {}).get("invocationTimes", 0) >= 1, 30,
             "the gateway's counts in status (operator reads /-/counts, patches status)")

        # Stop: no HPA, no replicas. Start: running again, HPA back.
        crd.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "weighted", {"spec": {"stopped": True}})
        state("stopped")
        wait(lambda: hpa("weighted-cpu") is None, 30, "the HPA to be removed")
        wait(lambda: all(d.spec.replicas == 0 for d in apps.list_namespaced_deployment(ns).items), 30,
             "0 replicas")
        crd.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "weighted", {"spec": {"stopped": False}})
        state("running")
        wait(lambda: hpa("weighted-cpu"), 30, "the HPA back")

        # Children deleted by hand come back.
        old_deployment = apps.read_namespaced_deployment("weighted-gpu", ns).metadata.uid
        old_service = core.read_namespaced_service("weighted-npu", ns).metadata.uid
        apps.delete_namespaced_deployment("weighted-gpu", ns)
        core.delete_namespaced_service("weighted-npu", ns)

        def recreated() -> bool:
            try:
                return (apps.read_namespaced_deployment("weighted-gpu", ns).metadata.uid != old_deployment
                        and core.read_namespaced_service("weighted-npu", ns).metadata.uid != old_service)
            except client.ApiException:
                return False
        wait(recreated, 30, "the deleted Deployment and Service to be recreated")
        state("running")
        assert not operator_proc.permission_errors(), operator_proc.permission_errors()
        assert not gateway["proc"].permission_errors(), gateway["proc"].permission_errors()

    def test_lease_held_then_released(self, chart_operator: dict[str, Any]) -> None:
        operator = chart_operator
        assert "--leader-elect" in operator["args"] and f"--lease-name={FULLNAME}" in operator["args"]
        lease = json.loads(kubectl("get", "lease", FULLNAME, "-n", NS, "-o", "json").stdout)
        assert lease["spec"]["holderIdentity"]
        proc: Process = operator["proc"]
        proc.stop()
        lease = json.loads(kubectl("get", "lease", FULLNAME, "-n", NS, "-o", "json").stdout)
        assert not lease["spec"].get("holderIdentity"), "the Lease was not released (update denied?)"
        assert not proc.permission_errors(), proc.permission_errors()
