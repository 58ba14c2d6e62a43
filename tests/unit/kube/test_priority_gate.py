"""kube.PriorityGate: when requests wait for a connection, Deployments first, a ready status next, children before
other status, status before Events; urgent ones have connections of their own."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from inference_operator.kube.gate import CHILDREN, DEPLOYMENTS, EVENTS, READY, STATUS, PriorityGate, priority_of


async def until(fact: Callable[[], bool], timeout: float = 1.0) -> None:
    """Let the other tasks run until `fact` holds (the timeout only bounds a failure)."""
    async with asyncio.timeout(timeout):
        while not fact():
            await asyncio.sleep(0)


async def enter(gate: PriorityGate, priority: int, then: Callable[[], Any]) -> None:
    """Take a slot at `priority`, run `then` (awaited when it returns an awaitable), give the slot back."""
    async with gate.slot(priority):
        result = then()
        if inspect.isawaitable(result):
            await result


async def test_waiters_enter_by_priority_then_arrival() -> None:
    gate = PriorityGate(1)
    order: list[str] = []
    held = asyncio.Event()

    def request(name: str, priority: int) -> Coroutine[Any, Any, None]:
        return enter(gate, priority, lambda: order.append(name))

    first = asyncio.create_task(enter(gate, CHILDREN, held.wait))
    await until(lambda: gate.free == 0)
    waiters = [asyncio.create_task(request(name, priority)) for name, priority in
               (("event", EVENTS), ("status-1", STATUS), ("service", CHILDREN), ("status-2", STATUS),
                ("ready", READY), ("deployment", DEPLOYMENTS))]
    await until(lambda: len(gate.waiting) == 6)
    held.set()
    await asyncio.gather(first, *waiters)
    assert order == ["deployment", "ready", "service", "status-1", "status-2", "event"]


async def test_a_cancelled_waiter_gives_its_turn_away() -> None:
    gate = PriorityGate(1)
    release = asyncio.Event()

    async def hold() -> None:
        async with gate.slot(CHILDREN):
            await release.wait()

    holder = asyncio.create_task(hold())
    await until(lambda: gate.free == 0)
    cancelled = asyncio.create_task(hold())
    await until(lambda: len(gate.waiting) == 1)
    cancelled.cancel()
    release.set()
    await holder
    async with asyncio.timeout(1):  # the slot came back: a new request gets in at once
        async with gate.slot(EVENTS):
            pass
    assert gate.free == 1


def test_priority_of_requests() -> None:
    assert priority_of("PATCH", "/apis/apps/v1/namespaces/a/deployments/x") == DEPLOYMENTS  # what starts pods
    assert priority_of("PATCH", "/api/v1/namespaces/a/services/x") == CHILDREN
    assert priority_of("PATCH", "/apis/apps/v1/namespaces/a/deployments/x/status") == STATUS
    assert priority_of("PATCH", "/apis/inference.io/v1alpha1/namespaces/a/inferenceservices/x/status") == STATUS
    assert priority_of("PATCH", "/apis/inference.io/v1alpha1/namespaces/a/inferenceservices/x/status",
                       ready=True) == READY  # the status that says the service became ready
    assert priority_of("POST", "/api/v1/namespaces/a/events") == EVENTS
    assert priority_of("GET", "/api/v1/namespaces/a/services/x") == CHILDREN


async def test_a_client_without_a_pool_limit_has_no_gate_and_no_connection_limit() -> None:
    """The gateway's client (pool_limit 0) holds a long-lived watch per kind and namespace: nothing may cap it."""
    from inference_operator.kube.client import Kube
    from inference_operator.kube.gate import POOL_LIMIT
    from inference_operator.kube.kubeconfig import Connection

    unlimited = Kube(Connection(server="https://127.0.0.1:1", ssl_context=False), "gateway", pool_limit=0)
    pooled = Kube(Connection(server="https://127.0.0.1:1", ssl_context=False), "operator")
    try:
        assert unlimited.gate is None and unlimited.session.connector is not None
        assert unlimited.session.connector.limit == 0
        assert pooled.gate is not None and pooled.gate.free == POOL_LIMIT
        assert pooled.session.connector is not None and pooled.session.connector.limit > POOL_LIMIT
    finally:
        await unlimited.close()
        await pooled.close()


async def order_after_patience(older: list[tuple[str, int]], younger: list[tuple[str, int]]) -> list[str]:
    """The order in which a one-slot gate lets requests in: `older` (name, priority) wait past their patience,
    then `younger` arrive, then the slot is given back."""
    gate = PriorityGate(1, patience=0.05)
    order: list[str] = []
    held = asyncio.Event()

    def requests(named: list[tuple[str, int]]) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(enter(gate, priority, lambda name=name: order.append(name)))
                for name, priority in named]

    first = asyncio.create_task(enter(gate, CHILDREN, held.wait))
    await until(lambda: gate.free == 0)
    waiting = requests(older)
    await until(lambda: len(gate.waiting) == len(older))
    loop = asyncio.get_running_loop()
    waited_from = loop.time()
    await until(lambda: loop.time() - waited_from > 0.06)  # they have waited past their patience
    waiting += requests(younger)
    await until(lambda: len(gate.waiting) == len(older) + len(younger))
    held.set()
    await asyncio.gather(first, *waiting)
    return order


async def test_a_lower_priority_that_waited_its_patience_goes_before_younger_children() -> None:
    """At a steady rate children keep arriving: a status write that has waited `patience` is next anyway."""
    order = await order_after_patience([("status", STATUS)], [(f"service-{i}", CHILDREN) for i in range(3)])
    assert order == ["status", "service-0", "service-1", "service-2"]


async def test_a_deployment_goes_before_a_lower_priority_that_waited_its_patience() -> None:
    """Overloaded (more new services a second than the API server takes), the children that waited their
    patience went first, and every new service's Deployment waited as long: a Deployment is never overtaken."""
    order = await order_after_patience([("service", CHILDREN), ("status", STATUS)],
                                       [("deployment", DEPLOYMENTS), ("younger-service", CHILDREN)])
    assert order == ["deployment", "service", "status", "younger-service"]


async def test_a_ready_status_goes_before_a_lower_priority_that_waited_its_patience() -> None:
    """The status that says a service became ready is what its users wait for: never overtaken by patience."""
    order = await order_after_patience([("service", CHILDREN), ("status", STATUS)],
                                       [("ready", READY), ("younger-service", CHILDREN)])
    assert order == ["ready", "service", "status", "younger-service"]


async def test_urgent_requests_have_connections_of_their_own_when_the_others_are_held() -> None:
    """Every shared connection held by other services' children: a new service's Deployment and a ready status
    go out at once on a reserved one; children wait; a reserved connection given back goes to no child."""
    gate = PriorityGate(2, reserved=2)
    release, urgent_release = asyncio.Event(), asyncio.Event()
    holders = [asyncio.create_task(enter(gate, CHILDREN, release.wait)) for _ in range(2)]
    await until(lambda: gate.free == 0)
    child = asyncio.create_task(enter(gate, CHILDREN, lambda: None))
    await until(lambda: len(gate.waiting) == 1)
    urgent = [asyncio.create_task(enter(gate, priority, urgent_release.wait)) for priority in (DEPLOYMENTS, READY)]
    await until(lambda: gate.free_reserved == 0)
    assert len(gate.waiting) == 1 and not child.done()  # the child still waits: the reserved ones are not its
    urgent_release.set()
    await asyncio.gather(*urgent)
    assert gate.free_reserved == 2 and not child.done()  # given back to the reserve, not to the waiting child
    release.set()
    await asyncio.gather(*holders, child)
    assert gate.free == 2 and gate.free_reserved == 2


async def test_an_urgent_waiter_takes_a_reserved_connection_given_back() -> None:
    gate = PriorityGate(1, reserved=1)
    release, first_urgent = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(enter(gate, CHILDREN, release.wait))
    await until(lambda: gate.free == 0)
    on_reserve = asyncio.create_task(enter(gate, DEPLOYMENTS, first_urgent.wait))
    await until(lambda: gate.free_reserved == 0)
    order: list[str] = []
    waiting = [asyncio.create_task(enter(gate, priority, lambda name=name: order.append(name)))
               for name, priority in (("service", CHILDREN), ("deployment", DEPLOYMENTS))]
    await until(lambda: len(gate.waiting) == 2)
    first_urgent.set()  # the reserved connection comes back while the shared one is still held
    await until(lambda: order == ["deployment"])
    release.set()
    await asyncio.gather(holder, on_reserve, *waiting)
    assert order == ["deployment", "service"] and gate.free == 1 and gate.free_reserved == 1
