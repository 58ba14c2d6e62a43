"""Status from observed children: pure functions, no API calls (KServe-style PropagateStatus)."""

from inference_operator.status.causes import Cause, pod_cause
from inference_operator.status.summary import ParentMeta, summarize
from inference_operator.status.views import Observed

__all__ = ["Cause", "Observed", "ParentMeta", "pod_cause", "summarize"]
