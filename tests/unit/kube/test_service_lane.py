"""kube.Kube's Service lane: at most SERVICE_APPLIES_AT_ONCE Service applies hold a connection, the rest wait
outside the pool, so the Deployments and status writes behind them are not queued behind a slow ClusterIP lock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from test_priority_gate import until

from inference_operator.kube.client import Kube
from inference_operator.kube.gate import SERVICE_APPLIES_AT_ONCE
from inference_operator.kube.kubeconfig import Connection


def child(kind: str, name: str) -> dict[str, Any]:
    api_version = "apps/v1" if kind == "Deployment" else "v1"
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": "team-a"}}


@pytest.fixture
async def kube() -> AsyncIterator[tuple[Kube, list[str], asyncio.Event]]:
    """A Kube whose requests are held where the bytes would go out: `sent` names each request's path."""
    port = Kube(Connection(server="https://127.0.0.1:1", ssl_context=False), "inference-operator")
    sent: list[str] = []
    answer = asyncio.Event()

    async def held_send(method: str, path: str, *_: Any) -> dict[str, Any]:
        sent.append(path)
        await answer.wait()
        return {}

    port._send = held_send  # type: ignore[method-assign]
    yield port, sent, answer
    answer.set()
    await port.close()


async def test_services_beyond_the_lane_wait_while_a_deployment_goes_out(
        kube: tuple[Kube, list[str], asyncio.Event]) -> None:
    port, sent, answer = kube
    services = [asyncio.create_task(port.apply(child("Service", f"s{i}"))) for i in range(SERVICE_APPLIES_AT_ONCE + 1)]
    await until(lambda: len(sent) == SERVICE_APPLIES_AT_ONCE, timeout=2)

    deployment = asyncio.create_task(port.apply(child("Deployment", "d0")))
    await until(lambda: any("/deployments/" in path for path in sent), timeout=2)

    assert sum("/services/" in path for path in sent) == SERVICE_APPLIES_AT_ONCE  # the last Service still waits
    answer.set()
    await asyncio.wait_for(asyncio.gather(*services, deployment), 5)
    assert sum("/services/" in path for path in sent) == SERVICE_APPLIES_AT_ONCE + 1
