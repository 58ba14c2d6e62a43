"""Leader election on a coordination.k8s.io Lease, so two replicas never both write.

A replica that is not the leader does not start the operator at all; it waits until the Lease is
free or expired, takes it, and renews it every third of its duration. A leader that cannot renew
before the Lease expires stops, and is restarted by its Deployment (client-go's leaderelection
does the same). On a clean shutdown the leader releases the Lease so a standby takes over at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from inference_operator.kube import ApiError, Kube

log = logging.getLogger(__name__)
MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    for fmt in (MICRO, "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def can_take(spec: Mapping[str, Any], me: str, now: datetime) -> bool:
    """A Lease is ours to take when we hold it, nobody does, or its holder stopped renewing it."""
    holder = spec.get("holderIdentity") or ""
    if holder in ("", me):
        return True
    renewed = _time(spec.get("renewTime")) or _time(spec.get("acquireTime"))
    duration = timedelta(seconds=int(spec.get("leaseDurationSeconds") or 15))
    return renewed is None or now > renewed + duration


def taken(spec: Mapping[str, Any], me: str, now: datetime, duration: int) -> dict[str, Any]:
    """The Lease spec once we hold it (acquireTime and transitions move only on a change of holder)."""
    stamp = now.strftime(MICRO)
    changed = (spec.get("holderIdentity") or "") != me
    return {**spec, "holderIdentity": me, "leaseDurationSeconds": duration, "renewTime": stamp,
            "acquireTime": stamp if changed else spec.get("acquireTime", stamp),
            "leaseTransitions": int(spec.get("leaseTransitions") or 0) + (1 if changed else 0)}


@dataclass
class LeaderElector:
    kube: Kube
    namespace: str
    name: str
    identity: str
    duration: int = 15
    retry_seconds: float = 2.0

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"

    async def _try(self) -> bool:
        now = datetime.now(UTC)
        try:
            lease = await self.kube.get_json(f"{self.path}/{self.name}")
        except ApiError as exc:
            if exc.status != 404:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": taken({}, self.identity, now, self.duration)}
            return await self._write("POST", self.path, body)
        if not can_take(lease.get("spec") or {}, self.identity, now):
            return False
        lease["spec"] = taken(lease.get("spec") or {}, self.identity, now, self.duration)
        return await self._write("PUT", f"{self.path}/{self.name}", lease)

    async def _write(self, method: str, path: str, body: dict[str, Any]) -> bool:
        try:
            await self.kube.send(method, path, body=body)
            return True
        except ApiError as exc:
            if exc.status == 409:  # someone else wrote it first
                return False
            raise

    async def acquire(self) -> None:
        """Until this replica leads."""
        log.info("waiting to lead (Lease %s/%s, identity %s)", self.namespace, self.name, self.identity)
        while not await self._safe_try():
            await asyncio.sleep(self.retry_seconds)
        log.info("leading (Lease %s/%s)", self.namespace, self.name)

    async def _safe_try(self) -> bool:
        try:
            return await self._try()
        except (ApiError, OSError, TimeoutError) as exc:
            log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            return False

    async def keep(self) -> None:
        """Renew until we cannot; returns when leadership is lost."""
        deadline = asyncio.get_running_loop().time() + self.duration
        while True:
            await asyncio.sleep(self.duration / 3)
            if await self._safe_try():
                deadline = asyncio.get_running_loop().time() + self.duration
            elif asyncio.get_running_loop().time() > deadline:
                log.error("lost the Lease %s/%s", self.namespace, self.name)
                return

    async def release(self) -> None:
        try:
            lease = await self.kube.get_json(f"{self.path}/{self.name}")
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"] = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1}
                await self.kube.send("PUT", f"{self.path}/{self.name}", body=lease)
        except (ApiError, OSError, TimeoutError) as exc:
            log.warning("could not release the Lease: %s", exc)
