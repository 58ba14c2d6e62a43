"""Per-gateway limits, their per-service overrides (annotations) and the rate limiter.

The cloud's gateway caps a request body at 12 MB and a prediction at 40 s (seed 000: "the prediction
duration of each request does not exceed 40 seconds"). Both are gateway flags here, and a service may
change them for itself with annotations on its InferenceService, so one slow model does not force a
long timeout on every service:

    inference.io/gateway-timeout-seconds: "120"     # 504 after this long without an answer
    inference.io/gateway-body-limit-mb: "50"         # 413 above this request body size
    inference.io/gateway-rate-limit-rps: "20"        # 429 above this many requests per second (per replica)
    inference.io/gateway-apikey-auth: "true"         # accept `apikey: <AppKey>` (simple authentication)

A value that is not a positive number (or true/false) is ignored, and the gateway default applies.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

MB = 1024 * 1024
TIMEOUT_ANNOTATION = "inference.io/gateway-timeout-seconds"
BODY_LIMIT_ANNOTATION = "inference.io/gateway-body-limit-mb"
RATE_LIMIT_ANNOTATION = "inference.io/gateway-rate-limit-rps"
APIKEY_ANNOTATION = "inference.io/gateway-apikey-auth"
MAX_TIMEOUT_SECONDS = 3600.0
MAX_BODY_LIMIT_MB = 1024.0


@dataclass(frozen=True)
class Limits:
    """What one request may use: body bytes and seconds to the answer (and between streamed chunks)."""

    body_limit_bytes: int = 12 * MB
    timeout_seconds: float = 40.0


@dataclass(frozen=True)
class ServiceOptions:
    """A service's own gateway settings, read from its annotations; None means the gateway default."""

    timeout_seconds: float | None = None
    body_limit_mb: float | None = None
    rate_limit_rps: float | None = None
    apikey_auth: bool = False

    def limits(self, default: Limits) -> Limits:
        """The gateway default with this service's overrides applied."""
        return Limits(
            body_limit_bytes=int(self.body_limit_mb * MB) if self.body_limit_mb else default.body_limit_bytes,
            timeout_seconds=self.timeout_seconds or default.timeout_seconds,
        )


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
