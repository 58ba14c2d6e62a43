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

from inference_operator.runtime.slim import slim
from inference_operator.status.causes import Cause, ModelCauses, deployment_cause, model_causes, pod_cause

PVC_MESSAGE = ("0/8 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/8 "
               "nodes are available: 8 Preemption is not helpful for scheduling.")
JOINING_MESSAGE = ("0/9 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, "
                   "8 Insufficient nvidia.com/gpu. preemption: 0/9 nodes are available: 9 Preemption is not "
                   "helpful for scheduling.")
DEADLINE = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
             "message": 'ReplicaSet "service-demo-v1-7d9f8c6b5" has timed out progressing.'}]
QUOTA_MESSAGE = ('pods "service-demo-v1-7d9f8c6b5-a" is forbidden: exceeded quota: gpu-quota, '
                 "requested: requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=4, limited: "
                 "requests.nvidia.com/gpu=4")
REFUSED_MESSAGE = ('admission webhook "validate.kyverno.svc" denied the request: images must come from '
                   "registry.internal")


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


class TestWaitingOrFailing:
    """docs/api.md, "Waiting or failing": what the cluster clears by itself keeps a service deploying."""

    @pytest.mark.parametrize(("message", "reason"), [
        (PVC_MESSAGE, "VolumeNotBound"),
        (JOINING_MESSAGE, "NodeNotReady"),
        ("0/3 nodes are available: 3 node(s) had untolerated taint "
         "{node.cloudprovider.kubernetes.io/uninitialized: true}.", "NodeNotReady"),
    ], ids=["claim-being-bound", "node-joining", "node-initializing"])
    def test_scheduler_waits_that_clear_by_themselves(self, message: str, reason: str) -> None:
        assert pod_cause(unschedulable_pod(message=message)) == Cause(reason, message, waiting=True)

    @pytest.mark.parametrize("message", [
        GPU_MESSAGE,
        '0/8 nodes are available: persistentvolumeclaim "models" not found.',
        "0/8 nodes are available: 8 node(s) didn't match Pod's node affinity/selector.",
        "0/8 nodes are available: 8 node(s) had untolerated taint {dedicated: team-b}.",
    ], ids=["no-capacity", "claim-missing", "no-node-matches", "foreign-taint"])
    def test_scheduler_refusals_that_need_a_person(self, message: str) -> None:
        assert pod_cause(unschedulable_pod(message=message)) == Cause("Unschedulable", message)

    def test_preemption_under_way_waits(self) -> None:
        nominated = unschedulable_pod()
        nominated["status"]["nominatedNodeName"] = "gpu-node-2"

        cause = pod_cause(nominated)

        assert cause is not None and (cause.reason, cause.waiting) == ("Preempting", True)
        assert "gpu-node-2" in cause.message and GPU_MESSAGE in cause.message

    def test_a_failing_pod_wins_over_a_waiting_one(self) -> None:
        causes = model_causes("v1", deployment(replicas=2), [unschedulable_pod(name="a", message=PVC_MESSAGE),
                                                            crashloop_pod(name="b")])
        assert causes.failing is not None and causes.failing.reason == "CrashLoop"

    def test_waiting_alone_is_no_failure(self) -> None:
        causes = model_causes("v1", deployment(), [unschedulable_pod(message=PVC_MESSAGE)])
        assert causes.failing is None
        assert causes.waiting == Cause("VolumeNotBound", f"model v1: {PVC_MESSAGE}", waiting=True)

    def test_waiting_past_the_progress_deadline_needs_a_person(self) -> None:
        causes = model_causes("v1", deployment(conditions=DEADLINE), [unschedulable_pod(message=PVC_MESSAGE)])

        assert causes.waiting is None and causes.failing is not None
        assert (causes.failing.reason, causes.failing.waiting) == ("VolumeNotBound", False)
        assert PVC_MESSAGE in causes.failing.message and "has timed out progressing" in causes.failing.message

    def test_full_quota_past_the_deadline_needs_a_person(self) -> None:
        quota = {"type": "ReplicaFailure", "status": "True", "message": QUOTA_MESSAGE}
        full = deployment(conditions=[*DEADLINE, quota])
        causes = model_causes("v1", full, [])
        assert causes.failing is not None and causes.failing.reason == "QuotaExceeded"


class TestDeploymentCause:
    def test_full_quota_waits(self) -> None:
        full = deployment(conditions=[
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": QUOTA_MESSAGE},
        ])
        assert deployment_cause(full) == Cause("QuotaExceeded", QUOTA_MESSAGE, waiting=True)

    def test_admission_refusal_fails(self) -> None:
        refused = deployment(conditions=[
            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": REFUSED_MESSAGE}])
        assert deployment_cause(refused) == Cause("ReplicaFailure", REFUSED_MESSAGE)

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
    """The cause that matters most, as status reads it from model_causes: every one here is failing."""

    def test_message_is_prefixed_with_the_model(self) -> None:
        cause = model_causes("v2", deployment("v2"), [unschedulable_pod("v2")]).failing
        assert cause == Cause("Unschedulable", f"model v2: {GPU_MESSAGE}")

    @pytest.mark.parametrize("reverse", [False, True])
    def test_first_pod_by_name_wins_whatever_the_watch_order(self, reverse: bool) -> None:
        pods = [crashloop_pod(name="b"), image_pull_pod(name="a", image="x")]
        cause = model_causes("v1", deployment(), pods[::-1] if reverse else pods).failing
        assert cause is not None and cause.reason == "ImagePullFailed"

    def test_ready_pods_are_skipped_for_a_failing_one(self) -> None:
        cause = model_causes("v1", deployment(replicas=2, ready=1),
                             [ready_pod(name="a"), crashloop_pod(name="b")]).failing
        assert cause is not None and cause.reason == "CrashLoop"

    def test_pod_cause_comes_before_the_deployments(self) -> None:
        failing = deployment(conditions=[{"type": "ReplicaFailure", "status": "True", "message": QUOTA_MESSAGE}])
        cause = model_causes("v1", failing, [unschedulable_pod()]).failing
        assert cause is not None and cause.reason == "Unschedulable"

    def test_deployment_cause_when_no_pod_could_be_created(self) -> None:
        failing = deployment(conditions=[{"type": "ReplicaFailure", "status": "True", "message": REFUSED_MESSAGE}])
        assert model_causes("v1", failing, []).failing == Cause("ReplicaFailure", f"model v1: {REFUSED_MESSAGE}")

    def test_no_cause_while_coming_up(self) -> None:
        coming_up = [ready_pod(name="a"), starting_pod(name="b")]
        assert model_causes("v1", deployment(replicas=2, ready=1), coming_up) == ModelCauses()  # neither cause


class TestSlimPods:
    """The operator keeps pods slimmed (state.slim, at the watch stream): what status reads survives it."""

    @pytest.mark.parametrize("full", [ready_pod(), starting_pod(), unschedulable_pod(), image_pull_pod(),
                                      crashloop_pod(), crashloop_pod(reason="OOMKilled", exit_code=137)])
    def test_the_same_cause_from_a_slim_pod(self, full: dict) -> None:
        slimmed = slim({**full, "kind": "Pod"})
        assert pod_cause(slimmed) == pod_cause(full)
        assert "spec" not in slimmed

    def test_conditions_nobody_reads_are_dropped(self) -> None:
        full = ready_pod()
        full["status"]["conditions"].append({"type": "PodReadyToStartContainers", "status": "True",
                                             "lastTransitionTime": "2024-05-01T12:00:00Z"})
        kept = [c["type"] for c in slim({**full, "kind": "Pod"})["status"]["conditions"]]
        assert "PodReadyToStartContainers" not in kept and "Ready" in kept
