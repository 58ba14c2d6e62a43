"""Status from observed children: pure functions, no API calls (KServe-style PropagateStatus)."""

from inference_operator.status.causes import Cause, model_cause, pod_cause
from inference_operator.status.summary import Observed, ParentMeta, summarize

__all__ = ["Cause", "Observed", "ParentMeta", "model_cause", "pod_cause", "summarize"]
