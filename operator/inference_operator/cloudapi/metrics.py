"""Prometheus collectors of the cloud API server (served on --metrics-port /metrics)."""

from __future__ import annotations

from prometheus_client import Counter

REQUESTS = Counter("inference_cloud_api_requests_total", "Requests answered, by dialect and HTTP status.",
                   ["dialect", "status"])
