"""Who may take the Lease, and what taking it writes."""

from datetime import UTC, datetime, timedelta

from inference_operator.leader import MICRO, can_take, taken

NOW = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)


def spec(holder: str, renewed_ago: float, duration: int = 15) -> dict:
    return {"holderIdentity": holder, "leaseDurationSeconds": duration,
            "renewTime": (NOW - timedelta(seconds=renewed_ago)).strftime(MICRO),
            "acquireTime": (NOW - timedelta(seconds=100)).strftime(MICRO), "leaseTransitions": 3}


class TestCanTake:
    def test_free_lease(self):
        assert can_take({}, "me", NOW)
        assert can_take(spec("", 1), "me", NOW)

    def test_our_own_lease(self):
        assert can_take(spec("me", 1), "me", NOW)

    def test_a_live_holder_keeps_it(self):
        assert not can_take(spec("other", 5), "me", NOW)

    def test_an_expired_holder_loses_it(self):
        assert can_take(spec("other", 16), "me", NOW)


class TestTaken:
    def test_renewal_keeps_acquire_time_and_transitions(self):
        before = spec("me", 5)
        after = taken(before, "me", NOW, 15)
        assert after["acquireTime"] == before["acquireTime"] and after["leaseTransitions"] == 3
        assert after["renewTime"] == NOW.strftime(MICRO)

    def test_takeover_counts_a_transition(self):
        after = taken(spec("other", 30), "me", NOW, 15)
        assert after["holderIdentity"] == "me" and after["leaseTransitions"] == 4
        assert after["acquireTime"] == NOW.strftime(MICRO)
