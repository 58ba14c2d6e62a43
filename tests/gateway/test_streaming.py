"""Server-sent events, WebSocket and client disconnects through the gateway, against real model servers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from .conftest import GatewayUnderTest, counted, service_body

UID = "0b6f4a8e-2222-4c1e-9d51-5a0c7d9e0002"


@pytest.fixture
def sid(gateway: GatewayUnderTest, backends) -> str:
    """A service whose timeout (annotation: 3 s) outlasts the model's 2 s pause between events."""
    return gateway.add_service(service_body("stream", UID, [("v1", 100)], annotations={
        "inference.io/gateway-timeout-seconds": "3"}), backends)


async def counts_settled(gateway: GatewayUnderTest, sid: str) -> dict[str, Any]:
    """The service's counts once the gateway has finished the request (a WebSocket ends after the client)."""
    for _ in range(100):
        if (counts := gateway.gw.metrics.counts().get(sid)) and counts["invocationTimes"]:
            return counts
        await asyncio.sleep(0.02)
    raise AssertionError(f"no counts for {sid}")


async def test_first_sse_event_is_not_held_back(gateway, sid, backends):
    """The model sends one event, then waits until the client has it: a gateway that buffers the stream
    never delivers it (the timeout only bounds that failure; no wall-clock bound on a healthy run)."""
    gate = f"sse-{time.monotonic_ns()}"
    async with gateway.http.get(gateway.infer_url(sid, f"/sse?gate={gate}")) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        async with asyncio.timeout(10):
            first = await resp.content.readuntil(b"\n\n")
        async with gateway.http.post(f"http://127.0.0.1:{backends['v1'].port}/-/release?id={gate}") as released:
            assert released.status == 200
        rest = await resp.content.read()
    assert first == b"data: first from v1\n\n"
    assert rest.endswith(b"data: [DONE]\n\n")
    assert rest.count(b"data: event") == 3


async def test_websocket_echo_both_ways(gateway, sid):
    async with gateway.http.ws_connect(gateway.infer_url(sid, "/ws"), protocols=("echo.v1",)) as ws:
        assert ws.protocol == "echo.v1"
        for text in ("hello", "world"):
            await ws.send_str(text)
            assert (await ws.receive_str()) == f"v1:{text}"
        await ws.send_bytes(b"\x00\x01binary")
        assert (await ws.receive_bytes()) == b"\x00\x01binary"
        big = b"b" * 200_000  # larger than one 64 kB frame
        await ws.send_bytes(big)
        assert (await ws.receive_bytes()) == big
    assert await counts_settled(gateway, sid) == counted(1, 0, v1=1)


async def test_websocket_close_from_the_model_reaches_the_client(gateway, sid):
    async with gateway.http.ws_connect(gateway.infer_url(sid, "/ws")) as ws:
        await ws.send_str("close-me")
        msg = await ws.receive()
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 4000


async def test_websocket_idle_longer_than_the_timeout_is_closed(gateway, sid):
    async with gateway.http.ws_connect(gateway.infer_url(sid, "/ws")) as ws:
        await ws.send_str("ping")
        assert (await ws.receive_str()) == "v1:ping"
        started = time.monotonic()
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert 2.5 < time.monotonic() - started < 4.5


async def test_websocket_to_an_unknown_service_is_a_json_404(gateway):
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await gateway.http.ws_connect(gateway.infer_url("unknown", "/ws"))
    assert err.value.status == 404


async def test_client_disconnect_cancels_the_upstream_request(gateway, sid, backends):
    """The client gives up after 0.5 s on a 1.5 s prediction: the model must see its request cancelled."""
    ident = f"disconnect-{time.monotonic_ns()}"
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await gateway.http.post(gateway.infer_url(sid, f"/slow?seconds=1.5&id={ident}"))
    events_url = f"http://127.0.0.1:{backends['v1'].port}/-/events"
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        async with gateway.http.get(events_url) as resp:
            events = await resp.json()
        if ident in events["cancelled"] or ident in events["finished"]:
            break
        await asyncio.sleep(0.05)
    assert ident in events["started"]
    assert ident in events["cancelled"]
    assert ident not in events["finished"]
    assert await counts_settled(gateway, sid) == counted(1, 0, v1=1)
