"""Traffic split by weight, observed over real HTTP: 2000 requests, 70/30 within ±5%, weight 0 gets nothing."""

from __future__ import annotations

import asyncio
from collections import Counter

from .conftest import GatewayUnderTest, service_body, slice_body

UID = "0b6f4a8e-4444-4c1e-9d51-5a0c7d9e0005"
REQUESTS = 2000


async def spread(gateway: GatewayUnderTest, sid: str, n: int = REQUESTS, parallel: int = 25) -> Counter[str]:
    """Which model server answered each of n requests."""
    seen: Counter[str] = Counter()
    gate = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with gate, gateway.http.post(gateway.infer_url(sid, "/predict"), data=b"{}") as resp:
            assert resp.status == 200
            seen[(await resp.json())["server"]] += 1
    await asyncio.gather(*(one() for _ in range(n)))
    return seen


async def test_70_30_split_and_dark_model(gateway, backends):
    """v1 (70) and v2 (30) are served by the v1/v2 model servers; "dark" (weight 0) points at v2's too."""
    gateway.table.upsert_service(service_body("split", UID, [("v1", 70), ("v2", 30), ("dark", 0)]))
    for model, backend in (("v1", "v1"), ("v2", "v2"), ("dark", "v2")):
        gateway.table.upsert_slice(slice_body("split", model, ["127.0.0.1"], backends[backend].port))
    seen = await spread(gateway, UID)
    assert sum(seen.values()) == REQUESTS
    assert abs(seen["v1"] / REQUESTS - 0.70) <= 0.05, seen
    assert abs(seen["v2"] / REQUESTS - 0.30) <= 0.05, seen
    per_model = {s.labels["model"]: s.value for s in gateway.gw.metrics.requests.collect()[0].samples
                 if s.name.endswith("_total")}
    assert per_model.get("dark", 0) == 0
    assert per_model["v2"] == seen["v2"]
    assert gateway.gw.metrics.counts()[UID] == {"invocationTimes": REQUESTS, "failedTimes": 0, "models": {
        "v1": {"requests": seen["v1"], "inflight": 0}, "v2": {"requests": seen["v2"], "inflight": 0}}}


async def test_weight_change_takes_effect_on_the_next_request(gateway, backends):
    body = service_body("split", UID, [("v1", 100), ("v2", 0)])
    gateway.add_service(body, backends)
    assert (await spread(gateway, UID, 50)) == Counter({"v1": 50})
    gateway.table.upsert_service(service_body("split", UID, [("v1", 0), ("v2", 100)]))
    assert (await spread(gateway, UID, 50)) == Counter({"v2": 50})
