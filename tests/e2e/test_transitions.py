"""Transitions end to end (issue 10): replicas handed to and from the HPA without a dip, drift undone.

Every value of a Deployment's spec.replicas is recorded through a watch (not by polling, which
could miss a value that held for a moment), and the whole series is asserted. Hand edits are made
as kubectl makes them: patches and the scale subresource under another field manager.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from kubernetes import client, watch
from services import GROUP, PLURAL, VERSION, Cluster, manifest, model

MAIN = "inference-operator"
RESTORE_SECONDS = 5  # the issue's bound for putting a hand edit back


class ReplicaRecorder:
    """Every spec.replicas one Deployment takes, with the managers owning it, as a watch delivers them."""

    def __init__(self, apps: client.AppsV1Api, namespace: str, name: str) -> None:
        self.apps, self.namespace, self.selector = apps, namespace, f"metadata.name={name}"
        self.seen: list[tuple[int, frozenset[str]]] = []
        self.stopped = threading.Event()
        self.failure: BaseException | None = None
        listed = apps.list_namespaced_deployment(namespace, field_selector=self.selector)
        for item in listed.items:
            self._record(item)
        self.version = listed.metadata.resource_version
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _record(self, deployment: Any) -> None:
        owners = frozenset(f.manager for f in deployment.metadata.managed_fields or []
                           if "f:replicas" in ((f.fields_v1 or {}).get("f:spec") or {}))
        self.seen.append((deployment.spec.replicas, owners))

    def _run(self) -> None:
        try:
            while not self.stopped.is_set():
                stream = watch.Watch().stream(self.apps.list_namespaced_deployment, self.namespace,
                                              field_selector=self.selector, resource_version=self.version,
                                              timeout_seconds=2)
                for event in stream:
                    self.version = event["object"].metadata.resource_version
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._record(event["object"])
        except BaseException as exc:  # noqa: BLE001 - reported by series()
            self.failure = exc

    def series(self) -> list[int]:
        """The values in order, each change once."""
        assert self.failure is None, f"the watch failed: {self.failure!r}"
        values: list[int] = []
        for replicas, _ in list(self.seen):
            if not values or values[-1] != replicas:
                values.append(replicas)
        return values

    def latest(self) -> tuple[int, frozenset[str]]:
        return self.seen[-1]

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(10)


@pytest.fixture
def kube(api, namespace, wait_for, operator) -> Cluster:
    return Cluster(api, namespace, wait_for)


def scaled(low: int, high: int) -> dict[str, Any]:
    return model("m", 100, scaling={"enabled": True, "minReplicas": low, "maxReplicas": high})


class TestNoCapacityDip:
    def test_fixed_to_scaling_new_bounds_and_back_never_dip(self, kube: Cluster):
        kube.create(manifest("handoff", model("m", 100, instanceCount=4)))
        kube.wait_status("handoff", "running")
        recorder = ReplicaRecorder(kube.apps, kube.ns, "handoff-m")
        try:
            kube.patch_spec("handoff", {"models": [scaled(2, 6)]})
            kube.wait_for(lambda: kube.hpa("handoff-m"), 30, "the HPA")
            kube.wait_for(lambda: MAIN not in recorder.latest()[1], 30,
                          "the operator's main field manager to let go of replicas")
            kube.wait_status("handoff", "running")
            assert recorder.series() == [4], "fixed 4 -> scaling {2, 6} must keep 4"

            kube.patch_spec("handoff", {"models": [scaled(5, 6)]})
            kube.wait_for(lambda: recorder.latest()[0] == 5, 30, "5 replicas (the new minimum)")
            kube.wait_status("handoff", "running")
            assert recorder.series() == [4, 5]

            kube.patch_spec("handoff", {"models": [model("m", 100, instanceCount=3)]})
            kube.wait_for(lambda: kube.hpa("handoff-m") is None, 30, "the HPA to go")
            kube.wait_for(lambda: recorder.latest()[0] == 3, 30, "3 replicas")
            kube.wait_status("handoff", "running")
            assert recorder.series() == [4, 5, 3]
            assert recorder.latest()[1] == {MAIN}
        finally:
            recorder.stop()

    def test_a_stopped_service_starts_at_min_replicas_in_one_step(self, kube: Cluster):
        kube.create(manifest("sleeper", scaled(3, 5), stopped=True))
        kube.wait_status("sleeper", "stopped")
        kube.wait_for(lambda: (d := kube.deployment("sleeper-m")) and d.spec.replicas == 0, 30, "0 replicas")
        recorder = ReplicaRecorder(kube.apps, kube.ns, "sleeper-m")
        try:
            kube.patch_spec("sleeper", {"stopped": False})
            kube.wait_for(lambda: kube.hpa("sleeper-m"), 30, "the HPA")
            kube.wait_for(lambda: MAIN not in recorder.latest()[1], 30,
                          "the operator's main field manager to let go of replicas")
            kube.wait_status("sleeper", "running")
            assert recorder.series() == [0, 3]
        finally:
            recorder.stop()


def restored_events(kube: Cluster, name: str) -> list[str]:
    events = kube.core.list_namespaced_event(kube.ns, field_selector=f"involvedObject.name={name}").items
    return [e.message for e in events if e.reason == "DriftRestored"]


def container(kube: Cluster, name: str) -> Any:
    return kube.deployment(name).spec.template.spec.containers[0]


class TestDriftIsUndone:
    def test_image_env_and_replicas_edits_are_put_back_foreign_annotations_stay(self, kube: Cluster):
        kube.create(manifest("steady", model("m", 100, instanceCount=2, envs={"MODE": "fast"})))
        kube.wait_status("steady", "running")
        image = container(kube, "steady-m").image

        kube.apps.patch_namespaced_deployment(
            "steady-m", kube.ns, {"metadata": {"annotations": {"team.example/note": "mine"}}},
            field_manager="kubectl-annotate")
        kube.apps.patch_namespaced_deployment(
            "steady-m", kube.ns,
            {"spec": {"template": {"spec": {"containers": [{"name": "model", "image": "evil.example/m:6"}]}}}},
            field_manager="kubectl-set")
        kube.wait_for(lambda: container(kube, "steady-m").image == image, RESTORE_SECONDS, "the image put back")
        kube.wait_for(lambda: any("containers[model].image" in m and "changed by kubectl-set)" in m
                                  for m in restored_events(kube, "steady")),
                      RESTORE_SECONDS, "an Event naming the restored image and who changed it")
        annotations = kube.deployment("steady-m").metadata.annotations
        assert annotations.get("team.example/note") == "mine", "a field the operator does not own was touched"

        kube.apps.patch_namespaced_deployment(
            "steady-m", kube.ns,
            {"spec": {"template": {"spec": {"containers": [{"name": "model",
                                                             "env": [{"name": "MODE", "value": "slow"}]}]}}}},
            field_manager="kubectl-set")
        kube.wait_for(lambda: {e.name: e.value for e in container(kube, "steady-m").env} == {"MODE": "fast"},
                      RESTORE_SECONDS, "the env var put back")

        kube.apps.patch_namespaced_deployment_scale("steady-m", kube.ns, {"spec": {"replicas": 5}},
                                                    field_manager="kubectl-scale")
        kube.wait_for(lambda: kube.deployment("steady-m").spec.replicas == 2, RESTORE_SECONDS,
                      "kubectl scale of a fixed-size model put back")
        kube.wait_for(lambda: any("spec.replicas" in m and "changed by kubectl-scale)" in m
                                  for m in restored_events(kube, "steady")),
                      RESTORE_SECONDS, "an Event naming the restored replicas and who changed them")
        kube.wait_status("steady", "running")

    def test_hpa_bounds_are_put_back(self, kube: Cluster):
        kube.create(manifest("bounded", scaled(1, 3)))
        kube.wait_status("bounded", "running")
        kube.wait_for(lambda: kube.hpa("bounded-m"), 30, "the HPA")
        kube.hpas.patch_namespaced_horizontal_pod_autoscaler("bounded-m", kube.ns, {"spec": {"maxReplicas": 9}},
                                                             field_manager="kubectl-patch")
        kube.wait_for(lambda: kube.hpa("bounded-m").spec.max_replicas == 3, RESTORE_SECONDS, "maxReplicas put back")
        kube.wait_for(lambda: any("spec.maxReplicas" in m and "changed by kubectl-patch)" in m
                                  for m in restored_events(kube, "bounded")),
                      RESTORE_SECONDS, "an Event naming maxReplicas and who changed it")

    def test_a_hand_edit_of_status_is_put_back(self, kube: Cluster):
        """Status is the operator's report: `kubectl edit --subresource=status` (or any other writer) does not
        get to say `failed` about a running service. The first edit comes right after the operator's own
        write (its watch may not have shown that write yet); the second once everything is settled."""
        kube.create(manifest("truthful", model("m", 100)))
        truth = kube.wait_status("truthful", "running")
        for attempt, lie in enumerate(("failed", "stopped")):
            edited = kube.crd.patch_namespaced_custom_object_status(
                GROUP, VERSION, kube.ns, PLURAL, "truthful",
                {"status": {"status": lie, "errorMsg": f"edited by hand ({attempt})"}}, field_manager="kubectl-edit")
            assert edited["status"]["status"] == lie  # the edit landed (a read after it may see it put back already)
            restored = kube.wait_for(
                lambda: (s := kube.status("truthful")).get("status") == "running" and "errorMsg" not in s and s,
                RESTORE_SECONDS, f"status {lie!r} written by hand put back to running")
            assert restored.get("accessAddress") == truth.get("accessAddress")

    def test_an_edit_made_while_the_operator_was_down_is_put_back_after_restart(self, kube: Cluster, operator):
        kube.create(manifest("napping", model("m", 100)))
        kube.wait_status("napping", "running")
        image = container(kube, "napping-m").image
        operator.stop()
        try:
            kube.apps.patch_namespaced_deployment(
                "napping-m", kube.ns,
                {"spec": {"template": {"spec": {"containers": [{"name": "model", "image": "evil.example/m:7"}]}}}},
                field_manager="kubectl-set")
        finally:
            operator.start()
        kube.wait_for(lambda: container(kube, "napping-m").image == image, 30, "the image put back after restart")


def test_httproute_weights_are_put_back(cluster, crds, api, namespace, wait_for, operator,
                                        gateway_api):
    """The HTTPRoute is a child like the others (the real CRD, cluster-up installs it): a hand edit of
    its weights is put back."""
    kube = Cluster(api, namespace, wait_for)
    kube.create(manifest("split", model("a", 70), model("b", 30)))
    kube.wait_status("split", "running")
    routes = client.CustomObjectsApi(api)
    gvp = ("gateway.networking.k8s.io", "v1", namespace, "httproutes", "split")

    def weights() -> dict[str, int]:
        try:
            route = routes.get_namespaced_custom_object(*gvp)
        except client.ApiException:
            return {}
        return {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}

    wait_for(lambda: weights() == {"split-a": 70, "split-b": 30}, 10, "the route")
    route = routes.get_namespaced_custom_object(*gvp)
    for ref in route["spec"]["rules"][0]["backendRefs"]:
        ref["weight"] = 50
    routes.patch_namespaced_custom_object(*gvp, {"spec": route["spec"]}, field_manager="kubectl-edit")
    wait_for(lambda: weights() == {"split-a": 70, "split-b": 30}, RESTORE_SECONDS, "the weights put back")
    wait_for(lambda: any("backendRefs" in m for m in restored_events(kube, "split")), RESTORE_SECONDS,
             "an Event naming the weights")
