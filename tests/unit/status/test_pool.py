"""pool_conditions: the InferencePool's parents[].conditions as the service's InferencePool<Type> conditions."""

from __future__ import annotations

from typing import Any

from inference_operator.status.inferencepool import MAX_TYPES, pool_conditions

STAMP, LATER = "2026-12-01T10:00:00Z", "2026-12-01T10:05:00Z"


def parent(name: str, *conditions: tuple[str, str, str], message: str = "") -> dict[str, Any]:
    return {"parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "infra",
                          "name": name},
            "conditions": [{"type": t, "status": s, "reason": r, "message": message, "observedGeneration": 1,
                            "lastTransitionTime": STAMP} for t, s, r in conditions]}


def pool(*parents: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "InferencePool", "metadata": {"name": "svc"}, "status": {"parents": list(parents)}}


def by_type(conditions: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in conditions}


class TestPoolConditions:
    def test_no_pool_no_condition(self) -> None:
        assert pool_conditions(None, 1, [], STAMP) == []

    def test_a_pool_no_gateway_routes_to_yet(self) -> None:
        conditions = pool_conditions(pool(), 2, [], STAMP)
        assert by_type(conditions) == {"InferencePoolAccepted": ("Unknown", "NoParents")}
        assert conditions[0]["observedGeneration"] == 2 and conditions[0]["lastTransitionTime"] == STAMP

    def test_every_parent_true(self) -> None:
        conditions = pool_conditions(pool(parent("gw", ("Accepted", "True", "Accepted"),
                                                 ("ResolvedRefs", "True", "ResolvedRefs"))), 1, [], STAMP)
        assert by_type(conditions) == {"InferencePoolAccepted": ("True", "Accepted"),
                                       "InferencePoolResolvedRefs": ("True", "ResolvedRefs")}
        assert conditions[0]["message"] == "Gateway/infra/gw: True Accepted"

    def test_one_parent_false_makes_it_false_with_its_reason(self) -> None:
        conditions = pool_conditions(pool(parent("a", ("ResolvedRefs", "True", "ResolvedRefs")),
                                          parent("b", ("ResolvedRefs", "False", "InvalidExtensionRef"),
                                                 message="Service vllm-epp not found")), 1, [], STAMP)
        assert by_type(conditions) == {"InferencePoolResolvedRefs": ("False", "InvalidExtensionRef")}
        assert "Gateway/infra/b: False InvalidExtensionRef (Service vllm-epp not found)" in conditions[0]["message"]

    def test_transition_time_moves_only_with_the_status(self) -> None:
        first = pool_conditions(pool(parent("gw", ("Accepted", "True", "Accepted"))), 1, [], STAMP)
        same = pool_conditions(pool(parent("gw", ("Accepted", "True", "Accepted"))), 1, first, LATER)
        moved = pool_conditions(pool(parent("gw", ("Accepted", "False", "NotSupported"))), 1, first, LATER)
        assert same == first
        assert moved[0]["lastTransitionTime"] == LATER

    def test_hostile_status_is_bounded_and_checked(self) -> None:
        hostile = pool(
            {"parentRef": "not a mapping", "conditions": [
                {"type": "bad type!", "status": "True"},  # not a condition type: left out
                {"type": "Accepted", "status": "Maybe", "reason": "no spaces allowed", "message": "x" * 100_000},
                *({"type": f"Extra{i}", "status": "True", "reason": "Ok"} for i in range(20))]},
            "junk", {"conditions": "junk"})
        hostile["status"]["parents"] += [parent(f"p{i}", ("Accepted", "True", "Accepted")) for i in range(100)]
        conditions = pool_conditions(hostile, 1, [], STAMP)
        assert len(conditions) <= MAX_TYPES
        accepted = next(c for c in conditions if c["type"] == "InferencePoolAccepted")
        assert (accepted["status"], accepted["reason"]) == ("Unknown", "Unknown")
        assert all(len(c["message"]) <= 2048 for c in conditions)
        assert accepted["message"].count("Gateway/infra/p") < 32

    def test_a_status_that_is_not_a_mapping(self) -> None:
        assert by_type(pool_conditions({"status": ["x"]}, 1, [], STAMP)) == {
            "InferencePoolAccepted": ("Unknown", "NoParents")}
