"""What the indices keep of an object: the watched kinds, and each object slimmed to what reconcile and
status read (memory: the indices hold every service and child of the operator for as long as it runs)."""

from __future__ import annotations

import json
from collections.abc import Container, Mapping
from typing import Any

from inference_operator.policies.drift import WRITERS, spec_writers
from inference_operator.policies.handover import REPLICAS_OWNERS, replicas_owners
from inference_operator.reconcile.sync import FINGERPRINT, LIVE_SPEC
from inference_operator.runtime.indices import index_names, shared_strings

# Watched child kinds; the operator keeps an index of each (indices.py), named children_<plural>.
CHILD_KINDS = [("apps", "v1", "deployments"), ("v1", "services"),
               ("autoscaling", "v2", "horizontalpodautoscalers"), ("gateway.networking.k8s.io", "v1", "httproutes"),
               ("batch", "v1", "jobs"), ("inference.networking.k8s.io", "v1", "inferencepools")]
INDEX_NAMES = index_names([kind[-1] for kind in CHILD_KINDS] + ["pods"])
# A pod's "http" container port, kept for the engine calls that load LoRA adapters (runtime/adapters.py).
POD_PORT = "inference.io/port"
# Marks an object slimmed (its managedFields already read into WRITERS and REPLICAS_OWNERS).
SLIMMED = "inference.io/slimmed"


def group_plural(kind: tuple[str, ...]) -> tuple[str, str]:
    """(group, plural) of a CHILD_KINDS entry; the core group is ""."""
    return (kind[0], kind[-1]) if len(kind) == 3 else ("", kind[-1])


def slim(body: Mapping[str, Any], ours: Container[str] = ()) -> dict[str, Any]:
    """The parts of a child that reconcile and status read; indices keep only these (memory).

    A child the operator applies also keeps its whole spec, for the drift check, as compact JSON
    (LIVE_SPEC): a few hundred bytes where the same spec as Python dicts costs ten times more; a
    Deployment keeps the managers owning spec.replicas (for the HPA handover), not managedFields; a
    child keeps what other writers (not `ours`, the operator's managers) own, to name them in an Event.
    Idempotent: an object slimmed already (at the watch stream, watchfeed.py) comes back as it is.
    """
    if SLIMMED in body:
        return dict(body)
    meta = body.get("metadata", {})
    annotations = meta.get("annotations") or {}
    out: dict[str, Any] = {
        SLIMMED: True,
        "apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
        "metadata": {key: meta[key] for key in (POD_METADATA if body.get("kind") == "Pod" else CHILD_METADATA)
                     if key in meta},
        "status": child_status(str(body.get("kind")), body.get("status") or {}),
    }
    if FINGERPRINT in annotations:
        out["metadata"]["annotations"] = {FINGERPRINT: annotations[FINGERPRINT]}
    if body.get("kind") == "Deployment":
        out["spec"] = {"replicas": (body.get("spec") or {}).get("replicas")}
        out[REPLICAS_OWNERS] = replicas_owners(meta.get("managedFields"))
    if body.get("kind") == "Pod":
        port = http_port(body.get("spec") or {})
        if port is not None:
            out[POD_PORT] = port
    else:
        out[WRITERS] = spec_writers(meta.get("managedFields"), ours)
        out[LIVE_SPEC] = json.dumps(body.get("spec") or {}, separators=(",", ":"))
    return shared_strings(out)


CHILD_METADATA = ("name", "namespace", "uid", "generation", "resourceVersion", "labels", "ownerReferences",
                  "deletionTimestamp")
POD_METADATA = ("name", "namespace", "uid", "resourceVersion", "labels", "deletionTimestamp")  # not applied: no drift
STATUS_READ = ("Deployment", "Job", "InferencePool")  # and Pod (pod_status): status/ reads no other child's status
CONDITION_FIELDS = ("type", "status", "reason", "message")  # of a Deployment's or Job's; their times are not read


def child_status(kind: str, status: Mapping[str, Any]) -> dict[str, Any]:
    """A child's status as status/ reads it: a Service's, an HTTPRoute's or an HPA's not at all (a route's
    parents and their conditions are a kilobyte and more per service with a Gateway)."""
    if kind == "Pod":
        return pod_status(status)
    if kind not in STATUS_READ:
        return {}
    out = dict(status)
    if kind in ("Deployment", "Job") and isinstance(status.get("conditions"), list):
        out["conditions"] = [{k: c[k] for k in CONDITION_FIELDS if k in c} if isinstance(c, Mapping) else c
                             for c in status["conditions"]]
    return out


POD_CONDITIONS = ("Ready", "PodScheduled")  # status/causes.py and rollout.py read these, no other
CONTAINER_FIELDS = ("name", "image", "ready", "restartCount")


def pod_status(status: Mapping[str, Any]) -> dict[str, Any]:
    """A pod's status as status/ reads it (conditions Ready and PodScheduled, why a container waits or
    ended): a pod's full status is the largest part of what 1,000 running services keep in memory."""
    out: dict[str, Any] = {key: status[key] for key in ("phase", "nominatedNodeName", "podIP") if key in status}
    out["conditions"] = [{k: c[k] for k in ("type", "status", "reason", "message") if k in c}
                         for c in status.get("conditions") or () if c.get("type") in POD_CONDITIONS]
    for key in ("initContainerStatuses", "containerStatuses"):
        if key in status:
            out[key] = [_container_status(c) for c in status[key] or ()]
    return out


def http_port(spec: Mapping[str, Any]) -> int | None:
    """The pod's container port named "http" (the model's port, builders/runtimes.PORT_NAME)."""
    for container in spec.get("containers") or ():
        for port in container.get("ports") or () if isinstance(container, Mapping) else ():
            if isinstance(port, Mapping) and port.get("name") == "http" and isinstance(port.get("containerPort"), int):
                return int(port["containerPort"])
    return None


def _container_status(container: Mapping[str, Any]) -> dict[str, Any]:
    out = {key: container[key] for key in CONTAINER_FIELDS if key in container}
    state, last = container.get("state") or {}, container.get("lastState") or {}
    if "waiting" in state:
        out["state"] = {"waiting": state["waiting"]}
    elif "terminated" in state:
        out["state"] = {"terminated": state["terminated"]}
    if "terminated" in last:
        out["lastState"] = {"terminated": last["terminated"]}
    return out


PARENT_METADATA = ("name", "namespace", "uid", "generation", "creationTimestamp", "deletionTimestamp", "labels",
                   "resourceVersion")


def slim_parent(body: Mapping[str, Any]) -> dict[str, Any]:
    """An InferenceService as reconcile reads it, without managedFields and the last-applied annotation
    (together often larger than the rest): the index holds one per service."""
    meta = body.get("metadata", {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k != "kubectl.kubernetes.io/last-applied-configuration"}
    slim_meta = {key: meta[key] for key in PARENT_METADATA if key in meta}
    if annotations:
        slim_meta["annotations"] = annotations
    return shared_strings({"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "metadata": slim_meta,
                           "spec": body.get("spec") or {}, "status": body.get("status") or {}})
