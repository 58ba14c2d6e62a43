"""Which endpoint a request for a LoRA adapter goes to, once its model is chosen (docs/lora.md, "Routing"):
adapter affinity (adapters.choose), then, where the chosen engine lacks the adapter, its load (adapter_loads.py),
and, while every engine's slots run other adapters, a wait in the gateway for one with room. Both waits are
bounded by what is left of the service's timeout and come before the request is forwarded: a request that
cannot be placed gets an error in OpenAI's shape naming the adapter, and the engines never see it.
"""

from __future__ import annotations

import asyncio
import time
from enum import StrEnum

from inference_operator.gateway import adapters
from inference_operator.gateway.adapter_loads import LoadFailed, LoadResult
from inference_operator.gateway.core import Gateway
from inference_operator.gateway.entries import Endpoint, ModelRoute, ServiceRoute
from inference_operator.gateway.errors import NO_READY_INSTANCE, GatewayError
from inference_operator.gateway.openai import OpenAIError


class Wait(StrEnum):
    """Why a request waited (the metrics' reason label)."""

    LOAD = "load"  # for its adapter's load
    ROOM = "room"  # for an engine with a free slot


def _shown(adapter: str) -> str:
    return f"`{ascii(adapter[:128])[1:-1]}`"


async def place_adapter(gw: Gateway, route: ServiceRoute, model: ModelRoute, adapter: str, timeout: float) -> Endpoint:
    """The endpoint of `model` a request for `adapter` (the engines' name of it) goes to, holding it there."""
    deadline, backend = time.monotonic() + timeout, (route.namespace, model.backend)
    picker, loads, holding = gw.picker, gw.adapter_loads, None
    try:
        while True:
            endpoints = gw.table.endpoints(*backend)
            if not endpoints:
                raise GatewayError(NO_READY_INSTANCE, f"model {model.name} of service {route.namespace}/{route.name} "
                                                      "has no ready instance")
            choice = adapters.choose(endpoints, adapter, picker.loads.lora, picker.sent_adapters,
                                     loads.loading(adapter), lambda e: loads.barred(e, adapter))
            if choice.step is adapters.Step.SEND:
                chosen = picker.least_loaded(choice.endpoints, gw.rng)
                if adapters.lacks(picker.loads.lora(chosen), adapter) or chosen in loads.loading(adapter):
                    await _load(gw, route, model, chosen, adapter, deadline - time.monotonic(), timeout)
                picker.sent_adapters.note(chosen, adapter, picker.loads.lora(chosen))
                return chosen
            if choice.step is adapters.Step.BARRED:
                failure = loads.failure(choice.endpoints[0], adapter)
                reason = failure.reason if failure is not None else "it failed to load"
                raise OpenAIError(503, f"The adapter {_shown(adapter)} could not be loaded on a replica with room: "
                                       f"{reason}. The gateway tries again after a backoff.", "server_error",
                                  "model", "adapter_load_failed")
            if holding is None:
                holding = _Waiting(gw, route, model, Wait.ROOM)
            left = deadline - time.monotonic()
            if left <= 0 or not await _until_pulse(gw, left):
                raise OpenAIError(503, f"No replica of model {model.name} had room for the adapter {_shown(adapter)} "
                                       f"within {timeout:.3g} s: every replica's LoRA slots run other adapters.",
                                  "server_error", "model", "adapter_no_room")
    finally:
        if holding is not None:
            holding.done()


async def _until_pulse(gw: Gateway, left: float) -> bool:
    """Wait for the engines' next reading or a request's end, up to `left` seconds; False: the time is up."""
    try:
        async with asyncio.timeout(left):
            await gw.picker.room.wait()
    except TimeoutError:
        return False
    return True


async def _load(gw: Gateway, route: ServiceRoute, model: ModelRoute, endpoint: Endpoint, adapter: str,
                left: float, bound: float) -> None:
    """Load `adapter` on `endpoint` (or join the load running there), within `left` seconds; the load itself is
    bounded by the service's timeout (`bound`), whoever started it."""
    path = model.adapter_path(adapter)
    if path is None:  # not one of its own (cannot happen: the caller checked); the engine answers for itself
        return
    assert gw.session is not None, "Gateway.open() was not called"

    def counted(result: LoadResult) -> None:
        gw.metrics.adapter_loads.labels(route.namespace, route.name, model.name, adapter, result.value).inc()

    waiting = _Waiting(gw, route, model, Wait.LOAD)
    try:
        await gw.adapter_loads.ensure(gw.session, endpoint, adapter, path, max(0.001, left), counted, bound)
    except LoadFailed as err:
        if err.result is LoadResult.UNANSWERED:
            raise OpenAIError(504, f"The adapter {_shown(adapter)} was not loaded on a replica of model {model.name} "
                                   f"in time: {err.reason}.", "server_error", "model", "adapter_load_timeout") from None
        raise OpenAIError(503, f"The adapter {_shown(adapter)} could not be loaded: {err.reason}.", "server_error",
                          "model", "adapter_load_failed") from None
    finally:
        waiting.done()
    gw.picker.loads.note_held(endpoint, adapter)


class _Waiting:
    """One request waiting for its adapter: in the gateway's cap of held requests (503 over it) and the metrics."""

    def __init__(self, gw: Gateway, route: ServiceRoute, model: ModelRoute, reason: Wait) -> None:
        if gw.holds.full:
            raise GatewayError(NO_READY_INSTANCE, f"the gateway holds {gw.holds.limit} requests already; retry "
                                                  "shortly")
        self.gw, self.started = gw, time.monotonic()
        self.gauge, self.waits = gw.metrics.adapter_series(route.namespace, route.name, model.name, reason)
        gw.holds.held += 1
        self.gauge.inc()

    def done(self) -> None:
        self.gw.holds.held -= 1
        self.gauge.dec()
        self.waits.observe(time.monotonic() - self.started)
