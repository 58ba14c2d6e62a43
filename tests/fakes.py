"""The in-memory fakes the Reconciler tests share: a KubePort that behaves like the API server for what the
reconciler writes, a clock moved by hand, and the InferenceService bodies and pass helpers built on them."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum, auto
from typing import Any

from inference_operator.policies.handover import replicas_owners
from inference_operator.ports import ApiError, Children, NamespaceTerminating
from inference_operator.reconcile.reconciler import Reconciler
from inference_operator.runtime.slim import slim

UID = "7f3c1b2e-0d4a-4c55-9e61-2b8a9f0c1d23"
MAIN, HANDOVER = "inference-operator", "inference-operator-handover"
Key = tuple[str, str]  # kind, name


def replicas_owners_of(obj: Mapping[str, Any]) -> list[str]:
    return replicas_owners(obj.get("metadata", {}).get("managedFields"))


def set_replicas_owners(obj: dict[str, Any], owners: set[str]) -> None:
    obj["metadata"]["managedFields"] = [{"manager": m, "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
                                        for m in sorted(owners)]


class StatusFailure(Enum):
    """How a status write fails: applied with its answer lost, or refused before it was stored."""

    LOST = auto()
    REFUSED = auto()


class FakeKube:
    """The KubePort, in memory: records every call and holds what was applied, like the API would."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []  # (verb, kind, name); verb apply | apply/status | delete
        self.objects: dict[Key, dict[str, Any]] = {}
        self.status: dict[str, Any] | None = None
        self.events: list[tuple[str, str, str]] = []
        self.namespace_terminating = False
        self.version = 0
        self.status_version: str | None = None  # the resourceVersion the last status write produced
        # how the next status writes fail, one entry each: LOST (applied, the answer never came back) or REFUSED
        # (not applied: a timeout or a 5xx before the server stored it)
        self.status_failures: list[StatusFailure] = []
        self.ready_flags: list[tuple[str, bool]] = []  # (status written, whether it went as ready: kube.gate.READY)

    async def apply(self, manifest: Mapping[str, Any], subresource: str | None = None,
                    field_manager: str | None = None) -> Any:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        verb = "apply/status" if subresource == "status" else "handover" if field_manager == HANDOVER else "apply"
        self.calls.append((verb, kind, name))
        if self.namespace_terminating:
            raise NamespaceTerminating(f'{kind} "{name}" is forbidden: namespace team-a is being terminated')
        if subresource == "status":
            self.status = copy.deepcopy(dict(manifest["status"]))
            answer = {"metadata": dict(manifest["metadata"]), "status": copy.deepcopy(self.status)}
            self.changed(answer)
            self.status_version = answer["metadata"]["resourceVersion"]
            return answer
        before = self.objects.get((kind, name))
        if field_manager == HANDOVER:
            return self._hand_over(before, manifest["spec"]["replicas"])
        stored = copy.deepcopy(dict(manifest))
        if kind == "Deployment":
            self._own_replicas(before, stored)
        generation = before["metadata"]["generation"] if before else 0
        if before is None or before.get("spec") != stored.get("spec"):
            generation += 1
        stored["metadata"]["generation"] = generation
        stored["status"] = before.get("status", {}) if before else {}
        self.objects[(kind, name)] = stored
        self.changed(stored)
        return stored

    def changed(self, obj: dict[str, Any]) -> None:
        """A write landed: a new resourceVersion, as the API server gives one."""
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)

    def _hand_over(self, before: dict[str, Any] | None, replicas: int) -> Any:
        """Only spec.replicas, as a second manager; the main manager keeps it only at the same value."""
        assert before is not None, "a handover never creates"
        owners = set(replicas_owners_of(before)) if before["spec"].get("replicas") == replicas else set()
        before["spec"]["replicas"] = replicas
        set_replicas_owners(before, owners | {HANDOVER})
        self.changed(before)
        return before

    @staticmethod
    def _own_replicas(before: dict[str, Any] | None, stored: dict[str, Any]) -> None:
        """Like the API server: a field nobody owns any more is reset to its default (replicas: 1)."""
        others = {m for m in replicas_owners_of(before or {}) if m != MAIN}
        if "replicas" in stored["spec"]:
            same = before is not None and before["spec"].get("replicas") == stored["spec"]["replicas"]
            set_replicas_owners(stored, {MAIN} | (others if same else set()))
        elif others:
            stored["spec"]["replicas"] = before["spec"]["replicas"]  # type: ignore[index]
            set_replicas_owners(stored, others)
        else:
            stored["spec"]["replicas"] = 1
            set_replicas_owners(stored, set())

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self.calls.append(("delete", kind, name))
        self.objects.pop((kind, name), None)

    async def post_event(self, parent: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        self.events.append((event_type, reason, message))

    async def write_status(self, manifest: Mapping[str, Any], ready: bool = False) -> Any:
        """The status subresource, on the condition that the uid is the object's (kube.write_status)."""
        self.ready_flags.append((manifest["status"]["status"], ready))
        failure = self.status_failures.pop(0) if self.status_failures else None
        if failure is StatusFailure.REFUSED:
            self.calls.append(("apply/status", manifest["kind"], manifest["metadata"]["name"]))
            raise ApiError(504, "Timeout: request did not complete within the allowed duration")
        answer = await self.apply(manifest, subresource="status")
        if failure is StatusFailure.LOST:
            raise TimeoutError("the status write's answer never came")
        return answer

    async def read(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("read", kind, name))
        found = self.objects.get((kind, name))
        return copy.deepcopy(found) if found is not None else None

    # what the watches would show

    def children(self) -> Children:
        """The children as the operator's indices hold them (slimmed)."""
        return Children(objects=[slim(copy.deepcopy(o)) for o in self.objects.values()])

    def become_ready(self) -> None:
        """The Deployment controller and kubelet did their work: every instance is ready."""
        for (kind, _), obj in self.objects.items():
            if kind == "Deployment":
                replicas = obj["spec"].get("replicas", 1)
                obj["status"] = {"observedGeneration": obj["metadata"]["generation"], "replicas": replicas,
                                 "readyReplicas": replicas, "updatedReplicas": replicas,
                                 "availableReplicas": replicas}

    def writes(self) -> list[tuple[str, str, str]]:
        taken = list(self.calls)
        self.calls.clear()
        return taken


class Clock:
    """A clock the test moves by hand; every pass in a test reads it."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self) -> None:
        self.now += timedelta(minutes=1)


def model(name: str = "v1", weight: int = 100, **fields: Any) -> dict[str, Any]:
    return {"name": name, "modelName": "jar-model", "modelVersion": "1.0.1", "image": "registry.example/jar:1",
            "weight": weight, "specification": "gpu.t4", **fields}


SCALED = {"enabled": True, "minReplicas": 1, "maxReplicas": 4}
TWO_MODELS = [model("v1", 70, instanceCount=2), model("v2", 30, scaling=SCALED)]


def body(models: list[dict[str, Any]] | None = None, generation: int = 1, status: dict[str, Any] | None = None,
         **spec: Any) -> dict[str, Any]:
    parent: dict[str, Any] = {
        "apiVersion": "inference.io/v1alpha1", "kind": "InferenceService",
        "metadata": {"name": "service-demo", "namespace": "team-a", "uid": UID, "generation": generation,
                     "creationTimestamp": "2024-05-01T11:59:00Z"},
        "spec": {"models": models if models is not None else copy.deepcopy(TWO_MODELS), **spec},
    }
    if status is not None:
        parent["status"] = status
    return parent


async def settled(reconciler: Reconciler, kube: FakeKube, parent: dict[str, Any]) -> dict[str, Any]:
    """One pass, then the watch brings everything back: returns the parent with its stored status."""
    await reconciler.reconcile(parent, kube.children())
    await reconciler.announced()
    kube.writes()
    kube.events.clear()
    return shown(kube, parent)


def shown(kube: FakeKube, parent: dict[str, Any]) -> dict[str, Any]:
    """The parent as the watch shows it after the last status write: that status, that resourceVersion."""
    metadata = {**parent["metadata"], "resourceVersion": kube.status_version}
    return {**parent, "metadata": metadata, "status": copy.deepcopy(kube.status)}


def hold_first_apply(kube: FakeKube, kind: str | None = None) -> tuple[asyncio.Event, asyncio.Event]:
    """The first apply (of `kind`, when given) waits until `release` is set; `entered` is set when it has
    begun waiting."""
    entered, release = asyncio.Event(), asyncio.Event()
    apply = kube.apply

    async def slow_first_apply(manifest: Mapping[str, Any], subresource: str | None = None,
                               field_manager: str | None = None) -> Any:
        if not entered.is_set() and kind in (None, manifest["kind"]):
            entered.set()
            await release.wait()
        return await apply(manifest, subresource, field_manager)

    kube.apply = slow_first_apply  # type: ignore[method-assign]
    return entered, release


async def until(predicate: Callable[[], Any], what: str, timeout: float = 5.0) -> None:
    """Wait for an observable fact; the timeout only bounds a failure."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)
