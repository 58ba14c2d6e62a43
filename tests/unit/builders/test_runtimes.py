"""runtimes.py through build_deployment: vllm and tgi args, dtype/quantization from presets, readiness."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.builders.deployment import build_deployment
from inference_operator.catalog.flavors import Flavor
from inference_operator.catalog.specification import resolve_flavor
from inference_operator.config import OperatorConfig

Make = Callable[..., InferenceService]


def pod_of(svc: InferenceService, catalog: dict[str, Flavor], cfg: OperatorConfig) -> dict[str, Any]:
    model = svc.spec.models[0]
    flavor = resolve_flavor(model, catalog, 0, gpu_memory_mib=cfg.preset_gpu_memory_mib,
                            gpu_product=cfg.preset_gpu_product)
    return build_deployment(svc, model, flavor, cfg)["spec"]["template"]["spec"]


def llm(make_svc: Make, runtime: str, specification: str, **fields: Any) -> InferenceService:
    return make_svc(runtime=runtime, image=None, specification=specification, modelName="llama-2",
                    modelUri="pvc://models/llama-2", port=8000, **fields)


class TestVllm:
    @pytest.mark.parametrize(("spec", "tail"), [
        ("llama_7b_fp16", ["--tensor-parallel-size", "1", "--dtype", "float16"]),
        ("llama_70b_fp16", ["--tensor-parallel-size", "2", "--dtype", "float16"]),
        ("qwen_7b_bf16", ["--tensor-parallel-size", "1", "--dtype", "bfloat16"]),
        ("llama_13b_int8", ["--tensor-parallel-size", "1", "--dtype", "float16"]),
        ("llama_70b_int4", ["--tensor-parallel-size", "1", "--dtype", "float16",
                            "--quantization", "bitsandbytes", "--load-format", "bitsandbytes"]),
        ("gpu.a100.8", ["--tensor-parallel-size", "8"]),
    ])
    def test_args(self, make_svc: Make, catalog: dict[str, Flavor], cfg: OperatorConfig,
                  spec: str, tail: list[str]) -> None:
        main = pod_of(llm(make_svc, "vllm", spec), catalog, cfg)["containers"][0]
        assert main["image"] == cfg.vllm_image
        assert main["args"] == ["--model", "/mnt/models", "--served-model-name", "llama-2", "--port", "8000",
                                *tail]
        assert main["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}

    def test_int4_on_several_gpus_relies_on_a_prequantized_checkpoint(self, make_svc: Make,
                                                                       catalog: dict[str, Flavor]) -> None:
        cfg = OperatorConfig(preset_gpu_memory_mib=15360, preset_gpu_product="Tesla-T4")
        pod = pod_of(llm(make_svc, "vllm", "llama_70b_int4"), catalog, cfg)
        args = pod["containers"][0]["args"]
        assert args[args.index("--tensor-parallel-size") + 1] == "4" and "--quantization" not in args
        assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "Tesla-T4"}

    def test_preset_resources(self, make_svc: Make, catalog: dict[str, Flavor], cfg: OperatorConfig) -> None:
        pod = pod_of(llm(make_svc, "vllm", "llama_70b_fp16"), catalog, cfg)
        resources = pod["containers"][0]["resources"]
        assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == "2"
        assert resources["requests"]["cpu"] == "16"
        assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
        assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"


class TestTgi:
    @pytest.mark.parametrize(("spec", "tail"), [
        ("llama_7b_fp16", ["--num-shard", "1", "--dtype", "float16"]),
        ("llama_70b_fp16", ["--num-shard", "2", "--dtype", "float16"]),
        ("llama_13b_int8", ["--num-shard", "1", "--quantize", "bitsandbytes"]),
        ("llama_13b_int4", ["--num-shard", "1", "--quantize", "bitsandbytes-nf4"]),
        ("gpu.t4", ["--num-shard", "1"]),
    ])
    def test_args(self, make_svc: Make, catalog: dict[str, Flavor], cfg: OperatorConfig,
                  spec: str, tail: list[str]) -> None:
        pod = pod_of(llm(make_svc, "tgi", spec), catalog, cfg)
        main = pod["containers"][0]
        assert main["image"] == cfg.tgi_image == "ghcr.io/huggingface/text-generation-inference:2.4.0"
        assert main["args"] == ["--model-id", "/mnt/models", "--port", "8000", *tail]
        assert main["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
        assert {"name": "dshm", "mountPath": "/dev/shm"} in main["volumeMounts"]

    def test_hub_model_and_user_overrides(self, make_svc: Make, catalog: dict[str, Flavor],
                                          cfg: OperatorConfig) -> None:
        hub = pod_of(make_svc(runtime="tgi", image=None, modelName="Qwen/Qwen2-7B"), catalog, cfg)
        assert hub["containers"][0]["args"][:2] == ["--model-id", "Qwen/Qwen2-7B"]
        mine = pod_of(make_svc(runtime="tgi", image="my/tgi:3", args=["--x"]), catalog, cfg)
        assert (mine["containers"][0]["image"], mine["containers"][0]["args"]) == ("my/tgi:3", ["--x"])


def test_custom_runtime_ignores_presets_for_args(make_svc: Make, catalog: dict[str, Flavor],
                                                 cfg: OperatorConfig) -> None:
    main = pod_of(make_svc(specification="llama_7b_fp16"), catalog, cfg)["containers"][0]
    assert "args" not in main and main["readinessProbe"] == {"tcpSocket": {"port": "http"}, "periodSeconds": 5}
    assert main["resources"]["limits"]["nvidia.com/gpu"] == "1"
