"""Rollout truth and waiting-is-not-failing, end to end (issue 10, points 3 and 4).

Every status the operator writes is recorded through a watch, so the tests judge the whole series a
GitOps tool would see, not only where it ends. Images containing `slowstart` become Ready 5 s after
they start (hack/kwok-stages.yaml), so a rollout can be watched in its middle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, watch
from services import GROUP, PLURAL, VERSION, Cluster, manifest, model

SLOW = "example.invalid/slowstart:{}"


@pytest.fixture
def kube(api, namespace, wait_for, operator) -> Cluster:
    return Cluster(api, namespace, wait_for)


class StatusLog:
    """Every status of one InferenceService as a watch delivers it: (generation, observedGeneration,
    status, progress, Ready reason, Ready message, errorMsg), in order, without repeats."""

    def __init__(self, kube: Cluster, name: str) -> None:
        self.kube, self.name = kube, name
        self.entries: list[tuple[Any, ...]] = []
        self.error: Exception | None = None
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        stream = self._watch.stream(self.kube.crd.list_namespaced_custom_object, GROUP, VERSION, self.kube.ns,
                                    PLURAL, field_selector=f"metadata.name={self.name}", timeout_seconds=300)
        try:
            self._follow(stream)
        except Exception as exc:  # noqa: BLE001 - the namespace goes at teardown; a test reads .error
            self.error = exc

    def _follow(self, stream: Iterator[dict[str, Any]]) -> None:
        for event in stream:
            obj = event["object"]
            status = obj.get("status") or {}
            ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
            entry = (obj["metadata"]["generation"], status.get("observedGeneration"), status.get("status"),
                     status.get("progress"), ready.get("reason"), ready.get("message"), status.get("errorMsg"))
            if not self.entries or self.entries[-1] != entry:
                self.entries.append(entry)

    def stop(self) -> None:
        self._watch.stop()

    def at(self, generation: int) -> list[tuple[Any, ...]]:
        """The statuses written for that generation of the spec."""
        return [e for e in self.entries if e[1] == generation]

    def states(self, generation: int) -> list[tuple[str, int]]:
        """(status, progress) at that generation, consecutive repeats folded."""
        folded: list[tuple[str, int]] = []
        for entry in self.at(generation):
            if not folded or folded[-1] != entry[2:4]:
                folded.append(entry[2:4])
        return folded


@pytest.fixture
def status_log(kube: Cluster) -> Iterator[Callable[[str], StatusLog]]:
    logs: list[StatusLog] = []

    def start(name: str) -> StatusLog:
        logs.append(StatusLog(kube, name))
        return logs[-1]
    yield start
    for log in logs:
        log.stop()


def pods(kube: Cluster, model_name: str) -> list[client.V1Pod]:
    return [p for p in kube.core.list_namespaced_pod(kube.ns, label_selector=f"inference.io/model={model_name}").items
            if p.metadata.deletion_timestamp is None]


def ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def set_model(kube: Cluster, name: str, **fields: Any) -> None:
    body = kube.get(name)
    body["spec"]["models"][0].update(fields)
    kube.replace_models(name, body["spec"]["models"])


class TestRolloutTruth:
    def test_the_middle_of_a_rollout_is_deploying_and_progressing(self, kube: Cluster, status_log):
        kube.create(manifest("roll", model("m", 100, instanceCount=2)))
        kube.wait_status("roll", "running")
        log = status_log("roll")

        set_model(kube, "roll", image=SLOW.format(2))
        middle = kube.wait_for(lambda: [e for e in log.at(2) if e[2:4] == ("deploying", 50)], 60,
                               "the rollout's middle: one of two instances current and ready")
        kube.wait_status("roll", "running", timeout=60)

        assert all(p.spec.containers[0].image == SLOW.format(2) and ready(p) for p in pods(kube, "m"))
        states = log.states(2)
        assert states[-1] == ("running", 100) and {s for s, _ in states[:-1]} == {"deploying"}, log.entries
        progress = [p for _, p in states]
        assert progress == sorted(progress) and {0, 50} <= set(progress) <= {0, 50, 99, 100}, log.entries
        for _, _, state, _, reason, _, _ in log.at(2):
            assert reason == ("Progressing" if state == "deploying" else "Running"), log.entries
        assert "1 of 2 instances updated and ready" in middle[0][5] and "old instance" in middle[0][5]
        assert {e[2] for e in log.at(1)} == {"running"}, "nothing but running until the change is observed"

    def test_a_stuck_rollout_keeps_the_old_instances_and_is_concerning(self, kube: Cluster, status_log):
        kube.create(manifest("stuck", model("m", 100, instanceCount=2)))
        kube.wait_status("stuck", "running")
        old = {p.metadata.uid for p in pods(kube, "m")}
        log = status_log("stuck")

        set_model(kube, "stuck", image="example.invalid/unpullable:2")
        status = kube.wait_status("stuck", "concerning", timeout=60)

        assert "example.invalid/unpullable:2" in status["errorMsg"] and status["errorMsg"].startswith("model m: ")
        assert "2 old instances still serving" in status["errorMsg"]
        ready_condition = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert (ready_condition["status"], ready_condition["reason"]) == ("False", "ImagePullFailed")
        assert status["progress"] == 0
        serving = {p.metadata.uid for p in pods(kube, "m") if ready(p)}
        assert serving == old, "the old instances must keep serving"
        assert {s for s, _ in log.states(2)} <= {"deploying", "concerning"}, log.entries

    def test_a_scale_up_stays_running(self, kube: Cluster, status_log):
        kube.create(manifest("grow", model("m", 100, image=SLOW.format(1))))
        kube.wait_status("grow", "running", timeout=60)
        log = status_log("grow")

        set_model(kube, "grow", instanceCount=3)
        kube.wait_for(lambda: len([p for p in pods(kube, "m") if ready(p)]) == 3, 60, "3 ready instances")
        kube.wait_for(lambda: log.states(2)[-1:] == [("running", 100)], 30, "running at 100%")

        states = log.states(2)
        assert {s for s, _ in states} == {"running"}, log.entries
        assert states[0] in (("running", 33), ("running", 66)) and states[-1] == ("running", 100), log.entries
        assert [p for _, p in states] == sorted(p for _, p in states), log.entries
        # the service serves throughout; Ready waits for the new generation's instances (kstatus, Argo CD)
        first = log.at(2)[0]
        assert first[4] == "ScalingUp" and first[5].startswith("Scaling up: "), log.entries
        assert log.at(2)[-1][4] == "Running", log.entries


class TestWaitingIsNotFailing:
    def test_a_claim_that_binds_later_keeps_the_service_deploying(self, kube: Cluster, status_log):
        volume = f"{kube.ns}-models"
        kube.core.create_namespaced_persistent_volume_claim(kube.ns, {
            "metadata": {"name": "models"},
            "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "", "volumeName": volume,
                     "resources": {"requests": {"storage": "1Gi"}}}})
        kube.create(manifest("patient", model("m", 100, modelUri="pvc://models/m/1")))
        log = status_log("patient")
        try:
            waiting = kube.wait_for(
                lambda: [e for e in log.at(1) if e[2] == "deploying" and "unbound immediate" in (e[5] or "")], 60,
                "deploying with the scheduler's words about the claim in the Ready condition")
            assert waiting[0][5].startswith("Waiting for what clears by itself: model m: ")
            assert waiting[0][6] is None, "no errorMsg while waiting"

            kube.core.create_persistent_volume({
                "metadata": {"name": volume},
                "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany"], "storageClassName": "",
                         "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": "/var/lib/models"},
                         "claimRef": {"namespace": kube.ns, "name": "models"}}})
            kube.wait_status("patient", "running", timeout=60)
        finally:
            kube.core.delete_persistent_volume(volume)

        assert [s for s, _ in log.states(1)] == ["deploying", "running"], log.entries
