"""build_httproute: weighted backends under /v1/infers/<serviceId>, none when stopped or batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.builders.httproute import build_httproute
from inference_operator.config import OperatorConfig

Make = Callable[..., InferenceService]
BATCH = {"srcPath": "s3://in/", "destPath": "s3://out/", "reqUri": "/predict", "mappingType": "file"}


class TestBuildHttpRoute:
    def test_weighted_route(self, make_svc: Make, cfg: OperatorConfig) -> None:
        svc = make_svc(models=[{"weight": 70}, {"name": "v2", "weight": 30}, {"name": "dark", "weight": 0}])
        route = build_httproute(svc, cfg)
        assert route is not None
        assert (route["apiVersion"], route["kind"]) == ("gateway.networking.k8s.io/v1", "HTTPRoute")
        assert route["metadata"]["name"] == "service-demo"
        assert route["metadata"]["ownerReferences"][0]["name"] == "service-demo"
        assert "inference.io/model" not in route["metadata"]["labels"]
        assert "parentRefs" not in route["spec"]
        rule = route["spec"]["rules"][0]
        assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/v1/infers/0b7e-uid"}}]
        assert rule["filters"][0]["urlRewrite"]["path"] == {"type": "ReplacePrefixMatch",
                                                            "replacePrefixMatch": "/"}
        assert rule["backendRefs"] == [
            {"name": "service-demo-v1", "port": 80, "weight": 70},
            {"name": "service-demo-v2", "port": 80, "weight": 30},
            {"name": "service-demo-dark", "port": 80, "weight": 0},
        ]

    def test_parent_ref_from_config(self, make_svc: Make) -> None:
        cfg = OperatorConfig(gateway_parent_ref={"name": "gw", "namespace": "infra"})
        route = build_httproute(make_svc(), cfg)
        assert route is not None and route["spec"]["parentRefs"] == [{"name": "gw", "namespace": "infra"}]

    @pytest.mark.parametrize("spec", [{"stopped": True}, {"inferType": "batch", "batch": BATCH}])
    def test_no_route(self, make_svc: Make, cfg: OperatorConfig, spec: dict[str, Any]) -> None:
        assert build_httproute(make_svc(spec=spec), cfg) is None
