"""handover: when the operator's second field manager must hold a Deployment's replicas, and at what."""

from __future__ import annotations

import pytest

from inference_operator.policies.handover import (
    REPLICAS_OWNERS,
    handover_manager,
    handover_manifest,
    handover_replicas,
    hpa_for,
    replicas_owners,
)

MAIN = "inference-operator"
SCALING = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "s-m", "namespace": "ns"},
           "spec": {"selector": {}}}
HPA = {"kind": "HorizontalPodAutoscaler", "metadata": {"name": "s-m"},
       "spec": {"scaleTargetRef": {"name": "s-m"}, "minReplicas": 2, "maxReplicas": 6}}


def live(replicas: int | None, *owners: str) -> dict:
    return {"spec": {"replicas": replicas}, REPLICAS_OWNERS: list(owners)}


@pytest.mark.parametrize(("observed", "dropping", "expected"), [
    (live(4, MAIN), True, 4),                     # fixed 4 -> scaling: hold 4 before dropping it
    (live(0, MAIN), True, 2),                     # started from stopped: 0 -> min in one step
    (live(8, MAIN), True, 6),                     # above the new max
    (live(4, "kube-controller-manager"), False, None),  # the HPA owns it; nothing to do
    (live(4, MAIN), False, None),                 # not dropping it in this pass
    (live(1, "kube-controller-manager"), False, 2),  # bounds moved above the count
    (live(9, "inference-operator-handover"), False, 6),
    (live(None), True, None),                     # unknown count
])
def test_handover_replicas(observed, dropping, expected):
    assert handover_replicas(SCALING, HPA, observed, MAIN, dropping) == expected


def test_no_handover_without_hpa_or_with_a_fixed_count():
    assert handover_replicas(SCALING, None, live(4, MAIN), MAIN, True) is None
    fixed = {**SCALING, "spec": {"replicas": 3}}
    assert handover_replicas(fixed, HPA, live(4, MAIN), MAIN, True) is None
    assert handover_replicas(SCALING, HPA, None, MAIN, True) is None


def test_manifest_holds_only_replicas():
    assert handover_manifest(SCALING, 3) == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "metadata": {"name": "s-m", "namespace": "ns"},
                                             "spec": {"replicas": 3}}
    assert handover_manager(MAIN) == "inference-operator-handover"


def test_replicas_owners_from_managed_fields():
    managed = [
        {"manager": "inference-operator", "operation": "Apply",
         "fieldsV1": {"f:metadata": {}, "f:spec": {"f:replicas": {}, "f:template": {}}}},
        {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
         "fieldsV1": {"f:status": {"f:replicas": {}}}},
        {"manager": "kubectl", "operation": "Update", "subresource": "scale",
         "fieldsV1": {"f:spec": {"f:replicas": {}}}},
    ]
    assert replicas_owners(managed) == ["inference-operator", "kubectl"]
    assert replicas_owners(None) == []


def test_hpa_for_finds_the_deployments_hpa():
    assert hpa_for(SCALING, [SCALING, HPA]) is HPA
    assert hpa_for(SCALING, [SCALING]) is None
