"""build_deployment: replicas, image/args, resources from flavors, model mounts, placement."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.builders.deployment import build_deployment
from inference_operator.catalog.flavors import Flavor
from inference_operator.catalog.specification import resolve_flavor
from inference_operator.config import OperatorConfig

Make = Callable[..., InferenceService]


def deploy(svc: InferenceService, catalog: dict[str, Flavor], cfg: OperatorConfig,
           index: int = 0) -> dict[str, Any]:
    model = svc.spec.models[index]
    return build_deployment(svc, model, resolve_flavor(model, catalog, index), cfg)


def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    return pod(deployment)["containers"][0]


class TestBuildDeployment:
    def test_shape_metadata_and_owner(self, make_svc: Make, catalog: dict[str, Flavor],
                                      cfg: OperatorConfig) -> None:
        dep = deploy(make_svc(), catalog, cfg)
        assert (dep["apiVersion"], dep["kind"]) == ("apps/v1", "Deployment")
        assert dep["metadata"]["name"] == "service-demo-v1" and dep["metadata"]["namespace"] == "team-a"
        owner = dep["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("InferenceService", "service-demo")
        assert owner["controller"] is True
        assert dep["spec"]["selector"] == {"matchLabels": {
            "inference.io/service": "service-demo", "inference.io/model": "v1"}}
        template_labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= template_labels.items()
        assert template_labels == dep["metadata"]["labels"]
        assert "annotations" not in dep["spec"]["template"]["metadata"]

    @pytest.mark.parametrize(("spec", "fields", "expected"), [
        ({}, {"instanceCount": 3}, 3),
        ({"stopped": True}, {"instanceCount": 3}, 0),
        ({"stopped": True}, {"scaling": {"enabled": True}}, 0),
        ({}, {"scaling": {"enabled": False}, "instanceCount": 2}, 2),
    ])
    def test_replicas(self, make_svc: Make, catalog: dict[str, Flavor], cfg: OperatorConfig,
                      spec: dict[str, Any], fields: dict[str, Any], expected: int) -> None:
        assert deploy(make_svc(spec=spec, **fields), catalog, cfg)["spec"]["replicas"] == expected

    def test_no_replicas_key_when_the_hpa_owns_it(self, make_svc: Make, catalog: dict[str, Flavor],
                                                   cfg: OperatorConfig) -> None:
        dep = deploy(make_svc(scaling={"enabled": True, "maxReplicas": 4}), catalog, cfg)
        assert "replicas" not in dep["spec"]

    def test_custom_container(self, make_svc: Make, catalog: dict[str, Flavor], cfg: OperatorConfig) -> None:
        svc = make_svc(command=["python", "serve.py"], args=["--x"], port=9000,
                       envs={"Z_LAST": "1", "A_FIRST": "2"})
        main = container(deploy(svc, catalog, cfg))
        assert main["name"] == "model" and main["image"] == "reg/model:1"
        assert (main["command"], main["args"]) == (["python", "serve.py"], ["--x"])
        assert main["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
        assert main["env"] == [{"name": "A_FIRST", "value": "2"}, {"name": "Z_LAST", "value": "1"}]
        assert main["readinessProbe"]["tcpSocket"] == {"port": "http"}
        assert main["securityContext"] == {"allowPrivilegeEscalation": False}
        assert "runAsNonRoot" not in json.dumps(pod(deploy(svc, catalog, cfg)))
        assert pod(deploy(svc, catalog, cfg))["enableServiceLinks"] is False

    def test_vllm_defaults(self, make_svc: Make, catalog: dict[str, Flavor], cfg: OperatorConfig) -> None:
        svc = make_svc(runtime="vllm", image=None, specification="gpu.a100.8",
                       modelUri="pvc://models/llama", port=8000)
        spec = pod(deploy(svc, catalog, cfg))
        main = spec["containers"][0]
        assert main["image"] == cfg.vllm_image
        assert main["args"] == ["--model", "/mnt/models", "--served-model-name", "jar-model",
                                "--port", "8000", "--tensor-parallel-size", "8"]
        assert main["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
        assert {"name": "dshm", "mountPath": "/dev/shm"} in main["volumeMounts"]
        assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in spec["volumes"]

    def test_vllm_user_args_and_image_win(self, make_svc: Make, catalog: dict[str, Flavor],
                                          cfg: OperatorConfig) -> None:
        main = container(deploy(make_svc(runtime="vllm", image="my/vllm:1", args=["--foo"]), catalog, cfg))
        assert (main["image"], main["args"]) == ("my/vllm:1", ["--foo"])

    def test_vllm_without_uri_serves_model_name(self, make_svc: Make, catalog: dict[str, Flavor],
                                                cfg: OperatorConfig) -> None:
        svc = make_svc(runtime="vllm", image=None, modelName="Qwen/Qwen2-7B")
        main = container(deploy(svc, catalog, cfg))
        assert main["args"][:2] == ["--model", "Qwen/Qwen2-7B"] and main["args"][-1] == "1"


class TestDeploymentResources:
    def test_gpu_flavor(self, make_svc: Make, catalog: dict[str, Flavor], cfg: OperatorConfig) -> None:
        dep = deploy(make_svc(specification="modelarts.vm.gpu.t4"), catalog, cfg)
        resources = container(dep)["resources"]
        assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == "1"
        assert resources["requests"] == {"cpu": "8", "memory": "32768Mi", "nvidia.com/gpu": "1"}
        assert "cpu" not in resources["limits"]
        assert pod(dep)["nodeSelector"] == {"nvidia.com/gpu.product": "Tesla-T4"}
        assert pod(dep)["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                            "effect": "NoSchedule"}]

    def test_large_gpu_flavor(self, make_svc: Make, catalog: dict[str, Flavor], cfg: OperatorConfig) -> None:
        dep = deploy(make_svc(specification="modelarts.vm.gpu.a100x8"), catalog, cfg)
        assert container(dep)["resources"]["limits"]["nvidia.com/gpu"] == "8"
        assert pod(dep)["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}

    def test_ascend_flavor(self, make_svc: Make, catalog: dict[str, Flavor], cfg: OperatorConfig) -> None:
        dep = deploy(make_svc(specification="modelarts.vm.ai1.a310"), catalog, cfg)
        resources = container(dep)["resources"]
        assert resources["limits"]["huawei.com/ascend-310"] == "1"
        assert resources["requests"]["huawei.com/ascend-310"] == "1"
        assert "nvidia.com/gpu" not in resources["limits"]
        assert pod(dep)["tolerations"][0]["key"] == "huawei.com/ascend-310"

    def test_cpu_flavor_has_no_placement(self, make_svc: Make, catalog: dict[str, Flavor],
                                         cfg: OperatorConfig) -> None:
        dep = deploy(make_svc(), catalog, cfg)
        assert container(dep)["resources"] == {"requests": {"cpu": "2", "memory": "8192Mi"},
                                               "limits": {"memory": "8192Mi"}}
        assert "nodeSelector" not in pod(dep) and "tolerations" not in pod(dep)

    @pytest.mark.parametrize(("custom", "requests"), [
        ({"cpu": 2, "memory": 8192}, {"cpu": "2", "memory": "8192Mi"}),
        ({"cpu": 1.5, "memory": 7500, "gpu": 1}, {"cpu": "1500m", "memory": "7500Mi", "nvidia.com/gpu": "1"}),
        ({"cpu": 0.25, "memory": 512, "ascend": 2},
         {"cpu": "250m", "memory": "512Mi", "huawei.com/ascend-310": "2"}),
    ])
    def test_custom_spec(self, make_svc: Make, catalog: dict[str, Flavor], cfg: OperatorConfig,
                         custom: dict[str, Any], requests: dict[str, str]) -> None:
        dep = deploy(make_svc(specification="custom", customSpec=custom), catalog, cfg)
        assert container(dep)["resources"]["requests"] == requests
        assert container(dep)["resources"]["limits"]["memory"] == requests["memory"]
        accelerators = [k for k in requests if "/" in k]
        assert [t["key"] for t in pod(dep).get("tolerations", [])] == accelerators


class TestDeploymentModelMounts:
    def test_no_uri_no_volume(self, make_svc: Make, catalog: dict[str, Flavor], cfg: OperatorConfig) -> None:
        spec = pod(deploy(make_svc(), catalog, cfg))
        assert "volumes" not in spec and "initContainers" not in spec
        assert "volumeMounts" not in spec["containers"][0]

    @pytest.mark.parametrize(("uri", "mount"), [
        ("pvc://models/jar-model/1.0.1", {"subPath": "jar-model/1.0.1"}),
        ("pvc://models", {}),
        ("pvc://models/", {}),
    ])
    def test_pvc(self, make_svc: Make, catalog: dict[str, Flavor], cfg: OperatorConfig,
                 uri: str, mount: dict[str, str]) -> None:
        spec = pod(deploy(make_svc(modelUri=uri), catalog, cfg))
        assert spec["volumes"] == [{"name": "model-store",
                                    "persistentVolumeClaim": {"claimName": "models", "readOnly": True}}]
        assert spec["containers"][0]["volumeMounts"] == [
            {"name": "model-store", "mountPath": "/mnt/models", "readOnly": True, **mount}]
        assert "initContainers" not in spec

    def test_nfs(self, make_svc: Make, catalog: dict[str, Flavor], cfg: OperatorConfig) -> None:
        spec = pod(deploy(make_svc(modelUri="nfs://10.0.0.5/exports/models"), catalog, cfg))
        assert spec["volumes"] == [{"name": "model-store", "nfs": {
            "server": "10.0.0.5", "path": "/exports/models", "readOnly": True}}]
        assert spec["containers"][0]["volumeMounts"][0]["readOnly"] is True

    @pytest.mark.parametrize(("uri", "s3"), [("s3://bucket/models/m1", "s3://bucket/models/m1"),
                                             ("oss://bucket/m", "s3://bucket/m"),
                                             ("obs://b/x/y/", "s3://b/x/y/")])
    def test_object_storage(self, make_svc: Make, catalog: dict[str, Flavor], cfg: OperatorConfig,
                            uri: str, s3: str) -> None:
        svc = make_svc(modelUri=uri, envs={"AWS_ENDPOINT_URL": "https://obs.example", "LOG": "1"})
        spec = pod(deploy(svc, catalog, cfg))
        assert spec["volumes"] == [{"name": "model-store", "emptyDir": {}}]
        init = spec["initContainers"][0]
        assert init["name"] == "storage-initializer" and init["image"] == cfg.storage_initializer_image
        assert s3 in init["command"] and init["command"][-1] == "/mnt/models"
        assert init["volumeMounts"] == [{"name": "model-store", "mountPath": "/mnt/models"}]
        assert init["env"] == [{"name": "AWS_ENDPOINT_URL", "value": "https://obs.example"}]
        assert spec["containers"][0]["volumeMounts"][0]["readOnly"] is True

    def test_initializer_image_comes_from_config(self, make_svc: Make, catalog: dict[str, Flavor]) -> None:
        cfg = OperatorConfig(storage_initializer_image="mirror/aws-cli:1")
        init = pod(deploy(make_svc(modelUri="s3://b/m"), catalog, cfg))["initContainers"][0]
        assert init["image"] == "mirror/aws-cli:1" and "env" not in init


class TestDeploymentDeterminism:
    def test_same_input_same_output(self, make_svc: Make, catalog: dict[str, Flavor],
                                    cfg: OperatorConfig) -> None:
        fields = {"envs": {"B": "1", "A": "2"}, "modelUri": "s3://b/m", "specification": "gpu.t4"}
        first = deploy(make_svc(**fields), catalog, cfg)
        again = deploy(make_svc(**dict(reversed(list(fields.items())))), catalog, cfg)
        assert json.dumps(first) == json.dumps(again)

    def test_builder_does_not_share_state(self, make_svc: Make, catalog: dict[str, Flavor],
                                          cfg: OperatorConfig) -> None:
        svc = make_svc(specification="gpu.t4")
        first = deploy(svc, catalog, cfg)
        snapshot = copy.deepcopy(first)
        pod(first)["tolerations"][0]["key"] = "mutated"
        pod(first)["nodeSelector"]["x"] = "y"
        assert deploy(svc, catalog, cfg) == snapshot
