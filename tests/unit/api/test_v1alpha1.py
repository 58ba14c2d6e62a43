"""The pydantic models mirror every admission rule, with errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from inference_operator.api.v1alpha1 import (
    InferenceService,
    InferenceServiceSpec,
    InferenceServiceStatus,
    InvalidSpecError,
    field_path,
    format_errors,
)

BATCH = {"srcPath": "s3://in/", "destPath": "s3://out/", "reqUri": "/predict", "mappingType": "file"}


def model(**fields: Any) -> dict[str, Any]:
    return {"name": "v1", "modelName": "jar-model", "modelVersion": "1.0.1", "image": "reg/m:1", **fields}


def body(models: list[dict[str, Any]] | None = None, name: str = "service-demo",
         **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "inference.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "team-a", "uid": "uid-1", "generation": 3},
        "spec": {"models": [model()] if models is None else models, **spec},
    }


def errors_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidSpecError) as caught:
        InferenceService.from_body(raw)
    return caught.value.messages


class TestValidBodies:
    def test_minimal_body_gets_defaults(self) -> None:
        svc = InferenceService.from_body(body())
        assert (svc.name, svc.namespace, svc.uid, svc.generation) == ("service-demo", "team-a", "uid-1", 3)
        only = svc.spec.models[0]
        assert svc.spec.infer_type == "real-time" and svc.spec.stopped is False
        assert (only.weight, only.instance_count, only.port, only.runtime) == (100, 1, 8080, "custom")
        assert only.specification == "modelarts.vm.cpu.2u"

    def test_api_md_example(self) -> None:
        svc = InferenceService.from_body(body([
            model(modelId="044ebf3d", modelUri="pvc://models/jar-model/1.0.1", weight=70,
                  specification="custom", customSpec={"cpu": 2, "memory": 8192, "gpu": 1},
                  scaling={"enabled": True, "minReplicas": 1, "maxReplicas": 4, "targetCPUUtilization": 80},
                  envs={"LOG_LEVEL": "info"}),
            model(name="v2", runtime="vllm", image=None, weight=30, specification="gpu.t4"),
        ], description="demo", schedule=[{"type": "stop", "timeUnit": "HOURS", "duration": 2}],
            auth={"appAuth": True, "apps": [{"secretName": "app-team-a"}]}))
        assert svc.spec.models[0].custom_spec is not None
        assert svc.spec.models[0].custom_spec.memory == 8192
        assert svc.spec.auth is not None and svc.spec.auth.apps[0].secret_name == "app-team-a"

    def test_weight_zero_model_is_allowed(self) -> None:
        svc = InferenceService.from_body(body([model(), model(name="dark", weight=0)]))
        assert [(m.name, m.weight) for m in svc.spec.models] == [("v1", 100), ("dark", 0)]

    def test_batch_with_one_model_ignores_weights(self) -> None:
        svc = InferenceService.from_body(body([model(weight=10)], inferType="batch", batch=BATCH))
        assert svc.spec.batch is not None and svc.spec.batch.mapping_type == "file"

    def test_vllm_needs_no_image(self) -> None:
        svc = InferenceService.from_body(body([model(runtime="vllm", image=None)]))
        assert svc.spec.models[0].runtime == "vllm" and svc.spec.models[0].image is None

    def test_snake_case_names_work_too(self) -> None:
        spec = InferenceServiceSpec(models=[{"name": "a", "model_name": "m", "model_version": "1",
                                             "image": "i"}])
        assert spec.models[0].model_name == "m"

    def test_round_trip_by_alias(self) -> None:
        dumped = InferenceService.from_body(body()).spec.model_dump(by_alias=True, exclude_none=True)
        assert dumped["models"][0]["modelName"] == "jar-model" and dumped["inferType"] == "real-time"


class TestInvalidBodies:
    @pytest.mark.parametrize(("models", "spec", "field", "words"), [
        ([model(weight=50), model(name="v2", weight=40)], {}, "spec.models:", "sum to 100"),
        ([model(weight=101)], {}, "spec.models[0].weight:", "less than or equal to 100"),
        ([model(), model(name="v2", weight=-1)], {}, "spec.models[1].weight:", "greater than or equal to 0"),
        ([model(weight=50), model(weight=50)], {}, "spec.models[1].name:", 'duplicate model name "v1"'),
        ([model(name="V_1")], {}, "spec.models[0].name:", "pattern"),
        ([model(name="a" * 41)], {}, "spec.models[0].name:", "at most 40"),
        ([], {}, "spec.models:", "at least 1"),
        ([model(name=f"m{i}", weight=10) for i in range(11)], {}, "spec.models:", "at most 10"),
        ([model(specification="custom")], {}, "spec.models[0].customSpec:", "required"),
        ([model(specification="custom", customSpec={"cpu": 0, "memory": 1})], {},
         "spec.models[0].customSpec.cpu:", "greater than 0"),
        ([model(image=None)], {}, "spec.models[0].image:", "runtime is \"custom\""),
        ([model(runtime="triton")], {}, "spec.models[0].runtime:", "'custom', 'vllm' or 'tgi'"),
        ([model(modelUri="http://x/y")], {}, "spec.models[0].modelUri:", "pattern"),
        ([model(instanceCount=0)], {}, "spec.models[0].instanceCount:", "greater than or equal to 1"),
        ([model(weight=50, port=8000), model(name="v2", weight=50)], {"inferencePool": {"enabled": True}},
         "spec.models[1].port:", "share one port"),
        ([model()], {"inferencePool": {"endpointPicker": {"name": "epp"}}},
         "spec.inferencePool.endpointPicker.port:", "required when kind is Service"),
        ([model()], {"inferencePool": {"endpointPicker": {"name": "Bad_Name", "port": 1}}},
         "spec.inferencePool.endpointPicker.name:", "pattern"),
        ([model(instanceCount=129)], {}, "spec.models[0].instanceCount:", "less than or equal to 128"),
        ([model(scaling={"enabled": True, "minReplicas": 5, "maxReplicas": 2})], {},
         "spec.models[0].scaling.minReplicas:", "less than or equal to maxReplicas"),
        ([model(scaling={"targetCPUUtilization": 0})], {},
         "spec.models[0].scaling.targetCPUUtilization:", "greater than or equal to 1"),
        ([model(scaling={"enabled": True, "metric": "qps"})], {},
         "spec.models[0].scaling.metric:", "'cpu' or 'concurrency'"),
        ([model(scaling={"enabled": True, "metric": "concurrency", "targetConcurrency": 0})], {},
         "spec.models[0].scaling.targetConcurrency:", "greater than or equal to 1"),
        ([model(scaling={"enabled": True, "targetConcurrency": 4})], {},
         "spec.models[0].scaling.targetConcurrency:", "needs metric: concurrency"),
        ([model(runtime="vllm", scaling={"enabled": True, "targetConcurrency": 4, "targetCPUUtilization": 60})], {},
         "spec.models[0].scaling.targetConcurrency:", "needs metric: concurrency"),
        ([model(runtime="tgi", scaling={"enabled": True, "metric": "cpu", "targetConcurrency": 4})], {},
         "spec.models[0].scaling.targetConcurrency:", "needs metric: concurrency"),
        ([model(scaling={"enabled": True, "metric": "concurrency", "metrics": [{"type": "Pods"}]})], {},
         "spec.models[0].scaling.metrics:", "metric: cpu only"),
        ([model(envs={"BAD KEY": "x"})], {}, "spec.models[0].envs[BAD KEY]:", "environment variable"),
        ([model()], {"inferType": "batch"}, "spec.batch:", "required when inferType is batch"),
        ([model()], {"batch": BATCH}, "spec.batch:", "only allowed when inferType is batch"),
        ([model(), model(name="v2", weight=0)], {"inferType": "batch", "batch": BATCH},
         "spec.models:", "exactly one model"),
        ([model()], {"inferType": "batch", "batch": BATCH,
                     "schedule": [{"timeUnit": "HOURS", "duration": 1}]}, "spec.schedule:", "real-time"),
        ([model()], {"schedule": [{"timeUnit": "HOURS", "duration": 0}]},
         "spec.schedule[0].duration:", "greater than or equal to 1"),
        ([model()], {"schedule": [{"timeUnit": "WEEKS", "duration": 1}]},
         "spec.schedule[0].timeUnit:", "DAYS"),
        ([model()], {"schedule": [{"type": "start", "timeUnit": "DAYS", "duration": 1}]},
         "spec.schedule[0].type:", "'stop'"),
        ([model()], {"inferType": "streaming"}, "spec.inferType:", "'real-time' or 'batch'"),
        ([model()], {"batch": {**BATCH, "mappingType": "xml"}, "inferType": "batch"},
         "spec.batch.mappingType:", "'file' or 'csv'"),
    ])
    def test_error_names_the_field(self, models: list[dict[str, Any]], spec: dict[str, Any],
                                   field: str, words: str) -> None:
        messages = errors_of(body(models, **spec))
        assert any(m.startswith(field) and words in m for m in messages), messages

    @pytest.mark.parametrize("name", ["1svc", "Svc", "a" * 64, "svc.demo"])
    def test_service_name_must_be_a_dns_1035_label(self, name: str) -> None:
        assert errors_of(body(name=name))[0].startswith("metadata.name:")

    def test_missing_spec(self) -> None:
        assert errors_of({"metadata": {"name": "x"}}) == ["spec: Field required"]

    def test_missing_required_model_fields(self) -> None:
        messages = errors_of(body([{"name": "v1", "image": "x"}]))
        assert "spec.models[0].modelName: Field required" in messages
        assert "spec.models[0].modelVersion: Field required" in messages

    def test_invalid_spec_error_is_a_value_error_with_joined_text(self) -> None:
        with pytest.raises(ValueError, match=r"spec\.models\[0\]\.weight"):
            InferenceService.from_body(body([model(weight=200)]))


class TestFormatErrors:
    @pytest.mark.parametrize(("loc", "extra", "expected"), [
        (("spec", "models", 1, "weight"), None, "spec.models[1].weight"),
        (("spec",), "models[2].name", "spec.models[2].name"),
        (("spec", "models", 0, "envs"), "[X]", "spec.models[0].envs[X]"),
        (("name",), None, "metadata.name"),
        ((), None, "<root>"),
    ])
    def test_field_path(self, loc: tuple[int | str, ...], extra: str | None, expected: str) -> None:
        assert field_path(loc, extra) == expected

    def test_format_errors_of_a_spec_validation(self) -> None:
        with pytest.raises(ValidationError) as caught:
            InferenceServiceSpec.model_validate({"models": [model(weight=60)]})
        assert format_errors(caught.value) == [
            "models: weights of a real-time service must sum to 100, not 60"]


class TestStatus:
    def test_partial_status_validates(self) -> None:
        status = InferenceServiceStatus.model_validate({"status": "deploying", "progress": 50})
        assert status.models is None and status.conditions is None

    def test_full_status_round_trips(self) -> None:
        raw = {
            "serviceId": "uid-1", "status": "running", "progress": 100, "accessAddress": "http://gw/v1/infers/u",
            "models": [{"name": "v1", "status": "ready", "replicas": 1, "readyReplicas": 1, "weight": 100}],
            "invocationTimes": 3, "failedTimes": 0, "observedGeneration": 3,
            "publishAt": "2024-01-01T00:00:00Z", "transitionAt": "2024-01-01T00:01:00Z",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Running", "message": "ok",
                            "lastTransitionTime": "2024-01-01T00:01:00Z", "observedGeneration": 3}],
        }
        status = InferenceServiceStatus.model_validate(raw)
        assert status.model_dump(by_alias=True, exclude_none=True) == raw

    @pytest.mark.parametrize("raw", [{"status": "pending"}, {"progress": 101},
                                     {"models": [{"status": "ok"}]}, {"conditions": [{"status": "yes"}]}])
    def test_bad_status_values_are_refused(self, raw: dict[str, Any]) -> None:
        with pytest.raises(ValidationError):
            InferenceServiceStatus.model_validate(raw)
