"""Forwarding one HTTP request to a model endpoint and streaming the answer back, chunk by chunk.

The request body streams to the model as it arrives (counted against the body limit on the way,
with a deadline between chunks); only a signed body is buffered, after its app and date checked out
(body.py: hashed as it arrives, against a gateway-wide budget). The response is relayed as
the model writes it, never buffered, so server-sent events reach the client one by one (GATEWAY.md,
"Streaming"). Bodies are passed through as bytes: no decompression, no re-encoding. Hop-by-hop
headers, the gateway's own credentials and the client's X-Forwarded-* are not forwarded.

Who is at fault decides the answer and the count: a client that sends too much (413) or too slowly
(408) is not a failure of the model; a model that cannot be reached (503), does not answer (504),
answers 5xx or breaks off its response is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from inference_operator.gateway.auth import APIKEY_HEADER, APPCODE_HEADER, is_signed
from inference_operator.gateway.body import BodyTooLarge, Buffered, ClientTooSlow, read_chunks, too_large, too_slow
from inference_operator.gateway.entries import Endpoint
from inference_operator.gateway.errors import (
    BACKEND_TIMEOUT,
    NO_READY_INSTANCE,
    GatewayError,
)
from inference_operator.gateway.limits import Limits

log = logging.getLogger(__name__)
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
                        "te", "trailer", "trailers", "transfer-encoding", "upgrade"})
SIGNATURE_HEADERS = frozenset({"authorization", "x-sdk-date", "x-sdk-content-sha256"})
# Set by the gateway from what it sees; a client's own values would be believed by the model.
FORWARDED_HEADERS = frozenset({"forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                               "x-forwarded-port", "x-forwarded-prefix", "x-real-ip"})
# The client's own choices only: aiohttp must not add Accept-Encoding, User-Agent or Content-Type.
SKIP_AUTO_HEADERS = frozenset({"Accept-Encoding", "User-Agent", "Content-Type"})


@dataclass
class Outcome:
    """What happened to one request, for the counters: `model` is set once it was sent to a model (only
    then is it an invocation); `failed` when the model or the way to it failed."""

    status: int = 500
    model: str | None = None
    failed: bool = False
    websocket: bool = False


CLIENT_GONE = 499
SMALL = 64 * 1024  # bodies up to this size that have fully arrived are sent in one piece, not streamed


def _connection_tokens(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> set[str]:
    return {t.strip().lower() for v in headers.getall("Connection", []) for t in v.split(",") if t.strip()}


def upstream_headers(request: web.Request, app_auth: bool, request_id: str,
                     content_length: int | None = None, drop_authorization: bool = False) -> CIMultiDict[str]:
    """The client's headers minus hop-by-hop, gateway credentials and X-Forwarded-*, plus the gateway's own
    X-Forwarded-For / -Proto / -Host (what it saw) and X-Request-Id. `drop_authorization`: its token (EAS,
    Bearer) was the gateway's credential."""
    drop = (set(HOP_BY_HOP) | _connection_tokens(request.headers) | FORWARDED_HEADERS
            | {"host", "content-length", "expect", APPCODE_HEADER})
    if is_signed({"authorization": request.headers.get("Authorization", "")}):
        drop |= SIGNATURE_HEADERS
    if app_auth:
        drop.add(APIKEY_HEADER)
    if drop_authorization:
        drop.add("authorization")
    out = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in drop)
    out["X-Forwarded-For"] = request.remote or ""
    out["X-Forwarded-Proto"] = request.scheme
    out["X-Forwarded-Host"] = request.host
    out["X-Request-Id"] = request_id
    length = content_length if content_length is not None else request.content_length
    if length is not None:
        out["Content-Length"] = str(length)
    return out


def downstream_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    drop = HOP_BY_HOP | _connection_tokens(headers)
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in drop)


def target_url(endpoint: Endpoint, path: str, query: str) -> URL:
    """The model's URL: its endpoint, the path after the serviceId, the query, all as received."""
    return URL(f"{endpoint.origin}{path}{'?' + query if query else ''}", encoded=True)


def unreachable(err: BaseException, request_id: str, what: str = "request") -> GatewayError:
    """503 for a model that cannot be reached; the address and the library's words go to the log only."""
    log.warning("request %s: the model could not be reached for a %s: %s: %s", request_id, what,
                type(err).__name__, err)
    return GatewayError(NO_READY_INSTANCE, "Gateway forwarding error: the model instance could not be reached; "
                                           f"retry, or quote request id {request_id}")


class _Upload:
    """The request's body on its way to the model, and whose fault a failure to send it is: the client's
    (`fault`: "large" or "slow") or, once all of it was sent (`sent`), the model's."""

    def __init__(self, request: web.Request, limits: Limits, body: Buffered | None) -> None:
        self.request, self.limits, self.body = request, limits, body
        self.fault: set[str] = set()
        self.sent = body is not None or not request.body_exists

    async def data(self) -> Any:
        """What aiohttp sends: the buffered chunks, the whole small body that already arrived, or a stream."""
        request = self.request
        if self.body is not None:
            chunks = self.body.chunks
            return chunks[0] if len(chunks) == 1 else _replay(chunks)
        if not request.body_exists:
            return None
        if (length := request.content_length) is not None and length <= SMALL and request.content.is_eof():
            self.sent = True  # all of it already arrived: a timeout now is the model's (504), never a slow client's
            return await request.content.read()
        return self._stream()

    async def _stream(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in read_chunks(self.request, self.limits):
                yield chunk
        except BodyTooLarge:
            self.fault.add("large")
            raise
        except ClientTooSlow:
            self.fault.add("slow")
            raise
        self.sent = True

    def refusal(self, err: BaseException, outcome: Outcome, request_id: str) -> GatewayError:
        """The answer to a request that could not be sent: 413 / 408 for the client's fault, else the model's
        (504 on a timeout, 503 when it cannot be reached), counted as a failure."""
        if "large" in self.fault:
            return too_large(self.limits.body_limit_bytes)
        if "slow" in self.fault or (isinstance(err, TimeoutError) and not self.sent):
            return too_slow(self.limits)
        outcome.failed = True
        if isinstance(err, TimeoutError | aiohttp.ServerTimeoutError):
            return GatewayError(BACKEND_TIMEOUT, "Failed to find backend service because response timed out, "
                                                 "please confirm your service is able to process the request "
                                                 f"within {self.limits.timeout_seconds:g} seconds")
        return unreachable(err, request_id)


async def _replay(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


# Seven parameters: the parts of one upstream request, each from a different step of serve.py.
async def forward(request: web.Request, session: aiohttp.ClientSession, url: URL, headers: CIMultiDict[str],
                  body: Buffered | None, limits: Limits, outcome: Outcome) -> web.StreamResponse:
    """Send the request to `url` and relay the answer; 504 after limits.timeout_seconds without headers."""
    upload = _Upload(request, limits, body)
    seconds = limits.timeout_seconds
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)
    request_id = headers["X-Request-Id"]
    data = await upload.data()
    try:
        async with asyncio.timeout(seconds):
            upstream = await session.request(request.method, url, headers=headers, data=data, timeout=timeout,
                                              allow_redirects=False, skip_auto_headers=SKIP_AUTO_HEADERS)
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError, BodyTooLarge, ClientTooSlow) as err:
        raise upload.refusal(err, outcome, request_id) from None
    outcome.status = upstream.status
    outcome.failed = upstream.status >= 500
    try:
        return await _relay(request, upstream, request_id, outcome)
    finally:
        upstream.close()


async def _relay(request: web.Request, upstream: aiohttp.ClientResponse, request_id: str,
                 outcome: Outcome) -> web.StreamResponse:
    """Copy status, headers and every chunk as it comes; a model that stalls mid-stream is cut off. A small
    answer of known length that has fully arrived goes out in one piece."""
    headers = downstream_headers(upstream.headers)
    headers["X-Request-Id"] = request_id
    length = upstream.content_length
    if length is not None and length <= SMALL and request.method != "HEAD" and upstream.content.is_eof():
        whole = await upstream.content.read()
        headers.pop("Content-Length", None)
        return web.Response(status=upstream.status, reason=upstream.reason, body=whole, headers=headers)
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
    try:
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
    except ConnectionError:  # the client went away: not the model's fault (aiohttp's reset errors are these too)
        outcome.status = CLIENT_GONE
        return response
    except (TimeoutError, aiohttp.ClientError) as err:
        outcome.failed = True
        log.warning("request %s: the model's response broke off (%s); closing the client connection",
                    request_id, type(err).__name__)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response
