"""build_service: a ClusterIP Service per model, port 80 to the named http port."""

from __future__ import annotations

from collections.abc import Callable

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.builders.service import build_service
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
