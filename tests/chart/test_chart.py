"""The Helm chart, rendered by the real helm binary (the project's pinned one): no cluster needed.

Checks what issue 4 asks of the chart: the CRD copy is the generated one, RBAC has no wildcard and no
cluster-wide write in namespaced mode, the pods are non-root with a read-only root filesystem, the schema
rejects unknown keys, and the fail-fast helpers refuse installs that cannot work. The rendered flavor
ConfigMap, operator settings and both containers' arguments are fed to the operator's and the gateway's
own parsers, so chart and code agree. The gateway (issue 5) and leader election have their own classes.
tests/e2e/test_chart_install.py installs the chart and runs both processes with its ServiceAccounts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from inference_operator.__main__ import parse_args as operator_args
from inference_operator.api.v1alpha1 import InferenceServiceSpec
from inference_operator.catalog.flavors import load_catalog
from inference_operator.config import OperatorConfig
from inference_operator.gateway.__main__ import parse_args as gateway_args
from inference_operator.status.summary import access_address

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "inference-operator"
CRD = "inference.io_inferenceservices.yaml"
RELEASE, NAMESPACE = "rel", "inference-system"
FULLNAME = f"{RELEASE}-inference-operator"
GATEWAY = f"{FULLNAME}-gateway"
GATEWAY_URL = f"http://{GATEWAY}.{NAMESPACE}.svc"
INTERNAL = f"{GATEWAY}-internal"
COUNTS_SERVICE = f"{NAMESPACE}/{INTERNAL}"
LEADER = ["--set", "leaderElection.enabled=true", "--set", "replicaCount=2"]
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "escalate", "bind", "impersonate"}
NAMESPACED = ["--set", "watchNamespaces={a,b}"]
L4 = {"cpu": 8, "memoryMiB": 32768, "gpu": 1, "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-L4"},
      "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}
FLAVORS = ["--set-json", "flavors=" + json.dumps({"gpu.l4": L4})]
SCENARIOS = {
    "default": [],
    "namespaced": NAMESPACED,
    "servicemonitor": ["--set", "prometheus.servicemonitor.enabled=true"],
    "flavors": FLAVORS,
    "leader-election": LEADER,
    "namespaced-leader-election": [*NAMESPACED, *LEADER],
    "gateway-servicemonitor": ["--set", "gateway.servicemonitor.enabled=true"],
    "no-gateway": ["--set", "gateway.enabled=false"],
    "cloud-api": ["--set", "cloudApi.enabled=true", "--set", "cloudApi.credentialsNamespace=cloud-keys",
                  "--set", "cloudApi.identities={system:serviceaccount:team-a:deployer,alice}",
                  "--set", "cloudApi.groups={ml-devs}"],
}


def _versions() -> dict[str, str]:
    lines = (ROOT / "hack" / "versions.env").read_text().splitlines()
    return {k.strip(): v.strip() for k, _, v in (ln.partition("=") for ln in lines if "=" in ln and ln[0] != "#")}


KUBE_VERSION = _versions()["KUBERNETES_VERSION"]


@pytest.fixture(scope="session")
def helm() -> Path:
    """The cached helm binary, found like hack/localcluster.py's bin_dir(); missing is a failure."""
    cache = Path(os.environ.get("INFERENCE_OPERATOR_CACHE", Path.home() / ".cache" / "inference-operator"))
    path = cache / "bin" / KUBE_VERSION / "helm"
    if not path.exists():
        pytest.fail(f"helm not found at {path}: run `make binaries` (hack/build-binaries.sh builds it)")
    return path


def run_helm(helm: Path, *args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    # The locally built helm defaults Capabilities to v1.20; render for the pinned Kubernetes instead.
    cmd = [str(helm), "template", RELEASE, str(chart), "-n", NAMESPACE, "--kube-version", KUBE_VERSION, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def render(helm: Path, *args: str, chart: Path = CHART) -> list[dict[str, Any]]:
    result = run_helm(helm, *args, chart=chart)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    (found,) = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name
                and (namespace is None or d["metadata"].get("namespace") == namespace)]
    return found


def deployment(docs: list[dict[str, Any]], name: str = FULLNAME) -> dict[str, Any]:
    return named(docs, "Deployment", name)


def container(docs: list[dict[str, Any]], name: str = FULLNAME) -> dict[str, Any]:
    (found,) = deployment(docs, name)["spec"]["template"]["spec"]["containers"]
    return found


def env_of(docs: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(docs)["env"] if "value" in e}


def permissions(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples a Role or ClusterRole grants."""
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def rbac_rules(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for doc in docs:
        if doc["kind"] in ("Role", "ClusterRole"):
            yield from doc["rules"]


NAMESPACED_PERMISSIONS = {
    ("inference.io", "inferenceservices", "list"), ("inference.io", "inferenceservices", "watch"),
    ("inference.io", "inferenceservices/status", "patch"),
    *((group, resource, verb) for group, resource in [("apps", "deployments"), ("", "services"),
                                                      ("autoscaling", "horizontalpodautoscalers"),
                                                      ("gateway.networking.k8s.io", "httproutes"), ("batch", "jobs"),
                                                      ("inference.networking.k8s.io", "inferencepools")]
      for verb in ("list", "watch", "create", "patch", "delete")),
    ("", "pods", "list"), ("", "pods", "watch"),
    ("", "events", "create"),
}
CRD_READ = {("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("list", "watch")}
GATEWAY_PERMISSIONS = {(group, resource, verb) for group, resource in [
    ("inference.io", "inferenceservices"), ("discovery.k8s.io", "endpointslices")]
    for verb in ("list", "watch")}
LEASE = {("coordination.k8s.io", "leases", "create"), ("coordination.k8s.io", "leases", "get"),
         ("coordination.k8s.io", "leases", "update")}


class TestLint:
    @pytest.mark.parametrize("scenario", ["default", "namespaced", "servicemonitor", "flavors", "leader-election",
                                          "gateway-servicemonitor", "no-gateway"])
    def test_helm_lint_strict(self, helm: Path, scenario: str) -> None:
        cmd = [str(helm), "lint", "--strict", str(CHART), "-n", NAMESPACE, *SCENARIOS[scenario]]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr

    @pytest.mark.parametrize("scenario", SCENARIOS)
    def test_renders_valid_objects(self, helm: Path, scenario: str) -> None:
        docs = render(helm, *SCENARIOS[scenario])
        assert of_kind(docs, "Deployment"), "every scenario renders the operator's Deployment"
        for doc in docs:
            assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], doc
            assert "namespace" in doc["metadata"] or doc["kind"].startswith("Cluster"), doc["metadata"]


class TestCRD:
    def test_chart_copy_is_the_generated_crd_byte_for_byte(self) -> None:
        assert (CHART / "crds" / CRD).read_bytes() == (ROOT / "crds" / CRD).read_bytes(), "run `make crds`"
        assert sorted(p.name for p in (CHART / "crds").iterdir()) == [CRD]

    def test_helm_installs_it(self, helm: Path) -> None:
        docs = render(helm, "--include-crds")
        (crd,) = of_kind(docs, "CustomResourceDefinition")
        assert crd == yaml.safe_load((ROOT / "crds" / CRD).read_text())


class TestRBAC:
    @pytest.mark.parametrize("scenario", SCENARIOS)
    def test_no_wildcards(self, helm: Path, scenario: str) -> None:
        rules = list(rbac_rules(render(helm, *SCENARIOS[scenario])))
        assert rules
        for rule in rules:
            for field in ("apiGroups", "resources", "verbs"):
                assert not any("*" in item for item in rule[field]), rule
            assert "nonResourceURLs" not in rule, rule
            # Named: the leader-election Lease, the counts ledger ConfigMap, granted app Secrets, and the
            # identities the cloud API may impersonate (impersonation is never granted unnamed).
            assert "resourceNames" not in rule or rule["resources"] in (
                ["leases"], ["configmaps"], ["secrets"], ["users"], ["groups"], ["serviceaccounts"]), rule
            assert "impersonate" not in rule["verbs"] or rule.get("resourceNames"), rule

    def test_cluster_wide_by_default(self, helm: Path) -> None:
        docs = render(helm)
        assert sorted(r["metadata"]["name"] for r in of_kind(docs, "Role")) == [f"{FULLNAME}-counts",
                                                                                 f"{FULLNAME}-flavors"]
        assert sorted(r["metadata"]["name"] for r in of_kind(docs, "ClusterRole")) == [FULLNAME, GATEWAY]
        role = named(docs, "ClusterRole", FULLNAME)
        assert permissions(role) == NAMESPACED_PERMISSIONS | CRD_READ
        binding = named(docs, "ClusterRoleBinding", FULLNAME)
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]

    def test_never_writes_the_spec_or_crds(self, helm: Path) -> None:
        granted = set().union(*(permissions(r) for r in of_kind(render(helm), "ClusterRole")))
        assert not {(g, r, v) for g, r, v in granted if r == "inferenceservices" and v in WRITE_VERBS}
        assert not {(g, r, v) for g, r, v in granted if r == "customresourcedefinitions" and v in WRITE_VERBS}

    def test_namespaced_mode_roles_in_each_watched_namespace(self, helm: Path) -> None:
        docs = render(helm, *NAMESPACED)
        roles = {r["metadata"]["namespace"]: r for r in of_kind(docs, "Role") if r["metadata"]["name"] == FULLNAME}
        assert set(roles) == {"a", "b"}
        assert all(permissions(role) == NAMESPACED_PERMISSIONS for role in roles.values())
        bindings = {b["metadata"]["namespace"]: b for b in of_kind(docs, "RoleBinding")
                    if b["metadata"]["name"] == FULLNAME}
        assert {"a", "b"} == set(bindings)
        for binding in bindings.values():
            assert binding["roleRef"]["kind"] == "Role"
            assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]

    def test_namespaced_mode_has_no_cluster_wide_write(self, helm: Path) -> None:
        docs = render(helm, *NAMESPACED)
        (cluster_role,) = of_kind(docs, "ClusterRole")
        assert permissions(cluster_role) == CRD_READ | {("", "namespaces", "list"), ("", "namespaces", "watch")}
        assert all(b["roleRef"]["name"] == cluster_role["metadata"]["name"]
                   for b in of_kind(docs, "ClusterRoleBinding"))

    @pytest.mark.parametrize("scenario", ["default", "namespaced"])
    def test_configmaps_are_read_only_in_the_flavor_configmap_namespace(self, helm: Path, scenario: str) -> None:
        docs = render(helm, *SCENARIOS[scenario])
        readers = [r for r in [*of_kind(docs, "Role"), *of_kind(docs, "ClusterRole")]
                   if any(res == "configmaps" for _, res, _ in permissions(r))
                   and r["metadata"]["name"] != f"{FULLNAME}-counts"]  # the counts ledger: TestGatewayCounts
        assert [(r["kind"], r["metadata"].get("namespace")) for r in readers] == [("Role", NAMESPACE)]
        assert permissions(readers[0]) == {("", "configmaps", "list"), ("", "configmaps", "watch")}
        assert any(b["metadata"]["namespace"] == NAMESPACE and b["roleRef"]["name"] == readers[0]["metadata"]["name"]
                   for b in of_kind(docs, "RoleBinding"))

    def test_no_kopf_peering_rules(self, helm: Path) -> None:
        """The operator runs kopf standalone; one writer comes from the Lease, not from kopf peering."""
        for scenario in ("default", "namespaced", "leader-election"):
            assert not any(g == "kopf.dev" for r in rbac_rules(render(helm, *SCENARIOS[scenario]))
                           for g in r["apiGroups"])

    def test_rbac_create_false_renders_no_rbac(self, helm: Path) -> None:
        kinds = {d["kind"] for d in render(helm, "--set", "rbac.create=false")}
        assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


class TestDeployment:
    def test_pod_is_non_root_and_read_only(self, helm: Path) -> None:
        docs = render(helm)
        pod = deployment(docs)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 65532
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        sc = container(docs)["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}

    def test_single_writer(self, helm: Path) -> None:
        spec = deployment(render(helm))["spec"]
        assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}

    def test_probes_ports_and_args(self, helm: Path) -> None:
        docs = render(helm)
        c = container(docs)
        for probe in ("livenessProbe", "readinessProbe"):
            assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
        assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"health": 8080, "metrics": 9090}
        assert c["args"] == ["--all-namespaces", "--log-format=json", "--liveness=http://0.0.0.0:8080/healthz",
                             "--metrics-port=9090"]
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]

    def test_namespaced_args(self, helm: Path) -> None:
        args = container(render(helm, *NAMESPACED))["args"]
        assert args[:2] == ["--namespace=a", "--namespace=b"] and "--all-namespaces" not in args

    def test_image_defaults_to_app_version(self, helm: Path) -> None:
        app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
        assert container(render(helm))["image"].endswith(f"/inference-operator:{app_version}")
        digest = "sha256:" + "0" * 64
        image = container(render(helm, "--set", f"image.digest={digest}"))["image"]
        assert image.endswith(f":{app_version}@{digest}")

    def test_env_is_what_the_operator_parses(self, helm: Path) -> None:
        docs = render(helm, "--set", "config.gatewayBaseURL=http://gw.example", "--set", "config.vllmImage=v:1",
                      "--set", "config.gatewayParentRef.name=gw", "--set", "config.gatewayParentRef.namespace=infra",
                      "--set", "flavorConfigMap.name=my-flavors")
        env = container(docs)["env"]
        assert env[0] == {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
        cfg = OperatorConfig.from_env({e["name"]: e["value"] for e in env if "value" in e})
        assert cfg.gateway_base_url == "http://gw.example" and cfg.vllm_image == "v:1"
        assert cfg.gateway_parent_ref == {"name": "gw", "namespace": "infra"}
        assert cfg.flavor_configmap_name == "my-flavors"
        defaults = {e["name"] for e in container(render(helm, "--set", "gateway.enabled=false"))["env"]}
        assert defaults == {"POD_NAMESPACE", "INFERENCE_OPERATOR_FLAVOR_CONFIGMAP_NAME",
                            "INFERENCE_OPERATOR_BATCH_RUNNER_IMAGE"}

    def test_runtime_preset_and_batch_settings(self, helm: Path) -> None:
        docs = render(helm, "--set", "config.tgiImage=tgi:9", "--set", "config.presetGpuMemoryMiB=24576",
                      "--set", "config.presetGpuProduct=NVIDIA-L4", "--set", "config.batchRunnerImage=runner:2",
                      "--set-json", "config.countsIntervalSeconds=2.5")
        cfg = OperatorConfig.from_env(env_of(docs))
        assert (cfg.tgi_image, cfg.preset_gpu_memory_mib, cfg.preset_gpu_product) == ("tgi:9", 24576, "NVIDIA-L4")
        assert cfg.batch_runner_image == "runner:2" and cfg.counts_interval_seconds == 2.5
        unset = OperatorConfig.from_env(env_of(render(helm)))
        assert (unset.tgi_image, unset.preset_gpu_memory_mib) == (OperatorConfig().tgi_image, 81920)
        assert unset.headless_model_services is False
        headless = OperatorConfig.from_env(env_of(render(helm, "--set", "config.headlessModelServices=true")))
        assert headless.headless_model_services is True

    def test_batch_runner_image_defaults_to_the_operator_image(self, helm: Path) -> None:
        digest = "sha256:" + "1" * 64
        docs = render(helm, "--set", "image.repository=registry.example/op", "--set", "image.tag=v7",
                      "--set", f"image.digest={digest}")
        assert env_of(docs)["INFERENCE_OPERATOR_BATCH_RUNNER_IMAGE"] == container(docs)["image"]
        assert container(docs)["image"] == f"registry.example/op:v7@{digest}"

    @pytest.mark.parametrize("scenario", ["default", "namespaced", "leader-election"])
    def test_args_are_what_the_operator_parses(self, helm: Path, scenario: str) -> None:
        args = operator_args(container(render(helm, *SCENARIOS[scenario]))["args"])
        assert args.leader_elect is (scenario == "leader-election")
        assert args.namespace == (["a", "b"] if scenario == "namespaced" else [])

    def test_metrics_off(self, helm: Path) -> None:
        docs = render(helm, "--set", "prometheus.enabled=false")
        assert "--metrics-port=0" in container(docs)["args"]
        assert [s["metadata"]["name"] for s in of_kind(docs, "Service")] == [GATEWAY, INTERNAL]


class TestMetricsAndFlavors:
    def test_servicemonitor_scrapes_the_metrics_service(self, helm: Path) -> None:
        assert not of_kind(render(helm), "ServiceMonitor")
        docs = render(helm, *SCENARIOS["servicemonitor"])
        (monitor,) = of_kind(docs, "ServiceMonitor")
        service = named(docs, "Service", f"{FULLNAME}-metrics")
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= service["metadata"]["labels"].items()
        assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "metrics"
        pod_labels = deployment(docs)["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        # The operator's metrics are not mixed with the gateway's (its Service and pods are another component).
        assert not selector.items() <= named(docs, "Service", GATEWAY)["metadata"]["labels"].items()
        gateway_pod = deployment(docs, GATEWAY)["spec"]["template"]["metadata"]["labels"]
        assert not service["spec"]["selector"].items() <= gateway_pod.items()

    def test_flavor_configmap_is_what_the_operator_loads(self, helm: Path) -> None:
        assert not of_kind(render(helm), "ConfigMap")
        docs = render(helm, *FLAVORS)
        (cm,) = of_kind(docs, "ConfigMap")
        env = {e["name"]: e.get("value") for e in container(docs)["env"]}
        assert cm["metadata"]["name"] == env["INFERENCE_OPERATOR_FLAVOR_CONFIGMAP_NAME"]
        assert cm["metadata"]["namespace"] == NAMESPACE
        flavor = load_catalog(cm["data"])["gpu.l4"]
        assert flavor.gpu == 1 and flavor.memory_mib == 32768 and flavor.node_selector == L4["nodeSelector"]


class TestGateway:
    """The gateway Deployment, Service, ServiceAccount and RBAC, and the operator's URLs pointing at it."""

    def test_renders_by_default_with_its_own_service_account(self, helm: Path) -> None:
        docs = render(helm)
        pod = deployment(docs, GATEWAY)["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == GATEWAY
        assert deployment(docs)["spec"]["template"]["spec"]["serviceAccountName"] == FULLNAME
        assert named(docs, "ServiceAccount", GATEWAY)["metadata"]["namespace"] == NAMESPACE
        c = container(docs, GATEWAY)
        assert c["image"] == container(docs)["image"]
        assert c["command"] == ["python", "-m", "inference_operator.gateway"]
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
        assert "replicas" not in deployment(docs, GATEWAY)["spec"]  # the HPA's
        hpa = named(docs, "HorizontalPodAutoscaler", GATEWAY)
        assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["scaleTargetRef"]["name"] == GATEWAY
        spec = deployment(render(helm, "--set", "gateway.autoscaling.enabled=false"), GATEWAY)["spec"]
        assert spec["replicas"] == 2

    def test_gateway_disabled_renders_nothing_of_it(self, helm: Path) -> None:
        docs = render(helm, *SCENARIOS["no-gateway"])
        assert not [d for d in docs if d["metadata"]["name"].startswith(GATEWAY)]
        env = env_of(docs)
        assert not {"INFERENCE_OPERATOR_GATEWAY_BASE_URL", "INFERENCE_OPERATOR_GATEWAY_COUNTS_SERVICE"} & set(env)

    def test_pod_is_non_root_and_read_only(self, helm: Path) -> None:
        docs = render(helm)
        pod = deployment(docs, GATEWAY)["spec"]["template"]["spec"]
        assert pod["securityContext"] == deployment(docs)["spec"]["template"]["spec"]["securityContext"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 65532
        assert container(docs, GATEWAY)["securityContext"] == container(docs)["securityContext"]
        sc = container(docs, GATEWAY)["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}

    @pytest.mark.parametrize("scenario", ["default", "namespaced"])
    def test_args_are_what_the_gateway_parses(self, helm: Path, scenario: str) -> None:
        docs = render(helm, *SCENARIOS[scenario], "--set", "gateway.bodyLimitMB=50",
                      "--set", "gateway.timeoutSeconds=120")
        args = gateway_args(container(docs, GATEWAY)["args"])
        assert (args.host, args.port, args.metrics_port) == ("0.0.0.0", 8080, 9090)
        assert (args.body_limit_mb, args.timeout_seconds) == (50, 120)
        assert args.namespace == (["a", "b"] if scenario == "namespaced" else [])
        defaults = gateway_args(container(render(helm), GATEWAY)["args"])
        assert (defaults.body_limit_mb, defaults.timeout_seconds) == (12, 40)

    def test_probes_on_healthz_of_the_metrics_port(self, helm: Path) -> None:
        c = container(render(helm), GATEWAY)
        assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8080, "metrics": 9090}
        for probe in ("livenessProbe", "readinessProbe"):
            assert c[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}

    def test_service_routes_80_to_the_gateway_pods(self, helm: Path) -> None:
        """Only the inference port: /metrics and /-/counts are on the headless internal Service alone."""
        docs = render(helm)
        service = named(docs, "Service", GATEWAY)
        assert service["spec"]["type"] == "ClusterIP"
        assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {"http": (80, "http")}
        internal = named(docs, "Service", INTERNAL)
        assert internal["spec"]["clusterIP"] == "None" and internal["spec"]["publishNotReadyAddresses"] is True
        assert {p["name"]: (p["port"], p["targetPort"]) for p in internal["spec"]["ports"]} == {
            "metrics": (9090, "metrics")}
        assert internal["spec"]["selector"] == service["spec"]["selector"]
        gateway_pod = deployment(docs, GATEWAY)["spec"]["template"]["metadata"]["labels"]
        operator_pod = deployment(docs)["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= gateway_pod.items()
        assert not service["spec"]["selector"].items() <= operator_pod.items()
        assert deployment(docs, GATEWAY)["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]

    def test_operator_env_points_at_the_gateway_service(self, helm: Path) -> None:
        docs = render(helm)
        env = env_of(docs)
        assert env["INFERENCE_OPERATOR_GATEWAY_BASE_URL"] == GATEWAY_URL
        cfg = OperatorConfig.from_env(env)
        assert access_address(cfg.gateway_base_url, "uid-1") == f"{GATEWAY_URL}/v1/infers/uid-1"
        assert cfg.gateway_counts_service == COUNTS_SERVICE and cfg.gateway_counts_url is None
        # The counts port is the internal Service's port name, which reaches the gateway's --metrics-port.
        assert cfg.gateway_counts_port == "metrics"
        assert [p["name"] for p in named(docs, "Service", INTERNAL)["spec"]["ports"]] == ["metrics"]
        assert gateway_args(container(docs, GATEWAY)["args"]).metrics_port == 9090
        # Both read the same token file from the same Secret.
        token = gateway_args(container(docs, GATEWAY)["args"]).counts_token_file
        assert token == cfg.gateway_counts_token_file
        for name in (FULLNAME, GATEWAY):
            pod = deployment(docs, name)["spec"]["template"]["spec"]
            (volume,) = [v for v in pod["volumes"] if v["name"] == "counts-token"]
            assert volume["secret"]["secretName"] == f"{GATEWAY}-counts-token"
        assert named(docs, "Secret", f"{GATEWAY}-counts-token")["data"]["token"]

    @pytest.mark.parametrize(("args", "base", "counts"), [
        (["--set", "config.gatewayBaseURL=https://inference.example.com"], "https://inference.example.com",
         COUNTS_SERVICE),
        (["--set", "gateway.service.port=8000"], f"{GATEWAY_URL}:8000", COUNTS_SERVICE),
        (["--set", "gateway.collectCounts=false"], GATEWAY_URL, None),
        (["--set", "gateway.enabled=false", "--set", "config.gatewayBaseURL=http://gw.example"], "http://gw.example",
         None),
        (["--set", "gateway.autoscaling.enabled=false", "--set", "gateway.replicas=3"], GATEWAY_URL, COUNTS_SERVICE),
    ])
    def test_operator_env_variants(self, helm: Path, args: list[str], base: str, counts: str | None) -> None:
        env = env_of(render(helm, *args))
        assert env["INFERENCE_OPERATOR_GATEWAY_BASE_URL"] == base
        assert env.get("INFERENCE_OPERATOR_GATEWAY_COUNTS_SERVICE") == counts

    def test_cluster_wide_rbac_is_read_only(self, helm: Path) -> None:
        docs = render(helm)
        role = named(docs, "ClusterRole", GATEWAY)
        assert permissions(role) == GATEWAY_PERMISSIONS
        binding = named(docs, "ClusterRoleBinding", GATEWAY)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": GATEWAY}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": GATEWAY, "namespace": NAMESPACE}]
        # The gateway's account is bound to nothing else, and the operator's to none of the gateway's reads.
        bound = [b for b in [*of_kind(docs, "RoleBinding"), *of_kind(docs, "ClusterRoleBinding")]
                 if any(s["name"] == GATEWAY for s in b["subjects"])]
        assert bound == [binding]
        assert not {r for r in permissions(named(docs, "ClusterRole", FULLNAME)) if r[1] == "secrets"}
        # No Secret anywhere by default (tenants apart); granted ones by name, in their namespace only.
        assert not [r for r in rbac_rules(docs) if "secrets" in r["resources"]]
        docs = render(helm, "--set", "gateway.appSecrets.grants[0].namespace=team-a",
                      "--set", "gateway.appSecrets.grants[0].secrets={app-a,app-b}")
        role = named(docs, "Role", f"{GATEWAY}-app-secrets", "team-a")
        assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["app-a", "app-b"],
                                  "verbs": ["get", "list", "watch"]}]
        grant = named(docs, "RoleBinding", f"{GATEWAY}-app-secrets", "team-a")
        assert grant["subjects"] == [{"kind": "ServiceAccount", "name": GATEWAY, "namespace": NAMESPACE}]
        wide = named(render(helm, "--set", "gateway.appSecrets.clusterWide=true"), "ClusterRole", GATEWAY)
        assert permissions(wide) == GATEWAY_PERMISSIONS | {("", "secrets", "list"), ("", "secrets", "watch")}

    def test_namespaced_rbac_only_in_watched_namespaces(self, helm: Path) -> None:
        docs = render(helm, *NAMESPACED)
        assert not [r for r in of_kind(docs, "ClusterRole") if r["metadata"]["name"] == GATEWAY]
        assert not [b for b in of_kind(docs, "ClusterRoleBinding") if b["metadata"]["name"] == GATEWAY]
        for ns in ("a", "b"):
            assert permissions(named(docs, "Role", GATEWAY, ns)) == GATEWAY_PERMISSIONS
            binding = named(docs, "RoleBinding", GATEWAY, ns)
            assert binding["roleRef"]["name"] == GATEWAY and binding["roleRef"]["kind"] == "Role"
            assert binding["subjects"] == [{"kind": "ServiceAccount", "name": GATEWAY, "namespace": NAMESPACE}]

    def test_rbac_create_false(self, helm: Path) -> None:
        docs = render(helm, "--set", "rbac.create=false")
        assert of_kind(docs, "Deployment") and not of_kind(docs, "ClusterRole")

    def test_servicemonitor_scrapes_the_gateway_metrics(self, helm: Path) -> None:
        assert not of_kind(render(helm), "ServiceMonitor")
        docs = render(helm, *SCENARIOS["gateway-servicemonitor"])
        (monitor,) = of_kind(docs, "ServiceMonitor")
        service = named(docs, "Service", INTERNAL)
        assert not monitor["spec"]["selector"]["matchLabels"].items() <= named(
            docs, "Service", GATEWAY)["metadata"]["labels"].items()
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert not monitor["spec"]["selector"]["matchLabels"].items() <= named(
            docs, "Service", f"{FULLNAME}-metrics")["metadata"]["labels"].items()
        endpoint = monitor["spec"]["endpoints"][0]
        assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")

    def test_rollouts_keep_capacity_and_give_time_for_the_last_counts(self, helm: Path) -> None:
        spec = deployment(render(helm), GATEWAY)["spec"]
        assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
        args = gateway_args(container(render(helm), GATEWAY)["args"])
        assert 0 < args.final_read_seconds < spec["template"]["spec"]["terminationGracePeriodSeconds"]

    def test_operator_may_list_gateway_endpoints_and_keep_its_ledger(self, helm: Path) -> None:
        docs = render(helm)
        role = named(docs, "Role", f"{FULLNAME}-counts", NAMESPACE)
        assert permissions(role) == {("discovery.k8s.io", "endpointslices", "list"), ("", "configmaps", "create"),
                                     ("", "configmaps", "get"), ("", "configmaps", "patch")}
        assert [r.get("resourceNames") for r in role["rules"] if "get" in r["verbs"]] == [
            [OperatorConfig().counts_ledger_name]]
        binding = named(docs, "RoleBinding", f"{FULLNAME}-counts", NAMESPACE)
        assert binding["subjects"][0]["name"] == FULLNAME


class TestLeaderElection:
    def test_off_by_default(self, helm: Path) -> None:
        docs = render(helm)
        assert not any(r for r in rbac_rules(docs) if "coordination.k8s.io" in r["apiGroups"])
        assert not any(a.startswith("--lea") for a in container(docs)["args"])

    @pytest.mark.parametrize("scenario", ["leader-election", "namespaced-leader-election"])
    def test_lease_role_in_the_release_namespace(self, helm: Path, scenario: str) -> None:
        docs = render(helm, *SCENARIOS[scenario])
        role = named(docs, "Role", f"{FULLNAME}-leader-election", NAMESPACE)
        assert permissions(role) == LEASE
        by_verb = {verb: rule.get("resourceNames") for rule in role["rules"] for verb in rule["verbs"]}
        assert by_verb == {"create": None, "get": [FULLNAME], "update": [FULLNAME]}
        binding = named(docs, "RoleBinding", f"{FULLNAME}-leader-election", NAMESPACE)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": role["metadata"]["name"]}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
        assert not any("coordination.k8s.io" in r["apiGroups"] for kind in ("ClusterRole",)
                       for doc in of_kind(docs, kind) for r in doc["rules"])

    def test_flags_name_the_lease_the_role_grants(self, helm: Path) -> None:
        docs = render(helm, *LEADER)
        args = operator_args(container(docs)["args"])
        assert args.leader_elect and args.lease_name == FULLNAME and args.lease_duration == 15
        # --lease-namespace is left to its default, POD_NAMESPACE: the Role's namespace.
        assert container(docs)["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"

    def test_rolling_update_only_with_leader_election(self, helm: Path) -> None:
        spec = deployment(render(helm, *LEADER))["spec"]
        assert spec["replicas"] == 2
        assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
        assert deployment(render(helm))["spec"]["strategy"] == {"type": "Recreate"}


class TestValidation:
    @pytest.mark.parametrize("args", [
        ["--set", "bogus=1"], ["--set", "image.bogus=1"], ["--set", "prometheus.servicemonitor.bogus=1"],
        ["--set", "flavors.x.cpu=1", "--set", "flavors.x.memoryMiB=1", "--set", "flavors.x.bogus=1"],
        ["--set", "config.gatewayParentRef.bogus=1", "--set", "config.gatewayParentRef.name=gw"],
        ["--set", "gateway.bogus=1"], ["--set", "gateway.service.bogus=1"], ["--set", "gateway.servicemonitor.bogus=1"],
        ["--set", "gateway.serviceAccount.bogus=1"], ["--set", "gateway.readinessProbe.bogus=1"],
        ["--set", "leaderElection.bogus=1"],
    ])
    def test_unknown_keys_are_rejected(self, helm: Path, args: list[str]) -> None:
        result = run_helm(helm, *args)
        assert result.returncode != 0 and "additional properties" in result.stderr, result.stderr

    @pytest.mark.parametrize(("args", "message"), [
        (["--set", "watchNamespaces={team-*}"], "does not match pattern"),
        (["--set", "watchNamespaces={a,a}"], "items at 0 and 1 are equal"),
        (["--set", "flavors.custom.cpu=1", "--set", "flavors.custom.memoryMiB=1"], "invalid propertyName"),
        (["--set", "flavors.x.cpu=1"], "missing property 'memoryMiB'"),
        (["--set", "config.gatewayParentRef.namespace=infra"], "missing property 'name'"),
        (["--set", "logFormat=xml"], "value must be one of"),
        (["--set", "replicaCount=2"], "keep replicaCount=1"),
        # kopf peering never made two replicas safe (the operator runs standalone): the path is gone
        (["--set", "replicaCount=2", "--set", "peering.enabled=true"], "additional properties 'peering'"),
        (["--set", "replicaCount=3", "--set", "leaderElection.enabled=false"], "keep replicaCount=1"),
        (["--set", "gateway.autoscaling.minReplicas=5", "--set", "gateway.autoscaling.maxReplicas=2"],
         "maxReplicas is below minReplicas"),
        (["--set", "gateway.finalReadSeconds=100"], "must exceed gateway.finalReadSeconds"),
        (["--set", "gateway.port=9090"], "need their own ports"),
        (["--set", "gateway.serviceAccount.create=false"], "needs gateway.serviceAccount.name"),
        (["--set", "gateway.bodyLimitMB=0"], "exclusiveMinimum"),
        (["--set", "gateway.logLevel=trace"], "value must be one of"),
        (["--set", "config.gatewayBaseURL=gw.example"], "does not match pattern"),
        (["--set", "serviceAccount.create=false"], "needs serviceAccount.name"),
        (["--set", "prometheus.enabled=false", "--set", "prometheus.servicemonitor.enabled=true"],
         "needs prometheus.enabled=true"),
        (["--set", "healthPort=9090"], "need their own ports"),
    ])
    def test_refused(self, helm: Path, args: list[str], message: str) -> None:
        result = run_helm(helm, *args)
        assert result.returncode != 0 and message in result.stderr, result.stderr

    def test_schema_is_closed_at_every_level(self) -> None:
        schema = json.loads((CHART / "values.schema.json").read_text())

        def walk(node: Any, where: str) -> None:
            if isinstance(node, dict):
                if node.get("type") == "object" and where != "/properties/global":
                    extra = node.get("additionalProperties")
                    assert extra is False or isinstance(extra, dict), f"{where} accepts any key"
                for key, child in node.items():
                    walk(child, f"{where}/{key}")
            elif isinstance(node, list):
                for index, child in enumerate(node):
                    walk(child, f"{where}/{index}")

        walk(schema, "")

    def test_schema_covers_every_value(self) -> None:
        schema = json.loads((CHART / "values.schema.json").read_text())
        values = yaml.safe_load((CHART / "values.yaml").read_text())

        def resolve(node: dict[str, Any]) -> dict[str, Any]:
            while "$ref" in node:
                node = {**schema["definitions"][node["$ref"].rsplit("/", 1)[-1]],
                        **{k: v for k, v in node.items() if k != "$ref"}}
            for part in node.get("allOf", []):
                node = {**resolve(part), **{k: v for k, v in node.items() if k != "allOf"}}
            return node

        def covered(value: Any, node: dict[str, Any], where: str) -> None:
            node = resolve(node)
            if isinstance(value, dict) and node.get("properties"):
                for key, child in value.items():
                    assert key in node["properties"], f"{where}.{key} missing from values.schema.json"
                    covered(child, node["properties"][key], f"{where}.{key}")

        covered(values, schema, "values")
        assert set(values) == set(schema["properties"]) - {"global"}


def notes(helm: Path, tmp_path: Path, *args: str) -> str:
    """helm renders NOTES.txt only on install; render it offline as a template's string instead."""
    chart = tmp_path / "inference-operator"
    if not chart.exists():
        shutil.copytree(CHART, chart)
        shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes.txt")
        (chart / "templates" / "zz-notes.yaml").write_text(
            'apiVersion: v1\nkind: Notes\nmetadata: {name: notes, namespace: x}\n'
            'text: {{ tpl (.Files.Get "notes.txt") . | quote }}\n')
    (found,) = of_kind(render(helm, "--show-only", "templates/zz-notes.yaml", *args, chart=chart), "Notes")
    return found["text"]


class TestNotes:
    def test_notes_tell_how_to_apply_and_read_a_first_service(self, helm: Path, tmp_path: Path) -> None:
        text = notes(helm, tmp_path)
        assert "kubectl -n default get infsvc -w" in text and "describe infsvc service-demo" in text
        manifest = yaml.safe_load(text.split("cat <<'YAML' | kubectl -n default apply -f -\n")[1].split("\nYAML\n")[0])
        assert manifest["kind"] == "InferenceService"
        InferenceServiceSpec.model_validate(manifest["spec"])

    def test_notes_tell_how_to_call_the_gateway(self, helm: Path, tmp_path: Path) -> None:
        text = notes(helm, tmp_path)
        assert f"kubectl -n {NAMESPACE} port-forward service/{GATEWAY} 8080:80 &" in text
        assert f"{GATEWAY_URL}/v1/infers/<serviceId>" in text
        curl = next(line.strip() for line in text.splitlines() if line.strip().startswith("curl "))
        # The shell expansion in the note turns the access address into the port-forward's URL, path kept.
        address = f"{GATEWAY_URL}/v1/infers/0f1e"
        script = f"ADDR={address}; echo {curl.split()[3]}"
        out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.strip()
        assert out == "http://127.0.0.1:8080/v1/infers/0f1e/predict"
        assert "/-/counts" in text and "port 9090" in text
        assert "port-forward" not in notes(helm, tmp_path, "--set", "gateway.enabled=false")

    def test_notes_name_the_lease(self, helm: Path, tmp_path: Path) -> None:
        assert f"get lease {FULLNAME}" in notes(helm, tmp_path, *LEADER)


class TestCloudApi:
    """The cloud API server: off by default; on, it may impersonate exactly the named identities, read the
    credentials namespace's Secrets and create TokenReviews, and nothing else."""

    def test_off_by_default(self, helm: Path) -> None:
        assert not [d for d in render(helm) if "cloud-api" in d["metadata"]["name"]]

    def test_least_privilege(self, helm: Path) -> None:
        docs = [d for d in render(helm, *SCENARIOS["cloud-api"]) if "cloud-api" in d["metadata"]["name"]]
        roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs
                 if d["kind"] in ("Role", "ClusterRole")}
        name = f"{FULLNAME}-cloud-api"
        cluster = roles[("ClusterRole", None, name)]["rules"]
        assert cluster == [
            {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"], "resourceNames": ["alice"]},
            {"apiGroups": [""], "resources": ["groups"], "verbs": ["impersonate"], "resourceNames": ["ml-devs"]}]
        assert roles[("Role", "team-a", f"{name}-impersonate")]["rules"] == [
            {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"],
             "resourceNames": ["deployer"]}]
        assert permissions(roles[("Role", "cloud-keys", f"{name}-credentials")]) == {
            ("", "secrets", "get"), ("", "secrets", "list"), ("", "secrets", "watch")}
        assert len(roles) == 3
        bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
        assert {(b["subjects"][0]["name"], b["roleRef"]["name"]) for b in bindings} == {
            (name, name), (name, f"{name}-credentials"), (name, f"{name}-impersonate")}

    def test_runs_non_root_read_only_as_its_own_account(self, helm: Path) -> None:
        docs = render(helm, *SCENARIOS["cloud-api"])
        name = f"{FULLNAME}-cloud-api"
        pod = deployment(docs, name)["spec"]["template"]["spec"]
        (box,) = pod["containers"]
        assert pod["serviceAccountName"] == name and box["command"] == ["python", "-m", "inference_operator.cloudapi"]
        assert box["securityContext"]["readOnlyRootFilesystem"] and box["securityContext"]["runAsNonRoot"]
        assert "--credentials-namespace=cloud-keys" in box["args"]
        assert named(docs, "Service", name)["spec"]["ports"][0]["port"] == 8443
        assert not [a for a in box["args"] if a.startswith("--tls")]

    def test_tls_from_a_secret(self, helm: Path) -> None:
        docs = render(helm, *SCENARIOS["cloud-api"], "--set", "cloudApi.tlsSecretName=cloud-api-tls")
        pod = deployment(docs, f"{FULLNAME}-cloud-api")["spec"]["template"]["spec"]
        (box,) = pod["containers"]
        assert "--tls-cert-file=/var/run/inference-cloud-api/tls/tls.crt" in box["args"]
        assert {"name": "tls", "secret": {"secretName": "cloud-api-tls", "defaultMode": 0o440}} in pod["volumes"]
