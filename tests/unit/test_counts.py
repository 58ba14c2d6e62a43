"""Gateway readings -> counts added to status, across gateway and operator restarts."""

from inference_operator.counts import CountsLedger, add_counts


class TestCountsLedger:
    def test_first_reading_is_a_baseline_because_status_already_has_it(self):
        ledger = CountsLedger()
        assert ledger.advance({"svc": {"invocationTimes": 40, "failedTimes": 2}}) == {}

    def test_only_new_requests_are_reported(self):
        ledger = CountsLedger()
        ledger.advance({"svc": {"invocationTimes": 40, "failedTimes": 2}})
        assert ledger.advance({"svc": {"invocationTimes": 45, "failedTimes": 3}}) == {
            "svc": {"invocationTimes": 5, "failedTimes": 1}}

    def test_unchanged_services_are_left_out(self):
        ledger = CountsLedger()
        ledger.advance({"a": {"invocationTimes": 1, "failedTimes": 0}})
        assert ledger.advance({"a": {"invocationTimes": 1, "failedTimes": 0}}) == {}

    def test_a_lower_reading_means_the_gateway_restarted(self):
        ledger = CountsLedger()
        ledger.advance({"svc": {"invocationTimes": 100, "failedTimes": 10}})
        assert ledger.advance({"svc": {"invocationTimes": 3, "failedTimes": 0}}) == {
            "svc": {"invocationTimes": 3, "failedTimes": 0}}

    def test_a_service_first_seen_after_the_baseline_counts_from_zero(self):
        ledger = CountsLedger()
        ledger.advance({})
        assert ledger.advance({"new": {"invocationTimes": 7, "failedTimes": 1}}) == {
            "new": {"invocationTimes": 7, "failedTimes": 1}}


def test_add_counts_adds_to_stored_totals():
    assert add_counts({"invocationTimes": 10, "failedTimes": 1, "status": "running"},
                      {"invocationTimes": 5, "failedTimes": 0}) == {"invocationTimes": 15, "failedTimes": 1}
