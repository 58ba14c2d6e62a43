"""Limits: annotation overrides and the token bucket."""

from __future__ import annotations

import pytest

from inference_operator.gateway.limits import MB, Limits, RateLimiters, ServiceOptions, options_from_annotations


@pytest.mark.parametrize(("annotations", "expected"), [
    ({}, ServiceOptions()),
    ({"inference.io/gateway-timeout-seconds": "120"}, ServiceOptions(timeout_seconds=120)),
    ({"inference.io/gateway-body-limit-mb": "0.5"}, ServiceOptions(body_limit_mb=0.5)),
    ({"inference.io/gateway-rate-limit-rps": "20"}, ServiceOptions(rate_limit_rps=20)),
    ({"inference.io/gateway-apikey-auth": "True"}, ServiceOptions(apikey_auth=True)),
    ({"inference.io/gateway-timeout-seconds": "-1", "inference.io/gateway-body-limit-mb": "lots",
      "inference.io/gateway-rate-limit-rps": "nan", "inference.io/gateway-apikey-auth": "yes"}, ServiceOptions()),
    ({"inference.io/gateway-timeout-seconds": "99999"}, ServiceOptions()),
])
def test_options_from_annotations(annotations, expected):
    assert options_from_annotations(annotations) == expected


def test_overrides_apply_over_the_gateway_default():
    default = Limits(body_limit_bytes=12 * MB, timeout_seconds=40)
    assert ServiceOptions().limits(default) == default
    assert ServiceOptions(timeout_seconds=5, body_limit_mb=1).limits(default) == Limits(MB, 5)


def test_token_bucket():
    now = [0.0]
    limiters = RateLimiters(lambda: now[0])
    assert [limiters.allow("s", 2) for _ in range(3)] == [True, True, False]
    now[0] += 0.5
    assert limiters.allow("s", 2) and not limiters.allow("s", 2)
    assert all(limiters.allow("other", None) for _ in range(100))
    assert limiters.allow("s", 5)  # a new rate is a new bucket
