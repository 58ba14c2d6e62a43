"""The simulated engine's LoRA adapters (tests/enginesim/lora.py), which the e2e tests and the bench rest on."""

from __future__ import annotations

import asyncio

import pytest

from enginesim.lora import AdapterError, Adapters
from fakes import until


def test_registration_answers_as_vllm_does():
    adapters = Adapters(max_loras=2, max_adapters=2)
    adapters.register("sql", "/mnt/adapters/a/sql")
    with pytest.raises(AdapterError, match="already been loaded"):
        adapters.register("sql", "/mnt/adapters/a/sql")
    with pytest.raises(AdapterError, match="No adapter found"):
        adapters.register("bad", "/mnt/adapters/a/invalid")
    adapters.register("chat", "/p")
    with pytest.raises(AdapterError, match="no free adapter slot"):
        adapters.register("third", "/p")
    with pytest.raises(AdapterError) as missing:
        adapters.unregister("nope")
    assert missing.value.status == 404
    with pytest.raises(AdapterError, match="not enabled"):
        Adapters(max_loras=0).register("sql", "/p")


async def test_a_slot_is_loaded_once_and_an_idle_one_is_evicted_for_another():
    adapters = Adapters(max_loras=1, load_seconds=0.0)
    for name in ("a", "b"):
        adapters.register(name, "/p")
    async with adapters.slot("a", 1.0):
        assert adapters.running() == ["a"]
    async with adapters.slot("a", 1.0):
        pass
    assert adapters.loads == 1
    async with adapters.slot("b", 1.0):
        assert list(adapters.resident) == ["b"]
    assert adapters.loads == 2 and adapters.waited_for_load == 2


async def test_a_request_waits_while_every_slot_runs_another_adapter():
    adapters = Adapters(max_loras=1, load_seconds=0.0)
    for name in ("a", "b"):
        adapters.register(name, "/p")
    release = asyncio.Event()

    async def hold_a() -> None:
        async with adapters.slot("a", 1.0):
            await release.wait()

    holder = asyncio.create_task(hold_a())
    await until(lambda: adapters.running() == ["a"], "a in its slot")
    slot_b = adapters.slot("b", 1.0)  # kept: a context manager dropped after entering leaves its slot
    waiter = asyncio.create_task(slot_b.__aenter__())
    await until(lambda: adapters.waiting == {"b": 1}, "b waiting for a slot")
    assert not waiter.done()
    assert 'waiting_lora_adapters="b"' in adapters.info_line(0.0)
    release.set()
    await holder
    await asyncio.wait_for(waiter, 1)
    assert adapters.running() == ["b"]
    await slot_b.__aexit__(None, None, None)
    assert adapters.running() == []
