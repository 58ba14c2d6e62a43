"""What `spec.models[].specification` names: customSpec, a catalog flavor, or an LLM preset.

flavors.py holds the catalog and presets.py sizes preset names into a Flavor (it builds on flavors);
this module picks among the three, so neither of them needs the other's back.
"""

from __future__ import annotations

from collections.abc import Mapping

from inference_operator.api.v1alpha1 import CUSTOM, ModelSpec
from inference_operator.catalog.flavors import Flavor, UnknownFlavorError, custom_flavor
from inference_operator.catalog.presets import DEFAULT_GPU_MEMORY_MIB, DEFAULT_GPU_PRODUCT, preset_flavor


def resolve_flavor(model: ModelSpec, catalog: Mapping[str, Flavor], index: int = 0, *,
                   gpu_memory_mib: int | None = None, gpu_product: str | None = None) -> Flavor:
    """The flavor a model runs with; `index` is the model's position, for the error message.

    Catalog entries win; a name not in the catalog but shaped like an LLM preset (``llama_7b_fp16``)
    is sized by presets.preset_flavor against `gpu_memory_mib` per GPU on `gpu_product`
    nodes (OperatorConfig.preset_gpu_memory_mib / preset_gpu_product; defaults: A100 80GB), and
    raises presets.PresetTooLargeError (a FlavorError) when it cannot fit.
    """
    if model.specification == CUSTOM:
        return custom_flavor(model, index)
    flavor = catalog.get(model.specification)
    if flavor is not None:
        return flavor
    preset = preset_flavor(model.specification, gpu_memory_mib or DEFAULT_GPU_MEMORY_MIB,
                           gpu_product or DEFAULT_GPU_PRODUCT, index)
    if preset is None:
        raise UnknownFlavorError(
            f'spec.models[{index}].specification: unknown flavor "{model.specification}"; '
            f"known flavors: {', '.join(sorted(catalog))}")
    return preset
