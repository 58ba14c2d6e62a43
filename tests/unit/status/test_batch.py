"""A batch run's end, from its Job and the runner's termination message."""

import json

from inference_operator.status.batch import batch_outcome, runner_summary


def job(*conditions: tuple[str, str], message: str = "") -> dict:
    return {"kind": "Job", "metadata": {"name": "b-m-batch-1"},
            "status": {"conditions": [{"type": t, "status": s, "message": message, "reason": t}
                                      for t, s in conditions]}}


def runner_pod(name: str, message: str) -> dict:
    return {"metadata": {"name": name}, "status": {"containerStatuses": [
        {"name": "runner", "state": {"terminated": {"exitCode": 1, "message": message}}}]}}


class TestBatchOutcome:
    def test_no_job_yet_says_nothing(self):
        assert batch_outcome(None, []) == (None, None)

    def test_running_job_says_nothing(self):
        assert batch_outcome(job(), []) == (None, None)

    def test_completed_job_is_finished(self):
        assert batch_outcome(job(("Complete", "True")), []) == ("finished", None)

    def test_failed_job_reports_the_runner_summary(self):
        summary = {"status": "failed", "message": "7 of 10 inputs failed (threshold 10%)",
                   "errors": [{"input": "a.jpg", "error": "HTTP 500"}, {"input": "b.jpg", "error": "timeout"}]}
        state, cause = batch_outcome(job(("Failed", "True"), message="BackoffLimitExceeded"),
                                     [runner_pod("r-1", json.dumps(summary))])
        assert state == "failed"
        assert cause.reason == "BatchFailed"
        assert "7 of 10 inputs failed" in cause.message and "a.jpg: HTTP 500" in cause.message

    def test_failed_job_without_a_summary_uses_the_job_condition(self):
        state, cause = batch_outcome(job(("Failed", "True"), message="Job has reached the specified backoff limit"),
                                     [])
        assert state == "failed" and "backoff limit" in cause.message


class TestRunnerSummary:
    def test_a_crash_log_tail_is_passed_through(self):
        assert runner_summary([runner_pod("r", "Traceback ...\nValueError: bad rule\n")]).endswith("bad rule")

    def test_latest_pod_wins(self):
        pods = [runner_pod("r-a", json.dumps({"message": "old"})), runner_pod("r-b", json.dumps({"message": "new"}))]
        assert runner_summary(pods) == "new"
