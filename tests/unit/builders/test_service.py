"""build_service: a Service per model, port 80 to the named http port; with a cluster IP or headless."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.builders.service import build_service, keep_address
from inference_operator.config import OperatorConfig


class TestBuildService:
    def test_service(self, make_svc: Callable[..., InferenceService], cfg: OperatorConfig) -> None:
        svc = make_svc(port=9000)
        service = build_service(svc, svc.spec.models[0], cfg)
        assert (service["apiVersion"], service["kind"]) == ("v1", "Service")
        assert service["metadata"]["name"] == "service-demo-v1"
        assert service["metadata"]["ownerReferences"][0]["uid"] == "0b7e-uid"
        assert service["metadata"]["labels"]["inference.io/model"] == "v1"
        assert service["spec"] == {
            "type": "ClusterIP",
            "selector": {"inference.io/service": "service-demo", "inference.io/model": "v1"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        }

    def test_one_per_model(self, make_svc: Callable[..., InferenceService], cfg: OperatorConfig) -> None:
        svc = make_svc(models=[{"weight": 60}, {"name": "v2", "weight": 40}])
        names = [build_service(svc, m, cfg)["metadata"]["name"] for m in svc.spec.models]
        assert names == ["service-demo-v1", "service-demo-v2"]

    def test_headless_when_the_operator_is_set_so(self, make_svc: Callable[..., InferenceService],
                                                   cfg: OperatorConfig) -> None:
        svc = make_svc()
        headless = cfg.model_copy(update={"headless_model_services": True})
        service = build_service(svc, svc.spec.models[0], headless)
        assert service["spec"]["clusterIP"] == "None"
        assert service["spec"]["ports"] == build_service(svc, svc.spec.models[0], cfg)["spec"]["ports"]


class TestKeepAddress:
    """spec.clusterIP cannot change once set: a Service keeps the kind of address it was created with."""

    @pytest.fixture
    def built(self, make_svc: Callable[..., InferenceService], cfg: OperatorConfig) -> dict[str, dict]:
        svc = make_svc()
        return {"allocated": build_service(svc, svc.spec.models[0], cfg),
                "headless": build_service(svc, svc.spec.models[0],
                                          cfg.model_copy(update={"headless_model_services": True}))}

    def test_a_new_service_is_made_as_the_setting_says(self, built: dict[str, dict]) -> None:
        for manifest in built.values():
            assert keep_address(manifest, None) is manifest

    def test_one_made_with_a_cluster_ip_keeps_it_when_the_setting_turns_headless(self, built: dict[str, dict]) -> None:
        kept = keep_address(built["headless"], {"clusterIP": "10.96.4.7", "clusterIPs": ["10.96.4.7"]})
        assert kept == built["allocated"]

    def test_a_headless_one_stays_headless_when_the_setting_turns_back(self, built: dict[str, dict]) -> None:
        assert keep_address(built["allocated"], {"clusterIP": "None"}) == built["headless"]

    def test_nothing_changes_when_live_and_setting_agree(self, built: dict[str, dict]) -> None:
        assert keep_address(built["allocated"], {"clusterIP": "10.96.4.7"}) is built["allocated"]
        assert keep_address(built["headless"], {"clusterIP": "None"}) is built["headless"]
