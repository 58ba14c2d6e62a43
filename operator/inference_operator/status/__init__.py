"""Status from observed children: pure functions, no API calls (KServe-style PropagateStatus)."""

from inference_operator.status.causes import Cause, pod_cause
from inference_operator.status.summary import Observed, ParentMeta, summarize

__all__ = ["Cause", "Observed", "ParentMeta", "pod_cause", "summarize"]
