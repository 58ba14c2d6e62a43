"""A woken model's cold start in status: measured once, kept when the status write carrying it fails."""

from __future__ import annotations

import pytest

from fakes import UID, Clock, FakeKube, StatusFailure, body, model, settled
from inference_operator.catalog.flavors import load_catalog
from inference_operator.config import OperatorConfig
from inference_operator.policies.idle import ActivityTracker
from inference_operator.reconcile.reconciler import Reconciler

pytestmark = pytest.mark.asyncio

SLEEPY = model("m", scaling={"minReplicas": 0, "scaleToZeroAfter": "10m"})
ASLEEP = {"status": "running", "progress": 100, "observedGeneration": 1,
          "models": [{"name": "m", "status": "idle", "replicas": 0, "readyReplicas": 0, "weight": 100,
                      "idleSince": "2024-05-01T11:50:00Z"}]}


def requested(tracker: ActivityTracker, now: float) -> None:
    """A gateway's baseline reading, then one that holds a request for the model."""
    tracker.observe([("gw-0", {UID: {"models": {"m": {"requests": 0, "inflight": 0}}}})], now - 2, complete=True)
    tracker.observe([("gw-0", {UID: {"models": {"m": {"requests": 1, "inflight": 1}}}})], now, complete=True)


def entry(kube: FakeKube) -> dict[str, object]:
    assert kube.status is not None
    found: dict[str, object] = kube.status["models"][0]
    return found


async def woken(kube: FakeKube, clock: Clock) -> tuple[Reconciler, dict[str, object]]:
    """A sleeping model woken by a request, its instance ready a minute later: the reconciler and the
    service as the watch shows it (status waking)."""
    tracker = ActivityTracker()
    reconciler = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog, clock=clock, activity=tracker)
    requested(tracker, clock.now.timestamp())
    parent = await settled(reconciler, kube, body([SLEEPY], status=ASLEEP))
    assert entry(kube)["status"] == "waking"
    clock.advance()
    kube.become_ready()
    return reconciler, parent


@pytest.mark.parametrize("failure", list(StatusFailure))
async def test_a_cold_start_survives_a_failed_status_write(kube: FakeKube, clock: Clock,
                                                           failure: StatusFailure) -> None:
    reconciler, parent = await woken(kube, clock)
    kube.status_failures = [failure]
    await reconciler.reconcile(parent, kube.children())  # ready, its cold start measured; the write fails
    clock.advance()
    parent = await settled(reconciler, kube, parent)  # the retry (the watch has not shown the write)
    assert entry(kube)["status"] == "ready"
    assert entry(kube)["coldStartSeconds"] == 60.0, "the retry writes the cold start first measured"
    clock.advance()
    await settled(reconciler, kube, parent)  # a later pass, the written status back from the watch
    assert (entry(kube)["status"], entry(kube)["coldStartSeconds"]) == ("ready", 60.0)

