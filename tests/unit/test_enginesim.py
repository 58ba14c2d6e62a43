"""The simulated engine's cache and latency model (tests/enginesim), which the routing benchmark rests on."""

from __future__ import annotations

import asyncio
import time

import pytest

from enginesim.cache import PrefixCache, block_hashes
from enginesim.model import Engine, Params


def words(n: int, tag: str = "w") -> list[str]:
    return [f"{tag}{i}" for i in range(n)]


def test_blocks_are_named_by_their_whole_prefix():
    a = block_hashes(words(40), 16)
    assert len(a) == 2  # the partial last block is not cached
    b = block_hashes(["x", *words(39)[1:]], 16)
    assert a[0] != b[0] and a[1] != b[1]  # same second block's tokens, different prefix: a different block


def test_cache_matches_leading_blocks_and_evicts_the_least_recently_used():
    cache = PrefixCache(capacity=4, block_size=4)
    first, second = block_hashes(words(8, "a"), 4), block_hashes(words(8, "b"), 4)
    cache.insert(first)
    cache.insert(second)
    assert cache.match(first) == 2 and cache.match(block_hashes(words(12, "a"), 4)) == 2
    cache.match(first)  # first is now the most recent
    cache.insert(block_hashes(words(8, "c"), 4))
    assert len(cache) == 4
    assert cache.match(first) == 2 and cache.match(second) == 0


def test_prefill_costs_the_uncached_tokens_and_itl_grows_with_the_batch():
    p = Params(max_num_seqs=5, prefill_overhead=0.01, prefill_per_token=0.001, itl=0.02, slowdown=1.0)
    assert p.prefill_seconds(800) == pytest.approx(0.81)
    assert p.prefill_seconds(0) == pytest.approx(0.01)
    assert p.itl_seconds(1) == pytest.approx(0.02)
    assert p.itl_seconds(3) == pytest.approx(0.03)
    assert p.itl_seconds(5) == p.itl_seconds(50) == pytest.approx(0.04)
    assert Params(speed=2.0).itl_seconds(1) == pytest.approx(2 * Params().itl_seconds(1))


async def first_token(engine: Engine, prompt: list[str]) -> float:
    started = time.monotonic()
    async for _ in engine.generate(prompt, 1):
        return time.monotonic() - started
    raise AssertionError("no token")


async def test_a_repeated_prompt_skips_its_cached_prefill():
    engine = Engine(Params(prefill_overhead=0.0, prefill_per_token=0.0005, block_size=16))
    prompt = words(400)
    cold = await first_token(engine, prompt)
    warm = await first_token(engine, prompt)
    assert cold >= 0.2 and warm < cold / 4
    assert engine.stats.cached_tokens == 400 and engine.stats.prompt_tokens == 800


async def test_sequences_beyond_max_num_seqs_wait():
    engine = Engine(Params(max_num_seqs=2, itl=0.05, prefill_per_token=0.0))
    seen: list[tuple[int, int]] = []

    async def one() -> None:
        async for _ in engine.generate(words(4), 3):
            seen.append((engine.running, engine.waiting))

    await asyncio.gather(*(one() for _ in range(4)))
    assert max(r for r, _ in seen) == 2
    assert max(w for _, w in seen) == 2
    assert (engine.running, engine.waiting, engine.blocks_in_use) == (0, 0, 0)
