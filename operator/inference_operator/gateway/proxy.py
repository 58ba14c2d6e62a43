"""Forwarding one HTTP request to a model endpoint and streaming the answer back, chunk by chunk.

The request body streams to the model as it arrives (counted against the body limit on the way);
the response is relayed as the model writes it, never buffered, so server-sent events reach the
client one by one (GATEWAY.md, "Streaming"). Bodies are passed through as bytes: no decompression,
no re-encoding. Hop-by-hop headers and the gateway's own credentials are not forwarded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from inference_operator.gateway.auth import APIKEY_HEADER, APPCODE_HEADER, is_signed
from inference_operator.gateway.errors import BACKEND_TIMEOUT, BODY_TOO_LARGE, NO_READY_INSTANCE, GatewayError
from inference_operator.gateway.limits import MB, Limits
from inference_operator.gateway.routes import Endpoint

log = logging.getLogger(__name__)
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
                        "te", "trailer", "trailers", "transfer-encoding", "upgrade"})
SIGNATURE_HEADERS = frozenset({"authorization", "x-sdk-date", "x-sdk-content-sha256"})
# The client's own choices only: aiohttp must not add Accept-Encoding, User-Agent or Content-Type.
SKIP_AUTO_HEADERS = frozenset({"Accept-Encoding", "User-Agent", "Content-Type"})


@dataclass
class Outcome:
    """What happened to one request, for the counters."""

    status: int = 500
    model: str | None = None
    failed: bool | None = None
    websocket: bool = False


class BodyTooLarge(Exception):
    pass


def too_large(limit: int) -> GatewayError:
    return GatewayError(BODY_TOO_LARGE, f"request body is larger than the limit of {limit / MB:g} MB")


def _connection_tokens(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> set[str]:
    return {t.strip().lower() for v in headers.getall("Connection", []) for t in v.split(",") if t.strip()}


def upstream_headers(request: web.Request, app_auth: bool, request_id: str) -> CIMultiDict[str]:
    """The client's headers minus hop-by-hop and gateway credentials, plus X-Forwarded-* and X-Request-Id."""
    drop = set(HOP_BY_HOP) | _connection_tokens(request.headers) | {"host", "content-length", "expect", APPCODE_HEADER}
    if is_signed({"authorization": request.headers.get("Authorization", "")}):
        drop |= SIGNATURE_HEADERS
    if app_auth:
        drop.add(APIKEY_HEADER)
    out = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in drop)
    peer = request.remote or ""
    prior = request.headers.get("X-Forwarded-For")
    out["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    out.setdefault("X-Forwarded-Proto", request.scheme)
    out.setdefault("X-Forwarded-Host", request.host)
    out["X-Request-Id"] = request_id
    if request.content_length is not None:
        out["Content-Length"] = str(request.content_length)
    return out


def downstream_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    drop = HOP_BY_HOP | _connection_tokens(headers)
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in drop)


async def _limited(request: web.Request, limit: int) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in request.content.iter_any():
        seen += len(chunk)
        if seen > limit:
            raise BodyTooLarge
        yield chunk


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body (needed to verify a signature), refusing more than `limit` bytes with 413."""
    chunks = []
    try:
        async for chunk in _limited(request, limit):
            chunks.append(chunk)
    except BodyTooLarge:
        raise too_large(limit) from None
    return b"".join(chunks)


def target_url(endpoint: Endpoint, path: str, query: str) -> URL:
    """The model's URL: its endpoint, the path after the serviceId, the query, all as received."""
    return URL(f"{endpoint.origin}{path}{'?' + query if query else ''}", encoded=True)


async def forward(request: web.Request, session: aiohttp.ClientSession, url: URL, headers: CIMultiDict[str],
                  body: bytes | None, limits: Limits, outcome: Outcome) -> web.StreamResponse:
    """Send the request to `url` and relay the answer; 504 after limits.timeout_seconds without headers."""
    oversize = False

    async def stream() -> AsyncIterator[bytes]:
        nonlocal oversize
        try:
            async for chunk in _limited(request, limits.body_limit_bytes):
                yield chunk
        except BodyTooLarge:
            oversize = True
            raise

    data = body if body is not None else (stream() if request.body_exists else None)
    seconds = limits.timeout_seconds
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)
    try:
        async with asyncio.timeout(seconds):
            upstream = await session.request(request.method, url, headers=headers, data=data, timeout=timeout,
                                              allow_redirects=False, skip_auto_headers=SKIP_AUTO_HEADERS)
    except (TimeoutError, aiohttp.ClientError) as err:
        if oversize:
            raise too_large(limits.body_limit_bytes) from None
        if isinstance(err, TimeoutError | aiohttp.ServerTimeoutError):
            raise GatewayError(BACKEND_TIMEOUT, "Failed to find backend service because response timed out, "
                                                f"please confirm your service is able to process the request "
                                                f"within {seconds:g} seconds") from None
        raise GatewayError(NO_READY_INSTANCE, f"Gateway forwarding error: the model instance could not be "
                                              f"reached ({type(err).__name__}: {err})") from None
    outcome.status = upstream.status
    try:
        return await _relay(request, upstream, headers["X-Request-Id"], outcome)
    finally:
        upstream.close()


async def _relay(request: web.Request, upstream: aiohttp.ClientResponse, request_id: str,
                 outcome: Outcome) -> web.StreamResponse:
    """Copy status, headers and every chunk as it comes; a model that stalls mid-stream is cut off."""
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                  headers=downstream_headers(upstream.headers))
    response.headers["X-Request-Id"] = request_id
    await response.prepare(request)
    try:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
    except (TimeoutError, aiohttp.ClientError) as err:
        outcome.failed = True
        log.warning("%s %s: the model's response broke off (%s); closing the client connection",
                    request.method, request.path, type(err).__name__)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response
