"""What a pass reads off its view of a service: the parsed spec, the children grouped for status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from inference_operator.api.v1alpha1 import InferenceService, InvalidSpecError
from inference_operator.builders.batch import BATCH_RUNNER, COMPONENT_LABEL
from inference_operator.builders.labels import MODEL_LABEL
from inference_operator.catalog.flavors import UnknownFlavorError
from inference_operator.catalog.presets import PresetTooLargeError
from inference_operator.ports import Children
from inference_operator.reconcile.record import ServiceRecord
from inference_operator.status import Cause, Observed, ParentMeta


def observe(children: Children, job_name: str | None = None) -> Observed:
    """Children grouped by model name for status; the batch Job of the current spec and its pods."""
    deployments = {o["metadata"].get("labels", {}).get(MODEL_LABEL, ""): o
                   for o in children.objects if o["kind"] == "Deployment"}
    pods: dict[str, list[Mapping[str, Any]]] = {}
    runners: list[Mapping[str, Any]] = []
    for pod in children.pods:
        labels = pod["metadata"].get("labels", {})
        if labels.get(COMPONENT_LABEL) == BATCH_RUNNER:
            if labels.get("batch.kubernetes.io/job-name", labels.get("job-name")) == job_name:
                runners.append(pod)
            continue
        pods.setdefault(labels.get(MODEL_LABEL, ""), []).append(pod)
    job = next((o for o in children.objects if o["kind"] == "Job" and o["metadata"]["name"] == job_name), None)
    pool = next((o for o in children.objects if o["kind"] == "InferencePool"), None)
    return Observed(deployments=deployments, pods=pods, job=job, runner_pods=runners, pool=pool)


def parse(body: Mapping[str, Any]) -> tuple[InferenceService | None, Cause | None]:
    """The service, or the cause of a spec the model refuses."""
    try:
        return InferenceService.from_body(body), None
    except InvalidSpecError as exc:
        return None, Cause("InvalidSpec", f"invalid spec: {exc}")


def parent_of(meta: Mapping[str, Any]) -> ParentMeta:
    return ParentMeta(uid=meta["uid"], generation=meta.get("generation", 1), created=meta.get("creationTimestamp"))


def spec_error_reason(exc: Exception) -> str:
    """The Ready condition's reason for a spec the builders refused."""
    if isinstance(exc, UnknownFlavorError):
        return "UnknownFlavor"
    if isinstance(exc, PresetTooLargeError):
        return "InsufficientGPUMemory"
    return "InvalidSpec"


def current_only(observed: Observed, behind: set[str]) -> Observed:
    """Forget Deployments the watch still shows with an older spec: until it shows the new one, their
    ready counts say nothing about the spec being reconciled (no `running` before a rollout starts);
    status marks their models pending (it keeps the last status until they catch up)."""
    if not behind:
        return observed
    deployments = {model: d for model, d in observed.deployments.items() if d["metadata"]["name"] not in behind}
    pending = frozenset(model for model in observed.deployments if model not in deployments)
    return replace(observed, deployments=deployments, pending=observed.pending | pending)


def newer_children(record: ServiceRecord, meta: Mapping[str, Any]) -> Children | None:
    """The children of an event that came while this pass wrote, if it is of the same spec: pods that became
    ready meanwhile count in this pass's status (`running` at once: one status write and one Event instead of
    `deploying` then `running`). The folded pass still runs, and finds it so."""
    if record.latest is None:
        return None
    body, children = record.latest
    return children if body["metadata"].get("generation") == meta.get("generation") else None


def job_name_of(desired: Sequence[Mapping[str, Any]]) -> str | None:
    return next((m["metadata"]["name"] for m in desired if m["kind"] == "Job"), None)


def body_spec_service(effective: InferenceService, body: Mapping[str, Any]) -> InferenceService:
    """The service as the user wrote it (not stopped by the schedule), for the schedule's own fields."""
    stopped = bool((body.get("spec") or {}).get("stopped", False))
    if effective.spec.stopped == stopped:
        return effective
    return effective.model_copy(update={"spec": effective.spec.model_copy(update={"stopped": stopped})})
