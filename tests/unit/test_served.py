"""served.py: when a CRD serves a version, and how the per-CRD watches turn events into flips."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from inference_operator.kube.client import ApiError
from inference_operator.reconcile.child_memory import ChildMemory
from inference_operator.runtime import served as served_module
from inference_operator.runtime.served import HTTPROUTES, INFERENCEPOOLS, OptionalApi, ServedApis, crd_serves


def crd(version: str = "v1", served: bool = True, established: str = "True", deleting: bool = False,
        ) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": HTTPROUTES.crd}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    return {"metadata": meta, "spec": {"versions": [{"name": version, "served": served}]},
            "status": {"conditions": [{"type": "Established", "status": established}]}}


class TestCrdServes:
    def test_an_established_crd_serving_the_version(self) -> None:
        assert crd_serves(crd(), "v1")

    @pytest.mark.parametrize("body", [crd(version="v1beta1"), crd(served=False), crd(established="False"),
                                      crd(deleting=True), {}, {"spec": {"versions": "v1"}, "status": None}])
    def test_anything_else_is_not_served(self, body: dict[str, Any]) -> None:
        assert not crd_serves(body, "v1")


class FakeWatch:
    """Kube.watch's contract, from a queue of (event type, body) per CRD name."""

    def __init__(self) -> None:
        self.queues: dict[str, asyncio.Queue[tuple[str, Any]]] = {}

    async def get_json(self, path: str, query: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        return {"items": []}

    def queue(self, api: OptionalApi) -> asyncio.Queue[tuple[str, Any]]:
        return self.queues.setdefault(api.crd, asyncio.Queue())

    async def watch(self, what: str, path: str, query: list[tuple[str, str]]) -> AsyncIterator[tuple[str, Any]]:
        name = dict(query)["fieldSelector"].removeprefix("metadata.name=")
        queue = self.queues.setdefault(name, asyncio.Queue())
        while True:
            yield await queue.get()


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


class TestServedApis:
    async def test_the_first_listing_sets_the_state_without_a_flip_then_events_flip_it(self) -> None:
        flips: list[tuple[str, bool]] = []

        async def changed(api: OptionalApi, served: bool) -> None:
            flips.append((api.kind, served))

        kube, apis = FakeWatch(), ServedApis()
        apis.start(kube, changed)
        kube.queue(HTTPROUTES).put_nowait(("LISTED", [crd()]))
        await settle()
        assert not apis.ready.is_set()  # the InferencePool CRD is not listed yet
        kube.queue(INFERENCEPOOLS).put_nowait(("LISTED", []))
        assert await apis.wait_listed(1)
        assert (apis(HTTPROUTES), apis(INFERENCEPOOLS), flips) == (True, False, [])
        assert apis.hidden() == {"inferencepools"}

        kube.queue(HTTPROUTES).put_nowait(("MODIFIED", crd(deleting=True)))
        kube.queue(INFERENCEPOOLS).put_nowait(("ADDED", crd(established="False")))  # not yet Established
        kube.queue(INFERENCEPOOLS).put_nowait(("MODIFIED", crd()))
        await settle()
        kube.queue(HTTPROUTES).put_nowait(("DELETED", crd(deleting=True)))  # no second flip
        kube.queue(HTTPROUTES).put_nowait(("ADDED", crd()))
        await settle()
        assert flips == [("HTTPRoute", False), ("InferencePool", True), ("HTTPRoute", True)]
        apis.stop()

    async def test_wait_listed_gives_up_after_its_timeout(self) -> None:
        apis = ServedApis()
        apis.start(FakeWatch(), lambda api, served: asyncio.sleep(0))
        assert not await apis.wait_listed(0.05)
        assert apis.hidden() == {"httproutes", "inferencepools"}
        apis.stop()


class Discovery:
    """A client that may not list CRDs (403) but reads API discovery, where the test says what is served."""

    def __init__(self) -> None:
        self.resources: dict[str, list[str]] = {}

    def watch(self, what: str, path: str, query: list[tuple[str, str]]) -> Any:
        raise AssertionError("no CRD watch without the right to list CRDs")

    async def get_json(self, path: str, query: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        if "customresourcedefinitions" in path:
            raise ApiError(403, "customresourcedefinitions is forbidden")
        group_version = path.removeprefix("/apis/")
        if group_version not in self.resources:
            raise ApiError(404, "the server could not find the requested resource")
        return {"resources": [{"name": plural} for plural in self.resources[group_version]]}


class TestWithoutTheRightToListCrds:
    async def test_discovery_is_asked_instead(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(served_module, "POLL_SECONDS", 0.01)
        flips: list[tuple[str, bool]] = []

        async def changed(api: OptionalApi, served: bool) -> None:
            flips.append((api.kind, served))

        kube, apis = Discovery(), ServedApis()
        kube.resources["gateway.networking.k8s.io/v1"] = ["httproutes", "gateways"]
        apis.start(kube, changed)
        assert await apis.wait_listed(1)
        assert (apis(HTTPROUTES), apis(INFERENCEPOOLS)) == (True, False)
        kube.resources["inference.networking.k8s.io/v1"] = ["inferencepools"]
        del kube.resources["gateway.networking.k8s.io/v1"]
        for _ in range(100):
            if len(flips) == 2:
                break
            await asyncio.sleep(0.01)
        assert sorted(flips) == [("HTTPRoute", False), ("InferencePool", True)]
        apis.stop()


class TestForgetKind:
    def test_only_the_kind_is_forgotten(self) -> None:
        memory = ChildMemory()
        route = ("gateway.networking.k8s.io/v1", "HTTPRoute", "s")
        memory.applied.update({route: "d1", ("v1", "Service", "s-a"): "d2"})
        memory.judged[route] = ("7", "d1")
        memory.forget_kind("HTTPRoute")
        assert memory.applied == {("v1", "Service", "s-a"): "d2"} and not memory.judged
