"""Watch events are filtered, slimmed and indexed before kopf queues them (watchfeed.py, indices.py)."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import kopf
import pytest
from kopf._cogs.clients import errors as kopf_errors
from kopf._cogs.clients import watching
from kopf._cogs.structs.references import Resource
from kopf._core.reactor import queueing
from prometheus_client import CollectorRegistry, Counter

from inference_operator import handlers
from inference_operator.policies.drift import WRITERS
from inference_operator.policies.handover import REPLICAS_OWNERS
from inference_operator.reconcile.sync import LIVE_SPEC
from inference_operator.runtime import settings as operator_settings
from inference_operator.runtime import watchfeed
from inference_operator.runtime.ghosts import Ghosts
from inference_operator.runtime.indices import SERVICES, Indices
from inference_operator.runtime.served import ServedApis
from inference_operator.runtime.slim import CHILD_KINDS, INDEX_NAMES, group_plural, slim, slim_parent
from inference_operator.runtime.state import OperatorState

OURS = ("inference-operator", "inference-operator-handover")
MANAGED = {"app.kubernetes.io/managed-by": "inference-operator", "inference.io/service": "s"}


def deployment(uid: str = "d1", labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": f"s-{uid}", "namespace": "ns", "uid": uid, "resourceVersion": "7", "generation": 2,
                     "labels": MANAGED if labels is None else labels,
                     "managedFields": [
                         {"manager": "inference-operator", "operation": "Apply",
                          "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}}},
                         {"manager": "kubectl-edit", "operation": "Update",
                          "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {}}}}}}]},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "model", "image": "x" * 2000}]}}},
        "status": {"readyReplicas": 1},
    }


class State(SimpleNamespace):
    forget_service = OperatorState.forget_service  # the one way a service is forgotten, over the fakes here


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """kopf's stream function replaced by one yielding the given events (then watchfeed wraps it)."""
    events: list[Any] = []

    async def fake(*, resource: Any, namespace: Any = None, **_: Any) -> AsyncIterator[Any]:
        for event in events:
            if isinstance(event, asyncio.Event):  # the stream stalls here until the test sets it
                await event.wait()
                continue
            yield event

    monkeypatch.setattr(watching, "infinite_watch", fake)
    yield events
    watchfeed.uninstall()


def installed(parents: tuple[str, ...] = ("s",)) -> tuple[Indices, watchfeed.Listings]:
    state = State(indices=Indices(INDEX_NAMES), field_managers=OURS)
    for name in parents:  # the services whose children the handlers care about
        state.indices.observe(SERVICES, ("ns", name), None, {"metadata": {"name": name, "uid": f"uid-{name}"}})
    listings = watchfeed.Listings()
    watchfeed.install(handlers.feeds(state), listings)  # type: ignore[arg-type]
    return state.indices, listings


async def collect(group: str, plural: str, namespace: str | None = "ns") -> list[Any]:
    resource = SimpleNamespace(group=group, plural=plural)
    return [e async for e in watching.infinite_watch(resource=resource, namespace=namespace, settings=None)]


async def take(count: int, group: str, plural: str, namespace: str | None = "ns") -> tuple[list[Any], Any]:
    """The first `count` events kopf gets, and the stream, still open (it ends when the rest is drained)."""
    resource = SimpleNamespace(group=group, plural=plural)
    events = watching.infinite_watch(resource=resource, namespace=namespace, settings=None)
    return [await events.__anext__() for _ in range(count)], events


async def test_kopf_gets_only_wanted_objects_slimmed_and_they_are_indexed(stream: list[Any]) -> None:
    stream += [{"type": None, "object": deployment("d1")},
               {"type": None, "object": deployment("other", labels={"app": "someone-elses"})},
               watching.Bookmark.LISTED,
               {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}}]
    indices, _ = installed()
    [listed, marker, bookmark], _ = await take(3, "apps", "deployments")
    body = listed["object"]
    assert listed["type"] is None and "managedFields" not in body["metadata"]
    assert [writer for writer, _ in body[WRITERS]] == ["kubectl-edit"]
    assert "inference-operator" in json.dumps(body[REPLICAS_OWNERS])
    assert json.loads(body[LIVE_SPEC])["template"]["spec"]["containers"][0]["name"] == "model"
    assert marker is watching.Bookmark.LISTED and bookmark["type"] == "BOOKMARK"
    assert [o["metadata"]["uid"] for o in indices["children_deployments"].get(("ns", "s"), [])] == ["d1"]
    assert indices.total() == 2  # the parent and d1: the unmanaged Deployment reached neither kopf nor the index


async def test_deleted_and_unlabelled_objects_leave_the_index(stream: list[Any]) -> None:
    stream += [{"type": None, "object": deployment("d1")}, {"type": None, "object": deployment("d2")},
               {"type": "DELETED", "object": deployment("d1")},
               {"type": "MODIFIED", "object": deployment("d2", labels={"app": "taken-over"})}]
    indices, _ = installed()
    events = await collect("apps", "deployments")
    assert [e["type"] for e in events] == [None, None, "DELETED"]
    assert indices.total() == 1  # the parent only


async def test_children_of_a_service_that_is_gone_are_indexed_but_only_their_deletion_handed_on(
        stream: list[Any]) -> None:
    """The service went first (deleted, or its namespace is being deleted): its children's changes have nothing
    to do, but their DELETED reaches kopf, which forgets an object only then (its memory, about 1 KB each)."""
    stream += [{"type": "MODIFIED", "object": deployment("d1")}, {"type": "DELETED", "object": deployment("d1")}]
    indices, _ = installed(parents=())
    assert [(e["type"], e["object"]["metadata"]["uid"]) for e in await collect("apps", "deployments")] == [
        ("DELETED", "d1")]
    assert indices.total() == 0


async def test_a_service_is_indexed_slim_by_its_name(stream: list[Any]) -> None:
    parent = {"apiVersion": "inference.io/v1alpha1", "kind": "InferenceService",
              "metadata": {"name": "s", "namespace": "ns", "uid": "u", "managedFields": [{"manager": "kubectl"}]},
              "spec": {"models": []}}
    stream.append({"type": "ADDED", "object": parent})
    indices, _ = installed(parents=())
    [event], _ = await take(1, "inference.io", "inferenceservices")
    assert indices[SERVICES][("ns", "s")] == [event["object"]] == [slim_parent(parent)]
    assert indices.total() == 1


async def test_a_pass_waits_for_every_stream_of_its_namespace_to_list(stream: list[Any]) -> None:
    listing_ends = asyncio.Event()
    stream += [{"type": None, "object": deployment("d1")}, listing_ends, watching.Bookmark.LISTED]
    indices, listings = installed()
    watch = asyncio.create_task(collect("apps", "deployments", "ns"))
    async with asyncio.timeout(1):  # the stream started and indexed its first object: it is mid-listing
        while indices.total() < 2:
            await asyncio.sleep(0)
    waiting = asyncio.create_task(listings.ready("ns"))
    await asyncio.wait_for(listings.ready("elsewhere"), 1)  # no stream of that namespace: no wait
    done, _ = await asyncio.wait({waiting}, timeout=0.2)
    assert not done, "a pass went ahead while its namespace's stream was still listing"
    listing_ends.set()
    await asyncio.wait_for(watch, 1)
    await asyncio.wait_for(waiting, 1)


async def test_events_during_a_listing_return_at_once_and_each_service_gets_one_pass_after_it() -> None:
    """A restart: every object arrives while its namespace's streams still list. The handlers return at once
    (a handler waiting held kopf's per-object worker and event, thousands at a restart); once the streams
    have listed, each service named by any of those events gets one pass, with the index's newest body."""
    passes: list[tuple[str, str]] = []
    both = asyncio.Event()

    async def revisit(namespace: str, name: str) -> None:
        passes.append((namespace, name))
        if len(passes) == 2:
            both.set()

    listings = watchfeed.Listings()
    listings.started(("pods", "ns"))
    indices = Indices(INDEX_NAMES)
    for name in ("a", "b"):
        indices.observe(SERVICES, ("ns", name), None, {"metadata": {"name": name, "namespace": "ns", "uid": name}})
    state = SimpleNamespace(listings=listings, indices=indices, names={}, revisit=revisit, ghosts=Ghosts(),
                            saw=lambda kind, event_type: None, reconciler=None, apis=ServedApis())
    memo = SimpleNamespace(state=state)

    async with asyncio.timeout(1):
        for name in ("a", "b"):
            await handlers.service_event(type="ADDED", body=kopf.Body({"metadata": {"name": name, "uid": name}}),
                                         namespace="ns", name=name, memo=memo)
        for child in ("a-m", "a-n"):
            await handlers.child_event(type="ADDED", body={"kind": "Pod", "metadata": {"name": child}},
                                       namespace="ns", labels={"inference.io/service": "a"}, memo=memo)
        assert passes == [], "a pass ran before the namespace's pods were listed"
        listings.listed(("pods", "ns"))
        await both.wait()
    assert sorted(passes) == [("ns", "a"), ("ns", "b")]  # a: three events, one pass
    assert not listings.waiters and not listings.deferred


async def test_passes_waiting_together_for_a_listing_say_so_once(monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A restart: a thousand passes of one namespace wait for its listings; one warning, not one each."""
    monkeypatch.setattr(watchfeed, "LISTING_NOTICE_SECONDS", 0.05)
    listings = watchfeed.Listings()
    listings.started(("pods", "ns"))
    # each waiter passes both of its limits (the notice, then the whole wait) and gives up: the listing never ends
    await asyncio.wait_for(asyncio.gather(*(listings.ready("ns", timeout=0.2) for _ in range(20))), 2)

    notices = [r.getMessage() for r in caplog.records if "not finished" in r.getMessage()]
    assert notices == ["watch listings for ns not finished after 0s: pods@ns"] * 2  # one per limit, not per pass


async def test_when_kopf_stops_a_namespaces_streams_what_they_brought_is_forgotten(stream: list[Any]) -> None:
    """A namespace watched by pattern is deleted: kopf ends its streams, often before every DELETED came. Its
    services leave the index, the reconciler's records and the uid names; its children leave theirs. Another
    namespace's stay, and so does a namespace with a second stream still open (created again)."""
    forgotten: list[str] = []
    names = {"uid-s": ("ns", "s"), "uid-t": ("other", "t")}
    state = State(indices=Indices(INDEX_NAMES), field_managers=OURS, names=names,
                  reconciler=SimpleNamespace(forget_service=forgotten.append),
                  adapters=SimpleNamespace(forget=lambda uid: None))
    state.indices.observe(SERVICES, ("other", "t"), None, {"metadata": {"name": "t", "uid": "uid-t"}})
    other_child = deployment("elsewhere", labels={**MANAGED, "inference.io/service": "t"})
    other_child["metadata"]["namespace"] = "other"
    state.indices.observe("children_deployments", ("other", "t"), None, slim(other_child))
    watchfeed.install(handlers.feeds(state), watchfeed.Listings())  # type: ignore[arg-type]
    parent = {"apiVersion": "inference.io/v1alpha1", "kind": "InferenceService",
              "metadata": {"name": "s", "namespace": "ns", "uid": "uid-s"}, "spec": {"models": []}}

    stream[:] = [{"type": None, "object": parent}, watching.Bookmark.LISTED]
    await collect("inference.io", "inferenceservices", "ns")
    assert forgotten == ["uid-s"] and state.names == {"uid-t": ("other", "t")}
    assert list(state.indices[SERVICES]) == [("other", "t")]

    state.indices.observe(SERVICES, ("ns", "s"), None, parent)  # its children are relevant again
    hold = asyncio.Event()
    stream[:] = [{"type": None, "object": deployment("d1")}, hold]
    _, first = await take(1, "apps", "deployments")  # two streams of one namespace: the first still open
    stream[:] = [{"type": None, "object": deployment("d2")}]
    await collect("apps", "deployments", "ns")
    assert sorted(o["metadata"]["uid"] for o in state.indices["children_deployments"][("ns", "s")]) == ["d1", "d2"]
    hold.set()
    assert [e async for e in first] == []
    assert list(state.indices["children_deployments"]) == [("other", "t")]


async def test_a_kind_whose_crd_was_deleted_does_not_fail_its_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """The InferencePool CRD deleted while the operator runs: the watch reconnects and gets 404 before kopf's
    watch of CRDs stops it, and kopf stops the whole operator on a watch error (seen in CI). The stream waits
    and tries again instead: the CRD installed again, the same stream goes on."""
    monkeypatch.setattr(watchfeed, "NOT_SERVED_RETRY_SECONDS", 0.01)
    attempts = []

    async def fake(*, resource: Any, namespace: Any = None, **_: Any) -> AsyncIterator[Any]:
        attempts.append(namespace)
        if len(attempts) < 3:
            raise kopf_errors.APINotFoundError({"message": "404 page not found"}, status=404, headers={})
        yield {"type": None, "object": deployment("d1")}

    monkeypatch.setattr(watching, "infinite_watch", fake)
    try:
        indices, _ = installed()
        [event], _ = await asyncio.wait_for(take(1, "apps", "deployments"), 1)
        assert event["object"]["metadata"]["uid"] == "d1" and len(attempts) == 3
    finally:
        watchfeed.uninstall()


async def test_other_kinds_pass_whole(stream: list[Any]) -> None:
    stream.append({"type": "ADDED", "object": deployment()})
    installed()
    [event] = await collect("", "namespaces", None)
    assert event["object"] == deployment()


def test_install_twice_wraps_once(stream: list[Any]) -> None:
    installed()
    first = watching.infinite_watch
    installed()
    assert getattr(watching.infinite_watch, watchfeed.ORIGINAL) is getattr(first, watchfeed.ORIGINAL)


def test_slimming_a_slim_object_changes_nothing() -> None:
    once = slim(deployment(), OURS)
    assert slim(once, OURS) == once
    parent = {"metadata": {"name": "s", "uid": "u", "managedFields": [{}],
                           "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "a": "b"}},
              "spec": {"models": []}, "status": {}}
    assert slim_parent(slim_parent(parent)) == slim_parent(parent)


def test_objects_from_separate_events_share_their_equal_strings() -> None:
    """Each event is parsed into strings of its own; the indices hold each equal key and short value once
    (issue 14: memory at 10,000 services)."""
    first, second = (json.loads(json.dumps(deployment(uid))) for uid in ("d1", "d2"))
    assert first["metadata"]["namespace"] is not second["metadata"]["namespace"]  # as a watch event parses them
    one, other = slim(first, OURS), slim(second, OURS)
    assert one["metadata"]["namespace"] is other["metadata"]["namespace"]
    for (key, value), (other_key, other_value) in zip(one["metadata"]["labels"].items(),
                                                      other["metadata"]["labels"].items(), strict=True):
        assert key is other_key and value is other_value
    parents = [slim_parent(json.loads(json.dumps({"metadata": {"name": name, "namespace": "ns"},
                                                  "spec": {"models": [{"name": "m", "image": "i"}]}})))
               for name in ("a", "b")]
    assert parents[0]["spec"]["models"][0]["image"] is parents[1]["spec"]["models"][0]["image"]
    assert one[LIVE_SPEC] == other[LIVE_SPEC] and one[LIVE_SPEC] is not other[LIVE_SPEC]  # long: not interned


def test_the_index_keeps_of_a_child_only_what_the_operator_reads() -> None:
    owners = [{"apiVersion": "inference.io/v1alpha1", "kind": "InferenceService", "name": "s", "uid": "u"}]
    meta = {"name": "s-m", "namespace": "ns", "uid": "c", "generation": 1, "labels": MANAGED, "ownerReferences": owners}
    condition = {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "ok",
                 "lastTransitionTime": "2026-12-03T01:43:04Z", "observedGeneration": 1}
    parents = [{"parentRef": {"name": "gw"}, "conditions": [condition]}]
    route = slim({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": meta,
                  "spec": {"rules": []}, "status": {"parents": parents}})
    assert route["status"] == {} and route["metadata"]["ownerReferences"] == owners  # owners: the drift check
    pod = slim({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "status": {"phase": "Running"}})
    assert "ownerReferences" not in pod["metadata"] and pod["status"]["phase"] == "Running"
    rollout = {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "done",
               "lastUpdateTime": "2026-12-03T01:43:04Z", "lastTransitionTime": "2026-12-03T01:43:04Z"}
    found = slim({**deployment(), "status": {"readyReplicas": 1, "observedGeneration": 2, "conditions": [rollout]}})
    assert found["status"] == {"readyReplicas": 1, "observedGeneration": 2, "conditions": [
        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "done"}]}


def test_an_object_moved_to_another_service_is_under_that_key_only() -> None:
    indices = Indices(INDEX_NAMES)
    indices.observe("children_pods", ("ns", "a"), None, {"metadata": {"uid": "p"}})
    indices.observe("children_pods", ("ns", "b"), "MODIFIED", {"metadata": {"uid": "p"}})
    assert indices["children_pods"].get(("ns", "a"), []) == [] and len(indices["children_pods"][("ns", "b")]) == 1


def test_every_child_kind_has_its_group() -> None:
    assert ("", "services") in [group_plural(kind) for kind in CHILD_KINDS]
    assert ("apps", "deployments") in [group_plural(kind) for kind in CHILD_KINDS]


def test_the_api_server_is_asked_only_for_the_operators_objects():
    """The watches' label selectors are the handlers' filters: a child without our label, a pod of no service
    is never sent (every pod of the cluster used to come down the pods stream, to be parsed and dropped); the
    services themselves are all wanted. Listings come in pages, one parsed at a time."""
    settings = kopf.OperatorSettings()
    operator_settings.configure(settings)
    operator_settings.watch_only(settings, handlers.watch_selectors())

    def selectors(group: str, version: str, plural: str) -> list[str]:
        return settings.watching.label_selectors.collect(Resource(group, version, plural))

    for kind in CHILD_KINDS:
        group, version = (kind[0], kind[1]) if len(kind) == 3 else ("", kind[0])
        assert selectors(group, version, kind[-1]) == ["app.kubernetes.io/managed-by=inference-operator"], kind
    assert selectors("", "v1", "pods") == ["inference.io/service"]
    assert selectors("inference.io", "v1alpha1", "inferenceservices") == []
    assert selectors("", "v1", "configmaps") == []  # kinds watched elsewhere are left alone
    assert settings.watching.chunk_size == operator_settings.LIST_CHUNK


def test_each_object_a_stream_brings_is_counted_by_what_became_of_it():
    """inference_operator_watch_events_total{outcome}: handled, unwanted (not ours), irrelevant (service gone)."""
    registry = CollectorRegistry()
    counter = Counter("t_watch_events", "test", ["outcome"], registry=registry)
    tally = {outcome: counter.labels(outcome) for outcome in watchfeed.OUTCOMES}
    known = {"s"}
    feed = watchfeed.Feed(slim=lambda body: dict(body), seen=lambda *_: None,
                          wanted=lambda obj: "inference.io/service" in obj["metadata"].get("labels", {}),
                          relevant=lambda obj: obj["metadata"]["labels"]["inference.io/service"] in known)
    ours, gone = {"inference.io/service": "s"}, {"inference.io/service": "old"}
    for labels in (ours, ours, {}, gone):
        watchfeed.feed_event({"type": "MODIFIED", "object": {"metadata": {"name": "p", "labels": labels}}}, feed,
                             tally)
    assert {o: registry.get_sample_value("t_watch_events_total", {"outcome": o}) for o in watchfeed.OUTCOMES} == {
        "handled": 2.0, "unwanted": 1.0, "irrelevant": 1.0}


def test_kopfs_stream_function_takes_the_arguments_the_feed_passes_on() -> None:
    """The feed wraps kopf's private `watching.infinite_watch` (docs/architecture.md, "Where the operator goes
    around kopf"): a kopf that renames it, or calls it with other arguments, fails here, not in a cluster."""
    kopfs = getattr(watching.infinite_watch, watchfeed.ORIGINAL, watching.infinite_watch)
    assert kopfs.__module__ == "kopf._cogs.clients.watching"
    parameters = inspect.signature(kopfs).parameters
    assert set(watchfeed.KOPF_STREAM_ARGUMENTS) <= set(parameters)
    assert all(parameters[name].kind is inspect.Parameter.KEYWORD_ONLY for name in watchfeed.KOPF_STREAM_ARGUMENTS)
    assert watching.Bookmark.LISTED and issubclass(kopf_errors.APINotFoundError, Exception)


async def test_kopfs_queueing_reads_the_fed_stream(stream: list[Any]) -> None:
    """kopf's watcher looks the stream function up at each call: what its per-object workers get is what the
    feed let through (slimmed), not the raw stream."""
    installed()
    stream[:] = [{"type": None, "object": deployment("d1", labels={})}, {"type": None, "object": deployment("d2")},
                 watching.Bookmark.LISTED]
    handed: list[dict[str, Any]] = []

    async def processor(*, raw_event: Any, **_: Any) -> None:
        handed.append(raw_event["object"])

    settings = kopf.OperatorSettings()
    settings.queueing.idle_timeout = 0.01  # the per-object workers exit soon after the stream ends
    await asyncio.wait_for(queueing.watcher(namespace="ns", settings=settings, resource=Resource(
        "apps", "v1", "deployments"), processor=processor), 5)
    assert [obj["metadata"]["uid"] for obj in handed] == ["d2"] and "managedFields" not in handed[0]["metadata"]
