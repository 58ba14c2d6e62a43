"""Where a request goes: a model and one of its ready endpoints, counted in as the model's activity; for a
service with a model that scales to zero, demand for a sleeping model, and holding the request until a
model it may use wakes (docs/gateway.md, "Scale to zero")."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from inference_operator.gateway.adapter_place import place_adapter
from inference_operator.gateway.core import Gateway
from inference_operator.gateway.entries import Endpoint, ModelRoute, ServiceRoute, require_running
from inference_operator.gateway.errors import BACKEND_TIMEOUT, NO_READY_INSTANCE, GatewayError
from inference_operator.gateway.metrics import INFLIGHT, REQUESTS

Placed = tuple[ModelRoute, Endpoint, list[int]]  # the model, its endpoint, its activity counter


async def within(gw: Gateway, route: ServiceRoute, model: ModelRoute, drawn: Endpoint, prefix: Sequence[str],
                 adapter: str | None, timeout: float) -> Endpoint:
    """The model's endpoint by its routing policy (picker.py); `drawn`, the table's uniform draw, for
    weighted-random. `adapter`: the LoRA adapter the request names, if any: placed by adapter affinity, perhaps
    after its load or a wait for room, within `timeout` (adapter_place.py)."""
    if adapter is not None and model.loads_adapter(adapter):
        return await place_adapter(gw, route, model, adapter, timeout)
    backend = (route.namespace, model.backend)
    return gw.picker.pick(model, backend, gw.table.endpoints(*backend), prefix, gw.rng) or drawn


async def place(gw: Gateway, route: ServiceRoute, among: tuple[ModelRoute, ...] | None, timeout: float,
                prefix: Sequence[str] = (), adapter: str | None = None) -> Placed:
    """The model and endpoint of a request, and the model's activity counter, which counts the request in
    (requests and inflight; the caller counts it out of inflight when it ends). A request for a service
    with a model that scales to zero may count demand for a sleeping model, or wait for one to wake."""
    started = time.monotonic()
    if route.scales_to_zero:
        pick = gw.table.pick(route, gw.rng, among)
        if pick.woken is not None:
            gw.holds.wake(route, pick.woken, timeout)
            gw.metrics.activity(route.service_id, pick.woken.name)[REQUESTS] += 1
        if pick.endpoint is None:
            model, endpoint, active = await hold(gw, route, among, pick.model, timeout)
            try:
                left = timeout - (time.monotonic() - started)
                return model, await within(gw, route, model, endpoint, prefix, adapter, left), active
            except BaseException:
                active[INFLIGHT] -= 1  # counted in by hold: the request goes nowhere
                raise
        model, endpoint = pick.model, pick.endpoint
    else:
        model, endpoint = gw.table.choose(route, gw.rng, among)
    endpoint = await within(gw, route, model, endpoint, prefix, adapter, timeout)
    active = gw.metrics.activity(route.service_id, model.name)
    active[REQUESTS] += 1
    active[INFLIGHT] += 1
    return model, endpoint, active


async def hold(gw: Gateway, route: ServiceRoute, among: tuple[ModelRoute, ...] | None, waited: ModelRoute,
               timeout: float) -> Placed:
    """Hold a request for `waited` (scaled to zero, no endpoint; no other model it may use is ready) until
    one of its models has a ready endpoint, then pick as for any request. 504 after `timeout`; a client
    that hangs up cancels the wait; 503 over the gateway's cap of held requests."""
    where = f"{route.namespace}/{route.name}"
    gw.holds.wake(route, waited, timeout)
    active = gw.metrics.activity(route.service_id, waited.name)
    active[REQUESTS] += 1
    if gw.holds.full:
        raise GatewayError(NO_READY_INSTANCE, f"model {waited.name} of service {where} is waking up (it scaled to "
                                              f"zero) and the gateway holds {gw.holds.limit} requests already; "
                                              "retry shortly")
    active[INFLIGHT] += 1
    gw.holds.held += 1
    gauge, waits = gw.metrics.hold_series(route.namespace, route.name, waited.name)
    gauge.inc()
    started, placed = time.monotonic(), False
    try:
        async with asyncio.timeout(timeout):
            model, endpoint = await _woken(gw, route, among)
        if model.name != waited.name:  # another model woke first: the request is in flight to it
            active[INFLIGHT] -= 1
            active = gw.metrics.activity(route.service_id, model.name)
            active[INFLIGHT] += 1
        placed = True
        return model, endpoint, active
    except TimeoutError:
        raise GatewayError(BACKEND_TIMEOUT, f"model {waited.name} of service {where} is waking up (it scaled to "
                                            f"zero) and had no ready instance within {timeout:g} seconds; retry "
                                            "shortly") from None
    finally:
        gw.holds.held -= 1
        gauge.dec()
        waits.observe(time.monotonic() - started)
        if not placed:
            active[INFLIGHT] -= 1


async def _woken(gw: Gateway, route: ServiceRoute, among: tuple[ModelRoute, ...] | None
                 ) -> tuple[ModelRoute, Endpoint]:
    """Wait for the routes or endpoints to change until a model the request may use has a ready endpoint."""
    while True:
        await gw.holds.changed(route, gw.table.considered(route, among))
        route = gw.table.lookup(route.service_id)  # deleted meanwhile: 404
        require_running(route)  # stopped meanwhile: 400
        if gw.table.ready(route, among):
            pick = gw.table.pick(route, gw.rng, among)
            if pick.endpoint is not None:
                return pick.model, pick.endpoint
