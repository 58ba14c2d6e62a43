"""The flavor catalog: built-ins, admin ConfigMap overrides, resolution and its errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from inference_operator.api.v1alpha1 import ModelSpec
from inference_operator.catalog.flavors import (
    BUILTIN_FLAVORS,
    Flavor,
    FlavorError,
    UnknownFlavorError,
    load_catalog,
)
from inference_operator.catalog.specification import resolve_flavor


def model(**fields: Any) -> ModelSpec:
    base = {"name": "v1", "modelName": "m", "modelVersion": "1", "image": "i"}
    return ModelSpec.model_validate({**base, **fields})


class TestBuiltinCatalog:
    @pytest.mark.parametrize(("name", "cpu", "mib", "gpu", "ascend"), [
        ("modelarts.vm.cpu.2u", 2, 8192, 0, 0),
        ("cpu.2u", 2, 8192, 0, 0),
        ("modelarts.vm.gpu.p4", 8, 32768, 1, 0),
        ("modelarts.vm.gpu.t4", 8, 32768, 1, 0),
        ("gpu.t4", 8, 32768, 1, 0),
        ("gpu.a100.1", 10, 114688, 1, 0),
        ("modelarts.vm.gpu.a100x8", 80, 921600, 8, 0),
        ("modelarts.vm.ai1.a310", 8, 32768, 0, 1),
        ("modelarts.vm.ascend.a310", 8, 32768, 0, 1),
    ])
    def test_sizes(self, name: str, cpu: int, mib: int, gpu: int, ascend: int) -> None:
        flavor = BUILTIN_FLAVORS[name]
        assert (flavor.name, flavor.cpu, flavor.memory_mib) == (name, cpu, mib)
        assert (flavor.gpu, flavor.ascend) == (gpu, ascend)
        assert flavor.description

    def test_default_specification_is_a_builtin(self) -> None:
        assert model().specification in BUILTIN_FLAVORS

    def test_every_gpu_flavor_selects_a_product_and_tolerates_the_taint(self) -> None:
        assert any(f.gpu for f in BUILTIN_FLAVORS.values()) and any(f.ascend for f in BUILTIN_FLAVORS.values())
        for flavor in BUILTIN_FLAVORS.values():
            if flavor.gpu:
                assert "nvidia.com/gpu.product" in flavor.node_selector
                taint = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                assert taint in flavor.tolerations
            if flavor.ascend:
                assert flavor.node_selector == {"accelerator": "huawei-Ascend310"}
                assert flavor.tolerations[0]["key"] == "huawei.com/ascend-310"
            if not (flavor.gpu or flavor.ascend):
                assert not flavor.node_selector and not flavor.tolerations

    def test_a100_fits_a_96_cpu_1ti_node(self) -> None:
        big = BUILTIN_FLAVORS["gpu.a100.8"]
        assert big.node_selector == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
        assert big.cpu <= 96 and big.memory_mib <= 1024 * 1024
        assert 8 * BUILTIN_FLAVORS["gpu.a100.1"].cpu <= 96


class TestFlavorResources:
    @pytest.mark.parametrize(("cpu", "quantity"), [(2, "2"), (1.5, "1500m"), (0.1, "100m"), (12.0, "12")])
    def test_cpu_quantity(self, cpu: float, quantity: str) -> None:
        assert Flavor(name="x", cpu=cpu, memory_mib=1).resources()["requests"]["cpu"] == quantity

    def test_accelerators_in_requests_and_limits(self) -> None:
        resources = Flavor(name="x", cpu=1, memory_mib=1024, gpu=2, ascend=1).resources()
        assert resources == {
            "requests": {"cpu": "1", "memory": "1024Mi", "nvidia.com/gpu": "2", "huawei.com/ascend-310": "1"},
            "limits": {"memory": "1024Mi", "nvidia.com/gpu": "2", "huawei.com/ascend-310": "1"},
        }


class TestLoadCatalog:
    def test_no_overrides_is_the_builtins(self) -> None:
        assert load_catalog() == BUILTIN_FLAVORS == load_catalog({})

    def test_yaml_override_replaces_a_builtin(self) -> None:
        catalog = load_catalog({"gpu.t4": "cpu: 4\nmemoryMiB: 16384\ngpu: 1\nnodeSelector: {pool: t4}\n"})
        t4 = catalog["gpu.t4"]
        assert (t4.cpu, t4.memory_mib, t4.gpu) == (4, 16384, 1)
        assert (t4.node_selector, t4.tolerations) == ({"pool": "t4"}, [])
        assert catalog["modelarts.vm.gpu.t4"] == BUILTIN_FLAVORS["modelarts.vm.gpu.t4"]

    def test_json_entry_adds_a_flavor(self) -> None:
        entry = {"cpu": 16, "memoryMiB": 65536, "gpu": 1, "description": "H100",
                 "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
                 "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}
        catalog = load_catalog({"gpu.h100.1": json.dumps(entry)})
        assert catalog["gpu.h100.1"].name == "gpu.h100.1"
        assert catalog["gpu.h100.1"].resources()["limits"]["nvidia.com/gpu"] == "1"
        assert set(BUILTIN_FLAVORS) < set(catalog)

    @pytest.mark.parametrize(("text", "words"), [
        ("cpu: [", "not YAML or JSON"),
        ("- 1\n- 2", "expected a mapping"),
        ("cpu: 2", "memoryMiB: Field required"),
        ("cpu: 0\nmemoryMiB: 1", "cpu: Input should be greater than 0"),
        ("cpu: 1\nmemoryMiB: 1\ngpus: 2", "gpus: Extra inputs are not permitted"),
    ])
    def test_bad_entry_names_the_key(self, text: str, words: str) -> None:
        with pytest.raises(FlavorError, match='flavor ConfigMap key "broken"') as caught:
            load_catalog({"fine": "cpu: 1\nmemoryMiB: 512", "broken": text})
        assert words in str(caught.value)

    def test_custom_is_reserved(self) -> None:
        with pytest.raises(FlavorError, match="reserved"):
            load_catalog({"custom": "cpu: 1\nmemoryMiB: 1"})


class TestResolveFlavor:
    def test_named_flavor(self) -> None:
        assert resolve_flavor(model(specification="gpu.t4"), load_catalog()) is BUILTIN_FLAVORS["gpu.t4"]

    def test_custom_spec(self) -> None:
        flavor = resolve_flavor(model(specification="custom",
                                      customSpec={"cpu": 2, "memory": 8192, "gpu": 1}), load_catalog())
        assert (flavor.name, flavor.cpu, flavor.memory_mib, flavor.gpu) == ("custom", 2, 8192, 1)
        assert flavor.resources()["limits"] == {"memory": "8192Mi", "nvidia.com/gpu": "1"}
        assert flavor.node_selector == {} and flavor.tolerations[0]["key"] == "nvidia.com/gpu"

    def test_unknown_flavor_message(self) -> None:
        catalog = {name: BUILTIN_FLAVORS[name] for name in ("cpu.2u", "gpu.t4", "ascend.a310")}
        with pytest.raises(UnknownFlavorError) as caught:
            resolve_flavor(model(specification="x"), catalog, 0)
        assert str(caught.value) == ('spec.models[0].specification: unknown flavor "x"; '
                                     "known flavors: ascend.a310, cpu.2u, gpu.t4")

    def test_unknown_flavor_is_a_flavor_error_with_the_index(self) -> None:
        with pytest.raises(FlavorError, match=r"spec\.models\[3\]\.specification"):
            resolve_flavor(model(specification="nope"), load_catalog(), 3)

    def test_custom_without_custom_spec(self) -> None:
        bare = model().model_copy(update={"specification": "custom"})
        with pytest.raises(FlavorError, match=r"spec\.models\[2\]\.customSpec"):
            resolve_flavor(bare, load_catalog(), 2)
