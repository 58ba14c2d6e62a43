"""Handing a Deployment's spec.replicas to its HPA and back without a capacity dip.

While a model scales, the operator's manifest leaves `replicas` out so it never fights the HPA. If
the operator's field manager simply stopped sending the field, nobody would own it and the API
server would reset it to its default of 1 (4 -> 1 -> 2 at the handoff). Server-side apply's documented
way ("Transferring ownership") is followed instead: first a second field manager of the operator
applies only `replicas` with the value that should hold now (the live count put into the HPA's
bounds, so a started service goes 0 -> minReplicas in one step), then the main manager drops the
field. The second manager keeps it owned until the HPA controller writes a new value, and then
loses it by itself. Bounds that change while scaling move the live count into them the same way.
Back to a fixed count, the main manager applies `replicas` with force after the HPA is gone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SUFFIX = "-handover"
REPLICAS_OWNERS = "replicasOwners"  # key of a slimmed Deployment: managers owning spec.replicas


def handover_manager(field_manager: str) -> str:
    """The field manager that holds `replicas` between the operator and the HPA."""
    return field_manager + SUFFIX


def replicas_owners(managed_fields: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """Managers owning a Deployment's spec.replicas, from its metadata.managedFields."""
    owners = []
    for entry in managed_fields or ():
        spec = (entry.get("fieldsV1") or {}).get("f:spec")
        if isinstance(spec, Mapping) and "f:replicas" in spec and entry.get("manager"):
            owners.append(str(entry["manager"]))
    return sorted(set(owners))


def handover_replicas(deployment: Mapping[str, Any], hpa: Mapping[str, Any] | None,
                      live: Mapping[str, Any] | None, field_manager: str, dropping: bool) -> int | None:
    """The replicas the handover manager must apply before the main apply, or None when nothing is due.

    `deployment` and `hpa` are the desired manifests of one model, `live` the Deployment as the
    watch shows it (spec.replicas and `replicasOwners`), `dropping` whether the main manifest is
    about to be applied. Due when the operator's own manager still owns the field it is about to
    drop, or when the live count lies outside the HPA's bounds.
    """
    if hpa is None or live is None or "replicas" in deployment.get("spec", {}):
        return None
    current = (live.get("spec") or {}).get("replicas")
    if not isinstance(current, int):
        return None  # not known (the API server always defaults it)
    low: int = hpa["spec"].get("minReplicas", 1)
    high: int = hpa["spec"]["maxReplicas"]
    target = min(max(current, low), high)
    owned = field_manager in (live.get(REPLICAS_OWNERS) or ())
    if (dropping and owned) or target != current:
        return target
    return None


def handover_manifest(deployment: Mapping[str, Any], replicas: int) -> dict[str, Any]:
    """What the handover manager applies: only spec.replicas of the named Deployment."""
    meta = deployment["metadata"]
    return {"apiVersion": deployment["apiVersion"], "kind": deployment["kind"],
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "spec": {"replicas": replicas}}


def hpa_for(deployment: Mapping[str, Any], desired: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The desired HPA scaling this Deployment, if any."""
    name = deployment["metadata"]["name"]
    return next((m for m in desired if m["kind"] == "HorizontalPodAutoscaler"
                 and m["spec"]["scaleTargetRef"]["name"] == name), None)
