"""One request to `/v1/infers/<serviceId>/...` or `/api/predict/<service>/...`, from its head to the answer.

Resolve the serviceId, or the service's name on the EAS URL (404 / 400 stopped), check the declared
body size (413) and the head's bytes (400, 431), authenticate the app from the head alone (401 / 403;
a signed body is read and hashed only now, 408 / 413), apply the service's rate limit (429), answer
OpenAI's /v1/models from the spec, pick a model by weight and one of its ready endpoints (503; a model
that scaled to zero may hold the request until it wakes, up to the timeout: 504, place.py), then
forward (HTTP or WebSocket) with the timeout (504). Both URLs take this one path. Refusals are
GatewayErrors, which server.error_middleware answers. Only requests sent to a model are counted as
invocations, and requests sent to or held for a model as its activity (metrics.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import unquote

from aiohttp import web

from inference_operator.api.v1alpha1 import INFERS_PREFIX
from inference_operator.gateway import openai, proxy, websocket
from inference_operator.gateway.auth import (
    PendingSignature,
    RequestFacts,
    authorization_consumed,
    check_head,
    lower_headers,
)
from inference_operator.gateway.body import BodyBudget, Buffered, budget_exhausted, read_hashed, too_large
from inference_operator.gateway.core import GATEWAY, REQUEST_ID, Gateway
from inference_operator.gateway.entries import ModelRoute, ServiceRoute, require_running
from inference_operator.gateway.errors import (
    BAD_REQUEST,
    HEADERS_TOO_LARGE,
    INTERNAL_ERROR,
    NO_READY_INSTANCE,
    NO_SERVICE_ID,
    RATE_LIMITED,
    GatewayError,
)
from inference_operator.gateway.headers import upstream_headers
from inference_operator.gateway.limits import Limits
from inference_operator.gateway.metrics import CLIENT_CLOSED, INFLIGHT
from inference_operator.gateway.picker import prompt_prefix
from inference_operator.gateway.place import place
from inference_operator.gateway.tokens import PendingEasSignature

PREDICT_PREFIX = "/api/predict"  # the PAI-EAS URL: <prefix>/<name or namespace.name>/<path>


def split_target(raw_path: str) -> tuple[str, str]:
    """'/v1/infers/<id>/a/b?q' -> ('<id>', '/a/b'): the service id and the path the model sees (raw)."""
    path = raw_path.split("?", 1)[0]
    rest = path[len(INFERS_PREFIX):].lstrip("/") if path.startswith(INFERS_PREFIX) else ""
    service_id, _, tail = rest.partition("/")
    return service_id, "/" + tail


def split_predict(raw_path: str) -> tuple[str, str]:
    """'/api/predict/<ref>/a/b?q' -> ('<ref>', '/a/b'): the service's name (percent-decoded) and the model's path."""
    path = raw_path.split("?", 1)[0]
    rest = path[len(PREDICT_PREFIX):].lstrip("/") if path.startswith(PREDICT_PREFIX) else ""
    ref, _, tail = rest.partition("/")
    return unquote(ref), "/" + tail


async def infer(request: web.Request) -> web.StreamResponse:
    """/v1/infers/<serviceId>/<path>: serve, and count what reached a model."""
    gw = request.app[GATEWAY]
    service_id, path = split_target(request.raw_path)
    if not service_id:
        gw.metrics.observe_unrouted(NO_SERVICE_ID[1])
        raise GatewayError(NO_SERVICE_ID, "the URL has no service id: call /v1/infers/<serviceId>/<path>")
    return await _run(request, gw, _resolve(gw, lambda: gw.table.lookup(service_id)), path, tokens=False)


async def predict(request: web.Request) -> web.StreamResponse:
    """/api/predict/<service>/<path>, the PAI-EAS URL: the service by name, a token in Authorization; then
    served exactly as /v1/infers/<serviceId>/<path> (the same limits, auth, holds and counts)."""
    gw = request.app[GATEWAY]
    ref, path = split_predict(request.raw_path)
    if not ref:
        gw.metrics.observe_unrouted(NO_SERVICE_ID[1])
        raise GatewayError(NO_SERVICE_ID, "the URL has no service name: call /api/predict/<service>/<path>, "
                                          "<service> being <name> or <namespace>.<name>")
    return await _run(request, gw, _resolve(gw, lambda: gw.table.find(ref)), path, tokens=True)


def _resolve(gw: Gateway, find: Callable[[], ServiceRoute]) -> ServiceRoute:
    """The service a URL names (503 until the routes are loaded); refusals counted as unrouted."""
    try:
        if not gw.ready():
            raise GatewayError(NO_READY_INSTANCE, "the gateway is still loading its routes; retry shortly")
        return find()
    except GatewayError as err:
        gw.metrics.observe_unrouted(err.status)
        raise


async def _run(request: web.Request, gw: Gateway, route: ServiceRoute, path: str, tokens: bool) -> web.StreamResponse:
    """Serve one request for `route`, and count what reached a model."""
    started, outcome = time.monotonic(), proxy.Outcome()
    try:
        return await _serve(_Exchange(request, gw, route, path, outcome, route.options.limits(gw.limits), tokens))
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


@dataclass(slots=True)
class _Exchange:
    """One request on its way to a model: what the steps that serve it share. `body`: read and hashed
    (a signature over it, or an OpenAI request's model field), released when the request ends."""

    request: web.Request
    gw: Gateway
    route: ServiceRoute
    path: str
    outcome: proxy.Outcome
    limits: Limits
    tokens: bool = False  # the EAS URL: Authorization may carry a token (gateway/tokens.py)
    body: Buffered | None = None
    drop_authorization: bool = False  # Authorization was the gateway's credential: not forwarded
    prefix: tuple[str, ...] = ()  # an OpenAI request's leading prompt words (gateway/picker.py)
    named: str | None = None  # an OpenAI request's model field (a LoRA adapter's name is routed by affinity)


async def _serve(ex: _Exchange) -> web.StreamResponse:
    request, gw, route = ex.request, ex.gw, ex.route
    if request.content_length is not None and request.content_length > ex.limits.body_limit_bytes:
        raise too_large(ex.limits.body_limit_bytes)
    _check_head_bytes(request, gw.max_head_bytes)
    ws = websocket.is_websocket(request)
    call = openai.classify(request.method, ex.path) if not ws and openai.speaks_openai(route) else None
    if ws:
        websocket.check_handshake(request)
    facts = RequestFacts(request.method, request.raw_path.split("?", 1)[0], request.rel_url.raw_query_string,
                         lower_headers(request.headers.items()), ex.tokens, call is not None)
    passed = check_head(route, gw.table.apps(route), gw.table.credentials.values(), facts, gw.now())
    ex.drop_authorization = authorization_consumed(route, facts.headers)
    await _continue(request)
    try:
        if isinstance(passed, PendingSignature | PendingEasSignature):
            await _verify(ex, passed)
        if not gw.limiters.allow(route.service_id, route.options.rate_limit_rps):
            raise GatewayError(RATE_LIMITED, f"too many requests: over the service's rate limit of "
                                             f"{route.options.rate_limit_rps:g} requests per second")
        if call is not None and call.call is not openai.Call.INFER:
            response = _models_answer(route, call)
            ex.outcome.status = response.status
            return response
        return await _forward(ex, await _named(ex) if call is not None else None, ws)
    finally:
        if ex.body is not None:
            ex.body.release()


async def _verify(ex: _Exchange, passed: PendingSignature | PendingEasSignature) -> None:
    """The signature's last check: over the body's hash, read now (the head passed), unless unsigned."""
    if isinstance(passed, PendingEasSignature):
        ex.body = await read_hashed(ex.request, ex.limits, ex.gw.budget, with_md5=True)
        passed.verify(ex.body.md5)
        return
    if passed.unsigned_payload:
        passed.verify()
        return
    ex.body = await read_hashed(ex.request, ex.limits, ex.gw.budget)
    passed.verify(ex.body.sha256)


async def _named(ex: _Exchange) -> tuple[ModelRoute, ...] | None:
    """The models an OpenAI request names in its body (read now unless a signature read it)."""
    if ex.body is None:
        ex.body = await read_hashed(ex.request, ex.limits, ex.gw.budget)
    encoding = ex.request.headers.get("Content-Encoding", "")
    among, ex.prefix, ex.named = _named_models(ex.route, ex.body, encoding, ex.gw)
    return among


async def _forward(ex: _Exchange, among: tuple[ModelRoute, ...] | None, ws: bool) -> web.StreamResponse:
    """Place the request (perhaps waiting for a model to wake), then relay it to the endpoint."""
    gw, limits = ex.gw, ex.limits
    placing = time.monotonic()
    model, endpoint, active = await place(gw, ex.route, among, limits.timeout_seconds, ex.prefix, ex.named)
    gw.picker.begin(endpoint, (ex.route.namespace, model.backend))
    held = time.monotonic() - placing
    if held > 0.001:  # the service's timeout bounds the whole request, its wait for a waking model included
        limits = replace(limits, timeout_seconds=max(0.001, limits.timeout_seconds - held))
    try:
        assert gw.session is not None and gw.upstream is not None, "Gateway.open() was not called"
        query = ex.request.rel_url.raw_query_string
        out_headers = upstream_headers(ex.request, ex.route.app_auth, REQUEST_ID.get(),
                                             ex.body.length if ex.body is not None else None, ex.drop_authorization)
        ex.outcome.model = model.name
        if ws:
            ex.outcome.websocket = True
            url = proxy.target_url(endpoint, ex.path, query)
            return await websocket.relay(ex.request, gw.session, url, out_headers, limits, ex.outcome)
        return await proxy.forward(ex.request, gw.upstream, endpoint, f"{ex.path}?{query}" if query else ex.path,
                                   out_headers, ex.body, limits, ex.outcome)
    finally:
        active[INFLIGHT] -= 1
        gw.picker.end(endpoint, (ex.route.namespace, model.backend))


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


def _named_models(route: ServiceRoute, body: Buffered, content_encoding: str,
                  gw: Gateway) -> tuple[tuple[ModelRoute, ...] | None, tuple[str, ...], str | None]:
    """The models an OpenAI request's `model` names (None: not named, route by weight), and its prompt's
    leading words, and the name it gave. The joined body and what decoding it may take are charged to the
    gateway-wide budget meanwhile: over it, 503 as for a buffered body. A compressed body is neither joined
    nor decoded. A name split between adapter versions: the version drawn, and the body's model set to it."""
    if not openai.plain_encoding(content_encoding):
        return None, (), None
    raw, budget = bytes(body), gw.budget
    cost = len(raw) + openai.parse_cost(raw)
    if not budget.take(cost):
        raise budget_exhausted()
    try:
        name, document = openai.read_request(raw, content_encoding)
        prefix = prompt_prefix(document)
        among = None if name is None else openai.matching(route, name)
        version = openai.adapter_version(among, name, gw.rng) if among and name else None
        if version is not None and document is not None:
            _replace(body, budget, openai.with_model(document, version))
            name = version
    finally:
        budget.give(cost)
    return among, prefix, name


def _replace(body: Buffered, budget: BodyBudget, new: bytes) -> None:
    """The buffered body replaced by `new`, the budget charged for what it holds more."""
    if len(new) > body.reserved:
        if not budget.take(len(new) - body.reserved):
            raise budget_exhausted()
        body.reserved = len(new)
    body.chunks, body.length = [new], len(new)


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
