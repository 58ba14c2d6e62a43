"""build_hpa: only when scaling runs; bounds default from instanceCount; CPU or given metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.builders.hpa import build_hpa
from inference_operator.config import OperatorConfig

Make = Callable[..., InferenceService]


def hpa_of(svc: InferenceService, cfg: OperatorConfig) -> dict[str, Any] | None:
    return build_hpa(svc, svc.spec.models[0], cfg)


class TestBuildHpa:
    @pytest.mark.parametrize(("spec", "fields"), [
        ({}, {}),
        ({}, {"scaling": {"enabled": False, "maxReplicas": 3}}),
        ({"stopped": True}, {"scaling": {"enabled": True, "maxReplicas": 3}}),
    ])
    def test_no_hpa(self, make_svc: Make, cfg: OperatorConfig, spec: dict[str, Any],
                    fields: dict[str, Any]) -> None:
        assert hpa_of(make_svc(spec=spec, **fields), cfg) is None

    def test_cpu_hpa(self, make_svc: Make, cfg: OperatorConfig) -> None:
        hpa = hpa_of(make_svc(scaling={"enabled": True, "minReplicas": 1, "maxReplicas": 4,
                                       "targetCPUUtilization": 70}), cfg)
        assert hpa is not None
        assert (hpa["apiVersion"], hpa["kind"]) == ("autoscaling/v2", "HorizontalPodAutoscaler")
        assert hpa["metadata"]["name"] == "service-demo-v1"
        assert hpa["metadata"]["ownerReferences"][0]["kind"] == "InferenceService"
        assert hpa["spec"] == {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "service-demo-v1"},
            "minReplicas": 1, "maxReplicas": 4,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
        }

    @pytest.mark.parametrize(("count", "scaling", "bounds"), [
        (1, {}, (1, 1)),
        (3, {}, (3, 3)),
        (2, {"maxReplicas": 5}, (2, 5)),
        (2, {"minReplicas": 4}, (4, 4)),
        (5, {"maxReplicas": 3}, (3, 3)),
        (1, {"minReplicas": 2, "maxReplicas": 6}, (2, 6)),
    ])
    def test_bounds(self, make_svc: Make, cfg: OperatorConfig, count: int, scaling: dict[str, int],
                    bounds: tuple[int, int]) -> None:
        hpa = hpa_of(make_svc(instanceCount=count, scaling={"enabled": True, **scaling}), cfg)
        assert hpa is not None
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == bounds

    def test_custom_metrics_pass_through(self, make_svc: Make, cfg: OperatorConfig) -> None:
        metric = {"type": "Pods", "pods": {"metric": {"name": "requests_in_flight"},
                                           "target": {"type": "AverageValue", "averageValue": "10"}}}
        hpa = hpa_of(make_svc(scaling={"enabled": True, "maxReplicas": 3, "metrics": [metric]}), cfg)
        assert hpa is not None and hpa["spec"]["metrics"] == [metric]


def test_a_model_scaled_on_concurrency_has_no_hpa_and_the_decided_replicas() -> None:
    from inference_operator.builders.deployment import desired_replicas

    svc = InferenceService.from_body({"apiVersion": "inference.io/v1alpha1", "kind": "InferenceService",
                                      "metadata": {"name": "s", "namespace": "n"}, "spec": {"models": [{
                                          "name": "m", "modelName": "x", "modelVersion": "1", "runtime": "vllm",
                                          "scaling": {"enabled": True, "metric": "concurrency",
                                                      "minReplicas": 2, "maxReplicas": 5}}]}})
    model = svc.spec.models[0]
    assert build_hpa(svc, model, OperatorConfig()) is None
    assert (desired_replicas(svc, model, 4), desired_replicas(svc, model)) == (4, 2)


def _llm(runtime: str, scaling: dict[str, Any]) -> InferenceService:
    return InferenceService.from_body({"apiVersion": "inference.io/v1alpha1", "kind": "InferenceService",
                                       "metadata": {"name": "s", "namespace": "n"}, "spec": {"models": [{
                                           "name": "m", "modelName": "x", "modelVersion": "1", "runtime": runtime,
                                           "image": "i:1", "scaling": {"enabled": True, **scaling}}]}})


@pytest.mark.parametrize(("runtime", "scaling", "concurrency", "target"), [
    ("vllm", {}, True, 32),  # an LLM engine: concurrency by default, at the LLM default target
    ("tgi", {"maxReplicas": 4}, True, 32),
    ("vllm", {"targetConcurrency": 6}, True, 6),  # the user's target wins
    ("custom", {"metric": "concurrency"}, True, 10),  # any other server: the generic target
    ("vllm", {"metric": "cpu"}, False, None),  # the user's metric wins
    ("vllm", {"targetCPUUtilization": 60}, False, None),  # CPU settings say an HPA was meant
    ("tgi", {"metrics": [{"type": "Pods"}]}, False, None),
    ("custom", {}, False, None),  # cpu stays the default for every other runtime
])
def test_the_metric_defaults_to_concurrency_for_llm_engines_and_what_the_user_sets_wins(
        runtime: str, scaling: dict[str, Any], concurrency: bool, target: int | None) -> None:
    svc = _llm(runtime, scaling)
    model = svc.spec.models[0]
    assert model.scales_on_concurrency is concurrency
    assert (build_hpa(svc, model, OperatorConfig()) is None) is concurrency
    if target is not None:
        assert model.concurrency_target == target


def test_an_hpa_of_a_model_without_a_cpu_target_aims_at_the_default() -> None:
    hpa = build_hpa(svc := _llm("custom", {}), svc.spec.models[0], OperatorConfig())
    assert hpa is not None and hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80


@pytest.mark.parametrize(("runtime", "scaling", "expected"), [
    ("vllm", {"enabled": True}, True),
    ("tgi", {"enabled": True, "targetConcurrency": 3}, True),
    ("vllm", {"enabled": True, "metric": "cpu"}, False),
    ("vllm", {"enabled": True, "targetCPUUtilization": 50}, False),
    ("vllm", {"enabled": False}, False),
    ("custom", {"enabled": True}, False),
    ("custom", {"enabled": True, "metric": "concurrency"}, True),
])
def test_the_counts_loop_reads_the_same_default_from_the_raw_body(runtime: str, scaling: dict[str, Any],
                                                                   expected: bool) -> None:
    """runtime/gateway_counts.py picks the services to scale from their bodies before parsing them."""
    from inference_operator.runtime.gateway_counts import on_concurrency

    body = {"spec": {"models": [{"name": "m", "runtime": runtime, "scaling": scaling}]}}
    assert on_concurrency(body) is expected
