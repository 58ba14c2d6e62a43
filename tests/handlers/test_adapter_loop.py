"""The operator's adapters loop (runtime/adapters.py) against simulated engines on loopback (tests/enginesim):
one round loads what the spec names, unloads what it no longer names, retries a refused load only after its
backoff, reports per adapter, and asks for a pass only when the counts moved."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from enginesim.lora import Adapters
from enginesim.model import Params
from enginesim.server import app
from inference_operator.config import OperatorConfig
from inference_operator.runtime.adapters import AdapterLoop, lora_targets
from inference_operator.runtime.slim import POD_PORT
from inference_operator.status.adapters import ModelAdapters

BASE = "llama"


async def engine() -> tuple[web.AppRunner, Adapters, int]:
    adapters = Adapters(max_loras=4)
    runner = web.AppRunner(app(BASE, Params(), adapters))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, adapters, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def service(adapters: list[dict[str, str]]) -> dict[str, Any]:
    return {"metadata": {"name": "s", "namespace": "n", "uid": "svc-uid"}, "spec": {"models": [{
        "name": "m", "modelName": BASE, "modelVersion": "1", "runtime": "vllm", "maxLoras": 4,
        "adapters": adapters}]}}


def pod(uid: str, port: int, ready: bool = True) -> dict[str, Any]:
    return {"metadata": {"name": uid, "uid": uid, "labels": {"inference.io/service": "s", "inference.io/model": "m"}},
            "status": {"podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": str(ready)}]}, POD_PORT: port}


class World:
    def __init__(self) -> None:
        self.services: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.pods: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.passes: list[tuple[str, str]] = []
        self.now = 0.0

    async def changed(self, namespace: str, name: str) -> None:
        self.passes.append((namespace, name))

    def loop(self) -> AdapterLoop:
        return AdapterLoop(OperatorConfig(), lambda: lora_targets(self.services, self.pods, lambda p: p),
                           self.changed, clock=lambda: self.now)


@pytest.fixture
async def two() -> AsyncIterator[list[tuple[Adapters, int]]]:
    started = [await engine(), await engine()]
    yield [(adapters, port) for _, adapters, port in started]
    for runner, _, _ in started:
        await runner.cleanup()


SQL = {"name": "sql", "source": "pvc://a/sql"}
BAD = {"name": "bad", "source": "pvc://a/invalid"}


async def test_a_round_loads_everywhere_unloads_what_left_and_reports(two):
    world = World()
    world.services[("n", "s")] = [service([SQL, BAD])]
    world.pods[("n", "s")] = [pod("p0", two[0][1]), pod("p1", two[1][1]), pod("p2", two[1][1], ready=False)]
    loop = world.loop()
    async with aiohttp.ClientSession() as session:
        await loop.round(session)
        assert [dict(a.registered) for a, _ in two] == [{"sql": "/mnt/adapters/a/sql"}] * 2
        counts = loop.of("svc-uid")["m"]
        assert (counts.replicas, dict(counts.loaded)) == (2, {"sql": 2, "bad": 0})
        assert "No adapter found" in counts.reasons["bad"] and "sql" not in counts.reasons
        assert world.passes == [("n", "s")]

        await loop.round(session)  # nothing moved: no pass asked for
        assert world.passes == [("n", "s")]

        world.services[("n", "s")] = [service([])]
        await loop.round(session)
        assert [dict(a.registered) for a, _ in two] == [{}, {}]
        assert loop.of("svc-uid")["m"] == ModelAdapters(2, {}, {})


async def test_a_refused_load_waits_for_its_backoff_and_a_restarted_engine_gets_its_adapters_back(two):
    world = World()
    world.services[("n", "s")] = [service([SQL, BAD])]
    world.pods[("n", "s")] = [pod("p0", two[0][1])]
    loop = world.loop()
    refusals: list[str] = []
    engine_adapters = two[0][0]
    register = engine_adapters.register

    def counting(name: str, path: str) -> None:
        if "invalid" in path:
            refusals.append(name)
        register(name, path)

    engine_adapters.register = counting  # type: ignore[method-assign]
    async with aiohttp.ClientSession() as session:
        await loop.round(session)
        await loop.round(session)
        assert refusals == ["bad"]  # tried once: its backoff (5 s) runs
        world.now = 5.0
        await loop.round(session)
        await loop.round(session)
        assert refusals == ["bad", "bad"]  # once more, now waiting 10 s
        engine_adapters.registered.clear()  # the engine restarted: it holds nothing
        await loop.round(session)
        assert set(engine_adapters.registered) == {"sql"}
