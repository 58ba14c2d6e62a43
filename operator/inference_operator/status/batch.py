"""How a batch run ended, read from its Job and the runner pods' termination messages.

The runner (python -m inference_operator.batch) ends with a JSON summary as its termination message
({"status", "total", "done", "failed", "errors", "message", ...}); a Job that failed says why there,
or, after a crash, in the log tail that FallbackToLogsOnError puts in the message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from inference_operator.api.conventions import condition_of, is_true
from inference_operator.api.states import ServiceState
from inference_operator.status.causes import Cause


def job_succeeded(job: Mapping[str, Any] | None) -> bool:
    """The Job did its work: `Complete`, or `SuccessCriteriaMet` (a successPolicy met; Kubernetes 1.31+
    says it first and `Complete` only once the remaining pods are gone)."""
    return job is not None and (is_true(job, "Complete") or is_true(job, "SuccessCriteriaMet"))


def runner_summary(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """The last runner pod's own words: its JSON summary's message and first errors, or raw text."""
    for pod in sorted(pods, key=lambda p: p.get("metadata", {}).get("name", ""), reverse=True):
        for container in pod.get("status", {}).get("containerStatuses") or []:
            text: str | None = ((container.get("state") or {}).get("terminated") or {}).get("message")
            if not text:
                continue
            try:
                summary = json.loads(text)
            except ValueError:
                return text.strip()[-1000:]
            errors = "; ".join(f"{e.get('input')}: {e.get('error')}" for e in summary.get("errors", [])[:3])
            return " ".join(part for part in (summary.get("message"), errors and f"first errors: {errors}") if part)
    return None


def batch_outcome(job: Mapping[str, Any] | None, runner_pods: Sequence[Mapping[str, Any]]
                  ) -> tuple[ServiceState | None, Cause | None]:
    """("finished", None) when the Job completed, ("failed", cause) when it gave up, else (None, None)."""
    if job is None:
        return None, None
    if job_succeeded(job):
        return ServiceState.FINISHED, None
    failed = condition_of(job, "Failed")
    if failed is not None and failed.get("status") == "True":
        detail = runner_summary(runner_pods) or failed.get("message") or failed.get("reason") or "the batch run failed"
        return ServiceState.FAILED, Cause("BatchFailed", f"batch run: {detail}")
    return None, None
