"""The gateway's engine readings (engine_metrics.py) of a LoRA engine on loopback (tests/enginesim): its slots from
/metrics and the adapters it holds from /v1/models."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from enginesim.lora import Adapters
from enginesim.model import Params
from enginesim.server import app
from inference_operator.gateway.engine_metrics import EngineLoads
from inference_operator.gateway.entries import Endpoint


async def test_a_lora_engines_reading_carries_its_slots_and_the_adapters_it_holds():
    adapters = Adapters(max_loras=2)
    adapters.register("sql", "/mnt/adapters/a/sql")
    runner = web.AppRunner(app("llama", Params(), adapters))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    endpoint = Endpoint("127.0.0.1", site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    loads = EngineLoads()
    try:
        async with aiohttp.ClientSession() as session:
            await loads.scrape(session, endpoint, lambda e: 0, asyncio.Semaphore(1))
    finally:
        await runner.cleanup()
    info = loads.lora(endpoint)
    assert info is not None and info.max_lora == 2 and info.held == frozenset({"sql"})
