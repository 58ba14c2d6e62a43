"""WebSocket upgrades, proxied both ways (GATEWAY.md: "WebSocket on the same path").

The gateway first opens the WebSocket to the model (so a model that cannot be reached is still an
HTTP error the client can read), then accepts the client's upgrade with the subprotocol the model
chose, and relays frames in both directions. The per-request timeout becomes an idle timeout: it
restarts whenever a frame moves either way. A close from either side closes the other with its code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp
from aiohttp import WSMsgType, web
from multidict import CIMultiDict
from yarl import URL

from inference_operator.gateway.errors import BACKEND_TIMEOUT, NO_READY_INSTANCE, GatewayError
from inference_operator.gateway.limits import Limits

log = logging.getLogger(__name__)
HANDSHAKE_HEADERS = frozenset({"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                               "sec-websocket-protocol", "sec-websocket-accept", "content-length"})
GOING_AWAY = 1001


def is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


async def _connect(session: aiohttp.ClientSession, url: URL, headers: CIMultiDict[str], protocols: tuple[str, ...],
                   limits: Limits) -> aiohttp.ClientWebSocketResponse:
    try:
        async with asyncio.timeout(limits.timeout_seconds):
            return await session.ws_connect(url, headers=headers, protocols=protocols, autoping=True,
                                            max_msg_size=limits.body_limit_bytes)
    except TimeoutError:
        raise GatewayError(BACKEND_TIMEOUT, f"the model did not accept the WebSocket within "
                                            f"{limits.timeout_seconds:g} seconds") from None
    except aiohttp.WSServerHandshakeError as err:
        raise GatewayError(NO_READY_INSTANCE, f"the model refused the WebSocket upgrade (HTTP {err.status})") from None
    except aiohttp.ClientError as err:
        raise GatewayError(NO_READY_INSTANCE, f"Gateway forwarding error: the model instance could not be "
                                              f"reached ({type(err).__name__}: {err})") from None


async def relay(request: web.Request, session: aiohttp.ClientSession, url: URL, headers: CIMultiDict[str],
                limits: Limits) -> web.WebSocketResponse:
    """Open the model's WebSocket, accept the client's, and pump frames until one side closes or idles."""
    protocols = tuple(p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip())
    headers = CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in HANDSHAKE_HEADERS)
    upstream = await _connect(session, url, headers, protocols, limits)
    downstream = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else (),
                                       max_msg_size=limits.body_limit_bytes, autoping=True)
    try:
        await downstream.prepare(request)
        await _pump_both(downstream, upstream, limits.timeout_seconds)
    finally:
        await _close(upstream, downstream.close_code)
        await _close(downstream, upstream.close_code)
    return downstream


async def _close(ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse, code: int | None) -> None:
    if not ws.closed:
        with contextlib.suppress(Exception):
            await ws.close(code=code or GOING_AWAY)


async def _pump_both(downstream: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse,
                     idle_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    moved = [loop.time()]

    async def pump(src: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                   dst: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:
        async for msg in src:
            moved[0] = loop.time()
            if msg.type == WSMsgType.TEXT:
                await dst.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await dst.send_bytes(msg.data)
            elif msg.type == WSMsgType.ERROR:
                break

    async def idle() -> None:
        while (left := moved[0] + idle_seconds - loop.time()) > 0:
            await asyncio.sleep(left)
        log.info("closing a WebSocket idle for %gs", idle_seconds)

    tasks = [asyncio.create_task(pump(downstream, upstream)), asyncio.create_task(pump(upstream, downstream)),
             asyncio.create_task(idle())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
