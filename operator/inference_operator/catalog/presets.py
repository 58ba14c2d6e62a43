"""LLM presets: PAI-EAS-style `specification` names (``llama_7b_fp16``) sized into a GPU flavor.

PAI-EAS lets an LLM service name a preset instead of a machine (CreateAppService ServiceSpec:
llama_7b_fp16, llama_13b_fp16, chatglm2_6b_fp16, baichuan_13b_fp16, *_int8...); the operator turns such
a name into GPUs and memory, and says so when the model cannot fit.

A preset is ``<family>_<size>b_<precision>``. The parameter count comes from PARAMS (the published
size of the family's checkpoint) or, for families not listed, from the nominal size in the name.
The GPU memory one instance needs is

    weights  = parameters x bytes per parameter   (fp16/bf16 2, int8 1, int4 0.5)
    per GPU  = weights x (1 + KV_HEADROOM) / gpus + FIXED_PER_GPU_MIB

KV_HEADROOM (20 %) stands for the KV cache and activations, FIXED_PER_GPU_MIB (2 GiB) for the CUDA
context and NCCL buffers every GPU carries. The instance gets the smallest tensor-parallel size in
TP_SIZES whose per-GPU share fits one GPU's memory (OperatorConfig.preset_gpu_memory_mib, default
81920 MiB: the A100 80GB nodes' ``nvidia.com/gpu.memory`` label). A model that needs more than
8 GPUs raises PresetTooLargeError, naming spec.models[i].specification, needed and available memory,
so the service ends `failed` with that errorMsg. Host resources scale with the GPUs: CPU_PER_GPU
cores each, memory HOST_MIB_PER_GPU per GPU plus room for the weights while they load.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from inference_operator.catalog.flavors import (
    A100_80GB,
    A100_80GB_MEMORY_MIB,
    GPU_PRODUCT_LABEL,
    NVIDIA_GPU,
    Flavor,
    FlavorError,
)

DEFAULT_GPU_MEMORY_MIB = A100_80GB_MEMORY_MIB
DEFAULT_GPU_PRODUCT = A100_80GB
KV_HEADROOM = 0.20
FIXED_PER_GPU_MIB = 2048
TP_SIZES = (1, 2, 4, 8)
CPU_PER_GPU = 8
HOST_MIB_PER_GPU = 16 * 1024
MIB = 1024 * 1024

BYTES_PER_PARAM = {"fp16": 2.0, "bf16": 2.0, "int8": 1.0, "int4": 0.5}

# Published parameter counts, in billions (model cards / config.json of the checkpoints).
PARAMS: dict[str, float] = {
    "llama_7b": 6.74, "llama_13b": 13.02, "llama_70b": 68.98,
    "llama2_7b": 6.74, "llama2_13b": 13.02, "llama2_70b": 68.98,
    "chatglm_6b": 6.17, "chatglm2_6b": 6.24, "chatglm3_6b": 6.24,
    "baichuan_7b": 7.0, "baichuan_13b": 13.26, "baichuan2_7b": 7.51, "baichuan2_13b": 13.9,
    "qwen_7b": 7.72, "qwen_14b": 14.17, "qwen_72b": 72.29,
}

_PRESET = re.compile(r"^(?P<family>[a-z][a-z0-9]*?)_(?P<size>\d+(?:\.\d+)?)b_(?P<precision>fp16|bf16|int8|int4)$")


class PresetTooLargeError(FlavorError):
    """The preset's model does not fit the largest tensor-parallel size on the configured GPUs."""


@dataclass(frozen=True)
class Preset:
    """A parsed preset name: which model, how many parameters, stored at which precision."""

    name: str
    model: str  # "llama_7b"
    params_billion: float
    precision: str  # fp16 | bf16 | int8 | int4

    @property
    def weights_mib(self) -> int:
        """Bytes of the weights at this precision, in MiB (rounded up)."""
        return math.ceil(self.params_billion * 1e9 * BYTES_PER_PARAM[self.precision] / MIB)

    def per_gpu_mib(self, gpus: int) -> int:
        """GPU memory each of `gpus` tensor-parallel shards needs (weights share + headroom + fixed)."""
        return math.ceil(self.weights_mib * (1 + KV_HEADROOM) / gpus) + FIXED_PER_GPU_MIB

    def needed_mib(self, gpus: int) -> int:
        """GPU memory the whole instance needs on `gpus` GPUs."""
        return self.per_gpu_mib(gpus) * gpus


def parse_preset(name: str) -> Preset | None:
    """`llama_13b_int8` -> Preset; None when the name is not shaped like a preset."""
    match = _PRESET.match(name)
    if not match:
        return None
    size = match["size"]
    model = f"{match['family']}_{size}b"
    params = PARAMS.get(model, float(size))
    return Preset(name=name, model=model, params_billion=params, precision=match["precision"])


def gpus_for(preset: Preset, gpu_memory_mib: int = DEFAULT_GPU_MEMORY_MIB, index: int = 0) -> int:
    """Smallest tensor-parallel size in TP_SIZES that fits; PresetTooLargeError when none does."""
    for gpus in TP_SIZES:
        if preset.per_gpu_mib(gpus) <= gpu_memory_mib:
            return gpus
    most = TP_SIZES[-1]
    raise PresetTooLargeError(
        f'spec.models[{index}].specification: preset "{preset.name}" does not fit in {most} GPUs: it needs '
        f"{preset.needed_mib(most)} MiB of GPU memory ({preset.weights_mib} MiB of {preset.precision} "
        f"weights for {preset.params_billion:g}B parameters + {KV_HEADROOM:.0%} KV cache + "
        f"{FIXED_PER_GPU_MIB} MiB per GPU), but {most} GPUs x {gpu_memory_mib} MiB = "
        f"{most * gpu_memory_mib} MiB are available; use an int8 or int4 variant, or nodes with more "
        f"GPU memory")


def preset_flavor(name: str, gpu_memory_mib: int = DEFAULT_GPU_MEMORY_MIB,
                  gpu_product: str = DEFAULT_GPU_PRODUCT, index: int = 0) -> Flavor | None:
    """The Flavor a preset name stands for on nodes with `gpu_memory_mib` per GPU; None if no preset.

    Pure: the GPU memory is a parameter (the operator passes OperatorConfig.preset_gpu_memory_mib).
    """
    preset = parse_preset(name)
    if preset is None:
        return None
    gpus = gpus_for(preset, gpu_memory_mib, index)
    host_gib = math.ceil((preset.weights_mib + HOST_MIB_PER_GPU * gpus) / 1024)
    description = (f"{preset.model} {preset.precision}: {gpus} x {gpu_product} (tensor parallel {gpus}), "
                   f"{preset.needed_mib(gpus)} MiB GPU memory needed of {gpus * gpu_memory_mib} MiB")
    return Flavor(name=name, description=description, cpu=CPU_PER_GPU * gpus, memory_mib=host_gib * 1024,
                  gpu=gpus, node_selector={GPU_PRODUCT_LABEL: gpu_product},
                  tolerations=[{"key": NVIDIA_GPU, "operator": "Exists", "effect": "NoSchedule"}])


def preset_precision(specification: str) -> str | None:
    """fp16 | bf16 | int8 | int4 when `specification` is a preset name, else None (runtime args)."""
    preset = parse_preset(specification)
    return preset.precision if preset else None
