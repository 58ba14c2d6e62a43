"""reconcile.Reconciler with models scaled on concurrency: the operator owns their replicas, takes them over
from an HPA where the HPA left them, applies each decided count within the bounds, and scale to zero wins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fakes import MAIN, UID, Clock, FakeKube, body, model, replicas_owners_of, set_replicas_owners, settled
from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.policies.idle import ActivityTracker
from inference_operator.reconcile.reconciler import Reconciler
from inference_operator.reconcile.scaling import settings_of

DEPLOYMENT = ("Deployment", "service-demo-m")
HPA = ("HorizontalPodAutoscaler", "service-demo-m")
KEY = (UID, "m")


def scaling(low: int, high: int, **more: Any) -> list[dict[str, Any]]:
    return [model("m", 100, scaling={"enabled": True, "minReplicas": low, "maxReplicas": high, **more})]


def concurrency(low: int, high: int, target: int = 2, **more: Any) -> list[dict[str, Any]]:
    return scaling(low, high, metric="concurrency", targetConcurrency=target, **more)


def replicas(kube: FakeKube) -> int:
    return int(kube.objects[DEPLOYMENT]["spec"]["replicas"])


def record_counts(kube: FakeKube) -> list[int]:
    """The Deployment's replicas after every write to it (a dip would show as a lower value)."""
    seen: list[int] = []
    apply = kube.apply

    async def recording(manifest: Mapping[str, Any], subresource: str | None = None,
                        field_manager: str | None = None) -> Any:
        answer = await apply(manifest, subresource, field_manager)
        if manifest["kind"] == "Deployment" and subresource is None:
            seen.append(replicas(kube))
        return answer

    kube.apply = recording  # type: ignore[method-assign]
    return seen


async def decide(reconciler: Reconciler, kube: FakeKube, parent: dict[str, Any], in_flight: float,
                 at: float) -> dict[str, Any]:
    """One round of the counts loop's decision for the model, then the pass it asks for."""
    svc = InferenceService.from_body(parent)
    reconciler.decisions.decide(KEY, settings_of(svc.spec.models[0]), at, in_flight)
    return await settled(reconciler, kube, parent)


class TestConcurrencyScaling:
    async def test_no_hpa_and_the_operator_owns_the_count(self, reconciler: Reconciler, kube: FakeKube) -> None:
        await settled(reconciler, kube, body(concurrency(2, 6)))

        assert HPA not in kube.objects
        assert (replicas(kube), replicas_owners_of(kube.objects[DEPLOYMENT])) == (2, [MAIN])

    async def test_cpu_to_concurrency_starts_from_the_hpas_count(self, reconciler: Reconciler,
                                                                  kube: FakeKube) -> None:
        parent = await settled(reconciler, kube, body(scaling(2, 6)))
        kube.objects[DEPLOYMENT]["spec"]["replicas"] = 5  # the HPA scaled it up meanwhile
        set_replicas_owners(kube.objects[DEPLOYMENT], {"kube-controller-manager"})
        counts = record_counts(kube)

        await reconciler.reconcile(body(concurrency(2, 6), generation=2, status=parent["status"]), kube.children())

        writes = kube.writes()
        assert writes.index(("delete", *HPA)) < writes.index(("apply", *DEPLOYMENT))
        assert counts and min(counts) == 5
        assert replicas(kube) == 5 and MAIN in replicas_owners_of(kube.objects[DEPLOYMENT])

    async def test_decisions_become_the_deployments_replicas(self, reconciler: Reconciler, kube: FakeKube,
                                                              clock: Clock) -> None:
        parent = await settled(reconciler, kube, body(concurrency(1, 8)))
        now = clock.now.timestamp()

        parent = await decide(reconciler, kube, parent, in_flight=10, at=now)  # 10 in flight, 2 a replica
        assert replicas(kube) == 5
        for second in range(1, 61):  # the burst goes on: the count holds
            parent = await decide(reconciler, kube, parent, in_flight=10, at=now + second)
        assert replicas(kube) == 5
        for second in range(130, 200):  # long after the burst: half the replicas a decision at most, down to
            # 1 (at 1 in flight: 2, exactly one replica's target, stays inside the scaler's 10 % band and keeps 2)
            parent = await decide(reconciler, kube, parent, in_flight=1, at=now + second)
        assert replicas(kube) == 1

    async def test_decisions_stay_within_the_bounds(self, reconciler: Reconciler, kube: FakeKube,
                                                    clock: Clock) -> None:
        parent = await settled(reconciler, kube, body(concurrency(2, 4)))
        now = clock.now.timestamp()
        assert replicas(kube) == 2

        parent = await decide(reconciler, kube, parent, in_flight=100, at=now)
        assert replicas(kube) == 4
        for second in range(130, 200):
            parent = await decide(reconciler, kube, parent, in_flight=0, at=now + second)
        assert replicas(kube) == 2

    async def test_lower_bounds_move_the_decided_count_into_them(self, reconciler: Reconciler,
                                                                  kube: FakeKube, clock: Clock) -> None:
        parent = await settled(reconciler, kube, body(concurrency(1, 8)))
        parent = await decide(reconciler, kube, parent, in_flight=16, at=clock.now.timestamp())
        assert replicas(kube) == 8

        await settled(reconciler, kube, body(concurrency(1, 3), generation=2, status=parent["status"]))
        assert replicas(kube) == 3

    async def test_idle_wins_and_a_request_wakes_it(self, reconciler: Reconciler, kube: FakeKube,
                                                    clock: Clock) -> None:
        tracker = reconciler.activity = ActivityTracker()
        now = clock.now.timestamp()

        def reading(inflight: int, requests: int = 5) -> list[tuple[str, dict[str, Any]]]:
            return [("gw", {UID: {"models": {"m": {"requests": requests, "inflight": inflight}}}})]

        tracker.observe(reading(0), now - 120, complete=True)
        tracker.observe(reading(0), now - 119, complete=True)
        models = concurrency(0, 4, scaleToZeroAfter="30s")
        parent = await settled(reconciler, kube, body(models))
        assert replicas(kube) == 0 and HPA not in kube.objects

        tracker.observe(reading(6, requests=11), now + 1, complete=True)
        await decide(reconciler, kube, body(models, status=parent["status"]), in_flight=6, at=now + 1)
        assert replicas(kube) == 3
