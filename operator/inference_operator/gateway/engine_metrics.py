"""What the engines behind OpenAI-speaking models report about their queues, read from their `/metrics`.

The gateway knows only its own requests in flight to an endpoint; other gateway replicas send theirs too.
vLLM's `vllm:num_requests_running` and `vllm:num_requests_waiting` (tgi's `tgi_queue_size` and
`tgi_batch_current_size` alike) count everybody's, so every `interval` seconds each endpoint of a model
routed by load or prefix is read (at most `PARALLEL` at once, each within `timeout`), and what the others
have in flight is that total minus this gateway's own count when the answer came. A reading older than
`stale_after` (an engine that stopped answering, a gateway that fell behind) is ignored: the gateway's own
count alone is then the load. Nothing is shared between gateway replicas but what the engines say.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import aiohttp

from inference_operator.gateway.adapters import LoraInfo, held_adapters, lora_info
from inference_operator.gateway.entries import Endpoint

log = logging.getLogger(__name__)
QUEUE_METRICS = {"vllm:num_requests_running", "vllm:num_requests_waiting", "tgi_queue_size",
                 "tgi_batch_current_size"}
PARALLEL = 32
MAX_BYTES = 1 << 20  # a /metrics page larger than this is not read


@dataclass(frozen=True, slots=True)
class Reading:
    queued: float  # running + waiting, as the engine counts them
    own: int  # this gateway's requests in flight to it when the answer came
    at: float  # monotonic seconds
    lora: LoraInfo | None = None  # the adapters it runs and its slots (gateway/adapters.py)


def queued(text: str) -> float | None:
    """Running plus waiting requests in a Prometheus text page (summed over label sets); None: neither there."""
    total, found = 0.0, False
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in QUEUE_METRICS:
            try:
                total += float(line.rsplit(" ", 1)[1])
                found = True
            except (IndexError, ValueError):
                continue
    return total if found else None


class EngineLoads:
    def __init__(self, interval: float = 1.0, stale_after: float | None = None, timeout: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.timeout, self.clock = interval, timeout, clock
        self.stale_after = stale_after if stale_after is not None else 3 * interval
        self.readings: dict[Endpoint, Reading] = {}
        self.version = 0  # changes with every reading kept or dropped (picker.py caches sums by it)
        self._sums: dict[tuple[Endpoint, ...], tuple[int, float]] = {}
        self.listeners: list[Callable[[], None]] = []  # called after every round of readings


    def others(self, endpoint: Endpoint) -> float:
        """Requests in flight to `endpoint` from elsewhere, by its last fresh reading (0 without one)."""
        reading = self.readings.get(endpoint)
        if reading is None or self.clock() - reading.at > self.stale_after:
            return 0.0
        return max(0.0, reading.queued - reading.own)

    def lora(self, endpoint: Endpoint) -> LoraInfo | None:
        """The LoRA adapters `endpoint` runs, by its last fresh reading (None without one)."""
        reading = self.readings.get(endpoint)
        if reading is None or self.clock() - reading.at > self.stale_after:
            return None
        return reading.lora

    def note_held(self, endpoint: Endpoint, adapter: str) -> None:
        """`endpoint` holds `adapter` now (the gateway loaded it), until its next /v1/models says otherwise."""
        reading = self.readings.get(endpoint)
        lora = reading.lora if reading is not None else None
        if reading is not None and lora is not None and lora.held is not None and adapter not in lora.held:
            self.readings[endpoint] = replace(reading, lora=replace(lora, held=lora.held | {adapter}))

    def others_total(self, endpoints: tuple[Endpoint, ...]) -> float:
        """`others` summed over `endpoints`, computed once per change of the readings."""
        cached = self._sums.get(endpoints)
        if cached is None or cached[0] != self.version:
            if len(self._sums) > 256:
                self._sums.clear()
            cached = self._sums[endpoints] = (self.version, sum(map(self.others, endpoints)))
        return cached[1]

    def record(self, endpoint: Endpoint, text: str, own: int) -> None:
        value = queued(text)
        if value is not None:
            self.readings[endpoint] = Reading(value, own, self.clock(), lora_info(text) if "lora" in text else None)
            self.version += 1

    def expire(self, wanted: set[Endpoint]) -> None:
        """Drop the readings of endpoints no longer scraped, and stale ones."""
        now = self.clock()
        for gone in [e for e, r in self.readings.items() if e not in wanted or now - r.at > self.stale_after]:
            del self.readings[gone]
            self.version += 1

    async def scrape(self, session: aiohttp.ClientSession, endpoint: Endpoint, own: Callable[[Endpoint], int],
                     gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                async with session.get(endpoint.origin + "/metrics",
                                       timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                    if resp.status == 200:
                        self.record(endpoint, (await resp.content.read(MAX_BYTES)).decode("utf-8", "replace"),
                                    own(endpoint))
                reading = self.readings.get(endpoint)
                if reading is not None and reading.lora is not None:  # LoRA on: which adapters it holds
                    async with session.get(endpoint.origin + "/v1/models",
                                           timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                        held = held_adapters(json.loads(await resp.content.read(MAX_BYTES))) \
                            if resp.status == 200 else None
                    self.readings[endpoint] = replace(reading, lora=replace(reading.lora, held=held))
            except (aiohttp.ClientError, TimeoutError, UnicodeError, ValueError) as err:
                log.debug("engine metrics of %s: %s", endpoint.origin, err)

    async def run(self, session: aiohttp.ClientSession, endpoints: Callable[[], Iterable[Endpoint]],
                  own: Callable[[Endpoint], int]) -> None:
        """Read every endpoint `endpoints()` names, every `interval` seconds, until cancelled."""
        gate = asyncio.Semaphore(PARALLEL)
        while True:
            started = self.clock()
            wanted = set(endpoints())
            self.expire(wanted)
            await asyncio.gather(*(self.scrape(session, e, own, gate) for e in wanted))
            for listener in self.listeners:
                listener()
            await asyncio.sleep(max(0.0, self.interval - (self.clock() - started)))
