"""What the gateway counts: Prometheus series per service and model, and invocation totals per service id.

Every request that reaches a known service counts as an invocation (refusals such as 401 or 429
included: the service was called); a 5xx, a timeout or a refused connection counts as a failure
(GATEWAY.md, "Counting"). A client that hangs up is recorded with code 499 and is not a failure.
`counts()` is the body of GET /-/counts, which the operator reads to write status.invocationTimes
and status.failedTimes: {"<serviceId>": {"invocationTimes": N, "failedTimes": M}}, cumulative since
this gateway process started (the X-Gateway-Instance / X-Gateway-Started headers say which process).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

CLIENT_CLOSED = 499
NO_MODEL = "none"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80)


def is_failure(status: int) -> bool:
    return 500 <= status < 600


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
        self.unrouted = Counter("inference_gateway_unrouted_total", "Requests for no known service, by code.",
                                ["code"], registry=self.registry)
        self._counts: dict[str, list[int]] = {}
        self.instance = uuid.uuid4().hex
        self.started = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        self.start_time = time.time()

    def observe(self, service_id: str, namespace: str, service: str, model: str | None, status: int,
                seconds: float | None, failed: bool | None = None) -> None:
        """Count one request; `failed` overrides the status (a stream that broke after its headers)."""
        failed = is_failure(status) if failed is None else failed
        model = model or NO_MODEL
        self.requests.labels(namespace, service, model, str(status)).inc()
        if failed:
            self.failures.labels(namespace, service, model).inc()
        if seconds is not None:
            self.latency.labels(namespace, service, model).observe(seconds)
        totals = self._counts.setdefault(service_id, [0, 0])
        totals[0] += 1
        totals[1] += int(failed)

    def observe_unrouted(self, status: int) -> None:
        self.unrouted.labels(str(status)).inc()

    def counts(self) -> dict[str, dict[str, int]]:
        return {sid: {"invocationTimes": n, "failedTimes": f} for sid, (n, f) in self._counts.items()}

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
