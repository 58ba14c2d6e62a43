"""convert: ModelArts and PAI-EAS service JSON (fixtures in the seeds' shapes) -> valid InferenceServices."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.convert import Options, UnknownFormatError, convert, detect
from inference_operator.convert.__main__ import main
from inference_operator.convert.common import dns_name, obs_uri

FIXTURES = Path(__file__).with_name("fixtures")


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def converted(name: str, opts: Options | None = None) -> tuple[InferenceService, dict[str, Any], list[str]]:
    body, notes = convert(load(name), opts)
    return InferenceService.from_body(body), body, notes


@pytest.mark.parametrize(("name", "fmt"), [
    ("modelarts_get_realtime.json", "modelarts"), ("modelarts_create_weighted.json", "modelarts"),
    ("modelarts_create_batch.json", "modelarts"), ("pai_app_llm_oss.json", "pai-app"),
    ("pai_app_llm_nas.json", "pai-app"), ("pai_eas_service.json", "pai-eas"),
])
def test_every_fixture_converts_to_a_valid_service(name: str, fmt: str) -> None:
    assert detect(load(name)) == fmt
    svc, body, notes = converted(name)
    assert (body["apiVersion"], body["kind"]) == ("inference.io/v1alpha1", "InferenceService")
    assert list(body) == ["apiVersion", "kind", "metadata", "spec"]
    assert svc.spec.models and notes  # every fixture has something that does not carry over


class TestModelArts:
    def test_seed_service(self) -> None:
        svc, _, notes = converted("modelarts_get_realtime.json")
        (model,) = svc.spec.models
        assert svc.name == "service-demo" and svc.spec.infer_type == "real-time"
        assert (model.model_name, model.model_version, model.model_id) == (
            "jar-model", "1.0.1", "044ebf3d-8bf4-48df-bf40-bad0e664c1e2")
        assert (model.name, model.weight, model.instance_count, model.specification) == (
            "jar-model-1-0-1", 100, 1, "custom")
        assert model.custom_spec is not None
        assert (model.custom_spec.cpu, model.custom_spec.memory, model.custom_spec.gpu) == (2, 8192, 1)
        assert model.image == "CHANGE-ME/jar-model:1.0.1" and model.scaling is None
        assert "config[0].model_id: kept as modelId (informational); set modelUri to where the model files " \
               "are (pvc://, nfs://, s3://, obs://)" in notes
        assert "config[0].custom_spec.gpu_p4: 0.5 GPUs rounded up to 1: Kubernetes allocates whole GPUs" in notes
        assert "cluster_id: no equivalent, dropped (a dedicated pool is a flavor's nodeSelector here)" in notes
        assert "status: read-only state of the old service, not carried over" in notes
        assert "config[0].status: read-only state of the old service, not carried over" in notes

    def test_weighted_models_schedule_and_envs(self) -> None:
        svc, _, notes = converted("modelarts_create_weighted.json", Options(image="reg/mnist:1"))
        assert svc.name == "mnist-service" and svc.spec.description == "mnist service"
        assert [(m.name, m.weight, m.instance_count) for m in svc.spec.models] == [
            ("mnist-1-0-0", 70, 2), ("mnist-1-0-1", 30, 1)]
        assert {m.image for m in svc.spec.models} == {"reg/mnist:1"}
        assert svc.spec.models[0].envs == {"model_name": "mxnet-model-1", "load_epoch": "0"}
        assert svc.spec.models[1].scaling is not None and svc.spec.models[1].scaling.enabled
        assert svc.spec.schedule is not None
        assert (svc.spec.schedule[0].time_unit, svc.spec.schedule[0].duration) == ("HOURS", 2)
        assert 'service_name: "Mnist_Service" is not a Kubernetes name; metadata.name is "mnist-service"' in notes
        assert "config[0].envs.bad name: not a valid environment variable name in Kubernetes, dropped" in notes
        assert any(n.startswith('config[1].specification: "modelarts.vm.cpu.8ud" is not a built-in') for n in notes)
        for key in ("vpc_id", "subnet_network_id", "security_group_id", "workspace_id"):
            assert any(n.startswith(f"{key}: no equivalent, dropped") for n in notes)
        assert not any("image lives" in n for n in notes)  # --image given
        assert not any("src_path" in n for n in notes)  # empty batch fields of a real-time config are silent

    def test_batch(self) -> None:
        svc, _, notes = converted("modelarts_create_batch.json")
        assert svc.spec.infer_type == "batch" and svc.spec.batch is not None
        batch = svc.spec.batch
        assert (batch.src_path, batch.dest_path) == ("obs://infers-data/xgboosterdata/", "obs://infers-data/output/")
        assert (batch.req_uri, batch.mapping_type) == ("/", "csv")
        assert batch.mapping_rule == load("modelarts_create_batch.json")["config"][0]["mapping_rule"]
        assert any(n.startswith("config[0].src_path: kept as obs://infers-data/xgboosterdata/; the batch runner "
                                "reads pvc:// and nfs:// only") for n in notes)
        assert any(n.startswith("config[0].model_name: not in the JSON") for n in notes)

    def test_batch_data_on_a_pvc(self) -> None:
        svc, _, _ = converted("modelarts_create_batch.json", Options(data_pvc="obs-copy"))
        assert svc.spec.batch is not None
        assert svc.spec.batch.src_path == "pvc://obs-copy/infers-data/xgboosterdata/"
        assert svc.spec.batch.dest_path == "pvc://obs-copy/infers-data/output/"

    def test_unknown_and_unsupported_fields(self) -> None:
        data = {"service_name": "s", "infer_type": "edge", "frobnicate": 1, "schedule": [
            {"type": "start", "time_unit": "DAYS", "duration": 1}],
            "config": [{"model_name": "m", "model_version": "1", "weight": 100, "nodes": ["n1"],
                        "req_uri": "/x", "instance_count": 500}]}
        body, notes = convert(data)
        InferenceService.from_body(body)
        assert body["spec"]["models"][0]["instanceCount"] == 128
        for expected in ('infer_type: "edge" has no equivalent; converted as real-time',
                         "frobnicate: unknown field, dropped",
                         'schedule[0]: type "start" is not supported (only stop), dropped',
                         "config[0].nodes: no equivalent, dropped (edge nodes)",
                         "config[0].req_uri: only for batch services, dropped",
                         "config[0].instance_count: 500 is outside 1..128; used 128"):
            assert expected in notes


class TestPai:
    def test_llm_app_on_oss(self) -> None:
        svc, _, notes = converted("pai_app_llm_oss.json")
        (model,) = svc.spec.models
        assert svc.name == "foo"
        assert (model.runtime, model.specification, model.model_name, model.instance_count) == (
            "vllm", "llama_7b_fp16", "llama_7b", 1)
        assert model.model_uri == "oss://examplebucket/xxxx/" and model.image is None
        assert "WorkspaceId: no equivalent, dropped (use a namespace)" in notes
        assert "QuotaId: no equivalent, dropped (use a ResourceQuota)" in notes

    def test_llm_app_on_nas(self) -> None:
        svc, _, notes = converted("pai_app_llm_nas.json")
        model = svc.spec.models[0]
        assert svc.name == "chatglm2-demo" and model.instance_count == 2
        assert model.model_uri == "nfs://317d14****-.cn-shanghai.nas.aliyuncs.com/models/chatglm2"
        assert model.specification == "chatglm2_6b_fp16"
        assert sum(n.startswith("Config.") and "dropped" in n for n in notes) == 3

    def test_not_a_preset(self) -> None:
        body, notes = convert({"ServiceName": "x", "ServiceSpec": "ecs.gn6i", "RequestId": "r"})
        InferenceService.from_body(body)
        assert any(n.startswith('ServiceSpec: "ecs.gn6i" is not an LLM preset') for n in notes)
        assert "RequestId: read-only state of the old service, not carried over" in notes

    def test_eas_service(self) -> None:
        svc, _, notes = converted("pai_eas_service.json")
        (model,) = svc.spec.models
        assert svc.name == "qwen-chat" and model.runtime == "custom"
        assert model.image == "eas-registry-vpc.cn-hangzhou.cr.aliyuncs.com/pai-eas/vllm:0.6.3"
        assert model.command is not None and model.command[:2] == ["/bin/sh", "-c"]
        assert (model.port, model.envs, model.instance_count) == (8000, {"HF_HOME": "/tmp"}, 2)
        assert model.model_uri == "oss://examplebucket/qwen-7b-chat/"
        assert model.custom_spec is not None and (model.custom_spec.cpu, model.custom_spec.gpu) == (8, 1)
        assert model.scaling is not None
        assert (model.scaling.min_replicas, model.scaling.max_replicas, model.scaling.target_cpu_utilization) == (
            1, 4, 70)
        assert "storage[0].mount_path: /models: the model is mounted at /mnt/models instead" in notes
        assert "storage[1]: only one model mount is carried over (as modelUri), dropped" in notes
        assert any(n.startswith('autoscaler.scaleStrategies[1]: metric "qps" needs a custom metric') for n in notes)
        assert any(n.startswith("cloud.computing.instance_type") for n in notes)

    def test_processor_service_gets_a_placeholder_image(self) -> None:
        body, notes = convert({"name": "tf", "processor": "tensorflow_cpu_1.15", "model_path": "oss://b/m/",
                               "metadata": {"instance": 1}})
        svc = InferenceService.from_body(body)
        assert svc.spec.models[0].image == "CHANGE-ME/tf:1" and svc.spec.models[0].model_uri == "oss://b/m/"
        assert any('processor "tensorflow_cpu_1.15" has no equivalent' in n for n in notes)


class TestHelpers:
    @pytest.mark.parametrize(("raw", "name"), [
        ("service-demo", "service-demo"), ("Mnist_Service", "mnist-service"), ("9lives", "svc-9lives"),
        ("a__b--c", "a-b-c"), ("___", "svc"), ("x" * 80, "x" * 63),
    ])
    def test_dns_name(self, raw: str, name: str) -> None:
        assert dns_name(raw) == name

    @pytest.mark.parametrize(("path", "uri"), [
        ("obs://b/k", "obs://b/k"), ("/b/k/", "obs://b/k/"),
        ("https://infers-data.obs.cn-north-1.myhuaweicloud.com/x/", "obs://infers-data/x/"),
        ("pvc://c/p", None), ("", None),
    ])
    def test_obs_uri(self, path: str, uri: str | None) -> None:
        assert obs_uri(path) == uri

    def test_unknown_format(self) -> None:
        with pytest.raises(UnknownFormatError, match="not a ModelArts service"):
            detect({"hello": 1})
        with pytest.raises(UnknownFormatError, match="JSON object"):
            detect([1])


class TestCli:
    def test_prints_yaml_and_notes(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main([str(FIXTURES / "modelarts_get_realtime.json"), "--namespace", "team-a"]) == 0
        out, err = capsys.readouterr()
        body = yaml.safe_load(out)
        assert body["metadata"] == {"name": "service-demo", "namespace": "team-a"}
        assert InferenceService.from_body(body).namespace == "team-a"
        assert "config[0].model_id: kept as modelId (informational)" in err

    def test_invalid_result_exits_1_with_reasons(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        source = tmp_path / "s.json"
        source.write_text(json.dumps({"service_name": "s", "config": [
            {"model_name": "a", "model_version": "1", "weight": 60},
            {"model_name": "b", "model_version": "1", "weight": 30}]}))
        assert main([str(source)]) == 1
        out, err = capsys.readouterr()
        assert yaml.safe_load(out)["metadata"]["name"] == "s"
        assert "invalid result: spec.models: weights of a real-time service must sum to 100, not 90" in err

    @pytest.mark.parametrize(("text", "words"), [
        ("{not json", "Expecting property name"), ('{"a": 1}', "not a ModelArts service"),
        ('{"service_name": "s", "config": [1]}', "cannot convert"),
    ])
    def test_unreadable_input_exits_2(self, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      text: str, words: str) -> None:
        source = tmp_path / "bad.json"
        source.write_text(text)
        assert main([str(source)]) == 2
        assert words in capsys.readouterr().err

    def test_missing_file(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["/nonexistent/x.json"]) == 2
        assert "No such file" in capsys.readouterr().err
