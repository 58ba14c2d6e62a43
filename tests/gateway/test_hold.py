"""Models that scale to zero, through the gateway: held requests, wake demand, per-model activity in /-/counts.

A sleeping model is one with scaling.minReplicas 0 and no ready endpoint. The test plays the operator's
part by adding the model's EndpointSlice to the table while a request waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from fakes import until
from inference_operator.gateway.core import Gateway
from inference_operator.gateway.limits import Limits
from inference_operator.gateway.routes import RouteTable
from inference_operator.gateway.server import build_app, start_site

from .conftest import NS, GatewayUnderTest, counted, service_body, slice_body

UID = "0b6f4a8e-9999-4c1e-9d51-5a0c7d9e0001"
NAME = "sleepy"


def held(gateway: GatewayUnderTest, model: str = "v1") -> float:
    return gateway.gw.metrics.registry.get_sample_value(
        "inference_gateway_held_requests", {"namespace": NS, "service": NAME, "model": model}) or 0.0


def hold_count(gateway: GatewayUnderTest, model: str = "v1") -> float:
    return gateway.gw.metrics.registry.get_sample_value(
        "inference_gateway_hold_seconds_count", {"namespace": NS, "service": NAME, "model": model}) or 0.0


def activity(gateway: GatewayUnderTest, model: str = "v1") -> dict[str, int]:
    return gateway.gw.metrics.counts().get(UID, {}).get("models", {}).get(model, {"requests": 0, "inflight": 0})


def sleepy_service(gateway: GatewayUnderTest, models: list[tuple[str, int]] | None = None,
                   scale_to_zero: tuple[str, ...] = ("v1",), **kwargs: Any) -> None:
    gateway.table.upsert_service(service_body(NAME, UID, models or [("v1", 100)], scale_to_zero=scale_to_zero,
                                              **kwargs))


def wake(gateway: GatewayUnderTest, model: str, port: int) -> None:
    """What the operator's scale-up ends in: a ready endpoint in the model's EndpointSlice."""
    gateway.table.upsert_slice(slice_body(NAME, model, ["127.0.0.1"], port))


async def post(gateway: GatewayUnderTest, path: str = "/predict") -> tuple[int, dict[str, Any]]:
    async with gateway.http.post(gateway.infer_url(UID, path), data=b'{"x": 1}') as resp:
        return resp.status, await resp.json()


async def test_a_request_is_held_until_the_model_wakes_then_answered_by_it(gateway, backends, caplog):
    sleepy_service(gateway)
    caplog.set_level(logging.INFO, logger="inference_operator.gateway.hold")
    first = asyncio.create_task(post(gateway))
    second = asyncio.create_task(post(gateway))
    await until(lambda: held(gateway) == 2, "two requests held")
    assert activity(gateway) == {"requests": 2, "inflight": 2}
    assert not first.done()
    wake(gateway, "v1", backends["v1"].port)
    for task in (first, second):
        status, echo = await asyncio.wait_for(task, 5)
        assert (status, echo["server"], echo["body"]) == (200, "v1", '{"x": 1}')
    async with gateway.http.get(gateway.url + "/-/counts") as resp:
        assert await resp.json() == {UID: counted(2, 0, v1=2)}
    assert held(gateway) == 0 and hold_count(gateway) == 2
    wakes = [r for r in caplog.records if "scaled to zero" in r.getMessage()]
    assert len(wakes) == 1, wakes  # one line per wake, not per request


async def test_a_held_request_times_out_with_the_contracts_504(gateway):
    sleepy_service(gateway, annotations={"inference.io/gateway-timeout-seconds": "0.5"})
    started = time.monotonic()
    async with gateway.http.post(gateway.infer_url(UID, "/predict"), data=b"{}") as resp:
        assert resp.status == 504
        body = await resp.json()
    assert time.monotonic() - started >= 0.5
    assert body["error_code"] == "ModelArts.4503" and "waking" in body["error_msg"]
    assert gateway.gw.metrics.counts() == {UID: counted(0, 0, v1=1)}  # demand, not an invocation
    assert held(gateway) == 0 and hold_count(gateway) == 1


async def test_a_client_that_hangs_up_while_held_is_no_longer_in_flight(gateway):
    sleepy_service(gateway, annotations={"inference.io/gateway-timeout-seconds": "10"})
    reader, writer = await asyncio.open_connection("127.0.0.1", int(gateway.url.rsplit(":", 1)[1]))
    writer.write(f"GET /v1/infers/{UID}/predict HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    await until(lambda: activity(gateway)["inflight"] == 1, "the request to be held")
    writer.close()
    await until(lambda: activity(gateway)["inflight"] == 0, "the hang-up to end the hold")
    assert held(gateway) == 0 and gateway.gw.holds.held == 0
    assert activity(gateway)["requests"] == 1


async def test_a_ready_model_serves_at_once_while_demand_wakes_the_sleeping_one(gateway, backends):
    sleepy_service(gateway, [("v1", 50), ("v2", 50)], scale_to_zero=("v2",))
    wake(gateway, "v1", backends["v1"].port)
    results = await asyncio.gather(*(post(gateway) for _ in range(40)))
    assert {(status, echo["server"]) for status, echo in results} == {(200, "v1")}
    counts = gateway.gw.metrics.counts()[UID]
    assert counts["invocationTimes"] == 40 and counts["models"]["v1"] == {"requests": 40, "inflight": 0}
    assert counts["models"]["v2"]["inflight"] == 0 and 5 <= counts["models"]["v2"]["requests"] <= 35
    assert hold_count(gateway, "v2") == 0


async def test_a_request_held_for_one_model_goes_to_another_that_gets_ready_first(gateway, backends):
    sleepy_service(gateway, [("v1", 50), ("v2", 50)], scale_to_zero=("v1", "v2"))
    task = asyncio.create_task(post(gateway))
    await until(lambda: held(gateway, "v1") + held(gateway, "v2") == 1, "the request to be held")
    waited, other = ("v1", "v2") if held(gateway, "v1") else ("v2", "v1")
    wake(gateway, other, backends[other].port)
    status, echo = await asyncio.wait_for(task, 5)
    assert (status, echo["server"]) == (200, other)
    assert gateway.gw.metrics.counts()[UID] == {"invocationTimes": 1, "failedTimes": 0, "models": {
        waited: {"requests": 1, "inflight": 0}, other: {"requests": 0, "inflight": 0}}}


async def test_a_service_stopped_while_a_request_is_held_refuses_it(gateway):
    sleepy_service(gateway)
    task = asyncio.create_task(post(gateway))
    await until(lambda: held(gateway) == 1, "the request to be held")
    sleepy_service(gateway, stopped=True)
    status, body = await asyncio.wait_for(task, 5)
    assert (status, body["error_code"]) == (400, "ModelArts.4203")
    assert activity(gateway) == {"requests": 1, "inflight": 0} and held(gateway) == 0


async def test_a_service_deleted_while_a_request_is_held_is_404(gateway):
    sleepy_service(gateway)
    task = asyncio.create_task(post(gateway))
    await until(lambda: held(gateway) == 1, "the request to be held")
    gateway.table.remove_service(service_body(NAME, UID, [("v1", 100)]))
    status, body = await asyncio.wait_for(task, 5)
    assert (status, body["error_code"]) == (404, "ModelArts.4204")
    assert activity(gateway)["inflight"] == 0 and held(gateway) == 0


async def test_a_service_without_models_that_scale_to_zero_still_answers_503_at_once(gateway):
    """Holding is for services with a sleeping model only: the other one refuses as ever while a request waits."""
    plain = "0b6f4a8e-9999-4c1e-9d51-5a0c7d9e0002"
    gateway.table.upsert_service(service_body("plain", plain, [("v1", 100)]))
    sleepy_service(gateway)
    task = asyncio.create_task(post(gateway))
    await until(lambda: held(gateway) == 1, "the sleepy service's request to be held")
    async with gateway.http.post(gateway.infer_url(plain, "/predict"), data=b"{}") as resp:
        assert (resp.status, (await resp.json())["error_code"]) == (503, "ModelArts.4302")
    assert plain not in gateway.gw.metrics.counts() and not task.done()
    task.cancel()


@pytest.fixture
async def capped() -> AsyncIterator[GatewayUnderTest]:
    """A gateway that holds at most one request."""
    gw = Gateway(RouteTable(), limits=Limits(timeout_seconds=10.0), max_held_requests=1)
    runner, port = await start_site(build_app(gw, with_metrics=True), "127.0.0.1", 0)
    async with aiohttp.ClientSession() as http:
        yield GatewayUnderTest(gw, f"http://127.0.0.1:{port}", http, [runner])
    await runner.cleanup()


async def test_over_the_cap_of_held_requests_is_503(capped, backends):
    sleepy_service(capped)
    first = asyncio.create_task(post(capped))
    await until(lambda: held(capped) == 1, "the first request to be held")
    status, body = await post(capped)
    assert (status, body["error_code"]) == (503, "ModelArts.4302") and "waking" in body["error_msg"]
    wake(capped, "v1", backends["v1"].port)
    assert (await asyncio.wait_for(first, 5))[0] == 200
    assert capped.gw.metrics.counts() == {UID: counted(1, 0, v1=2)}  # the refused one still asked for v1


async def test_the_services_timeout_bounds_the_whole_request_its_wait_for_the_wake_included(gateway, backends):
    """Timeout 1.5 s: held 0.7 s, the model then takes 1.2 s: 504 at about 1.5 s, not an answer at 1.9 s."""
    sleepy_service(gateway, annotations={"inference.io/gateway-timeout-seconds": "1.5"})
    started = time.monotonic()
    request = asyncio.create_task(post(gateway, "/slow?seconds=1.2"))
    await until(lambda: held(gateway) == 1 and time.monotonic() - started >= 0.7, "a request held for 0.7 s")
    wake(gateway, "v1", backends["v1"].port)
    status, body = await asyncio.wait_for(request, 5)
    took = time.monotonic() - started
    assert (status, body["error_code"]) == (504, "ModelArts.4503")
    assert 1.4 <= took < 1.85
