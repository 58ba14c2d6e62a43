"""A service's status: the one a pass compares with, the write when it differs, the gauge of states.

Status is written only when it differs from the last status written or stored; the write is conditional
on the service's uid, so a deleted service's pass never writes the status of a namesake created again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from inference_operator import metrics, trace
from inference_operator.api.states import ServiceState
from inference_operator.api.v1alpha1 import API_VERSION, KIND
from inference_operator.ports import ApiError, KubePort
from inference_operator.reconcile.record import ServiceRecord


class ServiceGone(Exception):
    """The service's status could not be written because the service is gone (404): deleted while the pass
    ran, its DELETED event not here yet (a watch away on a lossy link)."""


def status_delta(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    return any(current.get(k) != v for k, v in desired.items())


def previous_status(record: ServiceRecord, body: Mapping[str, Any]) -> dict[str, Any]:
    """The status a pass compares its own with. This process's last write until the watch shows it (the
    body may be older than that write); once the watch has brought that write back, a later body whose
    status differs from it was written by someone else (`kubectl edit --subresource=status`, a second
    operator): that body is the truth now, so the pass puts the operator's status back."""
    observed = body.get("status") or {}
    if record.written is None:
        return dict(observed)
    if record.written_version is not None and body["metadata"].get("resourceVersion") == record.written_version:
        record.stored = observed  # the index's own dict (the body's), not a copy: one per service
    elif record.stored is not None and observed != record.stored:
        record.written = record.written_version = record.stored = None
        return dict(observed)
    written: dict[str, Any] = json.loads(record.written)
    return written


def count_state(record: ServiceRecord, state: str | None) -> None:
    """Keep inference_operator_services{status} equal to the services this process knows."""
    if record.state is not None:
        metrics.SERVICES.labels(status=record.state).dec()
    record.state = state
    if state is not None:
        metrics.SERVICES.labels(status=state).inc()


def became_ready(previous: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """The status says the service is running and the previous one did not: what its users wait for, so its
    write goes before other services' children (kube.gate.READY); later changes of a running service do not."""
    return status.get("status") == ServiceState.RUNNING and previous.get("status") != ServiceState.RUNNING


async def write_status(kube: KubePort, body: Mapping[str, Any], record: ServiceRecord, previous: Mapping[str, Any],
                       status: dict[str, Any]) -> bool:
    """Write the status when it differs from `previous`; whether it was written. Raises ServiceGone when
    the service is deleted (or deleted and created again under a new uid)."""
    if not status_delta(previous, status):
        return False  # unchanged, or written already and the watch has not brought it back yet
    meta = body["metadata"]
    trace.mark(meta["namespace"], meta["name"], f"status:{status.get('status')}")
    manifest = {"apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
                "status": status}
    try:
        # a write on the condition that the object still has this uid (kube.client.Kube.write_status): a deleted
        # service's ghost (its DELETED not here yet) never writes the status of its re-created namesake
        answer = await kube.write_status(manifest, ready=became_ready(previous, status))
    except ApiError as exc:
        if exc.status == 404:
            raise ServiceGone(str(exc)) from exc
        if exc.status == 422:  # the uid test failed, or the status itself was refused: which one?
            live = await kube.read(API_VERSION, KIND, meta["namespace"], meta["name"])
            if live is None or (live.get("metadata") or {}).get("uid") != meta["uid"]:
                raise ServiceGone(f"{meta['name']} was deleted (and maybe created again)") from exc
        raise
    record.written, record.stored = json.dumps(status, separators=(",", ":")), None
    record.written_version = ((answer or {}).get("metadata") or {}).get("resourceVersion")
    return True
