"""What the gateway counts: Prometheus series per service and model, and invocation totals per service id.

An invocation is a request that passed authentication (and the rate limit) and was sent to a model:
refusals (401, 403, 413, 429, ...) and requests for a service with no ready instance are not counted,
so nobody without credentials can move a service's counts. A failure is an invocation whose model,
or the way to it, failed: refused connection, timeout, a 5xx from the model, a response that broke
off (GATEWAY.md, "Counting"). A client's fault (slow or oversize upload, hanging up: code 499) is not
a failure. The Prometheus request counter records every request to a known service by code.
`counts()` is the body of GET /-/counts, which the operator reads to write status.invocationTimes
and status.failedTimes, and to tell idle models from busy ones (scale to zero):

    {"<serviceId>": {"invocationTimes": N, "failedTimes": M,
                     "models": {"<model entry name>": {"requests": R, "inflight": K}}}}

N, M and R cumulative since this gateway process started (the X-Gateway-Instance / X-Gateway-Started
headers say which process). R counts the requests (past auth and the rate limit) the gateway sent to
the model or held for it while it woke, plus the ones whose weighted pick landed on it while it slept
(served by another model: demand that wakes it); K is how many are held for it or in flight to it now.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from inference_operator.api.conventions import rfc3339

CLIENT_CLOSED = 499
NO_MODEL = "none"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80)
HOLD_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640, 1800, 3600)
REQUESTS, INFLIGHT = 0, 1  # the slots of a model's activity counter


class GatewayMetrics:
    """Collectors in a registry of their own (several gateways can live in one test process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["namespace", "service", "model"]
        self.requests = Counter("inference_gateway_requests_total", "Requests per service, model and HTTP code.",
                                [*labels, "code"], registry=self.registry)
        self.failures = Counter("inference_gateway_failures_total", "Requests that failed: 5xx, timeout, "
                                "refused connection.", labels, registry=self.registry)
        self.latency = Histogram("inference_gateway_request_duration_seconds", "Time to the last byte of the "
                                 "response.", labels, buckets=LATENCY_BUCKETS, registry=self.registry)
        self.held = Gauge("inference_gateway_held_requests", "Requests held now for a model that scaled to zero, "
                          "until it wakes.", labels, registry=self.registry)
        self.hold_time = Histogram("inference_gateway_hold_seconds", "How long held requests waited for their "
                                   "model to wake (to being forwarded, a timeout or the client leaving).", labels,
                                   buckets=HOLD_BUCKETS, registry=self.registry)
        self.adapter_loads = Counter("inference_gateway_adapter_loads_total", "Loads of a LoRA adapter the gateway "
                                     "asked an engine for, by result (loaded; already: the engine held it; refused; "
                                     "unanswered).", [*labels, "adapter", "result"], registry=self.registry)
        self.adapter_waiting = Gauge("inference_gateway_adapter_waiting_requests", "Requests waiting now for their "
                                     "LoRA adapter: its load (reason load), or an engine with a free slot (room).",
                                     [*labels, "reason"], registry=self.registry)
        self.adapter_wait = Histogram("inference_gateway_adapter_wait_seconds", "How long requests that waited for "
                                      "their LoRA adapter (its load, or room) waited; _count: the requests.",
                                      [*labels, "reason"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.unrouted = Counter("inference_gateway_unrouted_total", "Requests for no known service, by code.",
                                ["code"], registry=self.registry)
        self._counts: dict[str, list[int]] = {}
        self._activity: dict[str, dict[str, list[int]]] = {}  # service id -> model -> [requests, inflight]
        self._children: dict[tuple[Any, ...], Any] = {}
        self.instance = uuid.uuid4().hex
        self.started = rfc3339(datetime.now(UTC))
        self.start_time = time.time()

    # Seven parameters: one request's facts as the request handler has them at its end, most of them labels.
    def observe(self, service_id: str, namespace: str, service: str, model: str | None, status: int,
                seconds: float | None, failed: bool = False) -> None:
        """Record one request to a known service; it is an invocation only if it was sent to `model`."""
        self._child(self.requests, namespace, service, model or NO_MODEL, str(status)).inc()
        if model is None:
            return
        if failed:
            self._child(self.failures, namespace, service, model).inc()
        if seconds is not None:
            self._child(self.latency, namespace, service, model).observe(seconds)
        totals = self._counts.setdefault(service_id, [0, 0])
        totals[0] += 1
        totals[1] += int(failed)

    def _child(self, metric: Any, *labels: str) -> Any:
        """metric.labels(*labels), cached: prometheus_client's own lookup costs more than the rest of a request's
        bookkeeping."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def activity(self, service_id: str, model: str) -> list[int]:
        """The model's [requests, inflight] counter, bumped in place by the request path (no allocation
        once it exists)."""
        models = self._activity.get(service_id)
        if models is None:
            models = self._activity[service_id] = {}
        slot = models.get(model)
        if slot is None:
            slot = models[model] = [0, 0]
        return slot

    def hold_series(self, namespace: str, service: str, model: str) -> tuple[Any, Any]:
        """The held-requests gauge and the hold-time histogram of one model."""
        return self._child(self.held, namespace, service, model), self._child(self.hold_time, namespace, service, model)

    def adapter_series(self, namespace: str, service: str, model: str, reason: str) -> tuple[Any, Any]:
        """The waiting-requests gauge and the wait-time histogram of one model's adapter waits for `reason`."""
        return (self._child(self.adapter_waiting, namespace, service, model, reason),
                self._child(self.adapter_wait, namespace, service, model, reason))

    def observe_unrouted(self, status: int) -> None:
        self.unrouted.labels(str(status)).inc()

    def counts(self) -> dict[str, dict[str, Any]]:
        """The body of GET /-/counts (module docstring)."""
        out: dict[str, dict[str, Any]] = {}
        for sid in self._counts.keys() | self._activity.keys():
            n, f = self._counts.get(sid, (0, 0))
            models = {name: {"requests": r, "inflight": k} for name, (r, k) in self._activity.get(sid, {}).items()}
            out[sid] = {"invocationTimes": n, "failedTimes": f, "models": models}
        return out

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
