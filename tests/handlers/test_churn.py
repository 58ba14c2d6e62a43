"""Churn: names deleted and re-created while their children change, failed passes of deleted services.

The handler runs against kopf's own index structures (the live stores kopf hands to handlers) and a
real Reconciler with the in-memory KubePort of test_reconcile.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import kopf
import pytest

from fakes import FakeKube, body, hold_first_apply
from inference_operator import handlers
from inference_operator.catalog.flavors import load_catalog
from inference_operator.config import OperatorConfig
from inference_operator.ports import Children
from inference_operator.reconcile import reconciler as reconcile
from inference_operator.reconcile.reconciler import Reconciler
from inference_operator.runtime.ghosts import Ghosts
from inference_operator.runtime.indices import SERVICES, Indices
from inference_operator.runtime.served import ServedApis
from inference_operator.runtime.slim import INDEX_NAMES
from inference_operator.runtime.watchfeed import Listings

NS, NAME = "team-a", "service-demo"
NEW_UID = "9a0e4c1d-2b3f-4e56-8a7b-1c2d3e4f5a6b"


def state(reconciler: Reconciler, indices: Indices) -> SimpleNamespace:
    """The parts of OperatorState the child handler reads: its indices (filled by the watch feed), listings."""
    return SimpleNamespace(reconciler=reconciler, ghosts=Ghosts(), apis=ServedApis(), indices=indices,
                           listings=Listings(), saw=lambda kind, event_type: None, names={})


class TestHandlersSubmit:
    async def test_a_service_event_returns_while_its_pass_waits_for_the_api(self) -> None:
        """The handler hands the pass to the operator and returns: kopf's state of the event (its raw body, the
        events queued behind it for the same object) is freed at once, not held while the pass's writes wait
        in a burst. The pass still runs to its end."""
        indices = Indices(INDEX_NAMES)
        parent = body()
        indices.observe(SERVICES, (NS, NAME), None, parent)
        kube = FakeKube()
        entered, release = hold_first_apply(kube)
        reconciler = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog)
        memo = SimpleNamespace(state=state(reconciler, indices))

        await asyncio.wait_for(handlers.service_event(type="ADDED", body=kopf.Body(parent), namespace=NS,
                                                      name=NAME, memo=memo), 1)
        await asyncio.wait_for(entered.wait(), 5)  # the pass runs, its first write held
        assert ("Deployment", f"{NAME}-v1") not in kube.objects
        release.set()
        await asyncio.wait_for(reconciler.settled(), 5)
        assert ("Deployment", f"{NAME}-v1") in kube.objects
        assert reconciler.free_passes == reconcile.PASSES_AT_ONCE


class TestChildEventDuringRecreate:
    async def test_a_parent_added_under_the_same_name_mid_pass_breaks_nothing(self) -> None:
        """The parent store of a name changes while a child event is iterating it (the old service is
        being replaced by a new one of the same name): the event still reaches the parent it started with."""
        indices = Indices(INDEX_NAMES)
        old = body()
        indices.observe(SERVICES, (NS, NAME), None, old)
        recreated = copy.deepcopy(body())
        recreated["metadata"]["uid"] = NEW_UID

        class RecreatingKube(FakeKube):
            async def apply(self, manifest: Mapping[str, Any], subresource: str | None = None) -> Any:
                # the watch feed indexes the re-created service while our pass awaits the API
                indices.observe(SERVICES, (NS, NAME), "ADDED", recreated)
                return await super().apply(manifest, subresource)

        kube = RecreatingKube()
        reconciler = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog)
        memo = SimpleNamespace(state=state(reconciler, indices))
        child = {"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": f"{NAME}-v1", "namespace": NS, "uid": "c-1"}}
        await handlers.child_event(type="MODIFIED", body=child, namespace=NS,
                                   labels={"inference.io/service": NAME}, memo=memo)
        await reconciler.settled()  # the handler submitted the pass; it runs as the operator's task
        assert ("apply", "Deployment", f"{NAME}-v1") in kube.calls, "the pass for the old parent ran"


class NotFoundKube(FakeKube):
    """The service is gone: its status write answers 404, as the API does after a delete."""

    def __init__(self, on_status: Any = None) -> None:
        super().__init__()
        self.on_status = on_status

    async def apply(self, manifest: Mapping[str, Any], subresource: str | None = None) -> Any:
        if subresource == "status":
            if self.on_status is not None:
                self.on_status()
            raise LookupError(f'404: inferenceservices.inference.io "{NAME}" not found')
        return await super().apply(manifest, subresource)


class Wakeups:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.called = asyncio.Event()

    async def __call__(self, namespace: str, name: str) -> None:
        self.calls.append((namespace, name))
        self.called.set()


DELAYS = (0.02,) * 6
QUIET = 0.5  # 25 times the retry delay: a retry that was going to come has come by then


@pytest.fixture
def retrying(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Reconcilers that retry after 20 ms instead of seconds."""
    monkeypatch.setattr(reconcile, "RETRY_DELAYS", DELAYS)

    def make(kube: FakeKube, wakeups: Wakeups) -> Reconciler:
        made = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog, wakeup=wakeups)
        made.retry_delays = DELAYS
        return made

    return make


class TestRetriesOfDeletedServices:
    async def test_a_failed_pass_is_retried(self, retrying: Any) -> None:
        """The baseline the two tests below rely on: with the service still there, the retry comes."""
        wakeups = Wakeups()
        reconciler = retrying(NotFoundKube(), wakeups)
        await reconciler.reconcile(body(), Children())
        await asyncio.wait_for(wakeups.called.wait(), 5)
        assert wakeups.calls == [(NS, NAME)]

    async def test_deleted_after_a_failed_pass_is_never_retried(self, retrying: Any) -> None:
        wakeups = Wakeups()
        reconciler = retrying(NotFoundKube(), wakeups)
        await reconciler.reconcile(body(), Children())
        reconciler.forget_service(body()["metadata"]["uid"])  # the DELETED event
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(wakeups.called.wait(), QUIET)
        assert wakeups.calls == []

    async def test_deleted_during_the_failing_pass_is_never_retried(self, retrying: Any) -> None:
        """The DELETED event is handled while the pass awaits the API, and the pass then fails with 404."""
        wakeups = Wakeups()
        reconciler: Reconciler | None = None

        def deleted() -> None:
            assert reconciler is not None
            reconciler.forget_service(body()["metadata"]["uid"])

        reconciler = retrying(NotFoundKube(on_status=deleted), wakeups)
        await reconciler.reconcile(body(), Children())
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(wakeups.called.wait(), QUIET)
        assert wakeups.calls == []




class TestGhostParents:
    async def test_a_missed_delete_leaves_a_ghost_that_never_reconciles(self) -> None:
        """The index keeps a deleted service whose DELETED was missed across a relist next to its re-created
        namesake: only the live one (highest resourceVersion) gets the child's pass."""
        indices = Indices(INDEX_NAMES)
        ghost, live = body(), copy.deepcopy(body(models=[]))
        ghost["metadata"]["resourceVersion"] = "900"
        live["metadata"].update(uid=NEW_UID, resourceVersion="1200")
        live["spec"]["models"] = [{"name": "c", "modelName": "c", "modelVersion": "1", "image": "r/c:1",
                                   "weight": 100, "specification": "gpu.t4"}]
        indices.observe(SERVICES, (NS, NAME), None, live)
        indices.observe(SERVICES, (NS, NAME), None, ghost)
        kube = FakeKube()
        reconciler = Reconciler(kube=kube, cfg=OperatorConfig(), catalog=load_catalog)
        memo = SimpleNamespace(state=state(reconciler, indices))
        child = {"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": f"{NAME}-c", "namespace": NS, "uid": "c-2"}}
        await handlers.child_event(type="MODIFIED", body=child, namespace=NS,
                                   labels={"inference.io/service": NAME}, memo=memo)
        await reconciler.settled()  # the handler submitted the pass; it runs as the operator's task
        applied = {name for verb, kind, name in kube.calls if kind == "Deployment"}
        assert applied == {f"{NAME}-c"}, f"the ghost's models were applied too: {applied}"
