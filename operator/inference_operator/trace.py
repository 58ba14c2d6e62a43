"""Moments of a service's way through the operator, for the latency benchmark (hack/latency_trace.py).

Off unless ``INFERENCE_OPERATOR_TRACE=1``: then each stage of a service (its watch event parsed, kopf's handler
called, its pass submitted and started, each request queued at the connections, sent and answered) is one log
line ``TRACE <namespace>/<service> <stage> <monotonic seconds>``. The clock is CLOCK_MONOTONIC, the
benchmark client's on the same machine, so a trace lines up with the client's own moments (create returned,
Deployment seen, pods ready, status `running`). Off, a mark costs one attribute read.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("inference_operator.trace")
ENABLED = os.environ.get("INFERENCE_OPERATOR_TRACE", "") == "1"
SERVICE_LABEL = "inference.io/service"  # builders.labels.SERVICE_LABEL (this module imports nothing of ours)


def mark(namespace: str | None, name: str | None, stage: str) -> None:
    if ENABLED:
        log.warning("TRACE %s/%s %s %.6f", namespace or "", name or "", stage, time.monotonic())


def mark_child(obj: Mapping[str, Any], stage: str) -> None:
    """A mark under the service a child (a Deployment, a pod, a Service) belongs to."""
    if ENABLED:
        meta = obj.get("metadata") or {}
        mark(meta.get("namespace"), (meta.get("labels") or {}).get(SERVICE_LABEL, meta.get("name")), stage)
