"""The operator end to end on the local cluster: a user applies InferenceServices and reads status."""

from __future__ import annotations

import copy

import pytest
from kubernetes import client
from kubernetes.utils import parse_quantity
from services import (
    GROUP,
    PLURAL,
    VERSION,
    Cluster,
    manifest,
    model,
    reconciled_after,
    restarted_and_reconciled,
    settled_children,
)


@pytest.fixture
def kube(api, namespace, wait_for, operator) -> Cluster:
    return Cluster(api, namespace, wait_for)


class TestWeightedService:
    def test_three_models_on_gpu_npu_cpu_reach_running(self, kube: Cluster):
        created = kube.create(manifest(
            "weighted",
            model("gpu", 50, "modelarts.vm.gpu.a100"),
            model("npu", 30, "modelarts.vm.ascend.a310"),
            model("cpu", 20, "custom", customSpec={"cpu": 1, "memory": 2048}, instanceCount=2)))
        status = kube.wait_status("weighted", "running")
        assert status["progress"] == 100
        assert status["serviceId"] == created["metadata"]["uid"]
        assert status["accessAddress"] == f"http://gateway.test.local/v1/infers/{created['metadata']['uid']}"
        assert {(m["name"], m["status"], m["weight"], m["readyReplicas"]) for m in status["models"]} == {
            ("gpu", "ready", 50, 1), ("npu", "ready", 30, 1), ("cpu", "ready", 20, 2)}
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("True", "Running")

        gpu = kube.deployment("weighted-gpu").spec.template.spec.containers[0].resources
        assert gpu.limits["nvidia.com/gpu"] == "1"
        npu = kube.deployment("weighted-npu").spec.template.spec.containers[0].resources
        assert npu.limits["huawei.com/ascend-310"] == "1"
        cpu = kube.deployment("weighted-cpu").spec.template.spec.containers[0].resources
        assert parse_quantity(cpu.requests["memory"]) == 2048 * 1024 * 1024
        node_kinds = {}
        for pod in kube.core.list_namespaced_pod(kube.ns).items:
            node = kube.core.read_node(pod.spec.node_name)
            node_kinds[pod.metadata.labels["inference.io/model"]] = node.metadata.labels["inference.io/node-kind"]
        assert node_kinds["gpu"] == "gpu" and node_kinds["npu"] == "npu"

        for child in ("weighted-gpu", "weighted-npu", "weighted-cpu"):
            owner = kube.deployment(child).metadata.owner_references[0]
            assert (owner.kind, owner.uid, owner.controller) == ("InferenceService", created["metadata"]["uid"], True)
            assert kube.core.read_namespaced_service(child, kube.ns).spec.selector["inference.io/model"]

    def test_change_weights_and_instance_count(self, kube: Cluster):
        kube.create(manifest("reweigh", model("a", 50), model("b", 50)))
        kube.wait_status("reweigh", "running")
        kube.replace_models("reweigh", [model("a", 90, instanceCount=3), model("b", 10)])
        status = kube.wait_status("reweigh", "running")
        assert {m["name"]: (m["weight"], m["replicas"]) for m in status["models"]} == {"a": (90, 3), "b": (10, 1)}
        assert kube.deployment("reweigh-a").spec.replicas == 3

    def test_removing_a_model_removes_its_children(self, kube: Cluster):
        kube.create(manifest("shrink", model("keep", 60), model("drop", 40)))
        kube.wait_status("shrink", "running")
        kube.replace_models("shrink", [model("keep", 100)])
        kube.wait_for(lambda: kube.deployment("shrink-drop") is None, 30, "the removed model's Deployment to go")
        services = {s.metadata.name for s in kube.core.list_namespaced_service(kube.ns).items}
        assert services == {"shrink-keep"}
        assert [m["name"] for m in kube.wait_status("shrink", "running")["models"]] == ["keep"]


class TestFailures:
    def test_more_gpus_than_any_node_has_fails_naming_the_resource(self, kube: Cluster):
        kube.create(manifest("greedy", model("big", 100, "custom", customSpec={"cpu": 4, "memory": 8192, "gpu": 9})))
        status = kube.wait_status("greedy", "failed")
        assert "Insufficient nvidia.com/gpu" in status["errorMsg"]
        assert "model big" in status["errorMsg"]
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "Unschedulable")
        kube.wait_for(lambda: any(e.reason == "Failed" and e.type == "Warning" for e in kube.core.list_namespaced_event(
            kube.ns, field_selector="involvedObject.name=greedy").items), 30, "a Warning Event Failed on the service")

    def test_crashing_model_fails_naming_container_and_exit_code(self, kube: Cluster):
        kube.create(manifest("crashy", model("m", 100, image="example.invalid/crashloop:1")))
        status = kube.wait_status("crashy", "failed")
        assert 'container "model"' in status["errorMsg"] and "exit code 1" in status["errorMsg"]
        assert "CrashLoopBackOff" in status["errorMsg"]

    def test_crashing_model_beside_a_serving_one_is_concerning_after_running(self, kube: Cluster):
        kube.create(manifest("half", model("good", 50), model("flaky", 50, instanceCount=1)))
        kube.wait_status("half", "running")
        body = kube.get("half")
        models = copy.deepcopy(body["spec"]["models"])
        models[1]["instanceCount"] = 2
        models[1]["image"] = "example.invalid/crashloop:2"
        kube.replace_models("half", models)
        status = kube.wait_status("half", "concerning", timeout=60)
        assert "model flaky" in status["errorMsg"]

    def test_unpullable_image_fails_naming_the_image(self, kube: Cluster):
        kube.create(manifest("pully", model("m", 100, image="example.invalid/unpullable:9")))
        status = kube.wait_status("pully", "failed")
        assert "example.invalid/unpullable:9" in status["errorMsg"]

    def test_unknown_flavor_fails_naming_it_then_recovers(self, kube: Cluster):
        kube.create(manifest("odd", model("m", 100, "no.such.flavor")))
        status = kube.wait_status("odd", "failed")
        assert "no.such.flavor" in status["errorMsg"] and "spec.models[0].specification" in status["errorMsg"]
        assert kube.deployment("odd-m") is None
        kube.replace_models("odd", [model("m", 100, "modelarts.vm.cpu.2u")])
        kube.wait_status("odd", "running")


class TestScalingAndStopping:
    def test_scaling_on_and_off(self, kube: Cluster):
        kube.create(manifest("elastic", model("m", 100, instanceCount=2)))
        kube.wait_status("elastic", "running")
        kube.replace_models("elastic", [model("m", 100, instanceCount=2,
                                              scaling={"enabled": True, "minReplicas": 1, "maxReplicas": 5})])
        hpa = kube.wait_for(lambda: kube.hpa("elastic-m"), 30, "the HPA")
        assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, 5)
        managers = {f.manager for f in kube.deployment("elastic-m").metadata.managed_fields
                    if "f:replicas" in str(f.fields_v1)}
        assert "inference-operator" not in managers
        kube.replace_models("elastic", [model("m", 100, instanceCount=3)])
        kube.wait_for(lambda: kube.hpa("elastic-m") is None, 30, "the HPA to go")
        kube.wait_for(lambda: kube.deployment("elastic-m").spec.replicas == 3, 30, "3 replicas")
        kube.wait_status("elastic", "running")

    def test_stop_and_start(self, kube: Cluster):
        kube.create(manifest("pausable", model("m", 100, scaling={"enabled": True, "maxReplicas": 3})))
        kube.wait_status("pausable", "running")
        kube.patch_spec("pausable", {"stopped": True})
        status = kube.wait_status("pausable", "stopped")
        assert status["progress"] == 0
        kube.wait_for(lambda: kube.deployment("pausable-m").spec.replicas == 0, 30, "0 replicas")
        kube.wait_for(lambda: kube.hpa("pausable-m") is None, 30, "the HPA to go")
        kube.wait_for(lambda: not kube.core.list_namespaced_pod(kube.ns).items, 30, "pods to go")
        kube.patch_spec("pausable", {"stopped": False})
        kube.wait_status("pausable", "running")
        assert kube.wait_for(lambda: kube.hpa("pausable-m"), 30, "the HPA back")


class TestSelfHealing:
    def test_deleted_child_comes_back(self, kube: Cluster):
        kube.create(manifest("healing", model("m", 100)))
        kube.wait_status("healing", "running")
        old_uid = kube.deployment("healing-m").metadata.uid
        kube.apps.delete_namespaced_deployment("healing-m", kube.ns)
        kube.wait_for(lambda: (d := kube.deployment("healing-m")) and d.metadata.uid != old_uid, 10,
                      "the Deployment to be recreated")
        kube.wait_status("healing", "running")


def alone(kube: Cluster) -> None:
    """Other tests' namespaces are gone: their deletion is a change, and their services' passes would count."""
    kube.wait_for(lambda: not [n for n in kube.core.list_namespace().items
                               if n.metadata.name.startswith("t-") and n.metadata.name != kube.ns],
                  60, "other tests' namespaces to be gone")


class TestWrites:
    def test_unchanged_services_cause_no_writes_even_across_a_restart(self, kube: Cluster, operator):
        kube.create(manifest("quiet", model("a", 70), model("b", 30)))
        kube.create(manifest("pooled", model("a", 100),  # an InferencePool and an HTTPRoute to it (real CRDs)
                             inferencePool={"enabled": True, "endpointPicker": {"name": "epp", "port": 9002}}))
        kube.wait_status("quiet", "running")
        kube.wait_status("pooled", "running")
        kube.wait_for(lambda: any(c["type"] == "InferencePoolAccepted" for c in kube.status("pooled")["conditions"]),
                      15, "the pool's conditions in the status")
        alone(kube)
        kube.wait_for(lambda: settled_children(kube), 60, "the Deployments rolled out and every pod ready")
        # The operator's passes over the final children: any write still due to them lands here.
        # (the service only: its Deployments' controller would answer a touch with status writes of its own,
        # and the Deployments' resourceVersions are compared across the restart below)
        reconciled_after(kube, operator, lambda: kube.touch("quiet", deployments=False))
        before = operator.writes()
        reconciled_after(kube, operator, lambda: kube.touch("quiet", deployments=False))  # unchanged service
        assert operator.writes() == before, "writes while nothing changed"
        versions = {d.metadata.name: d.metadata.resource_version
                    for d in kube.apps.list_namespaced_deployment(kube.ns).items}
        service_version = kube.get("quiet")["metadata"]["resourceVersion"]

        operator.restart()
        restarted_and_reconciled(kube, operator, "quiet", "running")
        assert operator.writes() == 0, "the restarted operator wrote"
        assert kube.get("quiet")["metadata"]["resourceVersion"] == service_version
        assert versions == {d.metadata.name: d.metadata.resource_version
                            for d in kube.apps.list_namespaced_deployment(kube.ns).items}


class TestAdmission:
    """The API server itself refuses bad manifests, naming the field (schema + CEL in the CRD)."""

    @pytest.mark.parametrize(("spec", "field", "words"), [
        ({"models": [model("a", 60), model("b", 30)]}, "spec.models", "sum to 100"),
        ({"models": [model("a", 50), model("a", 50)]}, "spec.models", "unique"),
        ({"models": [model("Bad_Name")]}, "spec.models[0].name", ""),
        ({"models": [model("a", 101)]}, "spec.models[0].weight", ""),
        ({"models": [model("a", spec="custom")]}, "spec.models[0].customSpec", "custom"),
        ({"models": [{k: v for k, v in model("a").items() if k != "image"}]}, "spec.models[0].image", "image"),
        ({"models": [model("a")], "batch": {"srcPath": "pvc://d/in", "destPath": "pvc://d/out", "reqUri": "/p",
                                            "mappingType": "file"}}, "spec.batch", "batch"),
        ({"models": [model("a")], "schedule": [{"type": "stop", "timeUnit": "HOURS", "duration": 0}]},
         "spec.schedule[0].duration", ""),
        ({"models": [model(f"m{i}", 10) for i in range(11)]}, "spec.models", ""),
        ({"models": []}, "spec.models", ""),
        ({"models": [model("a", scaling={"enabled": True, "targetConcurrency": 4})]},
         "spec.models[0].scaling.targetConcurrency", "needs metric: concurrency"),
        ({"models": [model("a", runtime="vllm", scaling={"enabled": True, "targetConcurrency": 4,
                                                         "targetCPUUtilization": 60})]},
         "spec.models[0].scaling.targetConcurrency", "needs metric: concurrency"),
    ], ids=["weights-sum", "duplicate-names", "dns-label", "weight-range", "custom-needs-customSpec",
            "custom-needs-image", "batch-only-with-batch-type", "schedule-duration", "too-many-models",
            "no-models", "targetConcurrency-needs-concurrency", "targetConcurrency-not-beside-a-cpu-target"])
    def test_bad_manifest_is_refused_naming_the_field(self, api, namespace, crds, spec, field, words):
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService", "metadata": {"name": "bad"},
                "spec": spec}
        with pytest.raises(client.ApiException) as refused:
            client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        assert refused.value.status == 422
        assert field in refused.value.body
        assert words in refused.value.body


class TestScheduledStop:
    def test_service_stops_itself_at_due_time_and_keeps_it_across_restart(self, kube: Cluster, operator):
        from datetime import datetime, timedelta

        def at(text: str) -> datetime:
            return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")

        kube.create(manifest("timed", model("m", 100),
                             schedule=[{"type": "stop", "timeUnit": "MINUTES", "duration": 2}]))
        status = kube.wait_status("timed", "running")
        status = kube.wait_for(lambda: (s := kube.status("timed")).get("dueTime") and s, 10, "dueTime")
        assert at(status["dueTime"]) - at(status["startedAt"]) == timedelta(minutes=2)

        kube.patch_spec("timed", {"schedule": [{"type": "stop", "timeUnit": "MINUTES", "duration": 1}]})
        moved = kube.wait_for(lambda: (s := kube.status("timed")).get("dueTime") != status["dueTime"] and s,
                              10, "dueTime to move")
        assert at(moved["dueTime"]) - at(moved["startedAt"]) == timedelta(minutes=1)
        assert moved["startedAt"] == status["startedAt"]

        alone(kube)
        operator.restart()
        restarted_and_reconciled(kube, operator, "timed", "running")
        assert kube.status("timed")["dueTime"] == moved["dueTime"], "a restart must not reset the due time"
        assert kube.status("timed")["status"] == "running", "a restart must not stop it early"

        stopped = kube.wait_status("timed", "stopped", timeout=90)
        assert stopped["progress"] == 0
        assert kube.deployment("timed-m").spec.replicas == 0
        assert kube.get("timed")["spec"]["stopped"] is False, "the user's manifest is never rewritten"

        kube.patch_spec("timed", {"stopped": True})
        kube.wait_for(lambda: "startedAt" not in kube.status("timed"), 10, "the period to be cleared")
        kube.patch_spec("timed", {"stopped": False})
        restarted = kube.wait_status("timed", "running")
        restarted = kube.wait_for(lambda: (s := kube.status("timed")).get("dueTime") and s, 10, "a new dueTime")
        assert at(restarted["startedAt"]) > at(moved["startedAt"])


class TestFlavorCatalog:
    def test_admin_flavor_configmap_is_read_without_restart(self, kube: Cluster, operator):
        kube.create(manifest("tailored", model("m", 100, "team.gpu.half-node")))
        status = kube.wait_status("tailored", "failed")
        assert "team.gpu.half-node" in status["errorMsg"]
        flavor = ("cpu: 48\nmemoryMiB: 524288\ngpu: 4\n"
                  "nodeSelector: {nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB}\n")
        configmap = {"metadata": {"name": "inference-flavors"}, "data": {"team.gpu.half-node": flavor}}
        kube.core.create_namespaced_config_map(operator.namespace, configmap)
        try:
            kube.wait_status("tailored", "running")
            limits = kube.deployment("tailored-m").spec.template.spec.containers[0].resources.limits
            assert limits["nvidia.com/gpu"] == "4"
        finally:
            kube.core.delete_namespaced_config_map("inference-flavors", operator.namespace)


class TestBatchService:
    def test_batch_job_runs_and_service_finishes_freeing_the_model(self, kube: Cluster):
        batch = {"srcPath": "pvc://data/in", "destPath": "pvc://data/out", "reqUri": "/predict",
                 "mappingType": "file"}
        kube.core.create_persistent_volume({
            "metadata": {"name": f"{kube.ns}-data"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"], "storageClassName": "",
                     "persistentVolumeReclaimPolicy": "Delete", "hostPath": {"path": "/tmp/data"},
                     "claimRef": {"namespace": kube.ns, "name": "data"}}})
        kube.core.create_namespaced_persistent_volume_claim(kube.ns, {
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": f"{kube.ns}-data",
                     "resources": {"requests": {"storage": "1Gi"}}}})
        kube.create(manifest("nightly", model("m", 100), inferType="batch", batch=batch))
        try:
            self.check_finished(kube)
        finally:
            kube.core.delete_persistent_volume(f"{kube.ns}-data")

    def check_finished(self, kube: Cluster) -> None:
        status = kube.wait_status("nightly", "finished", timeout=60)
        assert status["progress"] == 100
        jobs = client.BatchV1Api(kube.api).list_namespaced_job(kube.ns).items
        assert len(jobs) == 1 and jobs[0].status.succeeded == 1
        runner = jobs[0].spec.template.spec.containers[0]
        assert "--url" in runner.args and f"http://nightly-m.{kube.ns}.svc/predict" in runner.args
        kube.wait_for(lambda: kube.deployment("nightly-m").spec.replicas == 0, 30,
                      "the model server to be scaled to 0 after the batch")
        assert "accessAddress" not in status


class TestLLMPresets:
    def test_vllm_preset_is_sized_to_gpus_and_runs(self, kube: Cluster):
        llm = {"name": "chat", "modelName": "llama-13b", "modelVersion": "2", "runtime": "vllm",
               "specification": "llama_13b_fp16", "weight": 100, "modelUri": "nfs://nfs.example.internal/llama"}
        kube.create(manifest("llm", llm))
        status = kube.wait_status("llm", "running")
        container = kube.deployment("llm-chat").spec.template.spec.containers[0]
        gpus = int(container.resources.limits["nvidia.com/gpu"])
        assert gpus >= 1
        args = " ".join(container.args)
        assert f"--tensor-parallel-size {gpus}" in args and "--served-model-name llama-13b" in args
        assert status["models"][0]["status"] == "ready"

    def test_a_70b_preset_spans_several_gpus_of_one_node(self, kube: Cluster):
        llm = {"name": "big", "modelName": "llama-70b", "modelVersion": "2", "runtime": "vllm",
               "specification": "llama_70b_fp16", "weight": 100}
        kube.create(manifest("seventy", llm))
        kube.wait_status("seventy", "running")
        gpus = int(kube.deployment("seventy-big").spec.template.spec.containers[0].resources.limits["nvidia.com/gpu"])
        assert gpus in (2, 4, 8)  # 140 GB of fp16 weights do not fit one 80 GB GPU
