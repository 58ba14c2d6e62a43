"""The simulated engine's latency model and scheduler, after vLLM's behaviour on one GPU.

- At most `max_num_seqs` sequences run at once; the rest wait, first come first served
  (`vllm:num_requests_running`, `vllm:num_requests_waiting`).
- Time to first token = the wait for a running slot + the wait for the prefill stream + the prefill:
  `prefill_overhead + prefill_per_token * uncached prompt tokens`. Blocks found in the prefix cache cost
  nothing (vLLM skips their computation). Prefills run one at a time on an engine: the GPU's compute is
  one stream, so a long uncached prompt delays the next ones' first tokens as it does on a real engine
  (chunked prefill spreads, but does not remove, that cost).
- Inter-token latency = `itl * (1 + slowdown * (running - 1) / (max_num_seqs - 1))`: decoding is batched,
  each step slower with more sequences in the batch, up to (1 + slowdown) times at a full batch.
- KV-cache usage (`vllm:kv_cache_usage_perc`) = blocks held by running sequences / `num_gpu_blocks`.
- `speed` scales every duration: 2.0 is an engine twice as slow (a slower GPU, a noisy neighbour).

Checked against a reference simulator llm-d uses (research note): an 800-token prompt at 1 ms per token
takes 0.8 s cold and ~0.03 s cached, as here with the default overhead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from enginesim.cache import PrefixCache, block_hashes


@dataclass(frozen=True)
class Params:
    max_num_seqs: int = 16
    block_size: int = 16
    num_gpu_blocks: int = 1024
    prefill_overhead: float = 0.02  # seconds per request
    prefill_per_token: float = 0.0005  # seconds per uncached prompt token
    itl: float = 0.02  # seconds per output token, one sequence running
    slowdown: float = 1.0  # a full batch decodes (1 + slowdown) times slower
    speed: float = 1.0  # every duration multiplied

    def prefill_seconds(self, uncached_tokens: int) -> float:
        return self.speed * (self.prefill_overhead + self.prefill_per_token * max(0, uncached_tokens))

    def itl_seconds(self, running: int) -> float:
        share = (max(1, running) - 1) / max(1, self.max_num_seqs - 1)
        return self.speed * self.itl * (1 + self.slowdown * min(1.0, share))


@dataclass
class Stats:
    requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0  # vllm:prefix_cache_hits_total counts these, over vllm:prefix_cache_queries_total
    generation_tokens: int = 0


@dataclass
class Engine:
    params: Params = field(default_factory=Params)
    running: int = 0
    waiting: int = 0
    blocks_in_use: int = 0
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self.cache = PrefixCache(self.params.num_gpu_blocks, self.params.block_size)
        self._slots = asyncio.Semaphore(self.params.max_num_seqs)
        self._prefill = asyncio.Lock()

    @property
    def kv_usage(self) -> float:
        return min(1.0, self.blocks_in_use / self.params.num_gpu_blocks)

    async def generate(self, prompt: Sequence[str], max_tokens: int) -> AsyncIterator[int]:
        """Yield the index of each output token when it is produced (the first after the prefill)."""
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        blocks = -(-(len(prompt) + max_tokens) // self.params.block_size)
        self.blocks_in_use += blocks
        try:
            hashes = block_hashes(prompt, self.params.block_size)
            async with self._prefill:
                cached = self.cache.match(hashes) * self.params.block_size
                await asyncio.sleep(self.params.prefill_seconds(len(prompt) - cached))
                self.cache.insert(hashes)
            self.stats.requests += 1
            self.stats.prompt_tokens += len(prompt)
            self.stats.cached_tokens += cached
            for index in range(max_tokens):
                if index:
                    await asyncio.sleep(self.params.itl_seconds(self.running))
                self.stats.generation_tokens += 1
                yield index
        finally:
            self.running -= 1
            self.blocks_in_use -= blocks
            self._slots.release()
