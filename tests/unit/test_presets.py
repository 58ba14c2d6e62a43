"""presets.py: PAI-style LLM presets -> GPUs from parameters x precision, and resolve_flavor's use of them."""

from __future__ import annotations

from typing import Any

import pytest

from inference_operator.api.v1alpha1 import ModelSpec
from inference_operator.catalog.flavors import BUILTIN_FLAVORS, Flavor, FlavorError, UnknownFlavorError
from inference_operator.catalog.presets import (
    FIXED_PER_GPU_MIB,
    KV_HEADROOM,
    PresetTooLargeError,
    gpus_for,
    parse_preset,
    preset_flavor,
)
from inference_operator.catalog.specification import resolve_flavor
from inference_operator.config import OperatorConfig

A100 = 81920
T4 = 15360


def model(**fields: Any) -> ModelSpec:
    base = {"name": "v1", "modelName": "m", "modelVersion": "1", "runtime": "vllm"}
    return ModelSpec.model_validate({**base, **fields})


class TestParsePreset:
    @pytest.mark.parametrize(("name", "model_name", "params", "precision"), [
        ("llama_7b_fp16", "llama_7b", 6.74, "fp16"),
        ("llama_70b_int4", "llama_70b", 68.98, "int4"),
        ("chatglm2_6b_fp16", "chatglm2_6b", 6.24, "fp16"),
        ("baichuan_13b_int8", "baichuan_13b", 13.26, "int8"),
        ("qwen_7b_bf16", "qwen_7b", 7.72, "bf16"),
        ("mistral_7b_fp16", "mistral_7b", 7.0, "fp16"),  # unlisted family: the nominal size
        ("qwen2_0.5b_fp16", "qwen2_0.5b", 0.5, "fp16"),
    ])
    def test_presets(self, name: str, model_name: str, params: float, precision: str) -> None:
        preset = parse_preset(name)
        assert preset is not None
        assert (preset.model, preset.params_billion, preset.precision) == (model_name, params, precision)

    @pytest.mark.parametrize("name", ["gpu.t4", "custom", "llama_7b", "llama_7b_fp32", "Llama_7b_fp16",
                                      "llama_b_fp16", "_7b_fp16", "modelarts.vm.cpu.2u"])
    def test_not_presets(self, name: str) -> None:
        assert parse_preset(name) is None

    def test_weights_and_headroom(self) -> None:
        preset = parse_preset("llama_7b_fp16")
        assert preset is not None
        assert preset.weights_mib == 12856  # 6.74e9 x 2 bytes
        assert preset.per_gpu_mib(1) == round(12856 * (1 + KV_HEADROOM) + 0.5) + FIXED_PER_GPU_MIB
        assert preset.needed_mib(2) == 2 * preset.per_gpu_mib(2)


class TestSizing:
    @pytest.mark.parametrize(("name", "gpu_mib", "gpus"), [
        ("llama_7b_fp16", A100, 1), ("llama_13b_fp16", A100, 1), ("chatglm2_6b_fp16", A100, 1),
        ("baichuan_13b_fp16", A100, 1), ("qwen_7b_fp16", A100, 1),
        ("llama_70b_fp16", A100, 2), ("qwen_72b_fp16", A100, 4),
        ("llama_70b_int8", A100, 1), ("llama_70b_int4", A100, 1),
        ("llama_7b_fp16", T4, 2), ("llama_13b_fp16", T4, 4), ("llama_13b_int8", T4, 2),
        ("llama_13b_int4", T4, 1), ("llama_70b_int4", T4, 4),
    ])
    def test_smallest_tensor_parallel_size_that_fits(self, name: str, gpu_mib: int, gpus: int) -> None:
        preset = parse_preset(name)
        assert preset is not None
        assert gpus_for(preset, gpu_mib) == gpus
        assert preset.per_gpu_mib(gpus) <= gpu_mib
        if gpus > 1:
            assert preset.per_gpu_mib(gpus // 2) > gpu_mib

    def test_too_large_says_needed_and_available(self) -> None:
        preset = parse_preset("llama_70b_fp16")
        assert preset is not None
        with pytest.raises(PresetTooLargeError) as caught:
            gpus_for(preset, T4, index=2)
        message = str(caught.value)
        assert message.startswith('spec.models[2].specification: preset "llama_70b_fp16" does not fit in 8 GPUs')
        assert f"it needs {preset.needed_mib(8)} MiB of GPU memory" in message
        assert "8 GPUs x 15360 MiB = 122880 MiB are available" in message
        assert isinstance(caught.value, FlavorError)

    def test_huge_model_never_fits_an_a100_node(self) -> None:
        with pytest.raises(PresetTooLargeError, match="does not fit in 8 GPUs"):
            preset_flavor("llama_405b_fp16", A100)


class TestPresetFlavor:
    def test_flavor_fields(self) -> None:
        flavor = preset_flavor("llama_70b_fp16", A100, "NVIDIA-A100-SXM4-80GB")
        assert flavor is not None
        assert (flavor.name, flavor.gpu, flavor.cpu, flavor.ascend) == ("llama_70b_fp16", 2, 16, 0)
        assert flavor.memory_mib % 1024 == 0 and flavor.memory_mib >= 131569
        assert flavor.node_selector == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
        assert flavor.tolerations == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert flavor.resources()["limits"]["nvidia.com/gpu"] == "2"
        assert "tensor parallel 2" in flavor.description

    def test_host_resources_fit_the_local_gpu_node(self) -> None:
        for name in ("llama_7b_fp16", "llama_70b_fp16", "qwen_72b_fp16", "llama_7b_int4"):
            flavor = preset_flavor(name)
            assert flavor is not None
            assert flavor.cpu <= 96 * flavor.gpu / 8 and flavor.memory_mib <= 1056 * 1024 * flavor.gpu / 8

    def test_not_a_preset(self) -> None:
        assert preset_flavor("gpu.t4") is None


class TestResolveFlavorWithPresets:
    def test_preset_sized_against_the_given_gpu(self) -> None:
        catalog = dict(BUILTIN_FLAVORS)
        assert resolve_flavor(model(specification="llama_7b_fp16"), catalog).gpu == 1
        small = resolve_flavor(model(specification="llama_7b_fp16"), catalog, gpu_memory_mib=T4,
                               gpu_product="Tesla-T4")
        assert (small.gpu, small.node_selector) == (2, {"nvidia.com/gpu.product": "Tesla-T4"})

    def test_catalog_entry_wins(self) -> None:
        mine = Flavor(name="llama_7b_fp16", cpu=1, memory_mib=1024, gpu=3)
        assert resolve_flavor(model(specification="llama_7b_fp16"), {"llama_7b_fp16": mine}) is mine

    def test_too_large_names_the_model(self) -> None:
        with pytest.raises(PresetTooLargeError, match=r"spec\.models\[1\]\.specification"):
            resolve_flavor(model(specification="llama_70b_fp16"), {}, 1, gpu_memory_mib=8192)

    def test_unknown_names_are_still_unknown(self) -> None:
        with pytest.raises(UnknownFlavorError, match='unknown flavor "llama_7b"'):
            resolve_flavor(model(specification="llama_7b"), BUILTIN_FLAVORS)


class TestPresetSettings:
    def test_from_env(self) -> None:
        cfg = OperatorConfig.from_env({"INFERENCE_OPERATOR_PRESET_GPU_MEMORY_MIB": "24576",
                                       "INFERENCE_OPERATOR_PRESET_GPU_PRODUCT": "NVIDIA-L4"})
        assert (cfg.preset_gpu_memory_mib, cfg.preset_gpu_product) == (24576, "NVIDIA-L4")
        assert OperatorConfig().preset_gpu_memory_mib == A100

    @pytest.mark.parametrize("raw", ["lots", "0"])
    def test_bad_memory(self, raw: str) -> None:
        with pytest.raises(ValueError, match="INFERENCE_OPERATOR_PRESET_GPU_MEMORY_MIB"):
            OperatorConfig.from_env({"INFERENCE_OPERATOR_PRESET_GPU_MEMORY_MIB": raw})
