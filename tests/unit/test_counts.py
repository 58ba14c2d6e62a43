"""The per-gateway-process counts ledger: restarts, scaling, repeated reads, operator restarts."""

from inference_operator.policies.counts import Ledger, counts_urls


def c(n: int, f: int = 0) -> dict[str, int]:
    return {"invocationTimes": n, "failedTimes": f}


class TestLedger:
    def test_totals_are_the_sum_over_gateway_processes(self):
        ledger = Ledger()
        ledger.merge("gw-a", {"svc": c(10, 1)}, 0)
        ledger.merge("gw-b", {"svc": c(5), "other": c(2)}, 0)
        assert ledger.totals() == {"svc": c(15, 1), "other": c(2)}

    def test_reading_a_process_twice_counts_nothing_twice(self):
        ledger = Ledger()
        assert ledger.merge("gw-a", {"svc": c(10)}, 0)
        assert not ledger.merge("gw-a", {"svc": c(10)}, 1)
        assert ledger.totals() == {"svc": c(10)}

    def test_a_restarted_gateway_serving_more_than_before_is_counted_in_full(self):
        """The old scheme saw 40 -> 50 as +10; the new process served 50 after the old one's 40."""
        ledger = Ledger()
        ledger.merge("gw-old", {"svc": c(40)}, 0)
        ledger.merge("gw-new", {"svc": c(50, 2)}, 1)
        assert ledger.totals() == {"svc": c(90, 2)}

    def test_an_older_reading_never_lowers_a_count(self):
        ledger = Ledger()
        ledger.merge("gw-a", {"svc": c(10, 3)}, 0)
        ledger.merge("gw-a", {"svc": c(8, 1)}, 1)  # a late answer of an earlier read
        assert ledger.totals() == {"svc": c(10, 3)}

    def test_the_stored_ledger_resumes_after_an_operator_restart(self):
        """The first reading after a restart is neither dropped nor added twice."""
        ledger = Ledger()
        ledger.merge("gw-a", {"svc": c(10)}, 0)
        resumed = Ledger.from_data(ledger.to_data())
        assert resumed is not None
        resumed.merge("gw-a", {"svc": c(13)}, 5)
        assert resumed.totals() == {"svc": c(13)}

    def test_a_first_ledger_keeps_what_status_already_holds(self):
        """Upgrading from the single-URL scheme: status counted 100, the live gateway's reading (30) is in it."""
        ledger = Ledger.start({"svc": c(100, 4), "quiet": c(7)}, [("gw-a", {"svc": c(30, 1)})], 0)
        assert ledger.totals() == {"svc": c(100, 4), "quiet": c(7)}
        ledger.merge("gw-a", {"svc": c(31, 1)}, 1)
        assert ledger.totals()["svc"] == c(101, 4)

    def test_long_gone_processes_fold_into_the_base(self):
        ledger = Ledger()
        ledger.merge("gw-a", {"svc": c(10)}, 0)
        ledger.merge("gw-b", {"svc": c(5)}, 5000)
        assert ledger.retire(5000, after=3600)
        assert list(ledger.instances) == ["gw-b"] and ledger.totals() == {"svc": c(15)}
        assert not ledger.retire(5001, after=3600)

    def test_deleted_services_leave_the_ledger_and_a_gateway_still_counting_them_adds_nothing(self):
        """With churn, a ledger keeping every deleted service would outgrow its ConfigMap (1 MiB)."""
        ledger = Ledger()
        ledger.merge("gw-a", {"kept": c(3), "gone": c(9)}, 0)
        ledger.merge("gw-b", {"gone": c(1)}, 0)
        ledger.retire(5000, after=3600)  # gone's counts now sit in the base too
        ledger.merge("gw-c", {"gone": c(2), "kept": c(1)}, 5000)
        assert ledger.prune({"kept"})
        assert ledger.totals() == {"kept": c(4)} and "gone" not in ledger.to_data()["ledger.json"]
        assert not ledger.prune({"kept"})
        assert not ledger.merge("gw-c", {"gone": c(5), "kept": c(1)}, 5001, live={"kept"})
        assert ledger.merge("gw-c", {"gone": c(6), "kept": c(2)}, 5002, live={"kept"})
        assert ledger.totals() == {"kept": c(5)}

    def test_unreadable_stored_data_is_no_ledger(self):
        assert Ledger.from_data({}) is None and Ledger.from_data({"ledger.json": "{"}) is None


def test_counts_urls_one_per_endpoint_ready_or_not():
    slices = [
        {"ports": [{"name": "metrics", "port": 9090}], "endpoints": [
            {"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
            {"addresses": ["10.0.0.2"], "conditions": {"ready": False, "terminating": True}}]},
        {"ports": [{"name": "metrics", "port": 9191}], "endpoints": [{"addresses": ["fd00::3"]}]},
        {"ports": [{"name": "other", "port": 1}], "endpoints": [{"addresses": ["10.0.0.9"]}]},
    ]
    assert counts_urls(slices, "metrics") == ["http://10.0.0.1:9090/-/counts", "http://10.0.0.2:9090/-/counts",
                                              "http://[fd00::3]:9191/-/counts"]
