"""Per-gateway limits, their per-service overrides (annotations) and the rate limiter.

The cloud's gateway caps a request body at 12 MB and a prediction at 40 s (seed 000: "the prediction
duration of each request does not exceed 40 seconds"). Both are gateway flags here, and a service may
change them for itself with annotations on its InferenceService, so one slow model does not force a
long timeout on every service:

    inference.io/gateway-timeout-seconds: "120"     # 504 after this long without an answer
    inference.io/gateway-body-limit-mb: "50"         # 413 above this request body size
    inference.io/gateway-rate-limit-rps: "20"        # 429 above this many requests per second (per replica)
    inference.io/gateway-apikey-auth: "true"         # accept `apikey: <AppKey>` (simple authentication)
    inference.io/gateway-unsigned-payload: "false"   # refuse signatures with X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD

A service author may lower the body limit and the timeout, and raise them only up to the maxima the
cluster admin gives the gateway (--max-body-limit-mb, --max-timeout-seconds; by default the defaults
themselves): one tenant cannot make the shared gateway buffer 1 GiB or hold a connection for an hour.
A value that is not a positive number (or true/false) is ignored, and the gateway default applies.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

log = logging.getLogger(__name__)

MB = 1024 * 1024
TIMEOUT_ANNOTATION = "inference.io/gateway-timeout-seconds"
BODY_LIMIT_ANNOTATION = "inference.io/gateway-body-limit-mb"
RATE_LIMIT_ANNOTATION = "inference.io/gateway-rate-limit-rps"
APIKEY_ANNOTATION = "inference.io/gateway-apikey-auth"
UNSIGNED_PAYLOAD_ANNOTATION = "inference.io/gateway-unsigned-payload"
MAX_TIMEOUT_SECONDS = 3600.0
MAX_BODY_LIMIT_MB = 1024.0


@dataclass(frozen=True)
class Limits:
    """What one request may use: body bytes and seconds to the answer (and between streamed chunks)."""

    body_limit_bytes: int = 12 * MB
    timeout_seconds: float = 40.0
    max_body_limit_bytes: int | None = None  # the admin's ceiling for annotations (None: the default)
    max_timeout_seconds: float | None = None
    client_seconds: float = 10.0  # the longest pause allowed between two chunks of a request body

    @property
    def body_ceiling(self) -> int:
        return max(self.body_limit_bytes, self.max_body_limit_bytes or 0)

    @property
    def timeout_ceiling(self) -> float:
        return max(self.timeout_seconds, self.max_timeout_seconds or 0.0)


@dataclass(frozen=True)
class ServiceOptions:
    """A service's own gateway settings, read from its annotations; None means the gateway default."""

    timeout_seconds: float | None = None
    body_limit_mb: float | None = None
    rate_limit_rps: float | None = None
    apikey_auth: bool = False
    unsigned_payload: bool = True

    def limits(self, default: Limits) -> Limits:
        """The gateway default with this service's overrides applied, each capped by the admin's maximum."""
        body = min(int(self.body_limit_mb * MB), default.body_ceiling) if self.body_limit_mb \
            else default.body_limit_bytes
        timeout = min(self.timeout_seconds, default.timeout_ceiling) if self.timeout_seconds \
            else default.timeout_seconds
        if body == default.body_limit_bytes and timeout == default.timeout_seconds:
            return default
        return replace(default, body_limit_bytes=body, timeout_seconds=timeout)


def _positive(annotations: Mapping[str, str], key: str, ceiling: float) -> float | None:
    raw = annotations.get(key)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (0 < value <= ceiling):
        log.warning("ignoring annotation %s=%r: not a number in (0, %s]", key, raw, ceiling)
        return None
    return value


def options_from_annotations(annotations: Mapping[str, str] | None) -> ServiceOptions:
    """ServiceOptions of an InferenceService's metadata.annotations (bad values ignored, logged)."""
    annotations = annotations or {}
    return ServiceOptions(
        timeout_seconds=_positive(annotations, TIMEOUT_ANNOTATION, MAX_TIMEOUT_SECONDS),
        body_limit_mb=_positive(annotations, BODY_LIMIT_ANNOTATION, MAX_BODY_LIMIT_MB),
        rate_limit_rps=_positive(annotations, RATE_LIMIT_ANNOTATION, 1e6),
        apikey_auth=annotations.get(APIKEY_ANNOTATION, "").strip().lower() == "true",
        unsigned_payload=annotations.get(UNSIGNED_PAYLOAD_ANNOTATION, "").strip().lower() != "false",
    )


class TokenBucket:
    """`rate` requests per second on average, bursts up to max(1, rate); `clock` is injectable for tests."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.rate, self.capacity, self.clock = rate, max(1.0, rate), clock
        self.tokens, self.stamp = self.capacity, clock()

    def take(self) -> bool:
        """Spend one token if there is one; False means: over the limit, answer 429."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class RateLimiters:
    """One bucket per service id, rebuilt when the service's rate changes."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.buckets: dict[str, TokenBucket] = {}

    def allow(self, service_id: str, rate: float | None) -> bool:
        if not rate:
            self.buckets.pop(service_id, None)
            return True
        bucket = self.buckets.get(service_id)
        if bucket is None or bucket.rate != rate:
            bucket = self.buckets[service_id] = TokenBucket(rate, self.clock)
        return bucket.take()
