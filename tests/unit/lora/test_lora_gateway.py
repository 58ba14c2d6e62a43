"""The gateway's side of LoRA routing (docs/lora.md, "Routing"): adapter affinity (which engines may take a request
for an adapter, or none), its own loads (one per engine and adapter, a backoff after a failed one) against the
simulated engine on loopback, and a request placed after a load or a wait for room."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from enginesim.lora import Adapters
from enginesim.model import Params
from enginesim.server import app as engine_app
from fakes import until
from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.gateway.adapter_loads import AdapterLoads, LoadFailed, LoadResult, Pulse
from inference_operator.gateway.adapter_place import place_adapter
from inference_operator.gateway.adapters import Choice, LoraInfo, SentAdapters, Step, choose
from inference_operator.gateway.core import Gateway
from inference_operator.gateway.engine_metrics import EngineLoads, Reading
from inference_operator.gateway.entries import Endpoint
from inference_operator.gateway.openai import OpenAIError
from inference_operator.gateway.picker import Picker
from inference_operator.gateway.routes import RouteTable

A, B, C = Endpoint("10.0.0.1", 8000), Endpoint("10.0.0.2", 8000), Endpoint("10.0.0.3", 8000)


def lora(running: set[str] = frozenset(), slots: int = 2, held: set[str] | None = None) -> LoraInfo:
    return LoraInfo(frozenset(running), frozenset(), slots, frozenset(held) if held is not None else None)


def test_engines_running_the_adapter_come_first_then_free_slots_and_never_full_ones():
    infos = {A: lora({"x", "y"}), B: lora({"sql"}), C: lora({"z"}, 4)}
    assert choose((A, B, C), "sql", infos.get) == Choice(Step.SEND, (B,))
    assert choose((A, B, C), "new", infos.get) == Choice(Step.SEND, (B, C))  # A's two slots are taken
    full = {e: lora({"x", "y"}) for e in (A, B)}
    assert choose((A, B), "new", full.get) == Choice(Step.HOLD)  # nowhere has room: wait in the gateway
    assert choose((A, B), "new", {A: full[A]}.get) == Choice(Step.SEND, (B,))  # B's metrics unknown: it may


def test_an_adapter_sent_lately_counts_as_running_there_until_its_slots_turn_over():
    recent, two = SentAdapters(), lora()
    recent.note(A, "sql", two)
    idle = {A: two, B: two}
    assert choose((A, B), "sql", idle.get, recent).endpoints == (A,)
    recent.note(A, "x", two)
    recent.note(A, "y", two)  # two slots: sql has made room for x and y
    assert choose((A, B), "sql", idle.get, recent).endpoints == (A, B)


def test_an_engine_lacking_the_adapter_takes_it_only_when_none_holding_it_has_room():
    held = {A: lora(held={"sql"}), B: lora(held=set()), C: lora()}  # C's list not read: it may hold it
    assert choose((A, B, C), "sql", held.get).endpoints == (A, C)
    assert choose((B,), "sql", held.get) == Choice(Step.SEND, (B,))  # loaded there first
    busy = {A: lora({"x", "y"}, held={"sql", "x", "y"}), B: lora(held=set())}
    assert choose((A, B), "sql", busy.get) == Choice(Step.SEND, (B,))  # A holds it but runs two others
    both_full = {A: busy[A], B: lora({"p", "q"}, held={"p", "q"})}
    assert choose((A, B), "sql", both_full.get) == Choice(Step.HOLD)


def test_a_load_running_draws_the_adapters_requests_and_a_failed_one_bars_its_engine():
    lacking = {A: lora(held=set()), B: lora(held=set())}
    assert choose((A, B), "sql", lacking.get, loading={B}) == Choice(Step.SEND, (B,))  # join B's load
    assert choose((A, B), "sql", lacking.get, barred=lambda e: e == A) == Choice(Step.SEND, (B,))
    assert choose((A, B), "sql", lacking.get, barred=lambda e: True) == Choice(Step.BARRED, (A, B))


async def test_a_pulse_wakes_every_waiter_once():
    pulse = Pulse()
    pulse.fire()  # nobody waits: nothing to do
    waiters = [asyncio.create_task(pulse.wait()) for _ in range(3)]
    await until(lambda: len(pulse.waiters) == 3, "the three waiters to wait")
    pulse.fire()
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
    assert not pulse.waiters


@pytest.fixture
async def engine() -> AsyncIterator[tuple[Endpoint, Adapters]]:
    """A simulated vLLM with LoRA on (2 slots) on loopback, its loads taking 0.2 s."""
    adapters = Adapters(max_loras=2, load_seconds=0.0, register_seconds=0.2)
    runner = web.AppRunner(engine_app("base", Params(itl=0.001), adapters))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield Endpoint("127.0.0.1", port), adapters
    await runner.cleanup()


async def test_concurrent_requests_share_one_load_and_already_loaded_counts_as_loaded(engine):
    endpoint, adapters = engine
    loads, results = AdapterLoads(), []
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(loads.ensure(session, endpoint, "sql", "/mnt/adapters/a/sql", 5, results.append)
                               for _ in range(8)))
        assert adapters.load_calls == 1 and adapters.registered == {"sql": "/mnt/adapters/a/sql"}
        assert results == [LoadResult.LOADED] and not loads.flights
        await loads.ensure(session, endpoint, "sql", "/mnt/adapters/a/sql", 5, results.append)  # held already
    assert results == [LoadResult.LOADED, LoadResult.ALREADY]


async def test_a_refused_load_is_not_tried_again_before_its_backoff(engine):
    endpoint, adapters = engine
    now = [100.0]
    loads = AdapterLoads(clock=lambda: now[0])
    async with aiohttp.ClientSession() as session:
        with pytest.raises(LoadFailed) as refused:
            await loads.ensure(session, endpoint, "bad", "/mnt/adapters/a/invalid", 5)
        assert refused.value.result is LoadResult.REFUSED and "No adapter found" in refused.value.reason
        assert loads.barred(endpoint, "bad") and not loads.barred(endpoint, "sql")
        now[0] += 5.0  # policies/adapters.py's first backoff
        assert not loads.barred(endpoint, "bad")
        with pytest.raises(LoadFailed):
            await loads.ensure(session, endpoint, "bad", "/mnt/adapters/a/invalid", 5)
        now[0] += 5.0
        assert loads.barred(endpoint, "bad")  # the second backoff is twice as long
    assert adapters.load_calls == 2


async def test_a_load_slower_than_the_time_left_fails_that_request_and_still_lands(engine):
    endpoint, adapters = engine
    loads = AdapterLoads()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(LoadFailed) as late:
            await loads.ensure(session, endpoint, "sql", "/p/sql", 0.05, bound=5)
        assert late.value.result is LoadResult.UNANSWERED
        await loads.ensure(session, endpoint, "sql", "/p/sql", 5)  # joins the same load, which lands
    assert adapters.load_calls == 1 and "sql" in adapters.registered


def gateway_for(endpoints: list[Endpoint]) -> Gateway:
    table = RouteTable()
    table.upsert_service({"metadata": {"name": "s", "namespace": "n", "uid": "u"}, "spec": {"models": [{
        "name": "m", "modelName": "base", "modelVersion": "1", "runtime": "vllm", "weight": 100,
        "adapters": [{"name": "sql", "source": "pvc://models/adapters/sql"},
                     {"name": "bad", "source": "pvc://models/adapters/invalid"}]}]}})
    table.upsert_slice({"metadata": {"name": "s-m-1", "namespace": "n", "labels": {
        "kubernetes.io/service-name": "s-m"}}, "addressType": "IPv4",
        "endpoints": [{"addresses": [e.host]} for e in endpoints],
        "ports": [{"name": "http", "port": endpoints[0].port}]})
    return Gateway(table, picker=Picker(EngineLoads()), rng=random.Random(1))


def test_the_gateway_loads_from_the_path_the_operator_loads_from():
    body = {"metadata": {"name": "s", "namespace": "n", "uid": "u"}, "spec": {"models": [{
        "name": "m", "modelName": "base", "modelVersion": "1", "runtime": "vllm",
        "adapters": [{"name": "sql", "source": "pvc://models/adapters/sql"}]}]}}
    spec = InferenceService.from_body(body).spec.models[0]
    model = gateway_for([A]).table.lookup("u").models[0]
    assert model.adapter_path("sql") == spec.adapter_loads()["sql"] == "/mnt/adapters/models/adapters/sql"
    assert model.adapter_path("nope") is None


def reading(gw: Gateway, endpoint: Endpoint, info: LoraInfo) -> None:
    gw.picker.loads.readings[endpoint] = Reading(0.0, 0, gw.picker.loads.clock(), info)


async def test_a_request_for_an_adapter_no_engine_holds_waits_for_its_load_there(engine):
    endpoint, adapters = engine
    gw = gateway_for([endpoint])
    reading(gw, endpoint, lora(held=set()))  # read: it holds none
    gw.session = aiohttp.ClientSession()  # the gateway's side calls, without its metrics loop
    try:
        route = gw.table.lookup("u")
        chosen = await asyncio.gather(*(place_adapter(gw, route, route.models[0], "sql", 5) for _ in range(4)))
        assert set(chosen) == {endpoint} and adapters.load_calls == 1
        assert gw.picker.loads.lora(endpoint).held == {"sql"}  # known held until its list is read again
        with pytest.raises(OpenAIError) as refused:
            await place_adapter(gw, route, route.models[0], "bad", 5)
        assert refused.value.status == 503 and "`bad`" in refused.value.message
        assert "No adapter found" in refused.value.message and refused.value.openai_code == "adapter_load_failed"
        with pytest.raises(OpenAIError) as barred:
            await place_adapter(gw, route, route.models[0], "bad", 5)
        assert barred.value.openai_code == "adapter_load_failed" and adapters.load_calls == 2  # not asked again
    finally:
        await gw.session.close()


async def test_a_request_waits_for_room_and_gets_a_clear_503_when_none_frees_in_time():
    gw = gateway_for([A])
    reading(gw, A, lora({"other"}, 1, {"other", "sql"}))
    route = gw.table.lookup("u")
    with pytest.raises(OpenAIError) as full:
        await place_adapter(gw, route, route.models[0], "sql", 0.2)
    assert full.value.status == 503 and full.value.openai_code == "adapter_no_room"
    assert "`sql`" in full.value.message and "within 0.2 s" in full.value.message and gw.holds.held == 0

    waiting = asyncio.create_task(place_adapter(gw, route, route.models[0], "sql", 5))
    await until(lambda: gw.holds.held == 1, "the request to be held")
    assert not waiting.done()
    reading(gw, A, lora(set(), 1, {"other", "sql"}))  # the other adapter's requests ended
    gw.picker.room.fire()  # what the next reading of the engines does
    assert await asyncio.wait_for(waiting, 1) == A and gw.holds.held == 0
