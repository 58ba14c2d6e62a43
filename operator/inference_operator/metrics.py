"""Prometheus collectors of the operator (served on /metrics by __main__)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("inference_operator_reconciles_total", "Reconcile passes by result.", ["result"])
RECONCILE_SECONDS = Histogram("inference_operator_reconcile_duration_seconds", "Duration of one reconcile pass.",
                              buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
API_WRITES = Counter("inference_operator_api_writes_total", "Writes sent to the Kubernetes API.", ["kind", "verb"])
API_QUEUE_SECONDS = Histogram("inference_operator_api_queue_seconds", "Time a request queued for one of the "
                              "operator's API connections (children and reads first, then status, then Events).",
                              ["priority"], buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
SERVICES = Gauge("inference_operator_services", "InferenceServices by status.", ["status"])
BACKLOG = Gauge("inference_operator_pending_reconciles", "Services waiting for a reconcile pass.")
INDEXED = Gauge("inference_operator_indexed_objects", "Services and children held in the operator's indices "
                "(watched, slimmed), as the watch streams have shown them.")
WATCH_EVENTS = Counter("inference_operator_watch_events_total", "Objects the operator's watch streams brought "
                       "(listings included) by resource and outcome: handled, unwanted (not the operator's: the "
                       "API server's label selectors should send none), irrelevant (its service is gone).",
                       ["resource", "outcome"])
COALESCED = Counter("inference_operator_coalesced_events_total", "Events folded into a pass already due for "
                    "their service (it runs once with the latest of them).")
EVENTS_DROPPED = Counter("inference_operator_events_dropped_total", "Transition Events not posted: more than "
                         "reconcile.ANNOUNCEMENTS_AT_ONCE were waiting for a connection (status and log still say it).")
COLD_START_SECONDS = Histogram("inference_operator_cold_start_seconds", "From the request that woke an idle "
                               "model (scaled to zero) to its instances being ready.",
                               buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200))
