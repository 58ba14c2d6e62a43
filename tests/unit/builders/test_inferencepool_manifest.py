"""build_inferencepool: the service's model pods behind the named endpoint picker; the route to it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.builders.children import build_children
from inference_operator.builders.httproute import build_httproute
from inference_operator.builders.inferencepool import build_inferencepool
from inference_operator.catalog.flavors import Flavor
from inference_operator.config import OperatorConfig

Make = Callable[..., InferenceService]
PICKER = {"name": "vllm-epp", "port": 9002}
POOLED = {"inferencePool": {"enabled": True, "endpointPicker": PICKER}}


class TestBuildInferencePool:
    def test_pool_of_the_service_pods(self, make_svc: Make, cfg: OperatorConfig) -> None:
        svc = make_svc(models=[{"weight": 70, "port": 8000}, {"name": "v2", "weight": 30, "port": 8000}],
                       spec=POOLED)
        pool = build_inferencepool(svc, cfg)
        assert pool is not None
        assert (pool["apiVersion"], pool["kind"]) == ("inference.networking.k8s.io/v1", "InferencePool")
        assert pool["metadata"]["name"] == "service-demo"
        assert pool["metadata"]["ownerReferences"][0]["uid"] == "0b7e-uid"
        assert pool["spec"] == {
            "selector": {"matchLabels": {"app.kubernetes.io/managed-by": "inference-operator",
                                         "inference.io/service": "service-demo"}},
            "targetPorts": [{"number": 8000}],
            "endpointPickerRef": {"name": "vllm-epp", "port": {"number": 9002}},
        }

    def test_the_selector_matches_every_model_pod_template(self, make_svc: Make, cfg: OperatorConfig,
                                                           catalog: dict[str, Flavor]) -> None:
        svc = make_svc(models=[{"weight": 50}, {"name": "v2", "weight": 50}], spec=POOLED)
        children = build_children(svc, cfg, catalog, gateway_api=True, inference_pool=True)
        pool = next(c for c in children if c["kind"] == "InferencePool")
        selector = pool["spec"]["selector"]["matchLabels"]
        templates = [c["spec"]["template"]["metadata"]["labels"] for c in children if c["kind"] == "Deployment"]
        assert len(templates) == 2 and all(selector.items() <= labels.items() for labels in templates)

    def test_the_operator_setting_turns_it_on_and_names_the_picker(self, make_svc: Make) -> None:
        cfg = OperatorConfig(inference_pool=True, endpoint_picker={"name": "epp", "kind": "Picker",
                                                                   "group": "x.example", "failureMode": "FailOpen"})
        pool = build_inferencepool(make_svc(), cfg)
        assert pool is not None and pool["spec"]["endpointPickerRef"] == {
            "name": "epp", "group": "x.example", "kind": "Picker", "failureMode": "FailOpen"}
        assert build_inferencepool(make_svc(spec={"inferencePool": {"enabled": False}}), cfg) is None

    def test_a_picker_per_pool_by_the_service_name(self, make_svc: Make) -> None:
        cfg = OperatorConfig(inference_pool=True, endpoint_picker={"name": "{service}-epp", "port": 9002})
        pool = build_inferencepool(make_svc(), cfg)
        assert pool is not None and pool["spec"]["endpointPickerRef"]["name"] == "service-demo-epp"

    def test_the_service_picker_wins_over_the_setting(self, make_svc: Make) -> None:
        cfg = OperatorConfig(inference_pool=True, endpoint_picker={"name": "epp", "port": 1})
        pool = build_inferencepool(make_svc(spec={"inferencePool": {"endpointPicker": PICKER}}), cfg)
        assert pool is not None and pool["spec"]["endpointPickerRef"]["name"] == "vllm-epp"

    @pytest.mark.parametrize("spec", [{}, {"stopped": True, **POOLED}])
    def test_no_pool(self, make_svc: Make, cfg: OperatorConfig, spec: dict[str, Any]) -> None:
        assert build_inferencepool(make_svc(spec=spec), cfg) is None

    def test_no_picker_anywhere_names_the_field(self, make_svc: Make, cfg: OperatorConfig) -> None:
        with pytest.raises(ValueError, match=r"^spec\.inferencePool\.endpointPicker: "):
            build_inferencepool(make_svc(spec={"inferencePool": {"enabled": True}}), cfg)

    def test_models_on_other_ports_name_the_model(self, make_svc: Make) -> None:
        cfg = OperatorConfig(inference_pool=True, endpoint_picker=PICKER)  # the spec itself asks nothing
        svc = make_svc(models=[{"weight": 50, "port": 8000}, {"name": "v2", "weight": 50, "port": 9000}])
        with pytest.raises(ValueError, match=r"^spec\.models\[1\]\.port: "):
            build_inferencepool(svc, cfg)


class TestRouteToThePool:
    def test_the_one_backend_is_the_pool(self, make_svc: Make, cfg: OperatorConfig) -> None:
        route = build_httproute(make_svc(spec=POOLED), cfg, pool=True)
        assert route is not None and route["spec"]["rules"][0]["backendRefs"] == [
            {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "service-demo"}]

    @pytest.mark.parametrize(("gateway_api", "inference_pool", "kinds"), [
        (True, True, ["InferencePool", "HTTPRoute"]), (False, True, ["InferencePool"]),
        (True, False, ["HTTPRoute"]), (False, False, [])])
    def test_children_follow_what_is_served(self, make_svc: Make, cfg: OperatorConfig, catalog: dict[str, Flavor],
                                            gateway_api: bool, inference_pool: bool, kinds: list[str]) -> None:
        children = build_children(make_svc(spec=POOLED), cfg, catalog, gateway_api=gateway_api,
                                  inference_pool=inference_pool)
        assert [c["kind"] for c in children if c["kind"] in ("InferencePool", "HTTPRoute")] == kinds
        route = next((c for c in children if c["kind"] == "HTTPRoute"), None)
        if route is not None:  # to the pool only while the pool is written
            assert (route["spec"]["rules"][0]["backendRefs"][0].get("kind") == "InferencePool") == inference_pool
