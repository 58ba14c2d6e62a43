"""Leader election on a coordination.k8s.io Lease with client-go's semantics, so two replicas never both write.

- Expiry of another holder's Lease is judged by *locally observed* time: how long ago (on our monotonic
  clock) we last saw the Lease record change. Its renewTime is never compared with our clock, so clock
  skew between machines does not matter.
- The leader renews every `retry_period`. It leads only while its last successful renewal (timed from
  the moment the request was sent) is younger than `renew_deadline`, which is shorter than the
  Lease's duration: a standby, which saw that renewal no earlier than it was sent, waits a full
  `lease_duration` after it, so the old leader has stopped `lease_duration - renew_deadline` before.
- Every Lease request is bounded by the time left to the deadline; a hung request cannot stretch it.
- Renewal runs on a thread of its own, with its own event loop and API connection (`RenewalThread`):
  a reconcile backlog on the main loop (a burst of hundreds of services on a starved CPU) delays
  every task queued there by seconds, and would otherwise delay the renewal past its deadline; the
  thread gets the interpreter every few milliseconds however busy the main loop is.
- Writes of the operator go through `Fenced`, which refuses them once the deadline has passed (a
  process frozen with SIGSTOP and resumed does not write on a stale belief), and the process exits
  when renewal fails past the deadline (its Deployment restarts it as a standby).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)
MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


class NotLeading(Exception):
    """A write refused because this replica's leadership may have ended."""


@dataclass(frozen=True)
class Timing:
    """client-go's three durations (seconds); defaults 15 / 10 / 2 as in client-go's controllers."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > self.retry_period * 1.2 > 0:
            raise ValueError("need lease_duration > renew_deadline > 1.2 * retry_period > 0 "
                             f"(got {self.lease_duration}, {self.renew_deadline}, {self.retry_period})")

    @classmethod
    def for_lease(cls, lease_duration: float) -> Timing:
        """Renew deadline 2/3 and retry period 2/15 of the Lease duration (client-go's 15/10/2)."""
        return cls(lease_duration, lease_duration * 2 / 3, lease_duration * 2 / 15)


def taken(spec: Mapping[str, Any], me: str, now: datetime, duration: int) -> dict[str, Any]:
    """The Lease spec once we hold it (acquireTime and transitions move only on a change of holder).
    The times are informational for humans: no replica judges expiry by them."""
    stamp = now.strftime(MICRO)
    changed = (spec.get("holderIdentity") or "") != me
    return {**spec, "holderIdentity": me, "leaseDurationSeconds": duration, "renewTime": stamp,
            "acquireTime": stamp if changed else spec.get("acquireTime", stamp),
            "leaseTransitions": int(spec.get("leaseTransitions") or 0) + (1 if changed else 0)}


@dataclass
class Observation:
    """The Lease record as last seen, and when (our monotonic clock) it was last seen to change."""

    record: Mapping[str, Any] | None = None
    changed_at: float = 0.0

    def see(self, record: Mapping[str, Any], now: float) -> None:
        if record != self.record:
            self.record, self.changed_at = dict(record), now

    def held_by_other(self, me: str, now: float, lease_duration: float) -> bool:
        holder = (self.record or {}).get("holderIdentity") or ""
        return holder not in ("", me) and now < self.changed_at + lease_duration


@dataclass
class LeaderElector:
    """Acquire, renew and release one Lease through a Kube port (its get_json and send)."""

    kube: Any
    namespace: str
    name: str
    identity: str
    timing: Timing = field(default_factory=Timing)
    clock: Callable[[], float] = time.monotonic
    observed: Observation = field(default_factory=Observation)
    renewed_at: float | None = None  # when the request of our last successful acquire/renew was sent

    @property
    def path(self) -> str:
        return LEASES.format(namespace=self.namespace)

    def leading(self) -> bool:
        """True while our last successful renewal is younger than the renew deadline."""
        return self.renewed_at is not None and self.clock() - self.renewed_at < self.timing.renew_deadline

    async def try_acquire_or_renew(self, timeout: float, kube: Any = None) -> bool:
        """One attempt (client-go's tryAcquireOrRenew), bounded by `timeout` seconds in all, through `kube`
        (default: the elector's client)."""
        sent = self.clock()
        try:
            won = await asyncio.wait_for(self._attempt(sent, kube or self.kube), timeout)
        except (TimeoutError, OSError, LookupError) as exc:
            log.warning("lease %s/%s: %s", self.namespace, self.name, exc or type(exc).__name__)
            return False
        except Exception as exc:  # noqa: BLE001 - any API error is a failed attempt, never a crash
            log.warning("lease %s/%s: %s: %s", self.namespace, self.name, type(exc).__name__, exc)
            return False
        if won:
            self.renewed_at = sent
        return won

    async def _attempt(self, now: float, kube: Any) -> bool:
        try:
            lease = await kube.get_json(f"{self.path}/{self.name}")
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise
            spec = taken({}, self.identity, datetime.now(UTC), round(self.timing.lease_duration))
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
            if not await self._write(kube, "POST", self.path, body):
                return False
            self.observed.see(spec, self.clock())
            return True
        spec = lease.get("spec") or {}
        self.observed.see(spec, self.clock())
        if self.observed.held_by_other(self.identity, self.clock(), self.timing.lease_duration):
            return False
        if (spec.get("holderIdentity") or "") != self.identity and self.renewed_at is not None:
            self.renewed_at = None  # someone else held it in between: we lead again only from now on
        lease["spec"] = taken(spec, self.identity, datetime.now(UTC), round(self.timing.lease_duration))
        # PUT with the resourceVersion we read: a concurrent writer makes ours fail with 409.
        if not await self._write(kube, "PUT", f"{self.path}/{self.name}", lease):
            return False
        self.observed.see(lease["spec"], self.clock())
        return True

    @staticmethod
    async def _write(kube: Any, method: str, path: str, body: dict[str, Any]) -> bool:
        try:
            await kube.send(method, path, body=body)
            return True
        except Exception as exc:
            if getattr(exc, "status", None) == 409:  # someone else wrote it first
                return False
            raise

    async def acquire(self) -> None:
        """Until this replica leads: one attempt every retry period (jittered, like client-go)."""
        log.info("waiting to lead (Lease %s/%s, identity %s)", self.namespace, self.name, self.identity)
        while not await self.try_acquire_or_renew(self.timing.renew_deadline):
            await asyncio.sleep(self.timing.retry_period * (1 + random.random() * 0.2))
        log.info("leading (Lease %s/%s)", self.namespace, self.name)

    async def keep(self, kube: Any = None) -> None:
        """Renew every retry period (through `kube`, default the elector's client); returns (leadership lost)
        when no renewal succeeded within the renew deadline. Each attempt is bounded by the time left to
        that deadline."""
        while True:
            await asyncio.sleep(self.timing.retry_period)
            while True:
                left = (self.renewed_at or 0.0) + self.timing.renew_deadline - self.clock()
                if left <= 0:
                    log.error("lost the Lease %s/%s: no renewal within %.1fs", self.namespace, self.name,
                              self.timing.renew_deadline)
                    self.renewed_at = None
                    return
                if await self.try_acquire_or_renew(left, kube):
                    break
                pause = min(self.timing.retry_period, (self.renewed_at or 0.0) + self.timing.renew_deadline
                            - self.clock())
                if pause > 0:
                    await asyncio.sleep(pause)

    async def release(self) -> None:
        """On a clean shutdown: empty the holder so a standby takes over at once (only if we lead)."""
        if not self.leading():
            return
        self.renewed_at = None
        try:
            lease = await asyncio.wait_for(self.kube.get_json(f"{self.path}/{self.name}"),
                                           self.timing.renew_deadline)
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"] = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1}
                await asyncio.wait_for(self.kube.send("PUT", f"{self.path}/{self.name}", body=lease),
                                       self.timing.renew_deadline)
        except Exception as exc:  # noqa: BLE001 - best effort: the Lease expires anyway
            log.warning("could not release the Lease: %s", exc)


class RenewalThread:
    """Runs `elector.keep()` on a thread with its own event loop and its own API session (`connect()`
    makes one on that loop), and exits the process (status 1) the moment leadership is lost: nothing
    queued on the main loop, however long its backlog, can delay the renewal or the exit."""

    def __init__(self, elector: LeaderElector, connect: Callable[[], Awaitable[Any]],
                 on_lost: Callable[[], None] | None = None) -> None:
        self.elector, self.connect = elector, connect
        self.on_lost = on_lost or self._exit
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="lease-renewal", daemon=True)
        self.task: asyncio.Task[None] | None = None
        self.ended = threading.Event()

    @staticmethod
    def _exit() -> None:
        log.error("leadership lost: exiting")
        logging.shutdown()
        os._exit(1)

    async def _keep(self) -> None:
        kube = await self.connect()
        try:
            await self.elector.keep(kube)  # this loop's own session; the main loop's client stays the elector's
        finally:
            await kube.close()
            self.ended.set()
        self.on_lost()

    def start(self) -> asyncio.Future[None]:
        """Starts renewing; the returned future (of the caller's loop) ends when leadership is lost."""
        caller, lost = asyncio.get_running_loop(), asyncio.get_running_loop().create_future()

        def settle() -> None:
            if not lost.done():
                lost.set_result(None)

        def begin() -> None:
            self.task = self.loop.create_task(self._keep())
            self.task.add_done_callback(lambda _: caller.call_soon_threadsafe(settle))

        self.thread.start()
        self.loop.call_soon_threadsafe(begin)
        return lost

    def stop(self) -> None:
        """On a clean shutdown, before `elector.release()`: stop renewing and wait until it has."""
        if not self.thread.is_alive():
            return
        self.loop.call_soon_threadsafe(lambda: self.task is not None and self.task.cancel())
        if self.task is not None:
            self.ended.wait(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Fenced:
    """A Kube port whose writes go through only while `may_write()` holds; reads pass through."""

    WRITES = ("apply", "write_status", "delete", "post_event", "send", "patch", "create", "replace",
              "update")

    def __init__(self, kube: Any, may_write: Callable[[], bool]) -> None:
        self._kube, self._may_write = kube, may_write

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._kube, name)
        if name not in self.WRITES:
            return attr

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            if not self._may_write():
                raise NotLeading(f"{name} refused: this replica's Lease may have expired")
            return await attr(*args, **kwargs)

        return guarded
