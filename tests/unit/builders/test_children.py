"""build_children: the full desired set in a stable order; unknown flavors fail before building."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.builders.children import build_children
from inference_operator.catalog.flavors import Flavor, UnknownFlavorError
from inference_operator.config import OperatorConfig

Make = Callable[..., InferenceService]


def kinds_and_names(children: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(c["kind"], c["metadata"]["name"]) for c in children]  # type: ignore[index]


class TestBuildChildren:
    def test_order_and_content(self, make_svc: Make, cfg: OperatorConfig, catalog: dict[str, Flavor]) -> None:
        svc = make_svc(models=[{"weight": 50, "scaling": {"enabled": True, "maxReplicas": 2}},
                               {"name": "v2", "weight": 50}])
        assert kinds_and_names(build_children(svc, cfg, catalog, gateway_api=True)) == [
            ("Deployment", "service-demo-v1"), ("Service", "service-demo-v1"),
            ("HorizontalPodAutoscaler", "service-demo-v1"),
            ("Deployment", "service-demo-v2"), ("Service", "service-demo-v2"),
            ("HTTPRoute", "service-demo"),
        ]

    def test_without_gateway_api(self, make_svc: Make, cfg: OperatorConfig,
                                 catalog: dict[str, Flavor]) -> None:
        kinds = [c["kind"] for c in build_children(make_svc(), cfg, catalog, gateway_api=False)]
        assert kinds == ["Deployment", "Service"]

    def test_stopped_keeps_deployments_at_zero(self, make_svc: Make, cfg: OperatorConfig,
                                               catalog: dict[str, Flavor]) -> None:
        svc = make_svc(spec={"stopped": True}, scaling={"enabled": True, "maxReplicas": 2})
        children = build_children(svc, cfg, catalog, gateway_api=True)
        assert [c["kind"] for c in children] == ["Deployment", "Service"]
        assert children[0]["spec"]["replicas"] == 0

    def test_an_idle_model_goes_to_zero_without_its_hpa_the_others_untouched(
            self, make_svc: Make, cfg: OperatorConfig, catalog: dict[str, Flavor]) -> None:
        svc = make_svc(models=[{"weight": 50, "scaling": {"enabled": True, "minReplicas": 0, "maxReplicas": 3}},
                               {"name": "v2", "weight": 50, "instanceCount": 2}])
        awake = build_children(svc, cfg, catalog, gateway_api=False)
        assert kinds_and_names(awake) == [
            ("Deployment", "service-demo-v1"), ("Service", "service-demo-v1"),
            ("HorizontalPodAutoscaler", "service-demo-v1"),
            ("Deployment", "service-demo-v2"), ("Service", "service-demo-v2")]
        assert awake[2]["spec"]["minReplicas"] == 1  # an HPA cannot hold 0: awake, at least one
        asleep = build_children(svc, cfg, catalog, gateway_api=False, idle=frozenset({"v1"}))
        assert kinds_and_names(asleep) == [
            ("Deployment", "service-demo-v1"), ("Service", "service-demo-v1"),
            ("Deployment", "service-demo-v2"), ("Service", "service-demo-v2")]
        assert asleep[0]["spec"]["replicas"] == 0 and asleep[2]["spec"]["replicas"] == 2
        assert asleep[1] == awake[1]  # its Service stays: waking is a replicas change only

    def test_unknown_flavor_names_the_model(self, make_svc: Make, cfg: OperatorConfig,
                                            catalog: dict[str, Flavor]) -> None:
        svc = make_svc(models=[{"weight": 50}, {"name": "v2", "weight": 50, "specification": "gpu.h200"}])
        expected = r'^spec\.models\[1\]\.specification: unknown flavor "gpu\.h200"'
        with pytest.raises(UnknownFlavorError, match=expected):
            build_children(svc, cfg, catalog, gateway_api=True)

    def test_every_child_is_owned_and_labelled(self, make_svc: Make, cfg: OperatorConfig,
                                               catalog: dict[str, Flavor]) -> None:
        children = build_children(make_svc(), cfg, catalog, gateway_api=True)
        assert {c["kind"] for c in children} == {"Deployment", "Service", "HTTPRoute"}
        for child in children:
            assert child["metadata"]["namespace"] == "team-a"
            assert child["metadata"]["labels"]["inference.io/service"] == "service-demo"
            assert child["metadata"]["ownerReferences"][0]["controller"] is True

    def test_deterministic(self, make_svc: Make, cfg: OperatorConfig, catalog: dict[str, Flavor]) -> None:
        def render() -> str:
            svc = make_svc(envs={"B": "1", "A": "2"}, modelUri="oss://b/m", specification="gpu.a100.1")
            return json.dumps(build_children(svc, cfg, catalog, gateway_api=True))

        assert render() == render()
