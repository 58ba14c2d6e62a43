"""The gateway's HTTP applications: `/v1/infers/<serviceId>/...` on the main port; /metrics,
/-/counts and /healthz on the metrics port (and /healthz on both).

One request: resolve the serviceId (404 / 400 stopped), check the body size (413), authenticate the
app (401 / 403), apply the service's rate limit (429), pick a model by weight and one of its ready
endpoints (503), then forward (HTTP or WebSocket) with the timeout (504). Every refusal is a
GatewayError, turned into the cloud's JSON error body by one middleware.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from inference_operator.api.v1alpha1 import INFERS_PREFIX
from inference_operator.gateway import proxy, websocket
from inference_operator.gateway.auth import RequestFacts, authenticate, lower_headers, needs_body
from inference_operator.gateway.errors import NO_READY_INSTANCE, NO_SERVICE_ID, RATE_LIMITED, GatewayError
from inference_operator.gateway.limits import Limits, RateLimiters
from inference_operator.gateway.metrics import CLIENT_CLOSED, GatewayMetrics
from inference_operator.gateway.resolver import StaticResolver
from inference_operator.gateway.routes import RouteTable, ServiceRoute


@dataclass
class Gateway:
    """Everything a request needs: the routes, the limits, the counters, an upstream HTTP session."""

    table: RouteTable
    limits: Limits = field(default_factory=Limits)
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    rng: random.Random = field(default_factory=random.Random)
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    limiters: RateLimiters = field(default_factory=lambda: RateLimiters(time.monotonic))
    ready: Callable[[], bool] = lambda: True  # the watch layer's initial sync is done
    healthy: Callable[[], bool] | None = None  # /healthz: ready, and no watch down for long (default: ready)
    session: aiohttp.ClientSession | None = None
    resolve: Mapping[str, str] = field(default_factory=dict)  # fixed answers for upstream names

    async def open(self) -> None:
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True, keepalive_timeout=30,
                                             resolver=StaticResolver(self.resolve) if self.resolve else None)
            self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                                 cookie_jar=aiohttp.DummyCookieJar())

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


GATEWAY = web.AppKey("gateway", Gateway)
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")  # per request task


def split_target(raw_path: str) -> tuple[str, str]:
    """'/v1/infers/<id>/a/b?q' -> ('<id>', '/a/b'): the service id and the path the model sees (raw)."""
    path = raw_path.split("?", 1)[0]
    rest = path[len(INFERS_PREFIX):].lstrip("/") if path.startswith(INFERS_PREFIX) else ""
    service_id, _, tail = rest.partition("/")
    return service_id, "/" + tail


@web.middleware
async def error_middleware(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    REQUEST_ID.set(request_id)
    try:
        return await handler(request)
    except GatewayError as err:
        return web.Response(status=err.status, body=err.body(request_id), content_type="application/json",
                            headers={"X-Request-Id": request_id})


async def infer(request: web.Request) -> web.StreamResponse:
    """/v1/infers/<serviceId>/<path>: count, then serve."""
    gw = request.app[GATEWAY]
    service_id, path = split_target(request.raw_path)
    if not service_id:
        gw.metrics.observe_unrouted(NO_SERVICE_ID[1])
        raise GatewayError(NO_SERVICE_ID, "the URL has no service id: call /v1/infers/<serviceId>/<path>")
    try:
        if not gw.ready():
            raise GatewayError(NO_READY_INSTANCE, "the gateway is still loading its routes; retry shortly")
        route = gw.table.lookup(service_id)
    except GatewayError as err:
        gw.metrics.observe_unrouted(err.status)
        raise
    started, outcome = time.monotonic(), proxy.Outcome()
    try:
        return await _serve(request, gw, route, path, outcome)
    except GatewayError as err:
        outcome.status = err.status
        raise
    except asyncio.CancelledError:
        outcome.status, outcome.failed = CLIENT_CLOSED, False
        raise
    finally:
        seconds = None if outcome.websocket else time.monotonic() - started
        gw.metrics.observe(route.service_id, route.namespace, route.name, outcome.model, outcome.status, seconds,
                           outcome.failed)


async def _serve(request: web.Request, gw: Gateway, route: ServiceRoute, path: str,
                 outcome: proxy.Outcome) -> web.StreamResponse:
    limits = route.options.limits(gw.limits)
    if request.content_length is not None and request.content_length > limits.body_limit_bytes:
        raise proxy.too_large(limits.body_limit_bytes)
    headers = lower_headers(request.headers.items())
    body = await proxy.read_body(request, limits.body_limit_bytes) if route.app_auth and needs_body(headers) else None
    facts = RequestFacts(request.method, request.raw_path.split("?", 1)[0], request.rel_url.raw_query_string,
                         headers, body or b"")
    authenticate(route, gw.table.apps(route), gw.table.credentials.values(), facts, gw.now())
    if not gw.limiters.allow(route.service_id, route.options.rate_limit_rps):
        raise GatewayError(RATE_LIMITED, f"too many requests: over the service's rate limit of "
                                         f"{route.options.rate_limit_rps:g} requests per second")
    model, endpoint = gw.table.choose(route, gw.rng)
    outcome.model = model.name
    assert gw.session is not None, "Gateway.open() was not called"
    url = proxy.target_url(endpoint, path, request.rel_url.raw_query_string)
    out_headers = proxy.upstream_headers(request, route.app_auth, REQUEST_ID.get())
    if websocket.is_websocket(request):
        outcome.websocket = True
        response = await websocket.relay(request, gw.session, url, out_headers, limits)
        outcome.status = 101
        return response
    return await proxy.forward(request, gw.session, url, out_headers, body, limits, outcome)


async def healthz(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    ready = (gw.healthy or gw.ready)()
    return web.json_response({"status": "ok" if ready else "syncing"}, status=200 if ready else 503)


async def counts(request: web.Request) -> web.Response:
    metrics = request.app[GATEWAY].metrics
    return web.json_response(metrics.counts(), headers={"X-Gateway-Instance": metrics.instance,
                                                        "X-Gateway-Started": metrics.started})


async def prometheus(request: web.Request) -> web.Response:
    body = request.app[GATEWAY].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def build_app(gw: Gateway, with_metrics: bool = False) -> web.Application:
    """The main application; `with_metrics` also serves /metrics and /-/counts on it (one port)."""
    app = web.Application(middlewares=[error_middleware])
    app[GATEWAY] = gw
    app.router.add_route("*", INFERS_PREFIX, infer)
    app.router.add_route("*", INFERS_PREFIX + "/{tail:.*}", infer)
    app.router.add_get("/healthz", healthz)
    if with_metrics:
        _add_metrics_routes(app)

    async def lifecycle(_: web.Application):  # type: ignore[no-untyped-def]
        await gw.open()
        yield
        await gw.close()

    app.cleanup_ctx.append(lifecycle)
    return app


def build_metrics_app(gw: Gateway) -> web.Application:
    app = web.Application()
    app[GATEWAY] = gw
    app.router.add_get("/healthz", healthz)
    _add_metrics_routes(app)
    return app


def _add_metrics_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/-/counts", counts)


async def start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve `app` on host:port (0: any free port); handlers are cancelled when their client hangs up."""
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=30)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, int(runner.addresses[0][1])
