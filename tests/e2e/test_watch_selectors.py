"""The operator asks the API server only for its own objects: the pods, Deployments and Services of other
workloads never reach it (settings.watch_only), so its memory and CPU follow its services, not the cluster."""

from __future__ import annotations

from typing import Any

from gateways import free_port
from kubernetes import client
from services import Cluster, manifest, model

from conftest import OperatorProcess

WATCH_EVENTS = "inference_operator_watch_events_total{"


def other_workload(name: str, replicas: int) -> dict[str, Any]:
    """Someone else's Deployment: no label of ours."""
    labels = {"app": name}
    return {"metadata": {"name": name, "labels": labels}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]}}}}


def running_pods(core: client.CoreV1Api, namespace: str, app: str) -> int:
    pods = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return sum(1 for pod in pods if pod.status.phase == "Running")


def watch_events(operator: OperatorProcess, outcome: str) -> dict[str, float]:
    """{resource: count} of inference_operator_watch_events_total with this outcome."""
    found = {}
    for key, value in operator.metrics().items():
        if key.startswith(WATCH_EVENTS) and f'outcome="{outcome}"' in key:
            found[key.split('resource="', 1)[1].split('"', 1)[0]] = value
    return found


def test_other_workloads_objects_never_reach_the_operator(api, cluster, crds, namespace, wait_for, alone):
    kube = Cluster(api, namespace, wait_for)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    # another workload, running before the operator starts (its listings) and another started after (its watches)
    apps.create_namespaced_deployment(namespace, other_workload("before", 3))
    core.create_namespaced_service(namespace, {"metadata": {"name": "before"}, "spec": {
        "selector": {"app": "before"}, "ports": [{"port": 80}]}})
    wait_for(lambda: running_pods(core, namespace, "before") == 3, 60, "the other workload's pods running")
    operator = OperatorProcess(cluster, free_port(), namespace, ("--namespace", namespace),
                               log_name="operator-selectors-e2e.log")
    operator.start()
    try:
        kube.create(manifest("first", model("m")))
        kube.wait_status("first", "running")
        apps.create_namespaced_deployment(namespace, other_workload("after", 3))
        wait_for(lambda: running_pods(core, namespace, "after") == 3, 60, "the second workload's pods running")
        # created after those pods ran: its pods' events come down the same streams after theirs
        kube.create(manifest("second", model("m")))
        kube.wait_status("second", "running")
        handled = watch_events(operator, "handled")
        assert handled.get("pods", 0) >= 2 and handled.get("deployments", 0) >= 2, handled
        assert {kind: n for kind, n in watch_events(operator, "unwanted").items() if n} == {}
    finally:
        operator.stop()
