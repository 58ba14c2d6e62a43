"""Progress of a batch run: counting, the failure threshold, the progress file, the termination message.

The progress file (``--progress-file``) is rewritten, atomically, after every input and at the end:

    {"status": "running" | "succeeded" | "failed", "total": 10, "done": 7, "succeeded": 6,
     "failed": 1, "skipped": 0, "progress": 70, "maxFailuresPercent": 10.0,
     "errors": [{"input": "b.txt", "error": "HTTP 500: model failed"}],
     "message": "7 of 10 inputs done, 1 failed", "updatedAt": "2026-01-01T00:00:00Z"}

`done` = succeeded + failed (skipped inputs, already written by an earlier attempt, count as
succeeded too); `progress` = 100 x done / total, rounded down; `errors` keeps the first MAX_ERRORS.
The run fails when failed x 100 > maxFailuresPercent x total (ModelArts reports a batch service
failed when inputs fail; the threshold lets a run tolerate a few). The same JSON, smaller (first errors only,
at most 4096 bytes: the kubelet's limit), becomes the container's termination message, which the
operator can read from the Pod without access to the volume.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from inference_operator.api.conventions import rfc3339

MAX_ERRORS = 10
MESSAGE_ERRORS = 3
TERMINATION_LIMIT = 4096
_ERROR_CHARS = 300


class RunState(StrEnum):
    """The progress file's `status`: the batch run's own vocabulary, not the service's states."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass
class Progress:
    """Counts of one run; `finish` decides success against the threshold."""

    total: int
    max_failures_percent: float = 10.0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    status: RunState = RunState.RUNNING
    message: str = ""
    errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    @property
    def percent(self) -> int:
        return 100 if self.total <= 0 else min(100, self.done * 100 // self.total)

    def record(self, key: str, error: str | None = None, *, skipped: bool = False) -> None:
        """Count one finished input: error None = success."""
        if error is None:
            self.succeeded += 1
            self.skipped += int(skipped)
            return
        self.failed += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"input": key, "error": error[:_ERROR_CHARS]})

    def over_threshold(self) -> bool:
        """More inputs failed than maxFailuresPercent of the total allows."""
        return self.failed * 100 > self.max_failures_percent * self.total

    def _first_errors(self) -> str:
        return "; ".join(f"{e['input']}: {e['error']}" for e in self.errors[:MESSAGE_ERRORS])

    def summary(self) -> str:
        """One line for humans (and for the service's errorMsg)."""
        text = f"{self.done} of {self.total} inputs done, {self.failed} failed"
        if self.failed:
            text += f"; first errors: {self._first_errors()}"
        return text

    def finish(self) -> int:
        """Final status and message; the process exit code (0 ok, 1 too many failures)."""
        share = 0.0 if self.total <= 0 else self.failed * 100 / self.total
        if self.over_threshold():
            self.status = RunState.FAILED
            self.message = (f"{self.failed} of {self.total} inputs failed ({share:.4g}% > "
                            f"{self.max_failures_percent:g}% allowed); first errors: {self._first_errors()}")
            return 1
        self.status = RunState.SUCCEEDED
        self.message = self.summary()
        return 0

    def fail(self, message: str) -> int:
        """The run could not go on at all (no inputs, model unreachable, bad rule): exit code 2."""
        self.status, self.message = RunState.FAILED, message
        return 2

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """The progress file's JSON; `now` is a parameter so the shape is testable."""
        data: dict[str, Any] = {
            "status": self.status, "total": self.total, "done": self.done, "succeeded": self.succeeded,
            "failed": self.failed, "skipped": self.skipped, "progress": self.percent,
            "maxFailuresPercent": self.max_failures_percent, "errors": list(self.errors),
            "message": self.message or self.summary(),
        }
        if now is not None:
            data["updatedAt"] = rfc3339(now)
        return data

    def termination_message(self) -> str:
        """Compact JSON within the kubelet's 4096-byte limit: fewer errors, then a shorter message."""
        data = self.to_dict()
        data["errors"] = data["errors"][:MESSAGE_ERRORS]
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        while len(text.encode()) > TERMINATION_LIMIT and data["errors"]:
            data["errors"].pop()
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        if len(text.encode()) > TERMINATION_LIMIT:
            data["message"] = data["message"][:1000]
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        return text


def write_atomic(path: Path, text: str) -> None:
    """Write a whole file or nothing: readers never see half a JSON document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
