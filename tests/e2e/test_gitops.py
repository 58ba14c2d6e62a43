"""GitOps tools on real InferenceServices: kstatus (Flux), the Argo CD health check, an empty diff.

Every object judged here is one the API server returned: the response of a create or patch (a spec the
operator has not seen yet) or a watch event carrying a status the operator wrote.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import watch
from services import GROUP, PLURAL, VERSION, Cluster, manifest, model, reconciled_after, settled_children

REPO = Path(__file__).resolve().parents[2]
FIELD_MANAGER = "argocd-controller"


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


argo_health = _load("argocd_lua", REPO / "tests" / "gitops" / "argocd_lua.py").argo_health
localcluster = _load("localcluster_gitops", REPO / "hack" / "localcluster.py")


@pytest.fixture(scope="session")
def kstatus_bin(cluster: str) -> Path:
    """hack/kstatus built into the binary cache (hack/build-binaries.sh builds only what is missing)."""
    path = localcluster.bin_dir() / "kstatus"
    if not path.exists():
        subprocess.run(["bash", str(REPO / "hack" / "build-binaries.sh")], check=True, capture_output=True)
    assert path.exists(), f"{path} was not built"
    return path


@pytest.fixture
def kube(api, namespace, wait_for, operator) -> Cluster:
    return Cluster(api, namespace, wait_for)


@pytest.fixture
def kstatus(kstatus_bin: Path):
    def compute(obj: dict) -> dict[str, str]:
        out = subprocess.run([str(kstatus_bin)], input=json.dumps(obj), text=True, capture_output=True, check=True)
        return json.loads(out.stdout)
    return compute


def current(obj: dict) -> bool:
    """The status was written for the object's latest generation."""
    return (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]


def state(obj: dict) -> str | None:
    return (obj.get("status") or {}).get("status")


def watch_until(kube: Cluster, name: str, since: str, done, timeout: float = 60) -> list[dict]:
    """Every version of the service from resourceVersion `since` on, up to the first one `done` accepts."""
    seen: list[dict] = []
    stream = watch.Watch()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for event in stream.stream(kube.crd.list_namespaced_custom_object, GROUP, VERSION, kube.ns, PLURAL,
                                       field_selector=f"metadata.name={name}", resource_version=since,
                                       timeout_seconds=max(1, int(deadline - time.monotonic()))):
                obj = event["object"]
                since = obj["metadata"]["resourceVersion"]
                seen.append(obj)
                if done(obj):
                    return seen
    finally:
        stream.stop()
    raise AssertionError(f"timed out after {timeout}s; states seen: {[(state(o), current(o)) for o in seen]}")


def judged(kstatus, objects: list[dict]) -> list[tuple[str | None, bool, str, str]]:
    """(operator status, status is current, kstatus verdict, Argo CD health) per object."""
    return [(state(o), current(o), kstatus(o)["status"], argo_health(o)["status"]) for o in objects]


def dump_samples(label: str, objects: list[dict]) -> None:
    """GITOPS_DUMP_SAMPLES=dir: keep the objects seen, to compare with tests/gitops/status_samples.py by hand."""
    target = os.environ.get("GITOPS_DUMP_SAMPLES")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        (Path(target) / f"{label}.json").write_text(json.dumps(objects, indent=2))


class TestKstatusAndArgoHealth:
    def test_create_deploy_run_then_change_spec(self, kube: Cluster, kstatus):
        # b's instances are Ready 5 s after they run (kwok stage "slowstart"): a `deploying` status comes first,
        # however fast a's instances are (one whose pods are ready by its first status goes straight to running)
        slow_b = model("b", 40, image="example.invalid/slowstart:1")
        created = kube.create(manifest("lifecycle", model("a", 60, instanceCount=2), slow_b))
        # The create's response: no status yet. kstatus has nothing to go on and says Current (see below).
        assert "status" not in created
        assert argo_health(created)["status"] == "Progressing"
        objects = watch_until(kube, "lifecycle", created["metadata"]["resourceVersion"],
                              lambda o: current(o) and state(o) == "running")
        dump_samples("lifecycle", objects)
        verdicts = judged(kstatus, objects)
        for status, latest, ks, argo in verdicts:
            if latest and status == "running":
                assert (ks, argo) == ("Current", "Healthy"), verdicts
            elif status is not None:
                assert ks == "InProgress" and argo == "Progressing", verdicts
        assert ("deploying", True, "InProgress", "Progressing") in verdicts, verdicts
        running = objects[-1]
        assert "Running at http://gateway.test.local/v1/infers/" in argo_health(running)["message"]

        # A spec change: the patch's response carries the new generation and the old status.
        patched = kube.crd.patch_namespaced_custom_object(
            GROUP, VERSION, kube.ns, PLURAL, "lifecycle",
            {"spec": {"models": [model("a", 60, instanceCount=3), slow_b]}})
        assert patched["metadata"]["generation"] == running["metadata"]["generation"] + 1
        assert state(patched) == "running" and not current(patched)
        assert kstatus(patched)["status"] == "InProgress"
        assert "generation is 2, but latest observed generation is 1" in kstatus(patched)["message"]
        assert argo_health(patched)["status"] == "Progressing"
        objects = watch_until(kube, "lifecycle", patched["metadata"]["resourceVersion"],
                              lambda o: current(o) and state(o) == "running"
                              and o["status"]["models"][0].get("readyReplicas") == 3)
        dump_samples("lifecycle-change", objects)
        assert (kstatus(objects[-1])["status"], argo_health(objects[-1])["status"]) == ("Current", "Healthy")

    def test_not_current_at_a_new_generation_before_the_change_is_rolled_out(self, kube: Cluster, kstatus):
        kube.create(manifest("rollout", model("a", 100, instanceCount=2)))
        kube.wait_status("rollout", "running")
        patched = kube.crd.patch_namespaced_custom_object(GROUP, VERSION, kube.ns, PLURAL, "rollout",
                                                          {"spec": {"models": [model("a", 100, instanceCount=3)]}})

        def rolled_out(obj: dict) -> bool:
            models = (obj.get("status") or {}).get("models") or [{}]
            return current(obj) and state(obj) == "running" and models[0].get("readyReplicas") == 3

        objects = watch_until(kube, "rollout", patched["metadata"]["resourceVersion"], rolled_out)
        # the service serves throughout (running, Ready False reason ScalingUp), but is not Current/Healthy
        judged_early = [(o["status"]["models"], kstatus(o)["status"], argo_health(o)["status"])
                        for o in objects[:-1] if current(o)]
        early = [j for j in judged_early if j[1] == "Current" or j[2] == "Healthy"]
        assert not early, f"Current/Healthy at generation 2 before 3 instances were asked for or ready: {early}"

    def test_kstatus_calls_a_service_without_status_current(self, kube: Cluster, kstatus):
        """Documents a kstatus limit: before the operator's first status write nothing says "in progress"."""
        created = kube.create(manifest("fresh", model("m", 100)))
        assert kstatus(created) == {"status": "Current", "message": "Resource is current"}

    def test_failed_service(self, kube: Cluster, kstatus):
        created = kube.create(manifest("greedy", model("big", 100, "custom",
                                                       customSpec={"cpu": 4, "memory": 8192, "gpu": 9})))
        objects = watch_until(kube, "greedy", created["metadata"]["resourceVersion"],
                              lambda o: current(o) and state(o) == "failed")
        dump_samples("failed", objects)
        failed = objects[-1]
        verdict = kstatus(failed)
        assert verdict["status"] == "Failed"
        assert "Insufficient nvidia.com/gpu" in verdict["message"]
        health = argo_health(failed)
        assert health["status"] == "Degraded"
        assert "model big" in health["message"] and "Insufficient nvidia.com/gpu" in health["message"]
        for status, latest, ks, argo in judged(kstatus, objects[:-1]):
            assert ks != "Current" and argo != "Healthy", (status, latest, ks, argo)

    def test_stopped_service(self, kube: Cluster, kstatus):
        kube.create(manifest("pausable", model("m", 100)))
        kube.wait_status("pausable", "running")
        patched = kube.crd.patch_namespaced_custom_object(GROUP, VERSION, kube.ns, PLURAL, "pausable",
                                                          {"spec": {"stopped": True}})
        assert kstatus(patched)["status"] == "InProgress" and argo_health(patched)["status"] == "Progressing"
        objects = watch_until(kube, "pausable", patched["metadata"]["resourceVersion"],
                              lambda o: current(o) and state(o) == "stopped")
        dump_samples("stopped", objects)
        stopped = objects[-1]
        assert argo_health(stopped) == {"status": "Suspended", "message": "Stopped"}
        # Ready is True (reason Stopped): settled where the spec asks, so `flux wait` does not hang on it.
        assert kstatus(stopped)["status"] == "Current"

    def test_concerning_service(self, kube: Cluster, kstatus):
        kube.create(manifest("half", model("good", 50), model("flaky", 50)))
        kube.wait_status("half", "running")
        body = kube.get("half")
        models = copy.deepcopy(body["spec"]["models"])
        models[1]["instanceCount"] = 2
        models[1]["image"] = "example.invalid/crashloop:2"
        patched = kube.crd.patch_namespaced_custom_object(GROUP, VERSION, kube.ns, PLURAL, "half",
                                                          {"spec": {"models": models}})
        objects = watch_until(kube, "half", patched["metadata"]["resourceVersion"],
                              lambda o: current(o) and state(o) == "concerning" and o["status"].get("errorMsg"),
                              timeout=90)
        dump_samples("concerning", objects)
        concerning = objects[-1]
        health = argo_health(concerning)
        assert health["status"] == "Degraded" and "model flaky" in health["message"]
        assert kstatus(concerning)["status"] == "InProgress"

    def test_finished_batch_service(self, kube: Cluster, kstatus):
        kube.core.create_persistent_volume({
            "metadata": {"name": f"{kube.ns}-data"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"], "storageClassName": "",
                     "persistentVolumeReclaimPolicy": "Delete", "hostPath": {"path": "/tmp/data"},
                     "claimRef": {"namespace": kube.ns, "name": "data"}}})
        try:
            kube.core.create_namespaced_persistent_volume_claim(kube.ns, {
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": f"{kube.ns}-data",
                         "resources": {"requests": {"storage": "1Gi"}}}})
            batch = {"srcPath": "pvc://data/in", "destPath": "pvc://data/out", "reqUri": "/predict",
                     "mappingType": "file"}
            created = kube.create(manifest("nightly", model("m", 100), inferType="batch", batch=batch))
            objects = watch_until(kube, "nightly", created["metadata"]["resourceVersion"],
                                  lambda o: current(o) and state(o) == "finished")
        finally:
            kube.core.delete_persistent_volume(f"{kube.ns}-data")
        dump_samples("finished", objects)
        assert argo_health(objects[-1]) == {"status": "Healthy", "message": "The batch run has finished"}
        # Ready is True (reason Finished): the run is done, kstatus reports Current.
        assert kstatus(objects[-1])["status"] == "Current"


class TestGitOpsDiff:
    """What Argo CD (server-side apply and diff) and Flux (server-side apply dry-run) see after reconcile."""

    MANIFEST = manifest(
        "gitops", model("a", 70, "modelarts.vm.gpu.a100", scaling={"enabled": True, "minReplicas": 1,
                                                                    "maxReplicas": 3}),
        model("b", 30, envs={"LOG_LEVEL": "info"}),
        schedule=[{"type": "stop", "timeUnit": "HOURS", "duration": 8}])

    def kubectl(self, *args: str, body: dict, ns: str, check: bool = True) -> subprocess.CompletedProcess:
        return localcluster.kubectl("-n", ns, *args, "-f", "-", input=yaml.safe_dump(body), check=check)

    def apply(self, ns: str, *extra: str) -> dict:
        out = self.kubectl("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-o", "json", *extra,
                           body=self.MANIFEST, ns=ns)
        return json.loads(out.stdout)

    @staticmethod
    def settle(kube: Cluster, operator) -> None:
        """Every late status write has landed: the children are final and the operator has finished passes
        over them (started by annotating the Deployments; the service itself is not touched)."""
        kube.wait_for(lambda: settled_children(kube), 60, "the Deployments rolled out and every pod ready")
        reconciled_after(kube, operator, lambda: kube.touch("gitops", service=False, deployments=True))

    def test_dry_run_apply_of_the_original_manifest_changes_nothing(self, kube: Cluster, operator):
        applied = self.apply(kube.ns)
        assert applied["metadata"]["generation"] == 1
        live_status = kube.wait_status("gitops", "running")
        assert kube.wait_for(lambda: kube.hpa("gitops-a"), 30, "the HPA")
        self.settle(kube, operator)
        live = kube.get("gitops")
        assert live["status"]["observedGeneration"] == live["metadata"]["generation"] == 1
        assert live["status"]["status"] == live_status["status"] == "running"

        dry = self.apply(kube.ns, "--dry-run=server")
        assert dry["spec"] == live["spec"]
        assert dry["metadata"]["generation"] == live["metadata"]["generation"] == 1
        assert dry["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]
        assert kube.get("gitops")["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]

        # Argo CD's server-side diff and `kubectl diff` do the same dry-run and compare: nothing to show.
        diff = self.kubectl("diff", "--server-side", f"--field-manager={FIELD_MANAGER}", body=self.MANIFEST,
                            ns=kube.ns, check=False)
        assert diff.returncode == 0, diff.stdout + diff.stderr

        owners = {(f["manager"], f["operation"], f.get("subresource", "")): f["fieldsV1"]
                  for f in live["metadata"]["managedFields"]}
        # status: a JSON patch that tests metadata.uid first (docs/api.md, "Writes"), so an Update
        assert set(owners) == {(FIELD_MANAGER, "Apply", ""), ("inference-operator", "Update", "status")}, owners
        assert set(owners[("inference-operator", "Update", "status")]) == {"f:status"}
        assert "f:spec" in owners[(FIELD_MANAGER, "Apply", "")]

    def test_reapplying_after_a_rollout_changes_nothing(self, kube: Cluster, operator):
        """A real second sync after the operator reconciled: same spec, same generation.

        The first re-apply after a status write still bumps resourceVersion: the API server moves the
        applier's managedFields entry behind the operator's status entry and stamps it anew (seen with any
        manager writing the status subresource, not something the operator does to the spec). The next
        re-apply is a true no-op.
        """
        self.apply(kube.ns)
        kube.wait_status("gitops", "running")
        self.settle(kube, operator)
        before = kube.get("gitops")
        self.apply(kube.ns)
        after = kube.get("gitops")
        assert after["spec"] == before["spec"]
        assert after["metadata"]["generation"] == before["metadata"]["generation"] == 1
        assert after["status"] == before["status"]
        # A status write the operator makes between two applies (a pod's late readiness, say) moves the
        # applier's managedFields entry again; a GitOps tool re-applying on its interval then sees a no-op.
        # So: within a few re-applies two in a row leave the object as it was, and none changed the spec.
        versions = [after["metadata"]["resourceVersion"]]
        for _ in range(5):
            again = self.apply(kube.ns)
            assert again["metadata"]["generation"] == 1 and again["spec"] == before["spec"]
            versions.append(again["metadata"]["resourceVersion"])
            if versions[-1] == versions[-2]:
                break
        assert versions[-1] == versions[-2], f"every re-apply changed the object: resourceVersions {versions}"
