"""Proof that the local cluster behaves like a real one where the operator depends on it:
scheduling by extended GPU resources, kwok moving pods to Ready, HPAs, and kubelet-like failures."""

from __future__ import annotations

from kubernetes import client


def gpu_deployment(name: str, gpus: int, image: str = "registry.example/model:1") -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "model", "image": image, "resources": {
                "requests": {"cpu": "1"}, "limits": {"nvidia.com/gpu": str(gpus)}}}]}}},
    }


def pods_of(api: client.ApiClient, ns: str, app: str) -> list:
    return client.CoreV1Api(api).list_namespaced_pod(ns, label_selector=f"app={app}").items


def is_ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


class TestScheduling:
    def test_one_gpu_pod_runs_ready_on_a_gpu_node(self, api, namespace, wait_for):
        client.AppsV1Api(api).create_namespaced_deployment(namespace, gpu_deployment("one-gpu", 1))
        pod = wait_for(lambda: next((p for p in pods_of(api, namespace, "one-gpu")
                                     if p.status.phase == "Running" and is_ready(p)), None), 30, "a ready pod")
        node = client.CoreV1Api(api).read_node(pod.spec.node_name)
        assert node.metadata.labels["inference.io/node-kind"] == "gpu"
        assert node.status.allocatable["nvidia.com/gpu"] == "8"

    def test_nine_gpus_stay_pending_with_insufficient_gpu_event(self, api, namespace, wait_for):
        client.AppsV1Api(api).create_namespaced_deployment(namespace, gpu_deployment("nine-gpus", 9))

        def scheduling_failure():
            events = client.CoreV1Api(api).list_namespaced_event(namespace).items
            return next((e for e in events if e.reason == "FailedScheduling"), None)

        event = wait_for(scheduling_failure, 30, "a FailedScheduling event")
        assert "Insufficient nvidia.com/gpu" in event.message
        assert [p.status.phase for p in pods_of(api, namespace, "nine-gpus")] == ["Pending"]


class TestAutoscaling:
    def test_autoscaling_v2_hpa_is_accepted(self, api, namespace):
        client.AppsV1Api(api).create_namespaced_deployment(namespace, gpu_deployment("scaled", 1))
        hpa = {
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "scaled"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "scaled"},
                     "minReplicas": 1, "maxReplicas": 4, "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]},
        }
        client.AutoscalingV2Api(api).create_namespaced_horizontal_pod_autoscaler(namespace, hpa)
        stored = client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler("scaled", namespace)
        assert (stored.spec.min_replicas, stored.spec.max_replicas) == (1, 4)
        assert stored.spec.metrics[0].resource.target.average_utilization == 80


class TestSimulatedFailures:
    def test_unpullable_image_reaches_image_pull_backoff(self, api, namespace, wait_for):
        image = "example.invalid/unpullable:1.0"
        client.AppsV1Api(api).create_namespaced_deployment(namespace, gpu_deployment("bad-image", 1, image))

        def waiting_reason():
            for pod in pods_of(api, namespace, "bad-image"):
                for status in pod.status.container_statuses or []:
                    if status.state.waiting and status.state.waiting.reason == "ImagePullBackOff":
                        return status.state.waiting
            return None

        waiting = wait_for(waiting_reason, 30, "ImagePullBackOff")
        assert image in waiting.message

    def test_crashing_container_reaches_crash_loop_backoff(self, api, namespace, wait_for):
        image = "example.invalid/crashloop:1.0"
        client.AppsV1Api(api).create_namespaced_deployment(namespace, gpu_deployment("crasher", 1, image))

        def crashing():
            for pod in pods_of(api, namespace, "crasher"):
                for status in pod.status.container_statuses or []:
                    if status.state.waiting and status.state.waiting.reason == "CrashLoopBackOff":
                        return status
            return None

        status = wait_for(crashing, 30, "CrashLoopBackOff")
        assert status.last_state.terminated.exit_code == 1
        assert not status.ready
