"""The cloud API server's HTTP side: one aiohttp app, the dialects' routes under their prefixes.

Every route runs the same steps: the body read whole but bounded (413 past the limit, declared or
not, before a byte more is read; 408 when the client stalls), the dialect's auth check over the bytes
received, the handler with a client impersonating the caller, all within a time limit (504). Every
refusal, the router's 404/405 included, is rendered in the JSON of the dialect the path belongs to;
an unexpected exception is logged with the request id and answered 500 in that JSON (the fuzzer's
business is to keep that from ever happening).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from inference_operator.cloudapi.dialect import AuthContext, Call, Dialect, Route, Settings
from inference_operator.cloudapi.errors import CloudError, Problem, problem_of_api_status
from inference_operator.cloudapi.metrics import REQUESTS
from inference_operator.kube.client import Kube
from inference_operator.ports import ApiError

log = logging.getLogger(__name__)
MB = 1024 * 1024
REQUEST_ID = "X-Request-Id"


@dataclass(frozen=True)
class Limits:
    body_bytes: int = 4 * MB  # a service's JSON is a few KB; 4 MB leaves room for large envs and mapping rules
    request_seconds: float = 30.0
    client_seconds: float = 10.0  # longest pause between two chunks of a body


def _dialect_of(dialects: Sequence[Dialect], path: str) -> Dialect | None:
    return next((d for d in dialects if path.startswith(d.prefix)), None)


def _fallback_body(error: CloudError, request_id: str) -> bytes:
    import json
    return json.dumps({"code": error.code or error.problem.name, "message": error.message,
                       "request_id": request_id}).encode()


def error_response(dialects: Sequence[Dialect], path: str, error: CloudError, request_id: str) -> web.Response:
    dialect = _dialect_of(dialects, path)
    body = dialect.error_body(error, request_id) if dialect else _fallback_body(error, request_id)
    return web.Response(status=error.status, body=body, content_type="application/json",
                        headers={REQUEST_ID: request_id})


def _of_http(exc: web.HTTPException) -> CloudError:
    if exc.status == 404:
        return CloudError(Problem.NOT_FOUND, "no such API: check the method and the path")
    if exc.status == 405:
        return CloudError(Problem.METHOD_NOT_ALLOWED, "this path does not take that method")
    if exc.status == 413:
        return CloudError(Problem.TOO_LARGE, "the request body is too large")
    return CloudError(Problem.BAD_REQUEST, exc.reason or "bad request", status_override=exc.status)


def error_middleware(dialects: Sequence[Dialect]) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def counted(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                      ) -> web.StreamResponse:
        response = await middleware(request, handler)
        dialect = _dialect_of(dialects, request.path)
        REQUESTS.labels(dialect=dialect.name if dialect else "none", status=str(response.status)).inc()
        return response

    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                         ) -> web.StreamResponse:
        request_id = request.headers.get(REQUEST_ID, "")[:64].strip() or uuid.uuid4().hex
        if not request_id.isascii() or not request_id.isprintable():
            request_id = uuid.uuid4().hex
        try:
            response = await handler(request)
        except CloudError as err:
            return error_response(dialects, request.path, err, request_id)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_response(dialects, request.path, _of_http(exc), request_id)
        except Exception:  # a bug of ours: logged, answered in the dialect's shape
            log.exception("request %s %s failed (request id %s)", request.method, request.path, request_id)
            return error_response(dialects, request.path,
                                  CloudError(Problem.INTERNAL, f"internal error (request id {request_id})"),
                                  request_id)
        response.headers.setdefault(REQUEST_ID, request_id)
        return response
    return counted


async def read_body(request: web.Request, limits: Limits) -> bytes:
    """The whole body, refused (413) once it passes the limit, declared or not; 408 if the client stalls."""
    too_large = CloudError(Problem.TOO_LARGE, f"the request body is larger than the limit of "
                                              f"{limits.body_bytes / MB:g} MB")
    if (request.content_length or 0) > limits.body_bytes:
        raise too_large
    chunks: list[bytes] = []
    seen = 0
    while True:
        try:
            async with asyncio.timeout(limits.client_seconds):
                chunk = await request.content.readany()
        except TimeoutError:
            raise CloudError(Problem.TIMEOUT, f"the request body did not arrive in time (a pause of more than "
                                              f"{limits.client_seconds:g} s)") from None
        if not chunk:
            return b"".join(chunks)
        seen += len(chunk)
        if seen > limits.body_bytes:
            raise too_large
        chunks.append(chunk)


@dataclass
class Backend:
    """What every route shares: the server's own API client, the auth context, settings and limits."""

    kube: Kube
    auth: AuthContext
    settings: Settings
    limits: Limits


def endpoint(dialect: Dialect, route: Route, backend: Backend) -> Callable[[web.Request],
                                                                           Awaitable[web.StreamResponse]]:
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            async with asyncio.timeout(backend.limits.request_seconds):
                body = await read_body(request, backend.limits)
                caller = await dialect.authenticate(request, body, backend.auth)
                kube = backend.kube.acting_as(caller.user, caller.groups)
                return await route.handler(Call(request, body, caller, kube, backend.settings))
        except TimeoutError:
            raise CloudError(Problem.GATEWAY_TIMEOUT, f"the request took longer than "
                                                      f"{backend.limits.request_seconds:g} s") from None
        except ApiError as err:
            raise CloudError(problem_of_api_status(err.status), f"Kubernetes API: {err.message[:500]}") from None
        except aiohttp.ClientError as err:  # the API server unreachable: not the caller's fault, nor a bug of ours
            raise CloudError(Problem.UNAVAILABLE, f"the Kubernetes API is unavailable: {type(err).__name__}") from None
    return run


def build_app(dialects: Sequence[Dialect], backend: Backend) -> web.Application:
    app = web.Application(middlewares=[error_middleware(dialects)], client_max_size=backend.limits.body_bytes + 1)
    for dialect in dialects:
        for route in dialect.routes():
            app.router.add_route(route.method, route.path, endpoint(dialect, route, backend))
    return app
