"""OperatorConfig: defaults, INFERENCE_OPERATOR_* variables, access addresses."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from inference_operator.config import OperatorConfig
from inference_operator.status.summary import access_address


class TestOperatorConfig:
    def test_defaults(self) -> None:
        cfg = OperatorConfig.from_env({})
        assert cfg == OperatorConfig()
        assert cfg.gateway_base_url == "http://inference-gateway.inference-system.svc"
        assert cfg.field_manager == "inference-operator" and cfg.flavor_configmap_name == "inference-flavors"
        assert cfg.flavor_configmap_namespace is None and cfg.gateway_parent_ref is None

    def test_from_env(self) -> None:
        cfg = OperatorConfig.from_env({
            "INFERENCE_OPERATOR_GATEWAY_BASE_URL": "https://infer.example.com/",
            "INFERENCE_OPERATOR_VLLM_IMAGE": "mirror/vllm:1",
            "INFERENCE_OPERATOR_FLAVOR_CONFIGMAP_NAMESPACE": "inference-system",
            "INFERENCE_OPERATOR_STORAGE_INITIALIZER_IMAGE": "",
            "UNRELATED": "x",
        })
        assert cfg.vllm_image == "mirror/vllm:1" and cfg.flavor_configmap_namespace == "inference-system"
        assert cfg.storage_initializer_image == OperatorConfig().storage_initializer_image
        assert access_address(cfg.gateway_base_url, "abc") == "https://infer.example.com/v1/infers/abc"

    @pytest.mark.parametrize(("raw", "ref"), [
        ("infra/gw", {"name": "gw", "namespace": "infra"}),
        ("gw", {"name": "gw"}),
        ('{"name": "gw", "sectionName": "http"}', {"name": "gw", "sectionName": "http"}),
        ("name: gw\nnamespace: infra", {"name": "gw", "namespace": "infra"}),
    ])
    def test_parent_ref(self, raw: str, ref: dict[str, str]) -> None:
        cfg = OperatorConfig.from_env({"INFERENCE_OPERATOR_GATEWAY_PARENT_REF": raw})
        assert cfg.gateway_parent_ref == ref

    @pytest.mark.parametrize("raw", ["{not yaml", "[1, 2]", "namespace: x"])
    def test_bad_parent_ref(self, raw: str) -> None:
        with pytest.raises(ValueError, match="INFERENCE_OPERATOR_GATEWAY_PARENT_REF"):
            OperatorConfig.from_env({"INFERENCE_OPERATOR_GATEWAY_PARENT_REF": raw})

    def test_frozen(self) -> None:
        with pytest.raises(ValidationError):
            OperatorConfig().vllm_image = "x"  # type: ignore[misc]

    @pytest.mark.parametrize(("raw", "picker"), [
        ("vllm-epp:9002", {"name": "vllm-epp", "port": 9002}),
        ("{service}-epp:9002", {"name": "{service}-epp", "port": 9002}),
        ('{"name": "epp", "kind": "Picker", "group": "x.example"}', {"name": "epp", "kind": "Picker",
                                                                      "group": "x.example"}),
        ("name: epp\nport: 9002\nfailureMode: FailOpen", {"name": "epp", "port": 9002, "failureMode": "FailOpen"}),
    ])
    def test_endpoint_picker(self, raw: str, picker: dict[str, object]) -> None:
        cfg = OperatorConfig.from_env({"INFERENCE_OPERATOR_ENDPOINT_PICKER": raw,
                                       "INFERENCE_OPERATOR_INFERENCE_POOL": "true"})
        assert cfg.inference_pool is True and cfg.endpoint_picker is not None
        assert cfg.endpoint_picker.model_dump(by_alias=True, exclude_none=True) == picker

    @pytest.mark.parametrize("raw", ["epp", "epp:", "[1]", "Bad_Name:9002", '{"name": "epp"}'])
    def test_bad_endpoint_picker_names_the_variable(self, raw: str) -> None:
        with pytest.raises(ValueError, match="INFERENCE_OPERATOR_ENDPOINT_PICKER"):
            OperatorConfig.from_env({"INFERENCE_OPERATOR_ENDPOINT_PICKER": raw})

    def test_headless_model_services(self) -> None:
        assert OperatorConfig.from_env({}).headless_model_services is False
        assert OperatorConfig.from_env({"INFERENCE_OPERATOR_HEADLESS_MODEL_SERVICES": "true"}).headless_model_services
        with pytest.raises(ValueError, match="INFERENCE_OPERATOR_HEADLESS_MODEL_SERVICES"):
            OperatorConfig.from_env({"INFERENCE_OPERATOR_HEADLESS_MODEL_SERVICES": "sometimes"})
