"""reconcile.Reconciler through transitions: the replicas handover to and from an HPA, and drift undone.

FakeKube (test_reconcile) resets a Deployment's replicas to 1 when no manager owns the field any more,
as the API server does, and the children come back slimmed as the operator's indices hold them.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from fakes import HANDOVER, MAIN, Clock, FakeKube, body, model, replicas_owners_of, settled
from inference_operator.catalog.flavors import load_catalog
from inference_operator.config import OperatorConfig
from inference_operator.ports import ApiError
from inference_operator.reconcile.reconciler import Reconciler

DEPLOYMENT = ("Deployment", "service-demo-m")
HPA = ("HorizontalPodAutoscaler", "service-demo-m")


def fixed(count: int) -> list[dict[str, Any]]:
    return [model("m", 100, instanceCount=count)]


def scaling(low: int, high: int) -> list[dict[str, Any]]:
    return [model("m", 100, scaling={"enabled": True, "minReplicas": low, "maxReplicas": high})]


def child_writes(kube: FakeKube) -> list[tuple[str, str, str]]:
    """Writes to children (status follows the replicas; other tests look at it)."""
    return [w for w in kube.writes() if w[0] != "apply/status"]


def replicas(kube: FakeKube) -> int:
    return int(kube.objects[DEPLOYMENT]["spec"]["replicas"])


class TestReplicasHandover:
    async def test_fixed_to_scaling_keeps_the_count_owned(self, reconciler: Reconciler, kube: FakeKube) -> None:
        parent = await settled(reconciler, kube, body(fixed(4)))

        await reconciler.reconcile(body(scaling(2, 6), generation=2, status=parent["status"]), kube.children())

        writes = kube.writes()
        assert writes.index(("handover", *DEPLOYMENT)) < writes.index(("apply", *DEPLOYMENT))
        assert ("apply", *HPA) in writes
        assert (replicas(kube), replicas_owners_of(kube.objects[DEPLOYMENT])) == (4, [HANDOVER])

    async def test_stopped_to_started_goes_to_min_in_one_step(self, reconciler: Reconciler,
                                                             kube: FakeKube) -> None:
        parent = await settled(reconciler, kube, body(scaling(3, 5), stopped=True))
        assert replicas(kube) == 0

        await reconciler.reconcile(body(scaling(3, 5), generation=2, status=parent["status"]), kube.children())

        assert replicas(kube) == 3
        assert ("handover", *DEPLOYMENT) in kube.writes()

    async def test_scaling_to_fixed_removes_the_hpa_before_setting_the_count(self, reconciler: Reconciler,
                                                                            kube: FakeKube) -> None:
        parent = await settled(reconciler, kube, body(scaling(2, 6)))

        await reconciler.reconcile(body(fixed(3), generation=2, status=parent["status"]), kube.children())

        writes = kube.writes()
        assert writes.index(("delete", *HPA)) < writes.index(("apply", *DEPLOYMENT))
        assert ("handover", *DEPLOYMENT) not in writes
        assert (replicas(kube), replicas_owners_of(kube.objects[DEPLOYMENT])) == (3, [MAIN])

    async def test_new_bounds_move_the_count_into_them_once(self, reconciler: Reconciler, kube: FakeKube) -> None:
        parent = await settled(reconciler, kube, body(scaling(2, 6)))
        await settled(reconciler, kube, body(scaling(2, 6), generation=2, status=parent["status"]))
        stale = kube.children()

        await reconciler.reconcile(body(scaling(4, 6), generation=3, status=parent["status"]), stale)
        assert kube.writes()[:2] == [("handover", *DEPLOYMENT), ("apply", *HPA)]
        assert replicas(kube) == 4

        await reconciler.reconcile(body(scaling(4, 6), generation=3, status=parent["status"]), stale)
        assert ("handover", *DEPLOYMENT) not in kube.writes(), "a stale watch must not repeat the handover"

    async def test_bounds_that_hold_the_count_cost_no_handover(self, reconciler: Reconciler,
                                                              kube: FakeKube) -> None:
        parent = await settled(reconciler, kube, body(scaling(1, 6)))
        await reconciler.reconcile(body(scaling(1, 8), generation=2, status=parent["status"]), kube.children())
        assert ("handover", *DEPLOYMENT) not in kube.writes()


def edit(kube: FakeKube, key: tuple[str, str], change: Any) -> None:
    """Another writer changes a child (kubectl edit): new content, new resourceVersion."""
    change(kube.objects[key])
    kube.changed(kube.objects[key])


def container(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]["containers"][0]


class TestDrift:
    async def test_hand_edited_image_is_restored_once_with_an_event(self, reconciler: Reconciler,
                                                                   kube: FakeKube) -> None:
        parent = await settled(reconciler, kube, body(fixed(2)))
        edit(kube, DEPLOYMENT, lambda d: container(d).update(image="evil/image:1"))
        edited = kube.children()

        await reconciler.reconcile(parent, edited)

        assert kube.writes() == [("apply", *DEPLOYMENT)]
        assert container(kube.objects[DEPLOYMENT])["image"] == "registry.example/jar:1"
        assert [(t, r) for t, r, _ in kube.events] == [("Warning", "DriftRestored")]
        assert "spec.template.spec.containers[model].image" in kube.events[0][2]
        await reconciler.reconcile(parent, edited)  # the watch has not brought our write back yet
        assert kube.writes() == []

    async def test_a_restore_that_failed_is_tried_again(self, reconciler: Reconciler, kube: FakeKube) -> None:
        parent = await settled(reconciler, kube, body(fixed(2)))
        edit(kube, DEPLOYMENT, lambda d: container(d).update(image="evil/image:1"))
        edited = kube.children()
        apply = kube.apply

        async def refused(*args: Any, **kwargs: Any) -> Any:
            raise ApiError(503, "the API server is overloaded")

        kube.apply = refused  # type: ignore[method-assign]
        await reconciler.reconcile(parent, edited)
        kube.apply = apply  # type: ignore[method-assign]
        kube.writes()

        await reconciler.reconcile(parent, edited)

        assert kube.writes() == [("apply", *DEPLOYMENT)]
        assert container(kube.objects[DEPLOYMENT])["image"] == "registry.example/jar:1"

    @pytest.mark.parametrize("change", [
        lambda d: d["spec"].update(replicas=7),
        lambda d: container(d)["resources"]["limits"].update(memory="1Gi"),
        lambda d: d["spec"]["template"]["spec"].pop("tolerations"),
        lambda d: d["spec"]["template"]["spec"]["nodeSelector"].update({"nvidia.com/gpu.product": "other"}),
        lambda d: container(d)["ports"][0].update(containerPort=9999),
        lambda d: d["metadata"]["labels"].update({"inference.io/model": "x"}),
    ], ids=["replicas", "memory", "tolerations", "nodeSelector", "port", "label"])
    async def test_owned_fields_are_restored(self, reconciler: Reconciler, kube: FakeKube, change: Any) -> None:
        parent = await settled(reconciler, kube, body(fixed(2)))
        edit(kube, DEPLOYMENT, change)
        await reconciler.reconcile(parent, kube.children())
        assert child_writes(kube) == [("apply", *DEPLOYMENT)]

    @pytest.mark.parametrize("change", [
        lambda d: d["metadata"].setdefault("annotations", {}).update({"team.example/owner": "ml"}),
        lambda d: container(d).setdefault("env", []).append({"name": "EXTRA", "value": "1"}),
        lambda d: container(d).update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/x"),
        lambda d: container(d)["resources"]["limits"].update(memory="32Gi"),  # the same as 32768Mi
    ], ids=["foreign-annotation", "foreign-env", "api-defaults", "canonical-quantity"])
    async def test_what_the_operator_does_not_set_is_left_alone(self, reconciler: Reconciler, kube: FakeKube,
                                                                change: Any) -> None:
        parent = await settled(reconciler, kube, body(fixed(2)))
        assert container(kube.objects[DEPLOYMENT])["resources"]["limits"]["memory"] == "32768Mi"
        edit(kube, DEPLOYMENT, change)
        await reconciler.reconcile(parent, kube.children())
        assert kube.writes() == []
        assert kube.events == []

    async def test_hpa_bounds_are_restored(self, reconciler: Reconciler, kube: FakeKube) -> None:
        parent = await settled(reconciler, kube, body(scaling(2, 6)))
        parent = await settled(reconciler, kube, parent)  # 1 (created) -> 2, as the HPA would
        edit(kube, HPA, lambda h: h["spec"].update(maxReplicas=20))
        await reconciler.reconcile(parent, kube.children())
        assert child_writes(kube) == [("apply", *HPA)]
        assert "spec.maxReplicas" in kube.events[0][2]

    async def test_replicas_of_a_scaling_model_are_not_drift(self, reconciler: Reconciler, kube: FakeKube) -> None:
        parent = await settled(reconciler, kube, body(scaling(2, 6)))
        edit(kube, DEPLOYMENT, lambda d: d["spec"].update(replicas=5))  # the HPA's choice
        await reconciler.reconcile(parent, kube.children())
        assert child_writes(kube) == []

    async def test_a_restarted_operator_restores_an_edit_made_while_it_was_down(
            self, kube: FakeKube, clock: Clock) -> None:
        first = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog, clock=clock)
        parent = await settled(first, kube, body(fixed(2)))
        edit(kube, DEPLOYMENT, lambda d: d["spec"].update(replicas=1))
        restarted = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog, clock=clock)

        await restarted.reconcile(parent, kube.children())

        assert child_writes(kube) == [("apply", *DEPLOYMENT)]
        assert replicas(kube) == 2

    async def test_a_child_the_watch_shows_before_our_write_is_not_judged(self, reconciler: Reconciler,
                                                                         kube: FakeKube) -> None:
        parent = await settled(reconciler, kube, body(fixed(2)))
        stale = kube.children()
        await reconciler.reconcile(body([model("m", 100, instanceCount=2, image="new/image:2")], generation=2,
                                        status=parent["status"]), stale)
        assert kube.writes()[0] == ("apply", *DEPLOYMENT)
        await reconciler.reconcile(body([model("m", 100, instanceCount=2, image="new/image:2")], generation=2,
                                        status=parent["status"]), stale)
        assert [w for w in kube.writes() if w[1] == "Deployment"] == []
        assert kube.events == [] or all(r != "DriftRestored" for _, r, _ in kube.events)

    async def test_live_spec_is_kept_as_compact_json(self, reconciler: Reconciler, kube: FakeKube) -> None:
        await settled(reconciler, kube, body(fixed(2)))
        child = next(o for o in kube.children().objects if o["kind"] == "Deployment")
        assert json.loads(child["liveSpec"]) == copy.deepcopy(kube.objects[DEPLOYMENT]["spec"])
