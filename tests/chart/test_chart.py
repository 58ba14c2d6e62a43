"""The Helm chart, rendered by the real helm binary (the project's pinned one): no cluster needed.

Checks what issue 4 asks of the chart: the CRD copy is the generated one, RBAC has no wildcard and no
cluster-wide write in namespaced mode, the pod is non-root with a read-only root filesystem, the schema
rejects unknown keys, and the fail-fast helpers refuse installs that cannot work. The rendered flavor
ConfigMap and operator settings are fed to the operator's own parsers, so chart and operator agree.
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

from inference_operator.api.v1alpha1 import InferenceServiceSpec
from inference_operator.config import OperatorConfig
from inference_operator.flavors import load_catalog

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "inference-operator"
CRD = "inference.io_inferenceservices.yaml"
RELEASE, NAMESPACE = "rel", "inference-system"
FULLNAME = f"{RELEASE}-inference-operator"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "escalate", "bind", "impersonate"}
NAMESPACED = ["--set", "watchNamespaces={a,b}"]
L4 = {"cpu": 8, "memoryMiB": 32768, "gpu": 1, "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-L4"},
      "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}
FLAVORS = ["--set-json", "flavors=" + json.dumps({"gpu.l4": L4})]
SCENARIOS = {
    "default": [],
    "namespaced": NAMESPACED,
    "servicemonitor": ["--set", "prometheus.servicemonitor.enabled=true"],
    "peering": ["--set", "peering.enabled=true", "--set", "replicaCount=2"],
    "namespaced-peering": [*NAMESPACED, "--set", "peering.enabled=true"],
    "flavors": FLAVORS,
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


def deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = of_kind(docs, "Deployment")
    return found


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = deployment(docs)["spec"]["template"]["spec"]["containers"]
    return found


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
                                                      ("gateway.networking.k8s.io", "httproutes"), ("batch", "jobs")]
      for verb in ("list", "watch", "create", "patch", "delete")),
    ("", "pods", "list"), ("", "pods", "watch"),
    ("", "events", "create"),
}
CRD_READ = {("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("list", "watch")}


class TestLint:
    @pytest.mark.parametrize("scenario", ["default", "namespaced", "servicemonitor", "flavors"])
    def test_helm_lint_strict(self, helm: Path, scenario: str) -> None:
        cmd = [str(helm), "lint", "--strict", str(CHART), "-n", NAMESPACE, *SCENARIOS[scenario]]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr

    @pytest.mark.parametrize("scenario", SCENARIOS)
    def test_renders_valid_objects(self, helm: Path, scenario: str) -> None:
        for doc in render(helm, *SCENARIOS[scenario]):
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
            assert "nonResourceURLs" not in rule and "resourceNames" not in rule, rule

    def test_cluster_wide_by_default(self, helm: Path) -> None:
        docs = render(helm)
        assert [r["metadata"]["name"] for r in of_kind(docs, "Role")] == [f"{FULLNAME}-flavors"]
        (role,) = of_kind(docs, "ClusterRole")
        assert permissions(role) == NAMESPACED_PERMISSIONS | CRD_READ
        (binding,) = of_kind(docs, "ClusterRoleBinding")
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
        docs = render(helm, *NAMESPACED, "--set", "peering.enabled=true")
        (cluster_role,) = of_kind(docs, "ClusterRole")
        assert permissions(cluster_role) == CRD_READ | {("", "namespaces", "list"), ("", "namespaces", "watch")}
        assert all(b["roleRef"]["name"] == cluster_role["metadata"]["name"]
                   for b in of_kind(docs, "ClusterRoleBinding"))

    @pytest.mark.parametrize("scenario", ["default", "namespaced"])
    def test_configmaps_are_read_only_in_the_flavor_configmap_namespace(self, helm: Path, scenario: str) -> None:
        docs = render(helm, *SCENARIOS[scenario])
        readers = [r for r in [*of_kind(docs, "Role"), *of_kind(docs, "ClusterRole")]
                   if any(res == "configmaps" for _, res, _ in permissions(r))]
        assert [(r["kind"], r["metadata"].get("namespace")) for r in readers] == [("Role", NAMESPACE)]
        assert permissions(readers[0]) == {("", "configmaps", "list"), ("", "configmaps", "watch")}
        assert any(b["metadata"]["namespace"] == NAMESPACE and b["roleRef"]["name"] == readers[0]["metadata"]["name"]
                   for b in of_kind(docs, "RoleBinding"))

    @pytest.mark.parametrize(("scenario", "kind", "resource"), [
        ("peering", "ClusterRole", "clusterkopfpeerings"), ("namespaced-peering", "Role", "kopfpeerings")])
    def test_peering_rules_only_when_enabled(self, helm: Path, scenario: str, kind: str, resource: str) -> None:
        roles = of_kind(render(helm, *SCENARIOS[scenario]), kind)
        assert any(("kopf.dev", resource, "patch") in permissions(r) for r in roles)
        assert not any(g == "kopf.dev" for r in rbac_rules(render(helm)) for g in r["apiGroups"])

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
        defaults = {e["name"] for e in container(render(helm))["env"]}
        assert defaults == {"POD_NAMESPACE", "INFERENCE_OPERATOR_FLAVOR_CONFIGMAP_NAME"}

    def test_metrics_off(self, helm: Path) -> None:
        docs = render(helm, "--set", "prometheus.enabled=false")
        assert "--metrics-port=0" in container(docs)["args"]
        assert not of_kind(docs, "Service")


class TestMetricsAndFlavors:
    def test_servicemonitor_scrapes_the_metrics_service(self, helm: Path) -> None:
        assert not of_kind(render(helm), "ServiceMonitor")
        docs = render(helm, *SCENARIOS["servicemonitor"])
        (monitor,) = of_kind(docs, "ServiceMonitor")
        (service,) = of_kind(docs, "Service")
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= service["metadata"]["labels"].items()
        assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "metrics"
        pod_labels = deployment(docs)["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()

    def test_flavor_configmap_is_what_the_operator_loads(self, helm: Path) -> None:
        assert not of_kind(render(helm), "ConfigMap")
        docs = render(helm, *FLAVORS)
        (cm,) = of_kind(docs, "ConfigMap")
        env = {e["name"]: e.get("value") for e in container(docs)["env"]}
        assert cm["metadata"]["name"] == env["INFERENCE_OPERATOR_FLAVOR_CONFIGMAP_NAME"]
        assert cm["metadata"]["namespace"] == NAMESPACE
        flavor = load_catalog(cm["data"])["gpu.l4"]
        assert flavor.gpu == 1 and flavor.memory_mib == 32768 and flavor.node_selector == L4["nodeSelector"]


class TestValidation:
    @pytest.mark.parametrize("args", [
        ["--set", "bogus=1"], ["--set", "image.bogus=1"], ["--set", "prometheus.servicemonitor.bogus=1"],
        ["--set", "flavors.x.cpu=1", "--set", "flavors.x.memoryMiB=1", "--set", "flavors.x.bogus=1"],
        ["--set", "config.gatewayParentRef.bogus=1", "--set", "config.gatewayParentRef.name=gw"],
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


class TestNotes:
    def test_notes_tell_how_to_apply_and_read_a_first_service(self, helm: Path, tmp_path: Path) -> None:
        """helm renders NOTES.txt only on install; render it offline as a template's string instead."""
        chart = tmp_path / "inference-operator"
        shutil.copytree(CHART, chart)
        shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes.txt")
        (chart / "templates" / "zz-notes.yaml").write_text(
            'apiVersion: v1\nkind: Notes\nmetadata: {name: notes, namespace: x}\n'
            'text: {{ tpl (.Files.Get "notes.txt") . | quote }}\n')
        (notes,) = of_kind(render(helm, "--show-only", "templates/zz-notes.yaml", chart=chart), "Notes")
        text = notes["text"]
        assert "kubectl -n default get infsvc -w" in text and "describe infsvc service-demo" in text
        manifest = yaml.safe_load(text.split("cat <<'YAML' | kubectl -n default apply -f -\n")[1].split("\nYAML\n")[0])
        assert manifest["kind"] == "InferenceService"
        InferenceServiceSpec.model_validate(manifest["spec"])
