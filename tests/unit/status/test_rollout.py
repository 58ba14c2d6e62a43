"""status/rollout.py: ready at a generation as `kubectl rollout status` judges it, current pods by hash."""

from __future__ import annotations

import pytest
from observed_objects import (
    NEW_HASH,
    OLD_HASH,
    deployment,
    of_template,
    progressing,
    ready_pod,
    rolling_deployment,
    starting_pod,
)

from inference_operator.status.rollout import current_hash, rollout


class TestCurrentHash:
    @pytest.mark.parametrize("message", [
        'Created new replica set "{rs}"', 'Found new replica set "{rs}"', 'ReplicaSet "{rs}" is progressing.',
        'ReplicaSet "{rs}" has successfully progressed.', 'ReplicaSet "{rs}" has timed out progressing.',
    ])
    def test_every_progressing_message_of_the_controller_names_it(self, message: str) -> None:
        assert current_hash(deployment(conditions=progressing(message=message))) == NEW_HASH

    @pytest.mark.parametrize("conditions", [
        None, [],
        [{"type": "Progressing", "status": "True", "message": 'Deployment "service-demo-v1" is progressing.'}],
        progressing(message='ReplicaSet "other-deployment-abc" is progressing.'),
    ], ids=["no-status", "no-conditions", "no-replica-set", "another-deployments-set"])
    def test_unknown_without_a_replica_set_of_this_deployment(self, conditions: list | None) -> None:
        assert current_hash(deployment(conditions=conditions)) is None


class TestRollout:
    def test_old_pod_left_is_not_ready_at_the_generation(self) -> None:
        # the case: 2 wanted, {replicas: 3, updatedReplicas: 2, readyReplicas: 2}
        body = rolling_deployment(total=3, updated=2, ready=2)
        pods = [of_template(ready_pod(name="a"), NEW_HASH), of_template(starting_pod(name="b"), NEW_HASH),
                of_template(ready_pod(name="c"), OLD_HASH)]

        state = rollout(body, pods)

        assert (state.complete, state.ready, state.old, state.old_ready, state.rolling) == (False, 1, 1, 1, True)
        assert [p["metadata"]["name"][-1] for p in state.current_pods] == ["a", "b"]

    def test_complete_when_every_replica_is_current_and_available(self) -> None:
        state = rollout(deployment(replicas=2, ready=2, generation=2, conditions=progressing()), [])
        assert (state.caught_up, state.complete, state.ready, state.rolling) == (True, True, 2, False)

    @pytest.mark.parametrize(("total", "updated", "available"), [(2, 1, 2), (2, 2, 1), (3, 2, 2)],
                             ids=["not-all-updated", "not-all-available", "old-pod-left"])
    def test_not_complete(self, total: int, updated: int, available: int) -> None:
        body = rolling_deployment(total=total, updated=updated, ready=available)
        assert not rollout(body, []).complete

    def test_counts_of_an_older_generation_are_not_trusted(self) -> None:
        stale = deployment(replicas=2, ready=2, generation=3, observed_generation=2, conditions=progressing())
        state = rollout(stale, [ready_pod(name="a"), ready_pod(name="b")])
        assert (state.caught_up, state.complete, state.ready, state.old_ready, state.rolling) == (
            False, False, 0, 0, False)

    def test_scale_up_without_template_change_counts_every_ready_pod(self) -> None:
        state = rollout(deployment(replicas=4, ready=2, conditions=progressing()), [])
        assert (state.complete, state.ready, state.rolling) == (False, 2, False)

    def test_a_name_left_from_before_a_rollback_is_capped_by_updated_replicas(self) -> None:
        # reverted to an old ReplicaSet with no pods yet; the condition still names the last one
        body = rolling_deployment(total=3, updated=0, ready=3, conditions=progressing(template_hash=OLD_HASH))
        pods = [of_template(ready_pod(name=n), OLD_HASH) for n in "abc"]

        state = rollout(body, pods)

        assert (state.ready, state.old_ready) == (0, 3)

    def test_unknown_template_counts_only_what_must_be_current(self) -> None:
        body = rolling_deployment(total=3, updated=2, ready=2, conditions=[])
        state = rollout(body, [])
        assert (state.ready, state.old_ready) == (1, 1)

    def test_terminating_pods_are_not_current(self) -> None:
        leaving = of_template(ready_pod(name="z"), NEW_HASH)
        leaving["metadata"]["deletionTimestamp"] = "2024-05-01T12:00:00Z"
        body = rolling_deployment(total=3, updated=2, ready=3)
        pods = [of_template(ready_pod(name="a"), NEW_HASH), leaving, of_template(ready_pod(name="c"), OLD_HASH)]

        assert rollout(body, pods).ready == 1
