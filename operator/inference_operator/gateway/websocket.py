"""WebSocket upgrades, proxied both ways (GATEWAY.md: "WebSocket on the same path").

The gateway first checks the client's handshake (a malformed upgrade is a 400 and never reaches the
model), then opens the WebSocket to the model (so a model that cannot be reached is still an HTTP
error the client can read), then accepts the client's upgrade with the subprotocol the model chose,
and relays frames in both directions. The per-request timeout becomes an idle timeout: it restarts
whenever a frame moves either way. A close from either side closes the other with its code, except
the codes RFC 6455 (7.4.1) forbids on the wire (1005, 1006, 1015: "no code", "abnormal", "TLS"),
which become 1011 (internal error) towards the client when the model's side broke, else 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp
from aiohttp import WSMsgType, web
from multidict import CIMultiDict
from yarl import URL

from inference_operator.gateway.errors import BACKEND_TIMEOUT, BAD_REQUEST, NO_READY_INSTANCE, GatewayError
from inference_operator.gateway.limits import Limits
from inference_operator.gateway.proxy import Outcome, unreachable

log = logging.getLogger(__name__)
HANDSHAKE_HEADERS = frozenset({"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                               "sec-websocket-protocol", "sec-websocket-accept", "content-length"})
GOING_AWAY = 1001
INTERNAL = 1011
RESERVED = frozenset({1004, 1005, 1006, 1015})


def wire_code(code: int | None, broken: bool) -> int:
    """A close code that may be sent (RFC 6455 7.4): 1000-1003, 1007-1014 and 3000-4999, else a stand-in."""
    if code is not None and code not in RESERVED and (1000 <= code <= 1014 or 3000 <= code <= 4999):
        return code
    return INTERNAL if broken else GOING_AWAY


def is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def check_handshake(request: web.Request) -> None:
    """400 for an upgrade the gateway could not accept anyway (method, key, version): before any model is dialled."""
    if not web.WebSocketResponse().can_prepare(request).ok:
        raise GatewayError(BAD_REQUEST, "malformed WebSocket handshake: a GET with Connection: Upgrade, "
                                        "Upgrade: websocket, Sec-WebSocket-Version: 13 and a Sec-WebSocket-Key")


async def _connect(session: aiohttp.ClientSession, url: URL, headers: CIMultiDict[str], protocols: tuple[str, ...],
                   limits: Limits, request_id: str) -> aiohttp.ClientWebSocketResponse:
    try:
        async with asyncio.timeout(limits.timeout_seconds):
            return await session.ws_connect(url, headers=headers, protocols=protocols, autoping=True,
                                            max_msg_size=limits.body_limit_bytes)
    except TimeoutError:
        raise GatewayError(BACKEND_TIMEOUT, f"the model did not accept the WebSocket within "
                                            f"{limits.timeout_seconds:g} seconds") from None
    except aiohttp.WSServerHandshakeError as err:
        raise GatewayError(NO_READY_INSTANCE, f"the model refused the WebSocket upgrade (HTTP {err.status})") from None
    except (aiohttp.ClientError, OSError, ValueError) as err:
        raise unreachable(err, request_id, "WebSocket") from None


async def relay(request: web.Request, session: aiohttp.ClientSession, url: URL, headers: CIMultiDict[str],
                limits: Limits, outcome: Outcome) -> web.WebSocketResponse:
    """Open the model's WebSocket, accept the client's, and pump frames until one side closes or idles."""
    protocols = tuple(p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip())
    headers = CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in HANDSHAKE_HEADERS)
    try:
        upstream = await _connect(session, url, headers, protocols, limits, headers["X-Request-Id"])
    except GatewayError:
        outcome.failed = True
        raise
    outcome.status = 101
    downstream = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else (),
                                       max_msg_size=limits.body_limit_bytes, autoping=True)
    try:
        await downstream.prepare(request)
        await _pump_both(downstream, upstream, limits.timeout_seconds)
    finally:
        model_broke = upstream.closed and upstream.close_code in (None, *RESERVED)
        await _close(upstream, downstream.close_code, broken=False)
        await _close(downstream, upstream.close_code, broken=model_broke)
        outcome.failed = outcome.failed or model_broke
    return downstream


async def _close(ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse, code: int | None,
                 broken: bool) -> None:
    if not ws.closed:
        with contextlib.suppress(Exception):
            await ws.close(code=wire_code(code, broken))


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
