"""The gateway's state, shared by every request: routes, limits, counters, holds and the upstream connections.

One `Gateway` per process, stored on each aiohttp application under `GATEWAY`; `REQUEST_ID` holds the
current request's id in its task (the middleware sets it, error bodies and upstream headers read it).
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from inference_operator.api.states import Routing
from inference_operator.gateway.adapter_loads import AdapterLoads
from inference_operator.gateway.body import BodyBudget
from inference_operator.gateway.entries import Endpoint
from inference_operator.gateway.hold import DEFAULT_LIMIT, Holds
from inference_operator.gateway.limits import MB, Limits, RateLimiters
from inference_operator.gateway.metrics import GatewayMetrics
from inference_operator.gateway.picker import Picker
from inference_operator.gateway.pool import Pool
from inference_operator.gateway.resolver import StaticResolver
from inference_operator.gateway.routes import RouteTable


@dataclass
class Gateway:
    """Everything a request needs: the routes, the limits, the counters, the upstream connections."""

    table: RouteTable
    limits: Limits = field(default_factory=Limits)
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    rng: random.Random = field(default_factory=random.Random)
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    limiters: RateLimiters = field(default_factory=lambda: RateLimiters(time.monotonic))
    ready: Callable[[], bool] = lambda: True  # the watch layer's initial sync is done
    healthy: Callable[[], bool] | None = None  # /healthz: ready, and no watch down for long (default: ready)
    session: aiohttp.ClientSession | None = None  # WebSocket legs and engine scrapes
    upstream: Pool | None = None  # HTTP requests to models (upstream.py)
    resolve: Mapping[str, str] = field(default_factory=dict)  # fixed answers for upstream names
    budget: BodyBudget = field(default_factory=lambda: BodyBudget(128 * MB))  # all buffered bodies
    counts_token: str | None = None  # the bearer token GET /-/counts requires (None: open, e.g. tests)
    max_head_bytes: int = 64 * 1024  # all header names and values together (431 above)
    counts_read: asyncio.Event = field(default_factory=asyncio.Event)  # set by every GET /-/counts
    max_held_requests: int = DEFAULT_LIMIT  # requests held at once for models waking from zero (503 above)
    picker: Picker = field(default_factory=Picker)  # the endpoint within an OpenAI-speaking model
    adapter_loads: AdapterLoads = field(default_factory=AdapterLoads)  # LoRA adapters the gateway loads itself
    holds: Holds = field(init=False)
    _scraping: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.holds = Holds(self.table, self.max_held_requests)

    def scraped(self) -> set[Endpoint]:
        """Endpoints whose engine metrics the picker reads: those of models routed by load or prefix, or with LoRA
        adapters (adapter affinity reads them whatever the policy)."""
        return {e for route in self.table.services.values() for m in route.models
                if m.routing is not Routing.WEIGHTED_RANDOM or m.adapters
                for e in self.table.endpoints(route.namespace, m.backend)}

    async def open(self) -> None:
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True, keepalive_timeout=30,
                                             resolver=StaticResolver(self.resolve) if self.resolve else None)
            self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                                 cookie_jar=aiohttp.DummyCookieJar())
        if self.upstream is None:
            self.upstream = Pool(self.resolve)
        if self._scraping is None:
            self._scraping = asyncio.create_task(self.picker.loads.run(self.session, self.scraped, self.picker.own))

    async def close(self) -> None:
        if self._scraping is not None:
            self._scraping.cancel()
            await asyncio.gather(self._scraping, return_exceptions=True)
            self._scraping = None
        if self.upstream is not None:
            await self.upstream.close()
            self.upstream = None
        if self.session is not None:
            await self.session.close()
            self.session = None


GATEWAY = web.AppKey("gateway", Gateway)
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")  # per request task
