"""Who gets a connection to the API server, and when a write may still go out.

The priority gate: a bounded number of requests at once, let in by what they do (Deployments first, Events
last). The Service lane: few Service applies at once, since they queue at one lock inside the API server. The
write gate: aiohttp trace hooks that stop a write unsent once leader election says this replica may no
longer write, checked up to the step that hands the request's bytes to the socket.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp

from inference_operator import metrics
from inference_operator.builders.service import HEADLESS

# Requests to the API server at once: enough to keep it busy (a loaded API server holds a new Service's apply
# about 1.7 s for its ClusterIP, so at 10 new services a second 16 slots are a queue), few because each TLS
# connection holds asyncio's 256 KiB read buffer (64 connections: 18 MB of an operator running 1,000 services,
# make bench phase profile). The pool has room beyond them for the long-lived watches.
POOL_LIMIT = 32
WATCH_CONNECTIONS = 8
# Connections beyond POOL_LIMIT that only urgent requests (Deployments, a status saying a service became ready) may
# take. At a steady rate above what the API server takes (50 new services a second on 2 cores) every one of the
# POOL_LIMIT connections holds another service's Service, route, status or Event for about 0.5 s, and a new
# service's Deployment waited 2.3 s (p50) for one of them although it goes first among the waiters (make
# bench-latency, trace). Opened only when urgent requests outnumber free connections: a quiet operator never does.
PRIORITY_CONNECTIONS = 16
# Who goes first when requests wait for one of those: what starts instances (Deployments), then a status that says
# a service became ready (the last step before its users may call it), then the other children and reads, then
# other status, then Events. In a burst every service's Deployment is out before the Services, routes and reports
# of the services before it.
DEPLOYMENTS, READY, CHILDREN, STATUS, EVENTS = 0, 1, 2, 3, 4
PRIORITY_NAMES = ("deployments", "ready", "children", "status", "events")
URGENT = READY  # priorities up to this one: the PRIORITY_CONNECTIONS too, and never overtaken by patience
# How long a lower priority than the urgent ones may wait behind higher ones: then it goes in order of arrival. In
# a burst every request waits seconds for a connection: a patience shorter than that wait lets nearly every request
# in by arrival, and a new service's Deployment waits behind the Services and status of the services before it.
PATIENCE_SECONDS = 5.0
# Service applies at once. kube-apiserver allocates every new ClusterIP under one lock, held across the create
# of its IPAddress object (MetaAllocator.AllocateNextService, pkg/registry/core/service/ipallocator, 1.33+): in
# a busy API server (10 new services a second) a Service apply waits 5 s in it (audit log) while its IPAddress
# takes 79 ms. More of them in flight only queue at that lock, each on one of the POOL_LIMIT connections that
# routes and status writes wait for. 8 keep the lock busy (bench ratio ceiling / operator in a burst of 200
# services: 0.85 with 8, 0.68 with 4). 24 at once, tried while another namespace was deleted (on a machine at
# twice the load of the run with 8), made each apply take 9.2 s on average against 1.1 s: no sign that a wider
# lane goes faster (make bench-latency, trace).
# Headless Services (OperatorConfig.headless_model_services) allocate nothing and do not take the lane.
SERVICE_APPLIES_AT_ONCE = 8


class WriteRefused(Exception):
    """A write stopped before it was sent (Kube.write_gate said no)."""


def allocates_cluster_ip(manifest: Mapping[str, Any]) -> bool:
    """A Service apply that may wait for the API server's cluster IP lock (a headless one never does: the lane
    would only hold it back)."""
    return manifest["kind"] == "Service" and (manifest.get("spec") or {}).get("clusterIP") != HEADLESS


def priority_of(method: str, path: str, ready: bool = False) -> int:
    """`ready`: a status write that says its service became ready."""
    if path.endswith("/status"):
        return READY if ready else STATUS
    if method == "POST" and path.endswith("/events"):
        return EVENTS
    if method == "PATCH" and "/deployments/" in path:
        return DEPLOYMENTS
    return CHILDREN


class PriorityGate:
    """At most `slots` holders at once, and `reserved` more of urgent priorities (URGENT and above); waiters are let
    in by priority (lowest first), then by arrival, except that one who has waited `patience` seconds goes before
    every younger waiter but an urgent one: at a steady rate the queue of children never empties, and status must
    not wait behind it for ever. A Deployment starts instances and waits for nothing, and a ready status is what
    users wait for: when more new services come than the API server takes, nearly every waiter has waited its
    patience, and an urgent request queued behind them would wait as long as they do."""

    def __init__(self, slots: int, patience: float = PATIENCE_SECONDS, reserved: int = 0) -> None:
        self.free = slots
        self.free_reserved = reserved
        self.patience = patience
        # a turn's result: whether it was given one of the reserved slots
        self.waiting: list[tuple[int, int, asyncio.Future[bool]]] = []
        self.arrived: collections.deque[tuple[float, asyncio.Future[bool]]] = collections.deque()  # by arrival
        self.arrivals = itertools.count()

    @contextlib.asynccontextmanager
    async def slot(self, priority: int) -> AsyncIterator[None]:
        reserved = False
        if self.free > 0 and not self.waiting:
            self.free -= 1
        elif priority <= URGENT and self.free_reserved > 0 and not self._urgent_waits():
            self.free_reserved -= 1
            reserved = True
        else:
            loop = asyncio.get_running_loop()
            turn: asyncio.Future[bool] = loop.create_future()
            heapq.heappush(self.waiting, (priority, next(self.arrivals), turn))
            self.arrived.append((loop.time(), turn))
            started = loop.time()
            try:
                reserved = await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():  # given the slot as it was cancelled: pass it on
                    self._release(turn.result())
                raise  # a cancelled waiter stays queued, done: _release skips it
            finally:
                metrics.API_QUEUE_SECONDS.labels(priority=PRIORITY_NAMES[priority]).observe(loop.time() - started)
        try:
            yield
        finally:
            self._release(reserved)

    def _urgent_waits(self) -> bool:
        while self.waiting and self.waiting[0][2].done():  # let in by the other queue, or cancelled
            heapq.heappop(self.waiting)
        return bool(self.waiting) and self.waiting[0][0] <= URGENT

    def _release(self, reserved: bool) -> None:
        while self.arrived and self.arrived[0][1].done():  # let in by the other queue, or cancelled
            self.arrived.popleft()
        urgent_waits = self._urgent_waits()
        if reserved:  # a reserved slot goes to an urgent waiter only
            if urgent_waits:
                heapq.heappop(self.waiting)[2].set_result(True)
            else:
                self.free_reserved += 1
            return
        if not urgent_waits and self.arrived \
                and asyncio.get_running_loop().time() - self.arrived[0][0] >= self.patience:
            self.arrived.popleft()[1].set_result(False)  # its entry in the heap is now done: skipped there
            return
        while self.waiting:
            turn = heapq.heappop(self.waiting)[2]
            if not turn.done():
                turn.set_result(False)
                return
        self.free += 1


def write_gate_trace(may_write: Callable[[], bool]) -> aiohttp.TraceConfig:
    """Hooks that raise WriteRefused in a write (not GET or HEAD) when `may_write()` says no: once the connection
    is ready and again in the step that hands the request's bytes to the socket (aiohttp coalesces the headers
    with the first body chunk, written by a task of its own a loop turn later). A process frozen after any
    earlier check, between it and the send, must not write on waking up."""
    async def note_method(_: Any, context: Any, params: Any) -> None:
        context.write = params.method not in ("GET", "HEAD")

    async def check(_: Any, context: Any, __: Any) -> None:
        if getattr(context, "write", False) and not may_write():
            raise WriteRefused("write refused: this replica's Lease may have expired")

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(note_method)
    for signal in (trace.on_connection_create_end, trace.on_connection_reuseconn, trace.on_connection_queued_end,
                   trace.on_request_headers_sent, trace.on_request_chunk_sent):
        signal.append(check)
    return trace


@contextlib.asynccontextmanager
async def refusals_kept() -> AsyncIterator[None]:
    """A gate refusal raised in aiohttp's body-writing task comes back wrapped as a connection error: unwrap."""
    try:
        yield
    except aiohttp.ClientConnectionError as exc:
        if isinstance(exc.__cause__, WriteRefused):
            raise exc.__cause__ from None
        raise
