"""Leader election's rules: locally observed expiry, renew deadline, bounded attempts, fenced writes.

The Lease API here is an in-memory store with the API server's optimistic concurrency (resourceVersion,
409 on a stale PUT); the end-to-end behaviour against a real API server is in tests/e2e and tests/faults.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from inference_operator.kube.identity import user_agent
from inference_operator.runtime.leader import MICRO, Fenced, LeaderElector, NotLeading, RenewalThread, Timing, taken

NOW = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
PATH = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/op"


class Refused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Leases:
    """One Lease with resourceVersion checks; `hang` makes every request wait forever (a frozen server)."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.hang = False

    async def _maybe_hang(self) -> None:
        if self.hang:
            await asyncio.Event().wait()

    async def get_json(self, path: str) -> dict[str, Any]:
        await self._maybe_hang()
        if self.lease is None:
            raise Refused(404)
        return copy.deepcopy(self.lease)

    async def send(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        await self._maybe_hang()
        if method == "POST":
            if self.lease is not None:
                raise Refused(409)
        elif body["metadata"].get("resourceVersion") != str(self.version):
            raise Refused(409)
        self.version += 1
        self.lease = {**copy.deepcopy(body), "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
        return copy.deepcopy(self.lease)

    def holder(self) -> str:
        return (self.lease or {}).get("spec", {}).get("holderIdentity", "")


async def _noop() -> None:
    return None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


TIMING = Timing(lease_duration=15, renew_deadline=10, retry_period=2)


def elector(api: Leases, me: str, clock: Clock, timing: Timing = TIMING) -> LeaderElector:
    return LeaderElector(api, "ns", "op", me, timing, clock=clock)


class TestTiming:
    def test_client_go_defaults(self):
        assert Timing.for_lease(15) == Timing(15, 10, 2)

    @pytest.mark.parametrize("durations", [(10, 10, 2), (15, 20, 2), (15, 10, 9)])
    def test_renew_deadline_must_be_shorter_than_the_lease(self, durations):
        with pytest.raises(ValueError, match="renew_deadline"):
            Timing(*durations)


class TestExpiryIsJudgedByLocalTime:
    async def test_a_live_holder_keeps_it(self):
        api, clock = Leases(), Clock()
        assert await elector(api, "a", clock).try_acquire_or_renew(5)
        b = elector(api, "b", clock)
        clock.now += 14
        assert not await b.try_acquire_or_renew(5), "b saw the record only now: a full lease duration from now"
        clock.now += 14.9
        assert not await b.try_acquire_or_renew(5)
        clock.now += 0.2
        assert await b.try_acquire_or_renew(5) and api.holder() == "b"

    async def test_a_renewtime_far_in_the_past_does_not_expire_it(self):
        """Clock skew: the holder's renewTime says an hour ago, yet the record is fresh to us."""
        api, clock = Leases(), Clock()
        api.lease = {"metadata": {"name": "op", "resourceVersion": "0"},
                     "spec": {**taken({}, "a", NOW - timedelta(hours=1), 15)}}
        assert not await elector(api, "b", clock).try_acquire_or_renew(5)

    async def test_a_renewtime_in_the_future_does_not_keep_it(self):
        """The other way round: a holder whose clock runs ahead cannot hold a Lease it stopped renewing."""
        api, clock = Leases(), Clock()
        api.lease = {"metadata": {"name": "op", "resourceVersion": "0"},
                     "spec": {**taken({}, "a", NOW + timedelta(hours=1), 15)}}
        b = elector(api, "b", clock)
        assert not await b.try_acquire_or_renew(5)
        clock.now += 15.1
        assert await b.try_acquire_or_renew(5)

    async def test_every_renewal_restarts_the_standbys_wait(self):
        api, clock = Leases(), Clock()
        a, b = elector(api, "a", clock), elector(api, "b", clock)
        assert await a.try_acquire_or_renew(5)
        for _ in range(10):
            clock.now += 8
            assert not await b.try_acquire_or_renew(5)
            assert await a.try_acquire_or_renew(5)

    async def test_concurrent_takeover_has_one_winner(self):
        api, clock = Leases(), Clock()
        a, b = elector(api, "a", clock), elector(api, "b", clock)
        results = await asyncio.gather(a.try_acquire_or_renew(5), b.try_acquire_or_renew(5))
        assert sorted(results) == [False, True]


class TestRenewDeadline:
    async def test_leading_ends_at_the_renew_deadline_before_anyone_can_take_over(self):
        api, clock = Leases(), Clock()
        a, b = elector(api, "a", clock), elector(api, "b", clock)
        assert await a.try_acquire_or_renew(5) and a.leading()
        assert not await b.try_acquire_or_renew(5)  # b observes the record now
        clock.now += 9.9
        assert a.leading()
        clock.now += 0.2
        assert not a.leading(), "a stops at its renew deadline (10 s) ..."
        assert not await b.try_acquire_or_renew(5), "... while b must still wait (15 s)"

    async def test_keep_returns_when_renewals_hang_past_the_deadline(self):
        """A frozen API server: every renewal hangs; keep() gives up within the renew deadline."""
        api = Leases()
        timing = Timing(lease_duration=1.5, renew_deadline=1.0, retry_period=0.2)
        a = LeaderElector(api, "ns", "op", "a", timing)
        assert await a.try_acquire_or_renew(1)
        api.hang = True
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(a.keep(), 5)
        assert asyncio.get_running_loop().time() - started < 1.0 + 0.3
        assert not a.leading()

    async def test_keep_renews_while_the_api_answers(self):
        api = Leases()
        timing = Timing(lease_duration=1.5, renew_deadline=1.0, retry_period=0.1)
        a = LeaderElector(api, "ns", "op", "a", timing)
        assert await a.try_acquire_or_renew(1)
        keeper = asyncio.ensure_future(a.keep())
        first = api.version
        deadline = asyncio.get_running_loop().time() + 5  # five renewals take 0.5 s at a 0.1 s retry period
        while api.version < first + 5:
            assert asyncio.get_running_loop().time() < deadline, f"{api.version - first} renewals in 5 s, not 5"
            await asyncio.sleep(0.05)
        assert a.leading() and not keeper.done()
        keeper.cancel()

    async def test_renewal_goes_on_while_the_main_loop_is_busy(self):
        """A burst of passes holding the main event loop (here: blocked for 2.5 s, well past the 1 s
        renew deadline) must not cost the leader its Lease: renewal runs on its own thread and loop."""
        api = Leases()
        timing = Timing(lease_duration=1.5, renew_deadline=1.0, retry_period=0.1)
        a = LeaderElector(api, "ns", "op", "a", timing)
        assert await a.try_acquire_or_renew(1)
        lost = threading.Event()

        async def connect() -> Leases:  # the thread's own client (here: the same in-memory Lease API)
            return api

        api.close = _noop  # type: ignore[attr-defined]
        renewal = RenewalThread(a, connect, on_lost=lost.set)
        keeper = renewal.start()
        try:
            first = api.version
            time.sleep(2.5)  # the busy main loop itself (nothing here waits on it): no task of this loop runs
            assert not lost.is_set() and a.leading(), "the Lease was lost while the main loop was busy"
            assert api.version >= first + 5, "renewals stopped while the main loop was busy"
            assert not keeper.done()
        finally:
            renewal.stop()

    async def test_release_lets_a_standby_take_over_at_once(self):
        api, clock = Leases(), Clock()
        a, b = elector(api, "a", clock), elector(api, "b", clock)
        assert await a.try_acquire_or_renew(5)
        assert not await b.try_acquire_or_renew(5)
        await a.release()
        assert await b.try_acquire_or_renew(5) and api.holder() == "b"


class TestFenced:
    async def test_writes_pass_only_while_leading(self):
        calls = []

        class Port:
            async def apply(self, manifest):
                calls.append(manifest)

            async def get_json(self, path):
                return {"path": path}

        leading = True
        port = Fenced(Port(), lambda: leading)
        await port.apply({"a": 1})
        leading = False
        with pytest.raises(NotLeading):
            await port.apply({"a": 2})
        assert calls == [{"a": 1}]
        assert await port.get_json("/x") == {"path": "/x"}, "reads are not fenced"

    async def test_every_write_the_kube_port_has_is_fenced(self):
        """Each writing method of kube.Kube (the status write included) is refused once not leading."""
        from inference_operator.kube.client import Kube

        writes = {"apply", "write_status", "delete", "post_event", "send"}
        assert writes <= {n for n in dir(Kube) if not n.startswith("_")}
        port = Fenced(Kube.__new__(Kube), lambda: False)
        for name in sorted(writes):
            with pytest.raises(NotLeading):
                await getattr(port, name)()

    async def test_the_operators_state_writes_through_the_fence_from_its_first_write(self):
        """With leader election, kopf's memo carries may_write (__main__.py) and the state builds its reconciler on
        the fenced port: every writer the reconciler has (its child sync too) is fenced, and the client's own
        gate is set, before any event is handled."""
        from inference_operator.config import OperatorConfig
        from inference_operator.kube.client import Kube
        from inference_operator.runtime.state import OperatorState

        def may_write() -> bool:
            return False

        state = OperatorState(kube=Kube.__new__(Kube), cfg=OperatorConfig(), namespace="ns", may_write=may_write)
        assert isinstance(state.reconciler.kube, Fenced) and state.reconciler.children.kube is state.reconciler.kube
        assert state.kube.write_gate is may_write
        with pytest.raises(NotLeading):
            await state.reconciler.children.kube.apply({})
        alone = OperatorState(kube=Kube.__new__(Kube), cfg=OperatorConfig(), namespace="ns")
        assert alone.reconciler.kube is alone.kube


class TestTaken:
    def test_renewal_keeps_acquire_time_and_transitions(self):
        before = taken({}, "me", NOW - timedelta(seconds=100), 15) | {"leaseTransitions": 3}
        after = taken(before, "me", NOW, 15)
        assert after["acquireTime"] == before["acquireTime"] and after["leaseTransitions"] == 3
        assert after["renewTime"] == NOW.strftime(MICRO)

    def test_takeover_counts_a_transition(self):
        after = taken(taken({}, "other", NOW, 15) | {"leaseTransitions": 3}, "me", NOW, 15)
        assert after["holderIdentity"] == "me" and after["leaseTransitions"] == 4
        assert after["acquireTime"] == NOW.strftime(MICRO)


def test_user_agent_names_the_replica(monkeypatch):
    monkeypatch.setenv("POD_NAME", "inference-operator-7d9f-abcde")
    assert user_agent().startswith("inference-operator/0.1.0 (inference-operator-7d9f-abcde-")
