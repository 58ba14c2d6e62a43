"""reconcile.Reconciler against a FakeKube: minimal writes, deletions, status and events."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from typing import Any

import pytest

from fakes import (
    HANDOVER,
    SCALED,
    TWO_MODELS,
    UID,
    Clock,
    FakeKube,
    body,
    hold_first_apply,
    model,
    replicas_owners_of,
    settled,
    shown,
    until,
)
from inference_operator import metrics
from inference_operator.catalog.flavors import load_catalog
from inference_operator.config import OperatorConfig
from inference_operator.ports import ApiError, Children, NamespaceTerminating
from inference_operator.reconcile import announce as reconcile
from inference_operator.reconcile.reconciler import Reconciler
from inference_operator.reconcile.sync import FINGERPRINT


def edited_by_hand(kube: FakeKube, parent: dict[str, Any], **status: Any) -> dict[str, Any]:
    """Another writer changed the status (`kubectl edit --subresource=status`): a later resourceVersion."""
    kube.version += 1
    return {**parent, "metadata": {**parent["metadata"], "resourceVersion": str(kube.version)},
            "status": {**parent["status"], **status}}


FIRST_PASS = [  # every Deployment first: the second model's instances do not wait for the first one's Service
    ("apply", "Deployment", "service-demo-v1"), ("apply", "Deployment", "service-demo-v2"),
    ("apply", "Service", "service-demo-v1"), ("apply", "Service", "service-demo-v2"),
    ("apply", "HorizontalPodAutoscaler", "service-demo-v2"),
    ("apply/status", "InferenceService", "service-demo"),
]


class TestFirstPass:
    async def test_applies_each_child_once_then_status_once(self, reconciler: Reconciler, kube: FakeKube) -> None:
        await reconciler.reconcile(body(), Children())

        assert kube.writes() == FIRST_PASS
        assert all(FINGERPRINT in o["metadata"]["annotations"] for o in kube.objects.values())
        assert kube.status is not None
        assert (kube.status["status"], kube.status["progress"], kube.status["serviceId"]) == ("deploying", 0, UID)
        assert kube.status["accessAddress"] == f"http://inference-gateway.inference-system.svc/v1/infers/{UID}"
        await reconciler.announced()
        assert kube.events == [("Normal", "Deploying", "status new -> deploying, progress 0%")]

    async def test_with_gateway_api_an_httproute_is_applied_too(self, kube: FakeKube, clock: Clock) -> None:
        reconciler = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog, clock=clock,
                                gateway_api=lambda: True)

        await reconciler.reconcile(body(), Children())

        assert kube.writes() == [*FIRST_PASS[:-1], ("apply", "HTTPRoute", "service-demo"), FIRST_PASS[-1]]

    async def test_with_an_inferencepool_the_route_goes_to_the_pool_and_status_shows_it(
            self, kube: FakeKube, clock: Clock) -> None:
        reconciler = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog, clock=clock,
                                gateway_api=lambda: True, inference_pool=lambda: True)
        pooled = body(inferencePool={"enabled": True, "endpointPicker": {"name": "epp", "port": 9002}})

        parent = await settled(reconciler, kube, pooled)
        assert kube.objects[("HTTPRoute", "service-demo")]["spec"]["rules"][0]["backendRefs"] == [
            {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "service-demo"}]
        kube.become_ready()
        kube.objects[("InferencePool", "service-demo")]["status"] = {"parents": [{
            "parentRef": {"kind": "Gateway", "name": "gw"},
            "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted"}]}]}
        clock.advance()
        await reconciler.reconcile(parent, kube.children())

        assert kube.writes() == [("apply/status", "InferenceService", "service-demo")]  # no child written again
        assert kube.status is not None
        conditions = {c["type"]: (c["status"], c["reason"]) for c in kube.status["conditions"]}
        assert conditions["InferencePoolAccepted"] == ("True", "Accepted")

    async def test_a_pool_with_no_endpoint_picker_fails_the_service_naming_the_field(
            self, kube: FakeKube, clock: Clock) -> None:
        reconciler = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog, clock=clock,
                                gateway_api=lambda: True, inference_pool=lambda: True)

        await reconciler.reconcile(body(inferencePool={"enabled": True}), Children())

        assert kube.writes() == [("apply/status", "InferenceService", "service-demo")]
        assert kube.status is not None and kube.status["status"] == "failed"
        assert kube.status["errorMsg"].startswith("spec.inferencePool.endpointPicker: ")


def hold_apply_of(kube: FakeKube, kind: str, name: str) -> asyncio.Event:
    """The apply of that child waits until the returned event is set."""
    release = asyncio.Event()
    apply = kube.apply

    async def held(manifest: Mapping[str, Any], subresource: str | None = None,
                   field_manager: str | None = None) -> Any:
        if (manifest["kind"], manifest["metadata"]["name"], subresource) == (kind, name, None):
            await release.wait()
        return await apply(manifest, subresource, field_manager)

    kube.apply = held  # type: ignore[method-assign]
    return release


async def written(kube: FakeKube, *children: tuple[str, str]) -> None:
    """Until every (kind, name) given has been applied (checked as each apply returns); fails after 5 s."""
    done = asyncio.Event()
    apply = kube.apply

    def check() -> None:
        if set(children) <= {(kind, name) for verb, kind, name in kube.calls if verb == "apply"}:
            done.set()

    async def noting(manifest: Mapping[str, Any], subresource: str | None = None,
                     field_manager: str | None = None) -> Any:
        try:
            return await apply(manifest, subresource, field_manager)
        finally:
            check()

    kube.apply = noting  # type: ignore[method-assign]
    check()
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        kube.apply = apply  # type: ignore[method-assign]


class TestConcurrentWrites:
    """A pass writes its Deployments together, then its other children together (each waits its own turn at the
    API connections), not one after the other: in a loaded API server a new service's HTTPRoute came 12 s after
    its create, 6 s after its Service."""

    async def test_a_models_deployment_is_applied_while_another_ones_waits(self, reconciler: Reconciler,
                                                                           kube: FakeKube) -> None:
        release = hold_apply_of(kube, "Deployment", "service-demo-v1")
        task = asyncio.create_task(reconciler.reconcile(body(), Children()))

        await written(kube, ("Deployment", "service-demo-v2"))
        assert not [kind for verb, kind, name in kube.calls if kind != "Deployment"], \
            "the other children wait for every Deployment (alone at the API server, they appear soonest)"
        release.set()
        await asyncio.wait_for(task, 5)
        assert kube.writes() == [FIRST_PASS[1], FIRST_PASS[0], *FIRST_PASS[2:]]

    async def test_the_other_children_are_applied_together(self, kube: FakeKube, clock: Clock) -> None:
        reconciler = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog, clock=clock,
                                gateway_api=lambda: True)
        release = hold_apply_of(kube, "Service", "service-demo-v1")
        task = asyncio.create_task(reconciler.reconcile(body(), Children()))

        await written(kube, ("Service", "service-demo-v2"), ("HorizontalPodAutoscaler", "service-demo-v2"),
                      ("HTTPRoute", "service-demo"))
        assert kube.status is None, "status waits for every child's write"
        release.set()
        await asyncio.wait_for(task, 5)
        assert kube.status is not None and kube.status["status"] == "deploying"

    async def test_a_failed_write_fails_the_pass_once_the_others_of_its_wave_are_answered(
            self, reconciler: Reconciler, kube: FakeKube) -> None:
        apply = kube.apply

        async def refuses_one(manifest: Mapping[str, Any], subresource: str | None = None,
                              field_manager: str | None = None) -> Any:
            if (manifest["kind"], manifest["metadata"]["name"]) == ("Deployment", "service-demo-v1"):
                raise ApiError(422, "spec.template: invalid")
            return await apply(manifest, subresource, field_manager)

        kube.apply = refuses_one  # type: ignore[method-assign]
        await reconciler.reconcile(body(), Children())
        kube.apply = apply  # type: ignore[method-assign]

        assert kube.writes() == [FIRST_PASS[1]], "the other Deployment is written; the other children wait"
        assert kube.status is None, "a failed pass writes no status"
        await reconciler.reconcile(body(), Children())  # the retry writes what did not land, then the rest
        assert kube.writes() == [FIRST_PASS[0], *FIRST_PASS[2:]]


class TestIdlePasses:
    async def test_second_pass_with_children_observed_writes_nothing(self, reconciler: Reconciler, kube: FakeKube,
                                                                      clock: Clock) -> None:
        parent = await settled(reconciler, kube, body())
        clock.advance()

        await reconciler.reconcile(parent, kube.children())

        assert kube.writes() == []
        await reconciler.announced()
        assert kube.events == []

    async def test_second_pass_before_the_watch_brought_anything_back_writes_nothing(
            self, reconciler: Reconciler, kube: FakeKube, clock: Clock) -> None:
        await reconciler.reconcile(body(), Children())
        kube.writes()
        clock.advance()

        await reconciler.reconcile(body(), Children())

        assert kube.writes() == []

    async def test_restarted_operator_writes_nothing_for_a_settled_service(self, reconciler: Reconciler,
                                                                          kube: FakeKube, clock: Clock) -> None:
        parent = await settled(reconciler, kube, body())
        restarted = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog, clock=clock)
        clock.advance()

        await restarted.reconcile(parent, kube.children())

        assert kube.writes() == []

    async def test_running_service_settles(self, reconciler: Reconciler, kube: FakeKube, clock: Clock) -> None:
        parent = await settled(reconciler, kube, body())
        kube.become_ready()

        clock.advance()
        await reconciler.reconcile(parent, kube.children())
        assert kube.writes() == [("apply/status", "InferenceService", "service-demo")]
        assert kube.status is not None and (kube.status["status"], kube.status["progress"]) == ("running", 100)

        clock.advance()
        await reconciler.reconcile({**parent, "status": kube.status}, kube.children())
        assert kube.writes() == []

    async def test_only_the_status_that_says_running_first_goes_as_ready(self, reconciler: Reconciler,
                                                                       kube: FakeKube, clock: Clock) -> None:
        """The write of the transition to `running` waits for a connection only behind Deployments (kube.gate.READY):
        the status users wait for; `deploying` and later changes of a running service wait behind children."""
        parent = await settled(reconciler, kube, body())
        kube.become_ready()
        clock.advance()
        await reconciler.reconcile(parent, kube.children())
        reconciler.set_counts(UID, {"invocationTimes": 3, "failedTimes": 0})
        clock.advance()
        await reconciler.reconcile({**parent, "status": kube.status}, kube.children())

        assert kube.ready_flags == [("deploying", False), ("running", True), ("running", False)]


class TestStatusWrittenByOthers:
    async def test_a_status_changed_by_hand_after_the_watch_showed_ours_is_put_back(
            self, reconciler: Reconciler, kube: FakeKube, clock: Clock) -> None:
        parent = await settled(reconciler, kube, body())
        await reconciler.reconcile(parent, kube.children())  # the watch brings the operator's write back
        assert kube.writes() == []
        ours = copy.deepcopy(kube.status)

        clock.advance()
        await reconciler.reconcile(edited_by_hand(kube, parent, status="failed", errorMsg="by hand"),
                                   kube.children())

        assert kube.writes() == [("apply/status", "InferenceService", "service-demo")]
        assert kube.status is not None and kube.status["status"] == ours["status"] == "deploying"
        assert "errorMsg" not in kube.status
        await reconciler.reconcile(shown(kube, parent), kube.children())  # and it settles again
        assert kube.writes() == []

    async def test_a_body_older_than_the_operators_write_writes_nothing(
            self, reconciler: Reconciler, kube: FakeKube, clock: Clock) -> None:
        """Until the watch shows the operator's own write, a different status in a body is an older one (a
        previous process's, or the status before the write), not an edit: no second write."""
        before = body(status={"status": "failed", "errorMsg": "an older process's view"})
        before["metadata"]["resourceVersion"] = "0"
        await reconciler.reconcile(before, Children())
        assert kube.writes()[-1] == ("apply/status", "InferenceService", "service-demo")
        clock.advance()

        await reconciler.reconcile(before, Children())

        assert kube.writes() == []


class TestSpecChanges:
    @pytest.mark.parametrize(("change", "reapplied"), [
        (lambda models: models[0].update(instanceCount=3), [("apply", "Deployment", "service-demo-v1")]),
        (lambda models: models[1]["scaling"].update(maxReplicas=8),
         [("apply", "HorizontalPodAutoscaler", "service-demo-v2")]),
        (lambda models: models[1].update(image="registry.example/jar:2"),
         [("apply", "Deployment", "service-demo-v2")]),
        (lambda models: (models[0].update(weight=50), models[1].update(weight=50)), []),
    ], ids=["instanceCount", "maxReplicas", "image", "weight"])
    async def test_only_affected_children_are_reapplied(self, reconciler: Reconciler, kube: FakeKube,
                                                        change: Any, reapplied: list) -> None:
        await settled(reconciler, kube, body())
        models = copy.deepcopy(TWO_MODELS)
        change(models)

        await reconciler.reconcile(body(models, generation=2, status=kube.status), kube.children())

        assert kube.writes() == [*reapplied, ("apply/status", "InferenceService", "service-demo")]
        assert kube.status is not None and kube.status["observedGeneration"] == 2

    async def test_weight_change_reapplies_only_the_route(self, kube: FakeKube, clock: Clock) -> None:
        reconciler = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog, clock=clock,
                                gateway_api=lambda: True)
        await settled(reconciler, kube, body())
        models = copy.deepcopy(TWO_MODELS)
        models[0]["weight"], models[1]["weight"] = 40, 60

        await reconciler.reconcile(body(models, generation=2, status=kube.status), kube.children())

        assert kube.writes() == [("apply", "HTTPRoute", "service-demo"),
                                 ("apply/status", "InferenceService", "service-demo")]
        backends = kube.objects[("HTTPRoute", "service-demo")]["spec"]["rules"][0]["backendRefs"]
        assert [b["weight"] for b in backends] == [40, 60]
        assert kube.status is not None and [m["weight"] for m in kube.status["models"]] == [40, 60]

    async def test_removing_a_model_deletes_its_children(self, reconciler: Reconciler, kube: FakeKube) -> None:
        await settled(reconciler, kube, body())

        parent = body([model("v1", 100, instanceCount=2)], generation=2, status=kube.status)
        await reconciler.reconcile(parent, kube.children())

        assert sorted(kube.writes()) == [
            ("apply/status", "InferenceService", "service-demo"),
            ("delete", "Deployment", "service-demo-v2"), ("delete", "HorizontalPodAutoscaler", "service-demo-v2"),
            ("delete", "Service", "service-demo-v2"),
        ]
        assert kube.status is not None and [m["name"] for m in kube.status["models"]] == ["v1"]

    async def test_deleted_children_are_deleted_once(self, reconciler: Reconciler, kube: FakeKube) -> None:
        await settled(reconciler, kube, body())
        children_before_deletion = kube.children()
        parent = body([model("v1", 100, instanceCount=2)], generation=2)
        await reconciler.reconcile(parent, children_before_deletion)
        kube.writes()

        # a pod event re-triggers the parent before the watch reports the deletions
        await reconciler.reconcile(parent, children_before_deletion)

        assert kube.writes() == []

    async def test_model_added_back_before_the_watch_caught_up_is_applied(self, reconciler: Reconciler,
                                                                           kube: FakeKube) -> None:
        await settled(reconciler, kube, body())
        stale = kube.children()
        await reconciler.reconcile(body([model("v1", 100, instanceCount=2)], generation=2), stale)
        kube.writes()

        await reconciler.reconcile(body(generation=3), stale)

        assert sorted(kube.writes()) == [
            ("apply", "Deployment", "service-demo-v2"), ("apply", "HorizontalPodAutoscaler", "service-demo-v2"),
            ("apply", "Service", "service-demo-v2"), ("apply/status", "InferenceService", "service-demo"),
        ]

    async def test_stop_removes_hpas_and_scales_to_zero(self, reconciler: Reconciler, kube: FakeKube) -> None:
        await settled(reconciler, kube, body())
        kube.become_ready()

        await reconciler.reconcile(body(generation=2, status=kube.status, stopped=True), kube.children())

        assert sorted(kube.writes()) == [
            ("apply", "Deployment", "service-demo-v1"), ("apply", "Deployment", "service-demo-v2"),
            ("apply/status", "InferenceService", "service-demo"),
            ("delete", "HorizontalPodAutoscaler", "service-demo-v2"),
        ]
        assert [o["spec"]["replicas"] for (kind, _), o in kube.objects.items() if kind == "Deployment"] == [0, 0]
        assert kube.status is not None
        assert (kube.status["status"], kube.status["progress"]) == ("stopped", 0)
        assert {m["status"] for m in kube.status["models"]} == {"notReady"}

    async def test_start_again_recreates_the_hpa(self, reconciler: Reconciler, kube: FakeKube) -> None:
        models = [model("v1", 70, instanceCount=2), model("v2", 30, scaling={**SCALED, "minReplicas": 3})]
        await settled(reconciler, kube, body(models, stopped=True))

        await reconciler.reconcile(body(models, generation=2, status=kube.status, stopped=False), kube.children())

        writes = kube.writes()
        assert ("apply", "HorizontalPodAutoscaler", "service-demo-v2") in writes
        handover = writes.index(("handover", "Deployment", "service-demo-v2"))
        assert writes[handover + 1] == ("apply", "Deployment", "service-demo-v2")  # then the main manager drops it
        v2 = kube.objects[("Deployment", "service-demo-v2")]
        assert (v2["spec"]["replicas"], replicas_owners_of(v2)) == (3, [HANDOVER])  # 0 -> minReplicas, never 1
        assert kube.objects[("Deployment", "service-demo-v1")]["spec"]["replicas"] == 2

    async def test_reverting_before_the_watch_caught_up_reapplies(self, reconciler: Reconciler,
                                                                 kube: FakeKube) -> None:
        await settled(reconciler, kube, body())
        stale = kube.children()
        models = copy.deepcopy(TWO_MODELS)
        models[0]["instanceCount"] = 5
        await reconciler.reconcile(body(models, generation=2), stale)
        kube.writes()

        await reconciler.reconcile(body(generation=3), stale)

        assert ("apply", "Deployment", "service-demo-v1") in kube.writes()
        assert kube.objects[("Deployment", "service-demo-v1")]["spec"]["replicas"] == 2


class TestHandDeletedChild:
    @pytest.mark.parametrize("kind", ["Deployment", "Service", "HorizontalPodAutoscaler"])
    async def test_is_applied_again(self, reconciler: Reconciler, kube: FakeKube, kind: str) -> None:
        parent = await settled(reconciler, kube, body())
        gone = kube.objects.pop((kind, "service-demo-v2"))

        reconciler.forget_child(UID, gone)
        await reconciler.reconcile(parent, kube.children())

        assert kube.writes() == [("apply", kind, "service-demo-v2")]
        assert (kind, "service-demo-v2") in kube.objects


class TestBadInput:
    async def test_unknown_flavor_fails_without_touching_children(self, reconciler: Reconciler,
                                                                  kube: FakeKube) -> None:
        models = copy.deepcopy(TWO_MODELS)
        models[1]["specification"] = "gpu.h100"

        await reconciler.reconcile(body(models), Children())

        assert kube.writes() == [("apply/status", "InferenceService", "service-demo")]
        assert kube.status is not None and kube.status["status"] == "failed"
        assert 'unknown flavor "gpu.h100"' in kube.status["errorMsg"]
        assert "spec.models[1].specification" in kube.status["errorMsg"]
        await reconciler.announced()
        assert [(t, r) for t, r, _ in kube.events] == [("Warning", "Failed")]

    @pytest.mark.parametrize(("spec", "field"), [
        ({"models": [model("v1", 60), model("v2", 60)]}, "spec.models"),
        ({"models": [model("v1", 100), model("v1", 0)]}, "spec.models[1].name"),
        ({"models": []}, "spec.models"),
        ({"models": [model("v1", 100, instanceCount=0)]}, "spec.models[0].instanceCount"),
    ], ids=["weights-sum-to-120", "duplicate-name", "no-models", "zero-instances"])
    async def test_invalid_body_fails_naming_the_field(self, reconciler: Reconciler, kube: FakeKube,
                                                       spec: dict[str, Any], field: str) -> None:
        parent = body(**spec)

        await reconciler.reconcile(parent, Children())

        assert kube.writes() == [("apply/status", "InferenceService", "service-demo")]
        assert kube.status is not None and kube.status["status"] == "failed"
        assert field in kube.status["errorMsg"]
        assert kube.status["conditions"][0]["reason"] == "InvalidSpec"

    async def test_weights_message_says_what_is_wrong(self, reconciler: Reconciler, kube: FakeKube) -> None:
        await reconciler.reconcile(body([model("v1", 60), model("v2", 60)]), Children())

        assert kube.status is not None
        assert "sum to 100" in kube.status["errorMsg"] and "120" in kube.status["errorMsg"]

    async def test_fixing_the_spec_deploys(self, reconciler: Reconciler, kube: FakeKube) -> None:
        failed = await settled(reconciler, kube, body([model("v1", 60), model("v2", 60)]))

        await reconciler.reconcile(body(generation=2, status=failed["status"]), kube.children())

        assert kube.writes() == FIRST_PASS
        assert kube.status is not None and kube.status["status"] == "deploying"
        assert "errorMsg" not in kube.status


class TestEvents:
    async def test_each_status_transition_posts_one_event(self, reconciler: Reconciler, kube: FakeKube,
                                                          clock: Clock) -> None:
        parent = await settled(reconciler, kube, body())
        kube.become_ready()

        clock.advance()
        await reconciler.reconcile(parent, kube.children())
        await reconciler.reconcile({**parent, "status": kube.status}, kube.children())
        await reconciler.announced()
        assert kube.events == [("Normal", "Running", "status deploying -> running, progress 100%")]

        kube.events.clear()
        clock.advance()
        models = copy.deepcopy(TWO_MODELS)
        models[0]["specification"] = "gpu.h100"
        await reconciler.reconcile(body(models, generation=2, status=kube.status), kube.children())
        await reconciler.reconcile(body(models, generation=2, status=kube.status), kube.children())
        await reconciler.announced()
        assert len(kube.events) == 1
        event_type, reason, message = kube.events[0]
        assert (event_type, reason) == ("Warning", "Failed")
        assert 'unknown flavor "gpu.h100"' in message

    async def test_a_pass_does_not_wait_for_its_event(self, reconciler: Reconciler, kube: FakeKube) -> None:
        """The Event waits last for a connection: the pass (and the service's next pass) must not wait with it."""
        posting, release = hold_events(kube)

        await asyncio.wait_for(reconciler.reconcile(body(), Children()), 5)  # returns with the Event in flight

        assert kube.status is not None and kube.status["status"] == "deploying"
        await asyncio.wait_for(posting.wait(), 5)
        assert kube.events == []
        release.set()
        await asyncio.wait_for(reconciler.announced(), 5)
        assert kube.events == [("Normal", "Deploying", "status new -> deploying, progress 0%")]

    async def test_events_beyond_the_bound_are_dropped_and_counted(self, reconciler: Reconciler, kube: FakeKube,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(reconcile, "ANNOUNCEMENTS_AT_ONCE", 1)
        _, release = hold_events(kube)
        dropped = metrics.EVENTS_DROPPED._value.get()
        await reconciler.reconcile(body(), Children())  # its Event waits
        second = body()
        second["metadata"]["uid"] = "another-uid"

        await reconciler.reconcile(second, Children())

        assert metrics.EVENTS_DROPPED._value.get() == dropped + 1
        release.set()
        await asyncio.wait_for(reconciler.announced(), 5)
        assert len(kube.events) == 1


class TestParentGoingAway:
    async def test_service_being_deleted_is_left_to_the_garbage_collector(self, reconciler: Reconciler,
                                                                          kube: FakeKube) -> None:
        parent = await settled(reconciler, kube, body())
        parent["metadata"]["deletionTimestamp"] = "2024-05-01T12:10:00Z"
        models = copy.deepcopy(TWO_MODELS)[:1]
        models[0]["weight"] = 100

        await reconciler.reconcile({**parent, "spec": {"models": models}}, kube.children())

        assert kube.writes() == []

    async def test_terminating_namespace_ends_the_pass_quietly(self, reconciler: Reconciler,
                                                               kube: FakeKube) -> None:
        kube.namespace_terminating = True

        await reconciler.reconcile(body(), Children())

        # The Deployments' writes go out together, each refused once; the other children wait for them.
        assert kube.writes() == FIRST_PASS[:2]
        await reconciler.announced()
        assert kube.status is None and kube.events == []


    async def test_after_a_refusal_the_namespaces_known_services_get_no_pass(self, kube: FakeKube,
                                                                               clock: Clock) -> None:
        """A namespace being deleted: one refused pass, then its other services' events cost nothing (they
        used to write a `concerning` status and try an Event each while their pods went)."""
        known = {"team-a": [UID, "older"]}
        reconciler = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog, clock=clock,
                                services_of=lambda namespace: known.get(namespace, []))
        kube.namespace_terminating = True
        await reconciler.reconcile(body(), Children())
        kube.writes()

        older = body()
        older["metadata"].update(uid="older", name="older")
        await reconciler.reconcile(older, Children())
        await reconciler.reconcile(body(), Children())  # the refused one itself
        assert kube.writes() == []

        kube.namespace_terminating = False  # deleted, then created again: its services have new uids
        recreated = body()
        recreated["metadata"]["uid"] = "recreated"
        await reconciler.reconcile(recreated, Children())
        assert ("apply/status", "InferenceService", "service-demo") in kube.writes()

    async def test_an_event_refused_by_a_terminating_namespace_ends_its_services_passes(
            self, kube: FakeKube, clock: Clock) -> None:
        """A terminating namespace takes updates (status) but refuses creates (Events): the refusal, though it
        comes beside the pass, still spares the namespace's other services their writes."""
        reconciler = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog, clock=clock,
                                services_of=lambda namespace: [UID, "older"] if namespace == "team-a" else [])

        async def refused(*_: Any) -> None:
            raise NamespaceTerminating("events is forbidden: namespace team-a is being terminated")

        kube.post_event = refused  # type: ignore[method-assign]
        await reconciler.reconcile(body(), Children())
        await reconciler.announced()
        kube.writes()

        older = body()
        older["metadata"].update(uid="older", name="older")
        await reconciler.reconcile(older, Children())
        assert kube.writes() == []


class TestFailedPasses:
    async def test_a_failed_pass_is_retried_with_backoff_until_it_succeeds(self, kube: FakeKube, clock: Clock):
        retries: list[tuple[str, str]] = []

        retried = asyncio.Event()

        async def wakeup(namespace: str, name: str) -> None:
            retries.append((namespace, name))
            retried.set()

        reconciler = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog, clock=clock, wakeup=wakeup,
                                retry_delays=(0.2, 0.4))
        real_apply = kube.apply

        async def timing_out(manifest: Mapping[str, Any], subresource: str | None = None) -> Any:
            raise TimeoutError("the API server did not answer")

        kube.apply = timing_out  # type: ignore[method-assign]
        await reconciler.reconcile(body(), kube.children())  # does not raise: kopf would drop the error
        assert reconciler.services[UID].failures == 1
        loop = asyncio.get_running_loop()
        timer = reconciler.services[UID].retry_timer
        assert timer is not None and timer.when() - loop.time() == pytest.approx(0.2, abs=0.1), "the first delay"
        assert retries == []
        await asyncio.wait_for(retried.wait(), timeout=5)  # the timeout only bounds a failure
        assert retries == [("team-a", "service-demo")]

        kube.apply = real_apply  # type: ignore[method-assign]
        await reconciler.reconcile(body(), kube.children())
        assert reconciler.services[UID].failures == 0
        assert ("apply", "Deployment", "service-demo-v1") in kube.calls


class TestLostAnswers:
    """A slow, lossy link loses answers: the write may have landed or not. Found by the chaos run
    (slow-lossy-link): a retried pass re-applied an HTTPRoute already as desired, after convergence."""

    async def test_an_apply_whose_answer_was_lost_is_read_not_written_again(self, kube: FakeKube, clock: Clock):
        reconciler = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog, clock=clock)
        real_apply = kube.apply

        async def lands_then_resets(manifest: Mapping[str, Any], subresource: str | None = None,
                                    field_manager: str | None = None) -> Any:
            await real_apply(manifest, subresource, field_manager)
            raise ConnectionResetError("the answer never came back")

        kube.apply = lands_then_resets  # type: ignore[method-assign]
        await reconciler.reconcile(body(), Children())  # fails after the Deployments' writes landed
        kube.apply = real_apply  # type: ignore[method-assign]
        kube.writes()
        await reconciler.reconcile(body(), Children())  # the retry, before the watch shows anything
        calls = kube.writes()
        for name in ("service-demo-v1", "service-demo-v2"):
            assert ("read", "Deployment", name) in calls
            assert ("apply", "Deployment", name) not in calls, "landed already: not written twice"
        assert ("apply", "Service", "service-demo-v1") in calls  # never tried yet: applied

    async def test_an_apply_that_did_not_land_is_written_after_the_read(self, kube: FakeKube, clock: Clock):
        reconciler = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog, clock=clock)
        real_apply = kube.apply

        async def resets(manifest: Mapping[str, Any], subresource: str | None = None,
                         field_manager: str | None = None) -> Any:
            raise ConnectionResetError("the request never arrived")

        kube.apply = resets  # type: ignore[method-assign]
        await reconciler.reconcile(body(), Children())
        kube.apply = real_apply  # type: ignore[method-assign]
        kube.writes()
        await reconciler.reconcile(body(), Children())
        calls = kube.writes()
        assert calls[:2] == [("read", "Deployment", "service-demo-v1"), ("apply", "Deployment", "service-demo-v1")]

    async def test_a_service_gone_before_its_status_is_written_is_forgotten_not_retried(self, kube: FakeKube,
                                                                                       clock: Clock) -> None:
        retries: list[tuple[str, str]] = []

        async def wakeup(namespace: str, name: str) -> None:
            retries.append((namespace, name))

        reconciler = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog, clock=clock, wakeup=wakeup)

        async def gone(manifest: Mapping[str, Any], ready: bool = False) -> Any:
            raise ApiError(404, 'inferenceservices.inference.io "service-demo" not found')

        kube.write_status = gone  # type: ignore[method-assign]
        await reconciler.reconcile(body(), Children())
        assert UID not in reconciler.services, "forgotten: no record, no retry timer"


    async def test_a_ghost_whose_namesake_was_created_again_is_forgotten_its_status_not_written(
            self, kube: FakeKube, clock: Clock) -> None:
        """The uid test of the status write fails (422) and the object under that name has another uid."""
        reconciler = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog, clock=clock)

        async def uid_differs(manifest: Mapping[str, Any], ready: bool = False) -> Any:
            raise ApiError(422, "the server rejected our request due to an error in our request")

        async def namesake(api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
            return {"metadata": {"name": name, "uid": "another-uid"}}

        kube.write_status = uid_differs  # type: ignore[method-assign]
        kube.read = namesake  # type: ignore[method-assign]
        await reconciler.reconcile(body(), Children())
        assert UID not in reconciler.services and kube.status is None

    async def test_a_status_refused_for_itself_is_retried(self, kube: FakeKube, clock: Clock) -> None:
        """A 422 for an object that still has our uid: the status itself was refused, a failure to retry."""
        reconciler = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog, clock=clock)

        async def refused(manifest: Mapping[str, Any]) -> Any:
            raise ApiError(422, "status.progress: Invalid value: 101")

        async def same(api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
            return {"metadata": {"name": name, "uid": UID}}

        kube.write_status = refused  # type: ignore[method-assign]
        kube.read = same  # type: ignore[method-assign]
        await reconciler.reconcile(body(), Children())
        assert reconciler.services[UID].failures == 1


def hold_events(kube: FakeKube) -> tuple[asyncio.Event, asyncio.Event]:
    """Every Event post waits until `release` is set; `posting` is set when the first has begun waiting."""
    posting, release = asyncio.Event(), asyncio.Event()
    post = kube.post_event

    async def slow_post(parent: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        posting.set()
        await release.wait()
        await post(parent, event_type, reason, message)

    kube.post_event = slow_post  # type: ignore[method-assign]
    return posting, release


class TestCoalescing:
    """Events of one service that arrive while a pass of it runs are folded into one more pass."""

    async def test_events_during_a_pass_make_one_more_pass_with_the_latest(
            self, reconciler: Reconciler, kube: FakeKube) -> None:
        entered, release = hold_first_apply(kube)  # the first pass's first write hangs while events arrive
        first = asyncio.create_task(reconciler.reconcile(body(), Children()))
        await asyncio.wait_for(entered.wait(), 5)
        for replicas in (2, 3, 4, 5):  # four events, the last with instanceCount 5
            await asyncio.wait_for(reconciler.reconcile(
                body([model("v1", 100, instanceCount=replicas)], generation=replicas), Children()), 5)
        release.set()
        await asyncio.wait_for(first, 5)

        status_writes = [c for c in kube.writes() if c[0] == "apply/status"]
        assert len(status_writes) == 2  # the first pass and one folded pass, not five
        assert kube.objects[("Deployment", "service-demo-v1")]["spec"]["replicas"] == 5
        assert kube.status is not None and kube.status["observedGeneration"] == 5

    async def test_pods_ready_while_the_pass_writes_count_in_its_status(
            self, reconciler: Reconciler, kube: FakeKube) -> None:
        """The instances became ready while the pass waited for its Service: its status says `running` at
        once, one status write and one Event, where `deploying` then `running` took two of each."""
        entered, release = hold_first_apply(kube, "Service")
        first = asyncio.create_task(reconciler.reconcile(body([model("v1", 100)]), Children()))
        await asyncio.wait_for(entered.wait(), 5)
        kube.become_ready()  # the Deployment is written; its pods are ready before the Service apply returns
        await asyncio.wait_for(reconciler.reconcile(body([model("v1", 100)]), kube.children()), 5)  # folded
        release.set()
        await asyncio.wait_for(first, 5)
        await reconciler.announced()

        assert [c for c in kube.writes() if c[0] == "apply/status"] == [
            ("apply/status", "InferenceService", "service-demo")]
        assert kube.status is not None and kube.status["status"] == "running"
        assert kube.events == [("Normal", "Running", "status new -> running, progress 100%")]

    async def test_running_is_written_once_the_service_is_answered_not_after_the_route(
            self, kube: FakeKube, clock: Clock) -> None:
        """The gateway routes through the model's Service (its EndpointSlices): once that is answered and the
        pods are ready, `running` is written while the HTTPRoute's apply still waits, and only once."""
        reconciler = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog, clock=clock,
                                gateway_api=lambda: True)
        release = hold_apply_of(kube, "HTTPRoute", "service-demo")
        service = hold_apply_of(kube, "Service", "service-demo-v1")
        first = asyncio.create_task(reconciler.reconcile(body([model("v1", 100)]), Children()))
        await written(kube, ("Deployment", "service-demo-v1"))
        kube.become_ready()  # the pods are ready before the Service's apply returns
        await asyncio.wait_for(reconciler.reconcile(body([model("v1", 100)]), kube.children()), 5)  # folded
        service.set()
        await until(lambda: kube.status is not None, "the status")
        assert kube.status is not None and kube.status["status"] == "running"
        assert ("HTTPRoute", "service-demo") not in kube.objects, "the route's apply is still held"
        release.set()
        await asyncio.wait_for(first, 5)
        await reconciler.settled()
        await reconciler.announced()

        assert [c for c in kube.writes() if c[0] == "apply/status"] == [
            ("apply/status", "InferenceService", "service-demo")]
        assert kube.events == [("Normal", "Running", "status new -> running, progress 100%")]

    async def test_an_event_of_a_newer_spec_does_not_count_in_the_older_passs_status(
            self, reconciler: Reconciler, kube: FakeKube) -> None:
        entered, release = hold_first_apply(kube, "Service")
        first = asyncio.create_task(reconciler.reconcile(body([model("v1", 100)]), Children()))
        await asyncio.wait_for(entered.wait(), 5)
        kube.become_ready()
        newer = body([model("v1", 100, instanceCount=3)], generation=2)
        await asyncio.wait_for(reconciler.reconcile(newer, kube.children()), 5)
        release.set()
        await asyncio.wait_for(first, 5)

        statuses = [c for c in kube.writes() if c[0] == "apply/status"]
        assert len(statuses) == 2  # deploying (generation 1), then the folded pass of generation 2
        assert kube.status is not None and kube.status["observedGeneration"] == 2
        assert kube.status["status"] == "deploying"  # 3 instances wanted, 1 ready


def named(name: str) -> dict[str, Any]:
    """Another service of the namespace: its own name and uid."""
    other = body([model("v1", 100)])
    other["metadata"].update(name=name, uid=f"uid-{name}")
    return other


class TestQueuedPasses:
    """With every pass slot taken, a service's event leaves it queued (a uid) and its caller returns at once;
    queued services get their passes in order as slots free up, a deleted one none."""

    async def test_events_beyond_the_slots_return_at_once_and_run_in_order_when_slots_free(
            self, reconciler: Reconciler, kube: FakeKube) -> None:
        reconciler.free_passes = 1
        backlog = metrics.BACKLOG._value.get()
        entered, release = hold_first_apply(kube)  # the only slot stays taken while the other events arrive
        first = asyncio.create_task(reconciler.reconcile(named("service-a"), Children()))
        await asyncio.wait_for(entered.wait(), 5)
        for name in ("service-b", "service-c", "service-d"):  # each returns without waiting for a slot
            await asyncio.wait_for(reconciler.reconcile(named(name), Children()), 1)
        reconciler.forget_service("uid-service-c")  # deleted while queued
        assert ("Deployment", "service-b-v1") not in kube.objects
        release.set()
        await asyncio.wait_for(first, 5)
        await asyncio.wait_for(reconciler.settled(), 5)  # each queued pass, when done, starts the next

        deployments = [name for verb, kind, name in kube.calls if verb == "apply" and kind == "Deployment"]
        assert deployments == ["service-a-v1", "service-b-v1", "service-d-v1"]
        assert reconciler.free_passes == 1 and not reconciler.queued
        assert metrics.BACKLOG._value.get() == backlog

    async def test_closing_stops_the_passes_and_starts_none_of_the_queued_ones(
            self, reconciler: Reconciler, kube: FakeKube) -> None:
        """Shutting down (or losing the lease): the running pass is cancelled, and the slot it frees does not
        start the queued service's pass, which would write after close() returned."""
        reconciler.free_passes = 1
        entered, _ = hold_first_apply(kube)  # never released: the first pass is still writing at close()
        reconciler.submit(named("service-a"), Children())
        await asyncio.wait_for(entered.wait(), 5)
        reconciler.submit(named("service-b"), Children())  # queued behind the one slot

        await asyncio.wait_for(reconciler.close(), 5)
        assert not reconciler.drains, "a pass started after close()"
        reconciler.submit(named("service-c"), Children())
        assert not reconciler.drains, "a pass started after close()"
        written = {name for verb, kind, name in kube.calls if verb == "apply"}
        assert written <= {"service-a-v1"}, "a queued service was written after close()"  # a's Service went out

    async def test_a_service_with_more_to_do_queues_behind_the_services_waiting_for_a_slot(
            self, reconciler: Reconciler, kube: FakeKube) -> None:
        """Round robin: the echoes of a service's own writes do not keep its slot while other services wait
        for their first pass (in a burst, the next services' Deployments waited for the first ones' pods)."""
        reconciler.free_passes = 1
        backlog = metrics.BACKLOG._value.get()
        entered, release = hold_first_apply(kube)
        first = asyncio.create_task(reconciler.reconcile(named("service-a"), Children()))
        await asyncio.wait_for(entered.wait(), 5)
        newer = named("service-a")
        newer["spec"]["models"][0]["instanceCount"], newer["metadata"]["generation"] = 3, 2
        await asyncio.wait_for(reconciler.reconcile(newer, Children()), 1)  # folded into service-a's next pass
        await asyncio.wait_for(reconciler.reconcile(named("service-b"), Children()), 1)  # waits for the slot
        release.set()
        await asyncio.wait_for(first, 5)
        await asyncio.wait_for(reconciler.settled(), 5)

        deployments = [name for verb, kind, name in kube.calls if verb == "apply" and kind == "Deployment"]
        assert deployments == ["service-a-v1", "service-b-v1", "service-a-v1"]
        assert kube.objects[("Deployment", "service-a-v1")]["spec"]["replicas"] == 3
        assert reconciler.free_passes == 1 and not reconciler.queued
        assert metrics.BACKLOG._value.get() == backlog

    async def test_a_queued_services_deployment_does_not_wait_for_another_services_service(
            self, reconciler: Reconciler, kube: FakeKube) -> None:
        """A pass that wrote its Deployments gives its slot to the longest-queued service and finishes on a
        finishing slot, while one is free: in a burst beyond the slots, Services go out at the ClusterIP lock's
        pace, and queued services' Deployments waited for them (2,000 services: every Deployment after 97 s,
        14 s at 1,000). The finishing slots are bounded; a pass on one runs once, the service's next pass
        queues for a slot of its own."""
        reconciler.free_passes, reconciler.free_finishing = 1, 1
        release_a = hold_apply_of(kube, "Service", "service-a-v1")  # service-a's Service waits at the API server
        release_b = hold_apply_of(kube, "Service", "service-b-v1")
        first = asyncio.create_task(reconciler.reconcile(named("service-a"), Children()))
        await written(kube, ("Deployment", "service-a-v1"))
        for name in ("service-b", "service-c"):  # queued for the one slot
            await asyncio.wait_for(reconciler.reconcile(named(name), Children()), 1)
        newer = named("service-a")
        newer["spec"]["models"][0]["instanceCount"], newer["metadata"]["generation"] = 3, 2
        await asyncio.wait_for(reconciler.reconcile(newer, Children()), 1)  # folded into service-a's next pass

        await written(kube, ("Deployment", "service-b-v1"))
        assert ("Service", "service-a-v1") not in kube.objects, "service-a's Service still waits"
        assert ("Deployment", "service-c-v1") not in kube.objects, "no finishing slot is left for service-b"
        release_a.set()
        await asyncio.wait_for(first, 5)
        await written(kube, ("Deployment", "service-c-v1"))  # service-a's finishing slot went to service-b's
        assert ("Service", "service-b-v1") not in kube.objects, "service-b's Service still waits"
        release_b.set()
        await asyncio.wait_for(reconciler.settled(), 5)
        deployments = [name for verb, kind, name in kube.calls if verb == "apply" and kind == "Deployment"]
        assert deployments == ["service-a-v1", "service-b-v1", "service-c-v1", "service-a-v1"]
        assert kube.objects[("Deployment", "service-a-v1")]["spec"]["replicas"] == 3
        assert reconciler.free_passes == 1 and reconciler.free_finishing == 1 and not reconciler.queued
