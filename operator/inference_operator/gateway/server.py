"""The gateway's HTTP applications: `/v1/infers/<serviceId>/...` on the main port; /metrics,
/-/counts and /healthz on the internal port (and /healthz on both).

One request: resolve the serviceId (404 / 400 stopped), check the declared body size (413) and the
head's bytes (400), authenticate the app from the head alone (401 / 403; a signed body is read and
hashed only now, 408 / 413), apply the service's rate limit (429), pick a model by weight and one of
its ready endpoints (503; when none is ready but a model that scaled to zero may wake, the request is
held until one is, up to the timeout: 504), then forward (HTTP or WebSocket) with the timeout (504).
Every refusal is
a GatewayError, and every other error (aiohttp's own, a crash) too, turned into the cloud's JSON
error body by one middleware. Only requests sent to a model are counted as invocations, and requests
sent to or held for a model as its activity (metrics.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from inference_operator.api.v1alpha1 import INFERS_PREFIX
from inference_operator.gateway import openai, proxy, websocket
from inference_operator.gateway.auth import PendingSignature, RequestFacts, check_head, lower_headers
from inference_operator.gateway.errors import (
    BACKEND_TIMEOUT,
    BAD_REQUEST,
    HEADERS_TOO_LARGE,
    INTERNAL_ERROR,
    NO_READY_INSTANCE,
    NO_SERVICE_ID,
    RATE_LIMITED,
    GatewayError,
    kind_of_status,
)
from inference_operator.gateway.hold import DEFAULT_LIMIT, Holds
from inference_operator.gateway.httpserver import ServerLimits
from inference_operator.gateway.httpserver import start_site as _start_site
from inference_operator.gateway.limits import MB, Limits, RateLimiters
from inference_operator.gateway.metrics import CLIENT_CLOSED, INFLIGHT, REQUESTS, GatewayMetrics
from inference_operator.gateway.resolver import StaticResolver
from inference_operator.gateway.routes import Endpoint, ModelRoute, RouteTable, ServiceRoute, require_running


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
    budget: proxy.BodyBudget = field(default_factory=lambda: proxy.BodyBudget(128 * MB))  # all buffered bodies
    counts_token: str | None = None  # the bearer token GET /-/counts requires (None: open, e.g. tests)
    max_head_bytes: int = 64 * 1024  # all header names and values together (431 above)
    counts_read: asyncio.Event = field(default_factory=asyncio.Event)  # set by every GET /-/counts
    max_held_requests: int = DEFAULT_LIMIT  # requests held at once for models waking from zero (503 above)
    holds: Holds = field(init=False)

    def __post_init__(self) -> None:
        self.holds = Holds(self.table, self.max_held_requests)

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


log = logging.getLogger(__name__)
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
    """Every error answer as the contract's JSON: the gateway's own, aiohttp's (404, 405, ...) and crashes."""
    given = request.headers.get("X-Request-Id", "")
    request_id = given if 0 < len(given) <= 128 and given.isascii() and given.isprintable() else uuid.uuid4().hex
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


def _check_head_bytes(request: web.Request, limit: int) -> None:
    """431 for a head over `limit` bytes; 400 for header bytes that are not UTF-8 (aiohttp keeps them as
    surrogates, which no text API takes)."""
    if sum(len(name) + len(value) for name, value in request.raw_headers) > limit:
        raise GatewayError(HEADERS_TOO_LARGE, f"the request's headers are larger than {limit // 1024} KiB")
    for name, value in request.headers.items():
        if not (name.isascii() and value.isascii()):
            try:
                name.encode()
                value.encode()
            except UnicodeEncodeError:
                raise GatewayError(BAD_REQUEST, f"header {ascii(name[:64])} is not valid UTF-8") from None


async def infer(request: web.Request) -> web.StreamResponse:
    """/v1/infers/<serviceId>/<path>: serve, and count what reached a model."""
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
    except Exception:
        outcome.status, outcome.failed = INTERNAL_ERROR[1], False
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
    _check_head_bytes(request, gw.max_head_bytes)
    ws = websocket.is_websocket(request)
    call = openai.classify(request.method, path) if not ws and openai.speaks_openai(route) else None
    if ws:
        websocket.check_handshake(request)
    headers = lower_headers(request.headers.items())
    facts = RequestFacts(request.method, request.raw_path.split("?", 1)[0], request.rel_url.raw_query_string,
                         headers)
    passed = check_head(route, gw.table.apps(route), gw.table.credentials.values(), facts, gw.now())
    body: proxy.Buffered | None = None
    await _continue(request)
    try:
        if isinstance(passed, PendingSignature):
            if passed.unsigned_payload:
                passed.verify()
            else:
                body = await proxy.read_hashed(request, limits, gw.budget)
                passed.verify(body.sha256)
        if not gw.limiters.allow(route.service_id, route.options.rate_limit_rps):
            raise GatewayError(RATE_LIMITED, f"too many requests: over the service's rate limit of "
                                             f"{route.options.rate_limit_rps:g} requests per second")
        among: tuple[ModelRoute, ...] | None = None
        if call is not None and call.call is not openai.Call.INFER:
            response = _models_answer(route, call)
            outcome.status = response.status
            return response
        if call is not None:
            if body is None:
                body = await proxy.read_hashed(request, limits, gw.budget)
            among = _named_models(route, body, request.headers.get("Content-Encoding", ""), gw.budget)
        placing = time.monotonic()
        model, endpoint, active = await _place(gw, route, among, limits.timeout_seconds)
        held = time.monotonic() - placing
        if held > 0.001:  # the service's timeout bounds the whole request, its wait for a waking model included
            limits = replace(limits, timeout_seconds=max(0.001, limits.timeout_seconds - held))
        try:
            assert gw.session is not None, "Gateway.open() was not called"
            url = proxy.target_url(endpoint, path, request.rel_url.raw_query_string)
            out_headers = proxy.upstream_headers(request, route.app_auth, REQUEST_ID.get(),
                                                 body.length if body is not None else None)
            outcome.model = model.name
            if ws:
                outcome.websocket = True
                return await websocket.relay(request, gw.session, url, out_headers, limits, outcome)
            return await proxy.forward(request, gw.session, url, out_headers, body, limits, outcome)
        finally:
            active[INFLIGHT] -= 1
    finally:
        if body is not None:
            body.release()


async def _place(gw: Gateway, route: ServiceRoute, among: tuple[ModelRoute, ...] | None,
                 timeout: float) -> tuple[ModelRoute, Endpoint, list[int]]:
    """The model and endpoint of a request, and the model's activity counter, which counts the request in
    (requests and inflight; the caller counts it out of inflight when it ends). A request for a service
    with a model that scales to zero may count demand for a sleeping model, or wait for one to wake."""
    if route.scales_to_zero:
        pick = gw.table.pick(route, gw.rng, among)
        if pick.woken is not None:
            gw.holds.wake(route, pick.woken, timeout)
            gw.metrics.activity(route.service_id, pick.woken.name)[REQUESTS] += 1
        if pick.endpoint is None:
            return await _hold(gw, route, among, pick.model, timeout)
        model, endpoint = pick.model, pick.endpoint
    else:
        model, endpoint = gw.table.choose(route, gw.rng, among)
    active = gw.metrics.activity(route.service_id, model.name)
    active[REQUESTS] += 1
    active[INFLIGHT] += 1
    return model, endpoint, active


async def _hold(gw: Gateway, route: ServiceRoute, among: tuple[ModelRoute, ...] | None, waited: ModelRoute,
                timeout: float) -> tuple[ModelRoute, Endpoint, list[int]]:
    """Hold a request for `waited` (scaled to zero, no endpoint; no other model it may use is ready) until
    one of its models has a ready endpoint, then pick as for any request. 504 after `timeout`; a client
    that hangs up cancels the wait; 503 over the gateway's cap of held requests."""
    where = f"{route.namespace}/{route.name}"
    gw.holds.wake(route, waited, timeout)
    active = gw.metrics.activity(route.service_id, waited.name)
    active[REQUESTS] += 1
    if gw.holds.full:
        raise GatewayError(NO_READY_INSTANCE, f"model {waited.name} of service {where} is waking up (it scaled to "
                                              f"zero) and the gateway holds {gw.holds.limit} requests already; "
                                              "retry shortly")
    active[INFLIGHT] += 1
    gw.holds.held += 1
    gauge, waits = gw.metrics.hold_series(route.namespace, route.name, waited.name)
    gauge.inc()
    started, placed = time.monotonic(), False
    try:
        async with asyncio.timeout(timeout):
            while True:
                await gw.holds.changed(route, gw.table.considered(route, among))
                route = gw.table.lookup(route.service_id)  # deleted meanwhile: 404
                require_running(route)  # stopped meanwhile: 400
                if gw.table.ready(route, among):
                    pick = gw.table.pick(route, gw.rng, among)
                    if pick.endpoint is not None:
                        break
        if pick.model.name != waited.name:  # another model woke first: the request is in flight to it
            active[INFLIGHT] -= 1
            active = gw.metrics.activity(route.service_id, pick.model.name)
            active[INFLIGHT] += 1
        placed = True
        return pick.model, pick.endpoint, active
    except TimeoutError:
        raise GatewayError(BACKEND_TIMEOUT, f"model {waited.name} of service {where} is waking up (it scaled to "
                                            f"zero) and had no ready instance within {timeout:g} seconds; retry "
                                            "shortly") from None
    finally:
        gw.holds.held -= 1
        gauge.dec()
        waits.observe(time.monotonic() - started)
        if not placed:
            active[INFLIGHT] -= 1


def _named_models(route: ServiceRoute, body: proxy.Buffered, content_encoding: str,
                  budget: proxy.BodyBudget) -> tuple[ModelRoute, ...] | None:
    """The models an OpenAI request's `model` names (None: not named, route by weight). The joined body and
    what decoding it may take are charged to the gateway-wide budget meanwhile: over it, 503 as for a
    buffered body. A compressed body is neither joined nor decoded."""
    if not openai.plain_encoding(content_encoding):
        return None
    raw = bytes(body)
    cost = len(raw) + openai.parse_cost(raw)
    if not budget.take(cost):
        raise proxy.budget_exhausted()
    try:
        name = openai.requested_model(raw, content_encoding)
    finally:
        budget.give(cost)
    return None if name is None else openai.matching(route, name)


def _models_answer(route: ServiceRoute, call: openai.OpenAIRequest) -> web.Response:
    """GET /v1/models[/<id>], answered from the spec (no model is called: not an invocation); a stopped service
    refuses it as any request."""
    require_running(route)
    if call.call is openai.Call.LIST:
        return web.json_response(openai.list_models(route), headers={"X-Request-Id": REQUEST_ID.get()})
    return web.json_response(openai.retrieve_model(route, call.model_id), headers={"X-Request-Id": REQUEST_ID.get()})


async def expect(request: web.Request) -> None:
    """`Expect: 100-continue` is answered in _serve, once the head passed auth: no body is invited before
    (other expectations never get here: httpserver.GuardedHandler answers 417)."""
    return None


async def _continue(request: web.Request) -> None:
    if request.headers.get("Expect", "").lower() == "100-continue" and request.body_exists:
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")


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
