"""The gateway's HTTP applications: `/v1/infers/<serviceId>/...` and `/api/predict/<service>/...` on the main
port (serve.py); /metrics,
/-/counts and /healthz on the internal port (and /healthz on both).

Every refusal is a GatewayError, and every other error (aiohttp's own, a crash) too, turned into the
cloud's JSON error body by one middleware.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from os import urandom

from aiohttp import web

from inference_operator.api.v1alpha1 import INFERS_PREFIX
from inference_operator.gateway.core import GATEWAY, REQUEST_ID, Gateway
from inference_operator.gateway.errors import INTERNAL_ERROR, GatewayError, kind_of_status
from inference_operator.gateway.httpserver import ServerLimits
from inference_operator.gateway.httpserver import start_site as _start_site
from inference_operator.gateway.serve import PREDICT_PREFIX, expect, infer, predict

log = logging.getLogger(__name__)


@web.middleware
async def error_middleware(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Every error answer as the contract's JSON: the gateway's own, aiohttp's (404, 405, ...) and crashes."""
    given = request.headers.get("X-Request-Id", "")
    # 32 random hex digits, as uuid4().hex but without building a UUID object on every request
    request_id = given if 0 < len(given) <= 128 and given.isascii() and given.isprintable() else urandom(16).hex()
    REQUEST_ID.set(request_id)
    try:
        return await handler(request)
    except GatewayError as err:
        return _unread_closes(request, web.Response(status=err.status, body=err.body(request_id),
                                                    content_type="application/json",
                                                    headers={"X-Request-Id": request_id}))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _unread_closes(request, _error(kind_of_status(exc.status), exc.reason or "request refused",
                                              request_id))
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:
        log.exception("internal error (request id %s)", request_id)
        return _error(INTERNAL_ERROR, "internal error of the gateway; quote the request id", request_id)


def _unread_closes(request: web.Request, response: web.Response) -> web.Response:
    """A refused request whose body was not read closes its connection after the answer: reading (and
    discarding) the rest, as aiohttp would to keep the connection, costs memory and time for nothing."""
    if request.body_exists and not request.content.is_eof():
        response.force_close()
    return response


def _error(kind: tuple[str, int], message: str, request_id: str) -> web.Response:
    return web.Response(status=kind[1], body=GatewayError(kind, message).body(request_id),
                        content_type="application/json", headers={"X-Request-Id": request_id})


async def healthz(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    ready = (gw.healthy or gw.ready)()
    return web.json_response({"status": "ok" if ready else "syncing"}, status=200 if ready else 503)


async def counts(request: web.Request) -> web.Response:
    """Cumulative counts of this gateway process; with a token set, only for a caller that presents it."""
    gw = request.app[GATEWAY]
    if gw.counts_token is not None:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not (sent.isascii() and hmac.compare_digest(sent.encode(), gw.counts_token.encode())):
            raise GatewayError(AUTH_REQUIRED_INTERNAL, "GET /-/counts needs the gateway's counts token "
                                                       "(Authorization: Bearer ...)")
    metrics = gw.metrics
    response = web.json_response(metrics.counts(), headers={"X-Gateway-Instance": metrics.instance,
                                                            "X-Gateway-Started": metrics.started})
    gw.counts_read.set()
    return response


AUTH_REQUIRED_INTERNAL = ("APIG.0305", 401)


async def prometheus(request: web.Request) -> web.Response:
    body = request.app[GATEWAY].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def build_app(gw: Gateway, with_metrics: bool = False) -> web.Application:
    """The main application; `with_metrics` also serves /metrics and /-/counts on it (one port: tests only,
    the chart never exposes them on the inference port)."""
    app = web.Application(middlewares=[error_middleware], client_max_size=1024)
    app[GATEWAY] = gw
    app.router.add_route("*", INFERS_PREFIX, infer, expect_handler=expect)
    app.router.add_route("*", INFERS_PREFIX + "/{tail:.*}", infer, expect_handler=expect)
    app.router.add_route("*", PREDICT_PREFIX, predict, expect_handler=expect)
    app.router.add_route("*", PREDICT_PREFIX + "/{tail:.*}", predict, expect_handler=expect)
    app.router.add_get("/healthz", healthz)
    if with_metrics:
        _add_metrics_routes(app)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await gw.open()
        yield
        await gw.close()

    app.cleanup_ctx.append(lifecycle)
    return app


def build_metrics_app(gw: Gateway) -> web.Application:
    """The internal port: /healthz, /metrics, /-/counts."""
    app = web.Application(middlewares=[error_middleware], client_max_size=1024)
    app[GATEWAY] = gw
    app.router.add_get("/healthz", healthz)
    _add_metrics_routes(app)
    return app


def _add_metrics_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/-/counts", counts)


async def start_site(app: web.Application, host: str, port: int,
                     limits: ServerLimits | None = None) -> tuple[web.AppRunner, int]:
    """Serve `app` on host:port (0: any free port) with the connection guards of httpserver.py."""
    return await _start_site(app, host, port, limits)
