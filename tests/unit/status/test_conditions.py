"""status/conditions.py: Ready and Stalled as kstatus, Flux and Argo CD read them."""

from __future__ import annotations

from typing import Any

import pytest
from observed_objects import GPU_MESSAGE, LATER_STAMP, STAMP

from inference_operator.status.causes import Cause
from inference_operator.status.conditions import ready_conditions

UNSCHEDULABLE = Cause("Unschedulable", f"model v1: {GPU_MESSAGE}")
PULL = Cause("ImagePullFailed", 'model v2: container "model" cannot pull image "x"')


def by_type(conditions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in conditions}


class TestReadyConditions:
    @pytest.mark.parametrize(("state", "ready", "reason"), [
        ("running", "True", "Running"),
        ("deploying", "False", "Deploying"),
        ("concerning", "False", "Concerning"),
        ("stopped", "True", "Stopped"),
        ("finished", "True", "Finished"),
    ])
    def test_ready_per_state_and_not_stalled(self, state: str, ready: str, reason: str) -> None:
        conditions = by_type(ready_conditions(state, [], 3, [], STAMP))

        assert conditions["Ready"]["status"] == ready
        assert conditions["Ready"]["reason"] == reason
        assert conditions["Ready"]["message"]
        assert conditions["Stalled"]["status"] == "False"
        assert {c["observedGeneration"] for c in conditions.values()} == {3}

    def test_failed_is_stalled_with_the_first_cause_and_every_message(self) -> None:
        conditions = by_type(ready_conditions("failed", [UNSCHEDULABLE, PULL], 2, [], STAMP))

        for ctype, status in (("Ready", "False"), ("Stalled", "True")):
            assert conditions[ctype]["status"] == status
            assert conditions[ctype]["reason"] == "Unschedulable"
            assert conditions[ctype]["message"] == f"{UNSCHEDULABLE.message}; {PULL.message}"

    def test_failed_without_a_cause_still_has_a_reason(self) -> None:
        ready = by_type(ready_conditions("failed", [], 1, [], STAMP))["Ready"]
        assert (ready["reason"], ready["message"]) == ("Failed", "The service failed.")

    def test_concerning_with_a_cause_explains_itself_without_stalling(self) -> None:
        conditions = by_type(ready_conditions("concerning", [PULL], 1, [], STAMP))

        assert conditions["Ready"]["status"] == "False"
        assert (conditions["Ready"]["reason"], conditions["Ready"]["message"]) == (PULL.reason, PULL.message)
        assert conditions["Stalled"]["status"] == "False"

    def test_first_time_both_transition_now(self) -> None:
        conditions = ready_conditions("deploying", [], 1, [], STAMP)
        assert [c["lastTransitionTime"] for c in conditions] == [STAMP, STAMP]

    def test_same_status_keeps_the_transition_time_even_if_reason_changes(self) -> None:
        before = ready_conditions("deploying", [], 1, [], STAMP)

        after = by_type(ready_conditions("concerning", [PULL], 2, before, LATER_STAMP))

        assert after["Ready"]["lastTransitionTime"] == STAMP
        assert after["Ready"]["reason"] == PULL.reason
        assert after["Ready"]["observedGeneration"] == 2
        assert after["Stalled"]["lastTransitionTime"] == STAMP

    def test_only_the_condition_whose_status_changed_moves(self) -> None:
        before = ready_conditions("deploying", [], 1, [], STAMP)

        running = by_type(ready_conditions("running", [], 1, before, LATER_STAMP))

        assert running["Ready"]["lastTransitionTime"] == LATER_STAMP
        assert running["Stalled"]["lastTransitionTime"] == STAMP

    def test_running_to_failed_moves_both(self) -> None:
        before = ready_conditions("running", [], 1, [], STAMP)

        failed = ready_conditions("failed", [UNSCHEDULABLE], 1, before, LATER_STAMP)

        assert [c["lastTransitionTime"] for c in failed] == [LATER_STAMP, LATER_STAMP]

    def test_failed_to_deploying_moves_only_stalled(self) -> None:
        before = ready_conditions("failed", [UNSCHEDULABLE], 1, [], STAMP)

        recovered = ready_conditions("deploying", [], 1, before, LATER_STAMP)

        assert [c["lastTransitionTime"] for c in recovered] == [STAMP, LATER_STAMP]

    def test_previous_condition_without_a_time_gets_one(self) -> None:
        previous = [{"type": "Ready", "status": "False", "reason": "Deploying"}]
        ready = by_type(ready_conditions("deploying", [], 1, previous, LATER_STAMP))["Ready"]
        assert ready["lastTransitionTime"] == LATER_STAMP
