"""The gateway's own loads of LoRA adapters (docs/lora.md, "Routing"): one at a time per engine and adapter, and
none while a failed one's backoff runs.

A request for an adapter that no engine of its model holds with room goes to one with a free slot, which is asked
to load it first (`POST /v1/load_lora_adapter`, with the lora_name and lora_path the operator's loop uses:
ModelSpec.adapter_loads, carried in the route table). Requests arriving while that load runs wait for it too
(single flight: one load per engine and adapter, however many requests). The engine's "already loaded" answer
(the operator's loop, or another gateway replica, loaded it meanwhile) is a success. A load the engine refuses
(4xx: files it cannot read) or does not answer within the request's time is remembered per engine and adapter,
and that engine is not asked again before its backoff ends (policies/adapters.py's, as the operator's loop):
requests meanwhile get the remembered reason at once, so a bad adapter never costs the engine a call per request.

`Pulse` wakes requests waiting for an engine with room: fired when the engines' metrics are read again and when a
request ends.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import aiohttp

from inference_operator.gateway.entries import Endpoint
from inference_operator.policies.adapters import Failure, already_loaded, engine_reason, failed

MAX_ANSWER = 64 * 1024  # bytes of the engine's answer read
REMEMBERED = 4096  # failed loads remembered (the oldest forgotten first)


class LoadResult(Enum):
    LOADED = "loaded"
    ALREADY = "already"  # the engine held it already: loaded by someone else meanwhile
    REFUSED = "refused"
    UNANSWERED = "unanswered"


class LoadFailed(Exception):
    def __init__(self, result: LoadResult, reason: str) -> None:
        super().__init__(reason)
        self.result, self.reason = result, reason


class Pulse:
    """Futures resolved together by `fire`; `wait` returns at the next one. Cheap to fire with nobody waiting."""

    def __init__(self) -> None:
        self.waiters: set[asyncio.Future[None]] = set()

    def fire(self) -> None:
        if self.waiters:
            waiters, self.waiters = self.waiters, set()
            for future in waiters:
                if not future.done():
                    future.set_result(None)

    async def wait(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.add(future)
        try:
            await future
        finally:
            self.waiters.discard(future)


@dataclass
class AdapterLoads:
    clock: Callable[[], float] = time.monotonic
    flights: dict[str, dict[Endpoint, asyncio.Task[LoadResult]]] = field(default_factory=dict)  # by adapter
    failures: OrderedDict[tuple[Endpoint, str], Failure] = field(default_factory=OrderedDict)

    def loading(self, adapter: str) -> frozenset[Endpoint]:
        """The endpoints a load of `adapter` runs on now."""
        return frozenset(self.flights.get(adapter, ()))

    def failure(self, endpoint: Endpoint, adapter: str) -> Failure | None:
        """The last failed load of `adapter` on `endpoint` while its backoff runs, else None."""
        found = self.failures.get((endpoint, adapter))
        return found if found is not None and found.retry_at > self.clock() else None

    def barred(self, endpoint: Endpoint, adapter: str) -> bool:
        return self.failure(endpoint, adapter) is not None

    async def ensure(self, session: aiohttp.ClientSession, endpoint: Endpoint, adapter: str, path: str,
                     timeout: float, counted: Callable[[LoadResult], None] = lambda _: None,
                     bound: float | None = None) -> None:
        """Return once `endpoint` holds `adapter`: a load started now, or the one running there joined. Raises
        LoadFailed when it was refused or did not answer within `timeout` (the load itself, bounded by `bound`,
        default `timeout`, may still finish for the other requests waiting on it). `counted`: told the result of
        a load this call started."""
        running = self.flights.setdefault(adapter, {})
        task = running.get(endpoint)
        if task is None:
            task = running[endpoint] = asyncio.get_running_loop().create_task(
                self._load(session, endpoint, adapter, path, max(timeout, bound or 0.0), counted))
            task.add_done_callback(lambda _: self._landed(endpoint, adapter))
        try:
            async with asyncio.timeout(timeout):
                result = await asyncio.shield(task)
        except TimeoutError:
            raise LoadFailed(LoadResult.UNANSWERED, f"the engine did not finish loading it within {timeout:.3g} s") \
                from None
        if result in (LoadResult.REFUSED, LoadResult.UNANSWERED):
            failure = self.failures.get((endpoint, adapter))
            raise LoadFailed(result, failure.reason if failure is not None else result.value)

    def _landed(self, endpoint: Endpoint, adapter: str) -> None:
        running = self.flights.get(adapter, {})
        running.pop(endpoint, None)
        if not running:
            self.flights.pop(adapter, None)

    async def _load(self, session: aiohttp.ClientSession, endpoint: Endpoint, adapter: str, path: str,
                    timeout: float, counted: Callable[[LoadResult], None]) -> LoadResult:
        key = (endpoint, adapter)
        try:
            async with session.post(endpoint.origin + "/v1/load_lora_adapter",
                                    json={"lora_name": adapter, "lora_path": path},
                                    timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                text = (await resp.content.read(MAX_ANSWER)).decode("utf-8", "replace")
                if resp.status < 300:
                    result, problem = LoadResult.LOADED, None
                elif already_loaded(resp.status, text):
                    result, problem = LoadResult.ALREADY, None
                else:
                    result, problem = LoadResult.REFUSED, engine_reason(resp.status, text)
        except (aiohttp.ClientError, TimeoutError) as exc:
            result, problem = LoadResult.UNANSWERED, \
                f"the engine did not answer the load: {type(exc).__name__} {exc}".strip()
        if problem is None:
            self.failures.pop(key, None)
        else:
            self.failures[key] = failed(self.failures.pop(key, None), problem, self.clock())
            while len(self.failures) > REMEMBERED:
                self.failures.popitem(last=False)
        counted(result)
        return result
