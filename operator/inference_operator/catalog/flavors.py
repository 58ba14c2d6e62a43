"""The flavor catalog: what `spec.models[].specification` names, as Kubernetes resources.

ModelArts users pick a flavor ("specification") such as ``modelarts.vm.cpu.2u`` instead of writing
requests and limits; this module gives those names a meaning on a Kubernetes cluster. Each built-in
flavor exists under its cloud-style name and a short name (the API docs use ``gpu.t4``):

- ``modelarts.vm.cpu.2u`` / ``cpu.2u``: 2 CPUs, 8 GiB (the ModelArts default; no accelerator)
- ``modelarts.vm.cpu.4u`` / ``cpu.4u``: 4 CPUs, 16 GiB
- ``modelarts.vm.cpu.8u`` / ``cpu.8u``: 8 CPUs, 32 GiB
- ``modelarts.vm.gpu.p4`` / ``gpu.p4``: 1 nvidia.com/gpu (Tesla-P4), 8 CPUs, 32 GiB
- ``modelarts.vm.gpu.t4`` / ``gpu.t4``: 1 nvidia.com/gpu (Tesla-T4), 8 CPUs, 32 GiB
- ``modelarts.vm.gpu.a100`` / ``gpu.a100.1``: 1 nvidia.com/gpu (NVIDIA-A100-SXM4-80GB), 10 CPUs, 112 GiB
- ``modelarts.vm.gpu.a100x8`` / ``gpu.a100.8``: 8 nvidia.com/gpu (NVIDIA-A100-SXM4-80GB), 80 CPUs, 900 GiB
- ``modelarts.vm.ai1.a310`` / ``modelarts.vm.ascend.a310`` / ``ascend.a310``: 1 huawei.com/ascend-310,
  8 CPUs, 32 GiB

GPU flavors select nodes by the GPU Feature Discovery label ``nvidia.com/gpu.product`` and tolerate
the ``nvidia.com/gpu`` NoSchedule taint; Ascend flavors select ``accelerator=huawei-Ascend310`` (the
label the Ascend device plugin's nodes carry) and tolerate ``huawei.com/ascend-310``. The a100 sizes
leave headroom on a 96-CPU, 1 TiB, 8-GPU node so eight 1-GPU or one 8-GPU instance fit.

An admin ConfigMap (OperatorConfig.flavor_configmap_name) adds or replaces flavors: each key is a
flavor name, each value YAML or JSON of the Flavor fields (cpu, memoryMiB, gpu, ascend,
nodeSelector, tolerations, description). "custom" is reserved for spec.models[].customSpec.
Names not in the catalog but shaped like ``<model>_<size>b_<fp16|bf16|int8|int4>`` are LLM presets,
sized into GPUs by presets.py (docs/llm-presets.md); specification.py picks one of the three for a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inference_operator.api.v1alpha1 import CUSTOM, ModelSpec

NVIDIA_GPU = "nvidia.com/gpu"
ASCEND_310 = "huawei.com/ascend-310"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
ASCEND_LABEL = "accelerator"
ASCEND_310_LABEL_VALUE = "huawei-Ascend310"
A100_80GB = "NVIDIA-A100-SXM4-80GB"  # its nvidia.com/gpu.product label; also the LLM presets' default GPU
A100_80GB_MEMORY_MIB = 81920  # its nvidia.com/gpu.memory label


class FlavorError(ValueError):
    """A flavor cannot be used: a bad catalog entry or a bad reference to one."""


class UnknownFlavorError(FlavorError):
    """spec.models[].specification names no flavor in the catalog."""


def _toleration(key: str) -> dict[str, str]:
    return {"key": key, "operator": "Exists", "effect": "NoSchedule"}


def _cpu_quantity(cpu: float) -> str:
    """2.0 -> "2", 1.5 -> "1500m": whole cores stay whole so the apiserver echoes the same string."""
    millis = round(cpu * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


class Flavor(BaseModel):
    """Resources, placement and tolerations one instance of a model gets."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=63, description="Flavor name used in specification.")
    description: str = Field("", description="What the flavor is, for humans.")
    cpu: float = Field(gt=0, description="CPU cores requested per instance.")
    memory_mib: int = Field(alias="memoryMiB", gt=0, description="Memory per instance, in MiB.")
    gpu: int = Field(0, ge=0, description="nvidia.com/gpu per instance.")
    ascend: int = Field(0, ge=0, description="huawei.com/ascend-310 per instance.")
    node_selector: dict[str, str] = Field(default_factory=dict, alias="nodeSelector")
    tolerations: list[dict[str, Any]] = Field(default_factory=list)

    def accelerators(self) -> dict[str, str]:
        """Extended resources; the scheduler needs request == limit, so both carry them."""
        counts = {NVIDIA_GPU: self.gpu, ASCEND_310: self.ascend}
        return {resource: str(count) for resource, count in counts.items() if count}

    def resources(self) -> dict[str, dict[str, str]]:
        """Container resources: CPU is requested (not limited, to avoid throttling), memory both."""
        memory = f"{self.memory_mib}Mi"
        accelerators = self.accelerators()
        return {
            "requests": {"cpu": _cpu_quantity(self.cpu), "memory": memory, **accelerators},
            "limits": {"memory": memory, **accelerators},
        }


def _cpu(cpu: int, gib: int) -> dict[str, Any]:
    return {"cpu": cpu, "memoryMiB": gib * 1024, "description": f"{cpu} vCPUs, {gib} GiB"}


def _gpu(cpu: int, gib: int, count: int, product: str, label: str) -> dict[str, Any]:
    return {"cpu": cpu, "memoryMiB": gib * 1024, "gpu": count,
            "nodeSelector": {GPU_PRODUCT_LABEL: product}, "tolerations": [_toleration(NVIDIA_GPU)],
            "description": f"{count} x {label}, {cpu} vCPUs, {gib} GiB"}


def _ascend(cpu: int, gib: int, count: int) -> dict[str, Any]:
    return {"cpu": cpu, "memoryMiB": gib * 1024, "ascend": count,
            "nodeSelector": {ASCEND_LABEL: ASCEND_310_LABEL_VALUE},
            "tolerations": [_toleration(ASCEND_310)],
            "description": f"{count} x Ascend 310, {cpu} vCPUs, {gib} GiB"}


_BUILTIN_TABLE: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("modelarts.vm.cpu.2u", "cpu.2u"), _cpu(2, 8)),
    (("modelarts.vm.cpu.4u", "cpu.4u"), _cpu(4, 16)),
    (("modelarts.vm.cpu.8u", "cpu.8u"), _cpu(8, 32)),
    (("modelarts.vm.gpu.p4", "gpu.p4"), _gpu(8, 32, 1, "Tesla-P4", "NVIDIA P4 8GB")),
    (("modelarts.vm.gpu.t4", "gpu.t4"), _gpu(8, 32, 1, "Tesla-T4", "NVIDIA T4 16GB")),
    (("modelarts.vm.gpu.a100", "gpu.a100.1"), _gpu(10, 112, 1, A100_80GB, "NVIDIA A100 80GB")),
    (("modelarts.vm.gpu.a100x8", "gpu.a100.8"), _gpu(80, 900, 8, A100_80GB, "NVIDIA A100 80GB")),
    (("modelarts.vm.ai1.a310", "modelarts.vm.ascend.a310", "ascend.a310"), _ascend(8, 32, 1)),
]

BUILTIN_FLAVORS: dict[str, Flavor] = {
    name: Flavor.model_validate({**fields, "name": name})
    for names, fields in _BUILTIN_TABLE
    for name in names
}


def parse_flavor(name: str, text: str) -> Flavor:
    """One ConfigMap entry (YAML or JSON of the Flavor fields) -> Flavor; FlavorError names the key."""
    if name == CUSTOM:
        raise FlavorError(f'flavor ConfigMap key "{name}": the name is reserved for customSpec')
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise FlavorError(f'flavor ConfigMap key "{name}": not YAML or JSON: {err}') from err
    if not isinstance(data, Mapping):
        raise FlavorError(f'flavor ConfigMap key "{name}": expected a mapping of flavor fields')
    try:
        return Flavor.model_validate({**data, "name": name})
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors(include_url=False))
        raise FlavorError(f'flavor ConfigMap key "{name}": {problems}') from err


def load_catalog(overrides: Mapping[str, str] | None = None) -> dict[str, Flavor]:
    """Built-ins plus the admin ConfigMap's data; an entry replaces the built-in of the same name."""
    catalog = dict(BUILTIN_FLAVORS)
    for name in sorted(overrides or {}):
        catalog[name] = parse_flavor(name, (overrides or {})[name])
    return catalog


def custom_flavor(model: ModelSpec, index: int = 0) -> Flavor:
    """A one-off flavor from customSpec, tolerating the taints of the accelerators it asks for."""
    spec = model.custom_spec
    if spec is None:
        raise FlavorError(f'spec.models[{index}].customSpec: required when specification is "custom"')
    tolerations = [_toleration(key) for key, count in ((NVIDIA_GPU, spec.gpu), (ASCEND_310, spec.ascend))
                   if count]
    return Flavor(name=CUSTOM, description="customSpec", cpu=spec.cpu, memory_mib=spec.memory,
                  gpu=spec.gpu, ascend=spec.ascend, tolerations=tolerations)
