"""The EAS view of an InferenceService: the status table of docs/cloud-api.md, the Service struct as
alibabacloud_eas20210701's models read it, the list's paging, bodies kept and shown back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from alibabacloud_eas20210701 import models

from inference_operator.cloudapi.eas import bodies, shapes
from inference_operator.cloudapi.eas.statuses import EasStatus, eas_status
from inference_operator.cloudapi.errors import CloudError


def obj(state: str | None = None, stopped: bool = False, generation: int = 1, observed: int = 1,
        deleting: bool = False, reason: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "demo", "namespace": "team-a", "uid": "u-1", "generation": generation,
                            "creationTimestamp": "2026-01-01T00:00:00Z"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    status: dict[str, Any] = {}
    if state:
        status = {"status": state, "observedGeneration": observed, "publishAt": "2026-01-01T00:00:01Z",
                  "models": [{"name": "main", "replicas": 2, "readyReplicas": 1}],
                  "conditions": [{"type": "Ready", "status": "False", "reason": reason or "Deploying"}]}
    return {"metadata": meta, "spec": {"stopped": stopped, "models": [{"name": "main", "image": "img:1",
                                                                      "instanceCount": 2}]}, "status": status}


@pytest.mark.parametrize(("kw", "want"), [
    ({}, EasStatus.CREATING),
    ({"state": "deploying"}, EasStatus.CREATING),
    ({"state": "deploying", "reason": "NodeNotReady"}, EasStatus.WAITING),
    ({"state": "running"}, EasStatus.RUNNING),
    ({"state": "concerning"}, EasStatus.RUNNING),
    ({"state": "running", "generation": 2}, EasStatus.UPDATING),
    ({"state": "deploying", "generation": 2, "observed": 2}, EasStatus.UPDATING),
    ({"state": "failed"}, EasStatus.FAILED),
    ({"state": "running", "stopped": True}, EasStatus.STOPPING),
    ({"state": "stopped", "stopped": True}, EasStatus.STOPPED),
    ({"state": "stopped"}, EasStatus.STARTING),
    ({"state": "running", "deleting": True}, EasStatus.DELETING),
    ({"state": "finished"}, EasStatus.COMPLETE),
])
def test_status_table(kw: dict[str, Any], want: EasStatus) -> None:
    assert eas_status(obj(**kw)) is want


def test_service_struct_reads_back_through_the_sdk_models() -> None:
    manifest = bodies.to_manifest({"metadata": {"name": "demo", "instance": 2, "workspace_id": "ws-1"},
                                   "containers": [{"image": "img:1", "port": 8000}]}, bodies.SERVICE, "team-a")
    stored = {**obj("running"), "metadata": {**obj("running")["metadata"], **manifest["metadata"]}}
    read = models.Service().from_map(shapes.service(stored, "local", "http://gw"))
    assert (read.service_name, read.status, read.running_instance, read.total_instance) == ("demo", "Running", 1, 2)
    assert read.internet_endpoint == "http://gw/api/predict/team-a.demo" and read.image == "img:1"
    assert json.loads(read.service_config)["metadata"]["workspace_id"] == "ws-1"  # kept, shown back
    assert "metadata.workspace_id" in read.message


def test_unknown_field_is_refused_naming_it() -> None:
    with pytest.raises(CloudError) as err:
        bodies.to_manifest({"metadata": {"name": "demo"}, "containers": [{"image": "i", "prot": 80}]},
                           bodies.SERVICE, "team-a")
    assert err.value.status == 400 and "containers[0].prot" in err.value.message


def test_wrong_type_is_refused_naming_it() -> None:
    with pytest.raises(CloudError) as err:
        bodies.to_manifest({"ServiceName": "llm", "ServiceSpec": "llama_7b_fp16", "Replicas": "many"},
                           bodies.APP, "team-a")
    assert "Replicas" in err.value.message


def test_script_is_the_start_command_and_gpu_alone_is_noted() -> None:
    manifest = bodies.to_manifest({"metadata": {"name": "demo", "gpu": 1},
                                   "containers": [{"image": "i", "script": "python app.py"}]}, bodies.SERVICE, "ns")
    assert manifest["spec"]["models"][0]["command"] == ["/bin/sh", "-c", "python app.py"]
    assert "metadata.gpu" in manifest["metadata"]["annotations"][bodies.NOTES_ANNOTATION]


def test_paging_and_bad_page_size() -> None:
    services = [{"ServiceName": f"s{i}", "Status": "Running", "CreateTime": f"t{i}"} for i in range(5)]
    answer = shapes.page(services, {"PageSize": "2", "PageNumber": "3", "Sort": "ServiceName", "Order": "asc"}, "r")
    assert ([s["ServiceName"] for s in answer["Services"]], answer["TotalCount"]) == (["s4"], 5)
    with pytest.raises(CloudError) as err:
        shapes.page(services, {"PageSize": "0"}, "r")
    assert "PageSize" in err.value.message


def test_update_merges_into_the_stored_body() -> None:
    old = {"metadata": {"name": "demo", "instance": 1}, "containers": [{"image": "a"}]}
    assert bodies.merged(old, {"metadata": {"instance": 3}}) == {"metadata": {"name": "demo", "instance": 3},
                                                                 "containers": [{"image": "a"}]}


@pytest.mark.parametrize(("model", "want"), [
    ({"specification": "custom", "customSpec": {"cpu": 1.5, "memory": 2048, "gpu": 1}}, (2, 2048, 1)),
    ({}, (2, 8192, 0)),  # the default specification, modelarts.vm.cpu.2u: 2 cores, 8 GiB
    ({"specification": "no.such.flavor"}, (None, None, None)),  # not known here: none, not a guess
])
def test_cpu_memory_and_gpu_of_one_instance_as_the_sdk_reads_them(model: dict[str, Any], want: tuple) -> None:
    body = obj("running")
    body["spec"]["models"][0].update({"modelName": "demo", "modelVersion": "1.0.0", **model})
    shown = models.Service().from_map(shapes.service(body, "cn-hangzhou", "http://gw"))
    assert (shown.cpu, shown.memory, shown.gpu) == want
