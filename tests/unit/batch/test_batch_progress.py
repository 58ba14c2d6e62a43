"""progress.py: accounting, the failure threshold, the progress file and the termination message."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from inference_operator.batch.progress import MAX_ERRORS, TERMINATION_LIMIT, Progress, write_atomic

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class TestProgress:
    def test_counts_and_file_shape(self) -> None:
        progress = Progress(total=4, max_failures_percent=25)
        progress.record("a.txt")
        progress.record("b.txt", "HTTP 500: boom")
        progress.record("c.txt", skipped=True)
        assert progress.to_dict(NOW) == {
            "status": "running", "total": 4, "done": 3, "succeeded": 2, "failed": 1, "skipped": 1,
            "progress": 75, "maxFailuresPercent": 25, "errors": [{"input": "b.txt", "error": "HTTP 500: boom"}],
            "message": "3 of 4 inputs done, 1 failed; first errors: b.txt: HTTP 500: boom",
            "updatedAt": "2026-01-02T03:04:05Z",
        }

    @pytest.mark.parametrize(("total", "failed", "percent", "code"), [
        (10, 0, 10, 0), (10, 1, 10, 0), (10, 2, 10, 1), (3, 1, 0, 1), (3, 3, 100, 0), (1, 0, 0, 0),
    ])
    def test_threshold(self, total: int, failed: int, percent: float, code: int) -> None:
        progress = Progress(total=total, max_failures_percent=percent)
        for i in range(total):
            progress.record(f"in{i}", "err" if i < failed else None)
        assert progress.finish() == code
        assert progress.status == ("failed" if code else "succeeded")
        assert progress.percent == 100

    def test_failed_message_names_share_and_first_errors(self) -> None:
        progress = Progress(total=4, max_failures_percent=10)
        for i in range(4):
            progress.record(f"f{i}", f"HTTP 500: e{i}" if i else None)
        assert progress.finish() == 1
        assert progress.message == ("3 of 4 inputs failed (75% > 10% allowed); first errors: "
                                    "f1: HTTP 500: e1; f2: HTTP 500: e2; f3: HTTP 500: e3")

    def test_keeps_only_the_first_errors(self) -> None:
        progress = Progress(total=50)
        for i in range(50):
            progress.record(f"x{i}", "e" * 1000)
        assert len(progress.errors) == MAX_ERRORS and progress.errors[0]["input"] == "x0"
        assert len(progress.errors[0]["error"]) == 300

    def test_termination_message_fits_the_kubelet_limit(self) -> None:
        progress = Progress(total=50)
        for i in range(50):
            progress.record("k" * 2000 + str(i), "e" * 1000)
        progress.finish()
        text = progress.termination_message()
        assert len(text.encode()) <= TERMINATION_LIMIT
        data = json.loads(text)
        assert data["status"] == "failed" and data["failed"] == 50 and "updatedAt" not in data

    def test_fail_without_running(self) -> None:
        progress = Progress(total=0)
        assert progress.fail("no inputs") == 2
        assert progress.to_dict()["status"] == "failed" and progress.to_dict()["message"] == "no inputs"


def test_write_atomic(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "progress.json"
    write_atomic(target, "{}")
    write_atomic(target, '{"a": 1}')
    assert target.read_text() == '{"a": 1}' and sorted(p.name for p in target.parent.iterdir()) == ["progress.json"]
