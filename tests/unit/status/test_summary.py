"""status/summary.py: the InferenceService status a user reads, from observed Deployments and Pods."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from observed_objects import (
    CREATED,
    GATEWAY,
    GPU_MESSAGE,
    LATER,
    LATER_STAMP,
    NEW_HASH,
    NOW,
    OLD_HASH,
    STAMP,
    UID,
    batch_service,
    crashloop_pod,
    deployment,
    image_pull_pod,
    model,
    observed,
    of_template,
    progressing,
    ready_pod,
    rolling_deployment,
    service,
    starting_pod,
    unschedulable_pod,
)

from inference_operator.api.v1alpha1 import InferenceService, InferenceServiceStatus
from inference_operator.status import Cause, ParentMeta, summarize
from inference_operator.status.summary import progress, service_state
from inference_operator.status.views import ModelView, Observed, view_models

TWO_MODELS = (model("v1", weight=70, instanceCount=2), model("v2", weight=30, instanceCount=2))


def summary(svc: InferenceService, *objects: dict[str, Any], previous: dict[str, Any] | None = None,
            now: datetime = NOW, spec_error: Cause | None = None) -> dict[str, Any]:
    meta = ParentMeta(uid=UID, generation=svc.generation, created=CREATED)
    return summarize(meta, svc, observed(*objects), previous or {}, now, GATEWAY, spec_error)


def models_by_name(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in status["models"]}


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


class TestViewModels:
    def test_before_the_deployment_is_seen_the_spec_is_wanted(self) -> None:
        (view,) = view_models(service(model(instanceCount=3)), observed())
        assert (view.desired, view.ready, view.cause) == (3, 0, None)

    def test_desired_is_the_deployments_replicas_chosen_by_the_hpa(self) -> None:
        svc = service(model(instanceCount=1, scaling={"enabled": True, "maxReplicas": 4}))
        (view,) = view_models(svc, observed(deployment(replicas=3, ready=2)))
        assert (view.desired, view.ready) == (3, 2)

    def test_a_scaling_model_wants_at_least_its_minimum(self) -> None:
        """A Deployment created at 1 before the HPA (or the replicas handover) raised it to minReplicas 2
        is not what was asked for: the new service is not running on one instance."""
        svc = service(model(instanceCount=1, scaling={"enabled": True, "minReplicas": 2, "maxReplicas": 4}))
        (view,) = view_models(svc, observed(deployment(replicas=1, ready=1)))
        assert (view.desired, view.ready, view.settled, view.state) == (2, 1, False, "concerning")
        assert summary(svc, deployment(replicas=1, ready=1))["status"] == "deploying"

    def test_only_pods_of_the_current_template_count_as_ready(self) -> None:
        rolling = deployment(replicas=2, ready=2, updated=1, generation=2)
        (view,) = view_models(service(model(instanceCount=2)), observed(rolling))
        assert view.ready == 1

    def test_ready_counts_are_not_trusted_before_the_controller_caught_up(self) -> None:
        stale = deployment(replicas=2, ready=2, generation=3, observed_generation=2)
        (view,) = view_models(service(model(instanceCount=2)), observed(stale))
        assert view.ready == 0

    def test_stopped_wants_nothing(self) -> None:
        (view,) = view_models(service(stopped=True), observed(deployment(replicas=1, ready=1)))
        assert view.desired == 0

    def test_cause_comes_from_the_models_own_pods(self) -> None:
        views = view_models(service(*TWO_MODELS), observed(unschedulable_pod("v2"), ready_pod("v1")))
        assert [v.cause.reason if v.cause else None for v in views] == [None, "Unschedulable"]

    @pytest.mark.parametrize(("desired", "ready", "state"), [
        (2, 2, "ready"), (2, 3, "ready"), (2, 1, "concerning"), (2, 0, "notReady"), (0, 0, "notReady"),
    ])
    def test_model_state(self, desired: int, ready: int, state: str) -> None:
        assert ModelView("v1", 100, desired, ready, None, settled=ready >= desired).state == state


class TestServiceState:
    def state(self, svc: InferenceService, *objects: dict[str, Any],
              previous: dict[str, Any] | None = None) -> str:
        return service_state(svc, view_models(svc, observed(*objects)), previous or {}, svc.generation)[0]

    def test_stopped_wins_over_everything(self) -> None:
        assert self.state(service(stopped=True), unschedulable_pod()) == "stopped"

    def test_failed_lists_every_failing_model(self) -> None:
        svc = service(*TWO_MODELS)
        state, causes = service_state(svc, view_models(svc, observed(unschedulable_pod("v1"), crashloop_pod("v2"))),
                                      {}, 1)
        assert state == "failed"
        assert [c.reason for c in causes] == ["Unschedulable", "CrashLoop"]

    def test_one_model_failing_while_the_other_serves_is_failed(self) -> None:
        svc = service(*TWO_MODELS)
        assert self.state(svc, deployment("v1", 2, 2), deployment("v2", 2, 0), image_pull_pod("v2")) == "failed"

    def test_failing_pod_beside_ready_ones_is_concerning_at_once(self) -> None:
        svc = service(model(instanceCount=2))
        assert self.state(svc, deployment(replicas=2, ready=1), ready_pod(name="a"),
                          crashloop_pod(name="b")) == "concerning"

    @pytest.mark.parametrize(("previous", "state"), [
        ({}, "deploying"),
        ({"status": "deploying", "observedGeneration": 1}, "deploying"),
        ({"status": "running", "observedGeneration": 1}, "concerning"),
        ({"status": "concerning", "observedGeneration": 1}, "concerning"),
        ({"status": "running", "observedGeneration": 0}, "deploying"),
        ({"status": "failed", "observedGeneration": 1}, "deploying"),
    ], ids=["new", "still-deploying", "lost-an-instance", "still-concerning", "new-generation", "recovering"])
    def test_concerning_only_after_running_at_this_generation(self, previous: dict, state: str) -> None:
        svc = service(model(instanceCount=2))
        assert self.state(svc, deployment(replicas=2, ready=1), previous=previous) == state

    @pytest.mark.parametrize("failing", [unschedulable_pod("v2"), starting_pod("v2")])
    def test_weight_zero_model_never_holds_the_service_back(self, failing: dict) -> None:
        svc = service(model("v1", weight=100), model("v2", weight=0))
        assert self.state(svc, deployment("v1", 1, 1), deployment("v2", 1, 0), failing) == "running"

    def test_batch_model_counts_whatever_its_weight(self) -> None:
        assert self.state(batch_service(weight=0), unschedulable_pod()) == "failed"


class TestProgress:
    @pytest.mark.parametrize(("ready", "expected"), [((0, 0), 0), ((1, 0), 25), ((2, 1), 75), ((3, 3), 99)])
    def test_ready_over_desired_across_models(self, ready: tuple[int, int], expected: int) -> None:
        views = [ModelView("v1", 70, 2, ready[0], None), ModelView("v2", 30, 2, ready[1], None)]
        assert progress("deploying", views) == expected

    def test_settled_is_100_and_stopped_is_0(self) -> None:
        views = [ModelView("v1", 100, 2, 2, None, settled=True)]
        assert (progress("running", views), progress("stopped", views)) == (100, 0)

    def test_running_while_scaling_up_shows_ready_over_desired(self) -> None:
        views = [ModelView("v1", 100, 4, 2, None)]
        assert progress("running", views) == 50

    def test_nothing_wanted_is_0(self) -> None:
        assert progress("deploying", []) == 0


class TestSummarize:
    def test_new_service_is_deploying_with_its_address(self) -> None:
        status = summary(service())

        assert status["status"] == "deploying"
        assert status["progress"] == 0
        assert status["serviceId"] == UID
        assert status["accessAddress"] == f"{GATEWAY}/v1/infers/{UID}"
        assert status["models"] == [{"name": "v1", "status": "notReady", "replicas": 1, "readyReplicas": 0,
                                     "weight": 100}]
        assert status["publishAt"] == CREATED
        assert (status["updateTime"], status["transitionAt"]) == (STAMP, STAMP)
        assert status["observedGeneration"] == 1
        assert "errorMsg" not in status
        assert conditions(status)["Ready"]["status"] == "False"

    def test_result_is_valid_for_the_crd_schema(self) -> None:
        status = summary(service(*TWO_MODELS), deployment("v1", 2, 1), unschedulable_pod("v2"))
        InferenceServiceStatus.model_validate(status)

    def test_deploying_progress_and_per_model_status(self) -> None:
        status = summary(service(*TWO_MODELS), deployment("v1", 2, 1), deployment("v2", 2, 2),
                         ready_pod("v1", "a"), starting_pod("v1", "b"))

        assert (status["status"], status["progress"]) == ("deploying", 75)
        assert {n: m["status"] for n, m in models_by_name(status).items()} == {"v1": "concerning", "v2": "ready"}

    def test_running(self) -> None:
        status = summary(service(*TWO_MODELS), deployment("v1", 2, 2), deployment("v2", 2, 2))

        assert (status["status"], status["progress"]) == ("running", 100)
        assert {m["status"] for m in status["models"]} == {"ready"}
        assert conditions(status)["Ready"]["status"] == "True"
        assert conditions(status)["Stalled"]["status"] == "False"

    def test_no_gpu_for_the_model_fails_with_the_schedulers_words(self) -> None:
        status = summary(service(), deployment(), unschedulable_pod())

        assert status["status"] == "failed"
        assert status["errorMsg"] == f"model v1: {GPU_MESSAGE}"
        assert "nvidia.com/gpu" in status["errorMsg"]
        assert conditions(status)["Ready"]["reason"] == "Unschedulable"
        assert conditions(status)["Stalled"]["status"] == "True"
        assert status["accessAddress"] == f"{GATEWAY}/v1/infers/{UID}"

    def test_bad_image_fails_naming_model_container_and_image(self) -> None:
        status = summary(service(*TWO_MODELS), deployment("v1", 2, 2), deployment("v2", 2, 0),
                         image_pull_pod("v2", image="registry.example/jar-model:typo"))

        assert status["status"] == "failed"
        for part in ("model v2", 'container "model"', '"registry.example/jar-model:typo"', "ImagePullBackOff"):
            assert part in status["errorMsg"]
        assert models_by_name(status)["v1"]["status"] == "ready"
        assert models_by_name(status)["v2"]["status"] == "notReady"

    def test_crash_loop_fails_naming_container_and_exit_code(self) -> None:
        status = summary(service(), deployment(), crashloop_pod(exit_code=1))

        assert status["status"] == "failed"
        assert status["errorMsg"].startswith("model v1: ")
        assert 'container "model"' in status["errorMsg"]
        assert "exit code 1" in status["errorMsg"]
        assert conditions(status)["Ready"]["reason"] == "CrashLoop"

    def test_failing_weight_zero_model_is_reported_but_does_not_fail_the_service(self) -> None:
        svc = service(model("v1", weight=100), model("canary", weight=0))

        status = summary(svc, deployment("v1", 1, 1), deployment("canary", 1, 0), crashloop_pod("canary"))

        assert (status["status"], status["progress"]) == ("running", 100)
        assert "errorMsg" not in status
        assert models_by_name(status)["canary"] == {"name": "canary", "status": "notReady", "replicas": 1,
                                                    "readyReplicas": 0, "weight": 0}

    def test_stopped_reports_zero_progress_and_no_ready_model(self) -> None:
        svc = service(*TWO_MODELS, stopped=True)

        status = summary(svc, deployment("v1", 0, 1, generation=2), deployment("v2", 0, 0, generation=2),
                         previous={"status": "running", "observedGeneration": 1})

        assert (status["status"], status["progress"]) == ("stopped", 0)
        assert [(m["status"], m["replicas"]) for m in status["models"]] == [("notReady", 0), ("notReady", 0)]
        assert conditions(status)["Ready"]["reason"] == "Stopped"
        assert status["accessAddress"] == f"{GATEWAY}/v1/infers/{UID}"

    def test_losing_an_instance_after_running_is_concerning(self) -> None:
        svc = service(model(instanceCount=2))
        running = summary(svc, deployment(replicas=2, ready=2))

        status = summary(svc, deployment(replicas=2, ready=1), ready_pod(name="a"), starting_pod(name="b"),
                         previous=running, now=LATER)

        assert status["status"] == "concerning"
        assert status["progress"] == 50
        assert models_by_name(status)["v1"]["status"] == "concerning"
        assert conditions(status)["Ready"]["reason"] == "Concerning"

    def test_failed_then_cause_goes_away_moves_on_by_itself(self) -> None:
        svc = service(model(instanceCount=2))
        failed = summary(svc, deployment(replicas=2), unschedulable_pod(name="a"), unschedulable_pod(name="b"))

        # a GPU node is added: pods are scheduled and start
        deploying = summary(svc, deployment(replicas=2), starting_pod(name="a"), starting_pod(name="b"),
                            previous=failed, now=LATER)
        running = summary(svc, deployment(replicas=2, ready=2), ready_pod(name="a"), ready_pod(name="b"),
                          previous=deploying, now=LATER)

        assert [s["status"] for s in (failed, deploying, running)] == ["failed", "deploying", "running"]
        assert "errorMsg" not in deploying
        assert deploying["transitionAt"] == LATER_STAMP
        assert conditions(deploying)["Stalled"] == {**conditions(failed)["Stalled"], "status": "False",
                                                    "reason": "NotStalled", "message": "",
                                                    "lastTransitionTime": LATER_STAMP}

    def test_update_time_moves_only_on_a_new_generation(self) -> None:
        first = summary(service(model(instanceCount=2)), deployment(replicas=2))

        same = summary(service(model(instanceCount=2)), deployment(replicas=2, ready=2), previous=first, now=LATER)
        updated = summary(service(model(instanceCount=3), generation=2), deployment(replicas=2, ready=2),
                          previous=first, now=LATER)

        assert same["updateTime"] == STAMP
        assert (updated["updateTime"], updated["observedGeneration"]) == (LATER_STAMP, 2)

    def test_observed_generation_is_the_services_not_the_deployments(self) -> None:
        status = summary(service(generation=7), deployment(generation=2, ready=1))
        assert status["observedGeneration"] == 7
        assert {c["observedGeneration"] for c in status["conditions"]} == {7}

    def test_transition_time_moves_only_on_a_status_change(self) -> None:
        svc = service(model(instanceCount=4))
        first = summary(svc, deployment(replicas=4, ready=1))

        more_ready = summary(svc, deployment(replicas=4, ready=3), previous=first, now=LATER)
        running = summary(svc, deployment(replicas=4, ready=4), previous=first, now=LATER)

        assert (more_ready["status"], more_ready["progress"], more_ready["transitionAt"]) == ("deploying", 75, STAMP)
        assert (running["status"], running["transitionAt"]) == ("running", LATER_STAMP)

    def test_ready_condition_keeps_its_time_while_its_status_holds(self) -> None:
        svc = service(model(instanceCount=2))
        first = summary(svc, deployment(replicas=2))

        failing = summary(svc, deployment(replicas=2), unschedulable_pod(), previous=first, now=LATER)

        assert conditions(failing)["Ready"]["lastTransitionTime"] == STAMP
        assert conditions(failing)["Stalled"]["lastTransitionTime"] == LATER_STAMP

    def test_same_observation_gives_the_same_status_later(self) -> None:
        svc = service(*TWO_MODELS)
        objects = (deployment("v1", 2, 1), deployment("v2", 2, 0), starting_pod("v2"))
        first = summary(svc, *objects)

        assert summary(svc, *objects, previous=first, now=LATER) == first

    def test_counters_and_publish_time_are_kept(self) -> None:
        previous = {"status": "running", "observedGeneration": 1, "invocationTimes": 42, "failedTimes": 3,
                    "publishAt": "2024-04-01T00:00:00Z"}

        status = summary(service(), deployment(ready=1), previous=previous)

        assert (status["invocationTimes"], status["failedTimes"]) == (42, 3)
        assert status["publishAt"] == "2024-04-01T00:00:00Z"

    def test_batch_service_has_no_access_address(self) -> None:
        status = summary(batch_service(), deployment(ready=1))
        assert "accessAddress" not in status

    def test_gateway_base_with_trailing_slash(self) -> None:
        status = summarize(ParentMeta(UID, 1), service(), observed(), {}, NOW, "https://infer.example.com/")
        assert status["accessAddress"] == f"https://infer.example.com/v1/infers/{UID}"

    def test_invalid_spec_fails_with_the_message(self) -> None:
        error = Cause("InvalidSpec", "invalid spec: spec.models: weights of a real-time service must sum to 100, "
                                     "not 120")

        status = summarize(ParentMeta(UID, 2, CREATED), None, observed(), {}, NOW, GATEWAY, error)

        assert (status["status"], status["progress"], status["models"]) == ("failed", 0, [])
        assert status["errorMsg"] == error.message
        assert conditions(status)["Ready"]["reason"] == "InvalidSpec"
        assert conditions(status)["Stalled"]["status"] == "True"
        assert status["observedGeneration"] == 2
        InferenceServiceStatus.model_validate(status)

    def test_unknown_flavor_fails_even_with_ready_instances(self) -> None:
        error = Cause("UnknownFlavor", 'spec.models[0].specification: unknown flavor "gpu.h100"')

        status = summary(service(), deployment(ready=1), spec_error=error)

        assert status["status"] == "failed"
        assert status["errorMsg"] == error.message


PVC_MESSAGE = ("0/8 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/8 "
               "nodes are available: 8 Preemption is not helpful for scheduling.")
RUNNING_AT_1 = {"status": "running", "observedGeneration": 1, "progress": 100,
                "models": [{"name": "v1", "status": "ready", "replicas": 2, "readyReplicas": 2, "weight": 100}],
                "conditions": [{"type": "Ready", "status": "True", "reason": "Running", "observedGeneration": 1}]}


def new_pods(*pods: dict[str, Any]) -> list[dict[str, Any]]:
    return [of_template(p, NEW_HASH) for p in pods]


def old_pods(*pods: dict[str, Any]) -> list[dict[str, Any]]:
    return [of_template(p, OLD_HASH) for p in pods]


class TestRolloutTruth:
    """Ready at a generation only when every replica runs the current template and is available."""

    def test_an_old_pod_still_serving_is_not_running(self) -> None:
        # 2 wanted, {replicas: 3, updatedReplicas: 2, readyReplicas: 2}: one new pod ready, one starting
        svc = service(model(instanceCount=2, image="registry.example/jar-model:2"), generation=2)

        status = summary(svc, rolling_deployment(total=3, updated=2, ready=2),
                         *new_pods(ready_pod(name="a"), starting_pod(name="b")), *old_pods(ready_pod(name="c")),
                         previous=RUNNING_AT_1)

        assert (status["status"], status["progress"]) == ("deploying", 50)
        ready = conditions(status)["Ready"]
        assert (ready["status"], ready["reason"]) == ("False", "Progressing")
        assert "1 of 2 instances updated and ready" in ready["message"] and "1 old instance still" in ready["message"]
        assert models_by_name(status)["v1"]["readyReplicas"] == 1
        assert "errorMsg" not in status

        done = summary(svc, deployment(replicas=2, ready=2, generation=2, conditions=progressing()),
                       *new_pods(ready_pod(name="a"), ready_pod(name="b")), previous=status, now=LATER)
        assert (done["status"], done["progress"], conditions(done)["Ready"]["reason"]) == ("running", 100, "Running")

    @pytest.mark.parametrize("failing", [image_pull_pod(image="registry.example/jar-model:typo"),
                                         crashloop_pod(), unschedulable_pod()], ids=["unpullable", "crashloop",
                                                                                    "unschedulable"])
    def test_stuck_rollout_with_old_instances_serving_is_concerning(self, failing: dict[str, Any]) -> None:
        svc = service(model(instanceCount=2), generation=2)

        status = summary(svc, rolling_deployment(total=3, updated=1, ready=2),
                         *new_pods(failing), *old_pods(ready_pod(name="b"), ready_pod(name="c")), previous=RUNNING_AT_1)

        assert status["status"] == "concerning"
        assert status["errorMsg"].startswith("model v1: ")
        assert "rollout stuck: 2 old instances still serving" in status["errorMsg"]
        assert conditions(status)["Ready"]["reason"] in ("ImagePullFailed", "CrashLoop", "Unschedulable")
        assert conditions(status)["Stalled"]["status"] == "False"
        assert status["progress"] == 0

    def test_causes_of_old_pods_are_left_behind_by_a_rollout(self) -> None:
        # rolling away from a crashing image: the new pods come up, the old ones still crash
        svc = service(model(instanceCount=2), generation=2)
        status = summary(svc, rolling_deployment(total=3, updated=1, ready=0),
                         *new_pods(starting_pod(name="a")), *old_pods(crashloop_pod(name="b"), crashloop_pod(name="c")))
        assert status["status"] == "deploying"
        assert "errorMsg" not in status

    def test_scale_up_from_running_stays_running(self) -> None:
        svc = service(model(instanceCount=4), generation=2)

        status = summary(svc, deployment(replicas=4, ready=2, generation=2, conditions=progressing()),
                         *new_pods(ready_pod(name="a"), ready_pod(name="b"), starting_pod(name="c"),
                                   starting_pod(name="d")), previous=RUNNING_AT_1)

        assert (status["status"], status["progress"]) == ("running", 50)
        ready = conditions(status)["Ready"]
        assert (ready["status"], ready["reason"], ready["message"]) == ("False", "ScalingUp",
                                                                        "Scaling up: 2 of 4 instances ready.")
        more = summary(svc, deployment(replicas=4, ready=3, generation=2, conditions=progressing()),
                       previous=status, now=LATER)
        assert (more["status"], conditions(more)["Ready"]["status"]) == ("running", "False")
        done = summary(svc, deployment(replicas=4, ready=4, generation=2, conditions=progressing()),
                       previous=more, now=LATER)
        assert (done["progress"], conditions(done)["Ready"]["status"]) == (100, "True")

        # a new instance that fails is concerning; a new model with no instance yet is deploying
        failing = summary(svc, deployment(replicas=4, ready=2, generation=2, conditions=progressing()),
                          *new_pods(ready_pod(name="a"), ready_pod(name="b"), unschedulable_pod(name="c")),
                          previous=status, now=LATER)
        assert failing["status"] == "concerning" and "Insufficient nvidia.com/gpu" in failing["errorMsg"]
        added = service(model("v1", 50, instanceCount=2), model("v2", 50), generation=3)
        assert summary(added, deployment("v1", 2, 2), deployment("v2", 1, 0), previous=status)["status"] == "deploying"

    def test_autoscaler_scale_up_at_the_same_generation_stays_running(self) -> None:
        svc = service(model(instanceCount=1, scaling={"enabled": True, "maxReplicas": 6}))
        status = summary(svc, deployment(replicas=3, ready=2, generation=4, conditions=progressing()),
                         previous=RUNNING_AT_1)
        assert (status["status"], status["progress"]) == ("running", 66)
        assert (conditions(status)["Ready"]["status"], conditions(status)["Ready"]["message"]) == (
            "True", "Scaling up: 2 of 3 instances ready.")

    def test_running_is_kept_until_the_deployment_controller_has_seen_the_change(self) -> None:
        svc = service(model(instanceCount=4), generation=2)
        previous = summary(service(model(instanceCount=2)), deployment(replicas=2, ready=2))

        stale = summary(svc, deployment(replicas=4, ready=2, generation=2, observed_generation=1), previous=previous,
                        now=LATER)

        assert stale == previous
        deploying = summary(svc, deployment(replicas=4, ready=2, generation=2, observed_generation=1),
                            previous={**previous, "status": "deploying"}, now=LATER)
        assert (deploying["status"], deploying["observedGeneration"]) == ("deploying", 2)

    def test_a_deployment_the_watch_shows_at_an_older_spec_holds_running_too(self) -> None:
        svc = service(model(instanceCount=4), generation=2)
        previous = summary(service(model(instanceCount=2)), deployment(replicas=2, ready=2))
        hidden = Observed(pending=frozenset({"v1"}))

        assert summarize(ParentMeta(UID, 2, CREATED), svc, hidden, previous, LATER, GATEWAY) == previous

class TestWaitingIsNotFailing:
    def test_claim_being_bound_keeps_deploying_with_the_cause_in_the_condition(self) -> None:
        status = summary(service(), deployment(), unschedulable_pod(message=PVC_MESSAGE))

        assert status["status"] == "deploying"
        assert "errorMsg" not in status
        ready = conditions(status)["Ready"]
        assert (ready["status"], ready["reason"]) == ("False", "Deploying")
        assert f"model v1: {PVC_MESSAGE}" in ready["message"]
        assert conditions(status)["Stalled"]["status"] == "False"

    def test_full_quota_keeps_deploying(self) -> None:
        quota = deployment(conditions=[{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                                        "message": 'pods "x" is forbidden: exceeded quota: gpu-quota'}])
        status = summary(service(), quota)
        assert status["status"] == "deploying"
        assert "exceeded quota" in conditions(status)["Ready"]["message"]

    def test_past_the_progress_deadline_the_wait_fails(self) -> None:
        stuck = deployment(conditions=progressing(message='ReplicaSet "{rs}" has timed out progressing.',
                                                  reason="ProgressDeadlineExceeded", status="False"))
        status = summary(service(), stuck, unschedulable_pod(message=PVC_MESSAGE))
        assert (status["status"], conditions(status)["Ready"]["reason"]) == ("failed", "VolumeNotBound")
        assert PVC_MESSAGE in status["errorMsg"]

    def test_waiting_during_a_rollout_is_progressing_with_the_cause(self) -> None:
        svc = service(model(instanceCount=2), generation=2)
        status = summary(svc, rolling_deployment(total=3, updated=1, ready=2),
                         *new_pods(unschedulable_pod(message=PVC_MESSAGE)),
                         *old_pods(ready_pod(name="b"), ready_pod(name="c")))
        assert status["status"] == "deploying"
        ready = conditions(status)["Ready"]
        assert ready["reason"] == "Progressing" and PVC_MESSAGE in ready["message"]


class TestScaleToZero:
    """A model scaled to zero for want of requests still answers (the gateway holds and wakes): the service
    stays running and Ready; the model says idle, then waking, then ready."""

    SLEEPER = model(scaling={"minReplicas": 0, "scaleToZeroAfter": "10m"})
    RUNNING = {"status": "running", "observedGeneration": 1,
               "conditions": [{"type": "Ready", "status": "True", "reason": "Running", "message": "",
                               "lastTransitionTime": STAMP, "observedGeneration": 1}]}

    def test_an_idle_model_keeps_the_service_running_and_ready(self) -> None:
        svc = service(self.SLEEPER)
        status = summarize(ParentMeta(UID, 1, CREATED), svc,
                           Observed(deployments={"v1": deployment(replicas=0)}, idle={"v1": STAMP}),
                           self.RUNNING, LATER, GATEWAY)
        assert (status["status"], status["progress"]) == ("running", 100)
        assert models_by_name(status)["v1"] == {"name": "v1", "status": "idle", "replicas": 0, "readyReplicas": 0,
                                                "weight": 100, "idleSince": STAMP}
        assert conditions(status)["Ready"]["status"] == "True"

    def test_a_waking_model_keeps_the_service_running_and_says_so(self) -> None:
        svc = service(self.SLEEPER)
        previous = {**self.RUNNING, "models": [{"name": "v1", "status": "idle", "coldStartSeconds": 4.5}]}
        status = summarize(ParentMeta(UID, 1, CREATED), svc,
                           Observed(deployments={"v1": deployment(replicas=1)}, pods={"v1": [starting_pod()]},
                                    waking=frozenset({"v1"})), previous, LATER, GATEWAY)
        assert (status["status"], status["progress"]) == ("running", 100)
        entry = models_by_name(status)["v1"]
        assert (entry["status"], entry["replicas"], entry["coldStartSeconds"]) == ("waking", 1, 4.5)
        ready = conditions(status)["Ready"]
        assert ready["status"] == "True" and "Waking v1 from zero" in ready["message"]

    def test_a_wake_that_fails_is_a_failure_a_person_can_act_on(self) -> None:
        svc = service(self.SLEEPER)
        status = summarize(ParentMeta(UID, 1, CREATED), svc,
                           Observed(deployments={"v1": deployment(replicas=1)}, pods={"v1": [image_pull_pod()]},
                                    waking=frozenset({"v1"})), self.RUNNING, LATER, GATEWAY)
        assert status["status"] == "failed" and "v1" in status["errorMsg"]
