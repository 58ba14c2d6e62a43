"""build_batch_job: the runner Job of a batch service (issue 6)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.builders.batch import BatchPathError, build_batch_job
from inference_operator.builders.service import build_service
from inference_operator.config import OperatorConfig

Make = Callable[..., InferenceService]
RULE = {"type": "object", "properties": {"x": {"type": "number", "index": 0}}}


def batch_svc(make_svc: Make, stopped: bool = False, **batch: Any) -> InferenceService:
    spec = {"inferType": "batch", "stopped": stopped, "batch": {
        "srcPath": "pvc://data/in/", "destPath": "pvc://results/out", "reqUri": "/predict",
        "mappingType": "file", **batch}}
    return make_svc(spec=spec)


def job_of(svc: InferenceService, cfg: OperatorConfig) -> dict[str, Any]:
    return build_batch_job(svc, svc.spec.models[0], cfg)


def runner(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]["containers"][0]


class TestBuildBatchJob:
    def test_shape_owner_and_labels(self, make_svc: Make, cfg: OperatorConfig) -> None:
        job = job_of(batch_svc(make_svc), cfg)
        assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
        meta = job["metadata"]
        assert meta["name"].startswith("service-demo-v1-batch-") and len(meta["name"]) <= 63
        assert meta["namespace"] == "team-a"
        owner = meta["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "InferenceService", "service-demo", "0b7e-uid", True)
        assert meta["labels"] == {"app.kubernetes.io/managed-by": "inference-operator",
                                  "app.kubernetes.io/part-of": "service-demo",
                                  "inference.io/component": "batch-runner",
                                  "inference.io/model": "v1", "inference.io/service": "service-demo"}
        pod_labels = job["spec"]["template"]["metadata"]["labels"]
        assert "inference.io/model" not in pod_labels  # the model's Service must not select the runner
        assert pod_labels["inference.io/service"] == "service-demo"

    def test_job_spec(self, make_svc: Make, cfg: OperatorConfig) -> None:
        job = job_of(batch_svc(make_svc), cfg)
        assert job["spec"]["backoffLimit"] == 2 and job["spec"]["suspend"] is False
        assert "ttlSecondsAfterFinished" not in job["spec"]
        pod = job["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never" and pod["enableServiceLinks"] is False
        assert pod["securityContext"] == {"fsGroup": 65532, "fsGroupChangePolicy": "OnRootMismatch"}
        main = runner(job)
        assert main["image"] == "ghcr.io/inference-operator/inference-operator:0.1.0"
        assert main["command"] == ["python", "-m", "inference_operator.batch"]
        assert main["terminationMessagePolicy"] == "FallbackToLogsOnError"
        assert main["terminationMessagePath"] == "/dev/termination-log"

    def test_args_point_at_the_model_service(self, make_svc: Make, cfg: OperatorConfig) -> None:
        svc = batch_svc(make_svc)
        args = runner(job_of(svc, cfg))["args"]
        service = build_service(svc, svc.spec.models[0], cfg)["metadata"]["name"]
        assert args == ["--src", "/mnt/batch/src", "--dest", "/mnt/batch/dst",
                        "--url", f"http://{service}.team-a.svc/predict", "--mapping-type", "file",
                        "--progress-file", "/mnt/batch/dst/.inference-batch-progress.json",
                        "--termination-log", "/dev/termination-log", "--resume"]

    def test_csv_rule_is_compact_json(self, make_svc: Make, cfg: OperatorConfig) -> None:
        args = runner(job_of(batch_svc(make_svc, mappingType="csv", mappingRule=RULE), cfg))["args"]
        rule = args[args.index("--mapping-rule") + 1]
        assert json.loads(rule) == RULE and " " not in rule
        assert args[args.index("--mapping-type") + 1] == "csv"

    def test_runner_image_from_config(self, make_svc: Make) -> None:
        cfg = OperatorConfig(batch_runner_image="mirror/io:2")
        assert runner(job_of(batch_svc(make_svc), cfg))["image"] == "mirror/io:2"

    def test_stopped_suspends(self, make_svc: Make, cfg: OperatorConfig) -> None:
        assert job_of(batch_svc(make_svc, stopped=True), cfg)["spec"]["suspend"] is True


class TestBatchVolumes:
    def test_two_claims(self, make_svc: Make, cfg: OperatorConfig) -> None:
        job = job_of(batch_svc(make_svc), cfg)
        assert job["spec"]["template"]["spec"]["volumes"] == [
            {"name": "batch-src", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "batch-dst", "persistentVolumeClaim": {"claimName": "results"}}]
        assert runner(job)["volumeMounts"] == [
            {"name": "batch-src", "mountPath": "/mnt/batch/src", "subPath": "in", "readOnly": True},
            {"name": "batch-dst", "mountPath": "/mnt/batch/dst", "subPath": "out"}]

    def test_one_claim_one_volume(self, make_svc: Make, cfg: OperatorConfig) -> None:
        job = job_of(batch_svc(make_svc, srcPath="pvc://data/in", destPath="pvc://data"), cfg)
        assert job["spec"]["template"]["spec"]["volumes"] == [
            {"name": "batch-data", "persistentVolumeClaim": {"claimName": "data"}}]
        assert runner(job)["volumeMounts"] == [
            {"name": "batch-data", "mountPath": "/mnt/batch/src", "subPath": "in", "readOnly": True},
            {"name": "batch-data", "mountPath": "/mnt/batch/dst"}]

    def test_nfs(self, make_svc: Make, cfg: OperatorConfig) -> None:
        job = job_of(batch_svc(make_svc, srcPath="nfs://10.0.0.5/exports/in"), cfg)
        assert job["spec"]["template"]["spec"]["volumes"][0] == {
            "name": "batch-src", "nfs": {"server": "10.0.0.5", "path": "/"}}
        assert runner(job)["volumeMounts"][0]["subPath"] == "exports/in"

    @pytest.mark.parametrize(("field", "uri"), [("srcPath", "obs://bucket/in"), ("destPath", "s3://b/out")])
    def test_object_storage_is_refused_naming_the_field(self, make_svc: Make, cfg: OperatorConfig,
                                                         field: str, uri: str) -> None:
        with pytest.raises(BatchPathError, match=rf"spec\.batch\.{field}: .* use pvc://"):
            job_of(batch_svc(make_svc, **{field: uri}), cfg)

    def test_real_time_service_has_no_job(self, make_svc: Make, cfg: OperatorConfig) -> None:
        with pytest.raises(ValueError, match="spec.batch"):
            job_of(make_svc(), cfg)


class TestJobName:
    def test_deterministic_and_changes_with_the_template(self, make_svc: Make, cfg: OperatorConfig) -> None:
        first = job_of(batch_svc(make_svc), cfg)
        assert first == job_of(batch_svc(make_svc), cfg)
        changed = job_of(batch_svc(make_svc, reqUri="/v2/predict"), cfg)
        assert changed["metadata"]["name"] != first["metadata"]["name"]
        stopped = job_of(batch_svc(make_svc, stopped=True), cfg)
        assert stopped["metadata"]["name"] == first["metadata"]["name"]  # suspend is not in the template

    def test_long_names_fit(self, make_svc: Make, cfg: OperatorConfig) -> None:
        svc = make_svc(name="s" * 63, spec={"inferType": "batch", "batch": {
            "srcPath": "pvc://d/i", "destPath": "pvc://d/o", "reqUri": "/", "mappingType": "file"}})
        assert len(job_of(svc, cfg)["metadata"]["name"]) == 63
