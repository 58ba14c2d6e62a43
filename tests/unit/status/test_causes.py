"""status/causes.py: which pod and Deployment states are permanent failures, in the cluster's words."""

from __future__ import annotations

import pytest
from observed_objects import (
    GPU_MESSAGE,
    crashloop_pod,
    deployment,
    image_pull_pod,
    pod,
    ready_pod,
    starting_pod,
    unschedulable_pod,
)

from inference_operator.status.causes import Cause, deployment_cause, model_cause, pod_cause

QUOTA_MESSAGE = ('pods "service-demo-v1-7d9f8c6b5-a" is forbidden: exceeded quota: gpu-quota, '
                 "requested: requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=4, limited: "
                 "requests.nvidia.com/gpu=4")


class TestPodCause:
    def test_unschedulable_keeps_the_schedulers_message(self) -> None:
        assert pod_cause(unschedulable_pod()) == Cause("Unschedulable", GPU_MESSAGE)

    @pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"])
    def test_image_pull_names_container_image_and_kubelet_message(self, reason: str) -> None:
        cause = pod_cause(image_pull_pod(image="registry.example/typo:1", reason=reason))

        assert cause is not None
        assert cause.reason == "ImagePullFailed"
        assert 'container "model"' in cause.message
        assert '"registry.example/typo:1"' in cause.message
        assert reason in cause.message
        assert 'Back-off pulling image "registry.example/typo:1"' in cause.message

    def test_crash_loop_names_container_and_last_exit(self) -> None:
        cause = pod_cause(crashloop_pod(exit_code=1, reason="Error"))

        assert cause == Cause("CrashLoop", 'container "model" keeps crashing (CrashLoopBackOff, '
                                           "last exit code 1 (Error))")

    def test_oom_killed_crash_says_so(self) -> None:
        cause = pod_cause(crashloop_pod(exit_code=137, reason="OOMKilled"))

        assert cause is not None
        assert "exit code 137" in cause.message and "OOMKilled" in cause.message

    def test_crashing_init_container_is_named_as_such(self) -> None:
        cause = pod_cause(crashloop_pod(container="storage-initializer", init=True, exit_code=255))

        assert cause is not None
        assert 'init container "storage-initializer"' in cause.message
        assert "exit code 255" in cause.message

    @pytest.mark.parametrize("waiting_pod", [starting_pod(), pod(), ready_pod()],
                             ids=["creating-containers", "just-created", "ready"])
    def test_states_that_clear_by_waiting_are_no_cause(self, waiting_pod: dict) -> None:
        assert pod_cause(waiting_pod) is None

    def test_scheduling_gated_pod_is_no_cause(self) -> None:
        gated = pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated",
                                 "message": "Scheduling is blocked due to non-empty scheduling gates"}])
        assert pod_cause(gated) is None

    def test_terminating_pod_is_ignored(self) -> None:
        terminating = image_pull_pod(deletionTimestamp="2024-05-01T12:00:00Z", deletionGracePeriodSeconds=30)
        assert pod_cause(terminating) is None


class TestDeploymentCause:
    def test_replica_failure_from_quota(self) -> None:
        failing = deployment(conditions=[
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": QUOTA_MESSAGE},
        ])
        assert deployment_cause(failing) == Cause("ReplicaFailure", QUOTA_MESSAGE)

    def test_progress_deadline_exceeded(self) -> None:
        message = 'ReplicaSet "service-demo-v1-7d9f8c6b5" has timed out progressing.'
        stuck = deployment(conditions=[
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": message}])
        assert deployment_cause(stuck) == Cause("ProgressDeadlineExceeded", message)

    @pytest.mark.parametrize("healthy", [
        None,
        deployment(),
        deployment(ready=1, conditions=[
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]),
        deployment(conditions=[{"type": "ReplicaFailure", "status": "False", "reason": "FailedCreate"}]),
    ], ids=["not-seen-yet", "no-conditions", "available", "replica-failure-cleared"])
    def test_healthy_or_unknown_is_no_cause(self, healthy: dict | None) -> None:
        assert deployment_cause(healthy) is None


class TestModelCause:
    def test_message_is_prefixed_with_the_model(self) -> None:
        cause = model_cause("v2", deployment("v2"), [unschedulable_pod("v2")])
        assert cause == Cause("Unschedulable", f"model v2: {GPU_MESSAGE}")

    @pytest.mark.parametrize("reverse", [False, True])
    def test_first_pod_by_name_wins_whatever_the_watch_order(self, reverse: bool) -> None:
        pods = [crashloop_pod(name="b"), image_pull_pod(name="a", image="x")]
        cause = model_cause("v1", deployment(), pods[::-1] if reverse else pods)
        assert cause is not None and cause.reason == "ImagePullFailed"

    def test_ready_pods_are_skipped_for_a_failing_one(self) -> None:
        cause = model_cause("v1", deployment(replicas=2, ready=1), [ready_pod(name="a"), crashloop_pod(name="b")])
        assert cause is not None and cause.reason == "CrashLoop"

    def test_pod_cause_comes_before_the_deployments(self) -> None:
        failing = deployment(conditions=[{"type": "ReplicaFailure", "status": "True", "message": QUOTA_MESSAGE}])
        cause = model_cause("v1", failing, [unschedulable_pod()])
        assert cause is not None and cause.reason == "Unschedulable"

    def test_deployment_cause_when_no_pod_could_be_created(self) -> None:
        failing = deployment(conditions=[{"type": "ReplicaFailure", "status": "True", "message": QUOTA_MESSAGE}])
        assert model_cause("v1", failing, []) == Cause("ReplicaFailure", f"model v1: {QUOTA_MESSAGE}")

    def test_no_cause_while_coming_up(self) -> None:
        assert model_cause("v1", deployment(replicas=2, ready=1), [ready_pod(name="a"), starting_pod(name="b")]) is None
