"""Requests held for a model that scaled to zero, until it (or another model they may use) is ready.

The RouteTable is pure and synchronous; this is its asynchronous side. A held request registers one
future under the Services (namespace, name) of the models it may use and under its service id; the
table's endpoint listener resolves the futures of a Service whose endpoints changed, its route
listener those of a service that changed (weights, stopped, deleted: the request looks again; a
re-list, all of them). Nothing polls, and a request that no longer waits (answer, timeout, client
gone) removes itself. The number of held requests is capped (`limit`): each holds a
connection, and possibly a buffered signed body, for up to the service's timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable, Iterable
from typing import TypeVar

from inference_operator.gateway.entries import Key, ModelRoute, ServiceRoute
from inference_operator.gateway.routes import RouteTable

log = logging.getLogger(__name__)
DEFAULT_LIMIT = 1000
_K = TypeVar("_K", bound=Hashable)


class Holds:
    """The waiting room of one gateway process."""

    def __init__(self, table: RouteTable, limit: int = DEFAULT_LIMIT) -> None:
        self.table, self.limit = table, limit
        self.held = 0  # requests waiting now (place.py counts them in and out)
        self._waiters: dict[Key, set[asyncio.Future[None]]] = {}  # by (namespace, Service) of a model
        self._by_route: dict[str, set[asyncio.Future[None]]] = {}  # by service id
        self._waking: set[Key] = set()  # sleeping models asked for since they last had an endpoint (for the log)
        table.endpoint_listeners.append(self._endpoints_changed)
        table.route_listeners.append(self._route_changed)

    @property
    def full(self) -> bool:
        return self.held >= self.limit

    def wake(self, route: ServiceRoute, model: ModelRoute, timeout: float) -> None:
        """Note a request for a sleeping model: one log line per wake (not per request)."""
        key = (route.namespace, model.backend)
        if key not in self._waking:
            self._waking.add(key)
            log.info("model %s of %s/%s is scaled to zero and has a request: holding requests for it up to %gs "
                     "while it wakes", model.name, route.namespace, route.name, timeout)

    async def changed(self, route: ServiceRoute, models: Iterable[ModelRoute]) -> None:
        """Return once the endpoints of one of `models`' Services, or the service itself, changed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        keys = {(route.namespace, m.backend) for m in models}
        for key in keys:
            self._waiters.setdefault(key, set()).add(future)
        self._by_route.setdefault(route.service_id, set()).add(future)
        try:
            await future
        finally:
            for key in keys:
                _discard(self._waiters, key, future)
            _discard(self._by_route, route.service_id, future)

    def _endpoints_changed(self, key: Key) -> None:
        if self.table.endpoints(*key):
            self._waking.discard(key)
        for future in self._waiters.pop(key, ()):
            if not future.done():
                future.set_result(None)

    def _route_changed(self, service_id: str | None) -> None:
        if service_id is None:
            groups, self._by_route = list(self._by_route.values()), {}
        else:
            groups = [self._by_route.pop(service_id, set())]
        for futures in groups:
            for future in futures:
                if not future.done():
                    future.set_result(None)


def _discard(index: dict[_K, set[asyncio.Future[None]]], key: _K, future: asyncio.Future[None]) -> None:
    if (waiting := index.get(key)) is not None:
        waiting.discard(future)
        if not waiting:
            del index[key]
