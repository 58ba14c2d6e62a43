"""Forwarding one HTTP request to a model endpoint and streaming the answer back, chunk by chunk.

The request body streams to the model as it arrives (counted against the body limit on the way,
with a deadline between chunks); only a signed body is buffered, after its app and date checked out
(body.py: hashed as it arrives, against a gateway-wide budget). The response is relayed as
the model writes it, never buffered, so server-sent events reach the client one by one (GATEWAY.md,
"Streaming"). Bodies are passed through as bytes: no decompression, no re-encoding. Hop-by-hop
headers, the gateway's own credentials and the client's X-Forwarded-* are not forwarded (headers.py).
The connection to the model is one of upstream.py's pooled ones: the request's head and a body at hand
go out in one write, a streamed body as it arrives (chunked when its length is unknown).

Who is at fault decides the answer and the count: a client that sends too much (413) or too slowly
(408) is not a failure of the model; a model that cannot be reached (503), does not answer (504),
answers 5xx or breaks off its response is.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from inference_operator.gateway.body import BodyTooLarge, Buffered, ClientTooSlow, read_chunks, too_large, too_slow
from inference_operator.gateway.entries import Endpoint
from inference_operator.gateway.errors import (
    BACKEND_TIMEOUT,
    NO_READY_INSTANCE,
    GatewayError,
)
from inference_operator.gateway.headers import request_head, response_headers
from inference_operator.gateway.limits import Limits
from inference_operator.gateway.pool import Pool
from inference_operator.gateway.upstream import BadResponse, Connection, UpstreamError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Outcome:
    """What happened to one request, for the counters: `model` is set once it was sent to a model (only
    then is it an invocation); `failed` when the model or the way to it failed."""

    status: int = 500
    model: str | None = None
    failed: bool = False
    websocket: bool = False


CLIENT_GONE = 499
SMALL = 64 * 1024  # bodies up to this size that have fully arrived are sent in one piece, not streamed


def target_url(endpoint: Endpoint, path: str, query: str) -> URL:
    """The model's URL (the WebSocket leg): its endpoint, the path after the serviceId, the query, as received."""
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

    async def whole(self) -> list[bytes] | None:
        """The body's bytes when they are all at hand (buffered, or a small body that already arrived), written
        with the head in one go; None when there is none, or it must be streamed (then `sent` is False)."""
        request = self.request
        if self.body is not None:
            return self.body.chunks
        if not request.body_exists:
            return None
        if (length := request.content_length) is not None and length <= SMALL and request.content.is_eof():
            self.sent = True  # all of it already arrived: a timeout now is the model's (504), never a slow client's
            return [await request.content.read()]
        return None

    async def stream(self, conn: Connection, chunked: bool) -> None:
        """Send the body as it arrives (in chunked framing when its length is unknown); a failure ends the
        exchange with its cause, which forward() turns into the answer."""
        try:
            async for chunk in read_chunks(self.request, self.limits):
                await conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
            if chunked:
                await conn.write(b"0\r\n\r\n")
            self.sent = True
        except BodyTooLarge as err:
            self.fault.add("large")
            conn.fail(err)
        except ClientTooSlow as err:
            self.fault.add("slow")
            conn.fail(err)
        except Exception as err:  # noqa: BLE001 - the model closed, or the client went away: the exchange is over
            conn.fail(err)

    def refusal(self, err: BaseException, outcome: Outcome, request_id: str) -> GatewayError:
        """The answer to a request that could not be sent: 413 / 408 for the client's fault, else the model's
        (504 on a timeout, 503 when it cannot be reached or answers what is not HTTP), counted as a failure."""
        if "large" in self.fault:
            return too_large(self.limits.body_limit_bytes)
        if "slow" in self.fault or (isinstance(err, TimeoutError) and not self.sent):
            return too_slow(self.limits)
        outcome.failed = True
        if isinstance(err, TimeoutError):
            return GatewayError(BACKEND_TIMEOUT, "Failed to find backend service because response timed out, "
                                                 "please confirm your service is able to process the request "
                                                 f"within {self.limits.timeout_seconds:g} seconds")
        if isinstance(err, BadResponse):
            log.warning("request %s: the model's answer was refused: %s", request_id, err)
            return GatewayError(NO_READY_INSTANCE, "Gateway forwarding error: the model instance answered with an "
                                                   f"invalid HTTP response; quote request id {request_id}")
        return unreachable(err, request_id)


# Eight parameters: the parts of one upstream request, each from a different step of serve.py.
async def forward(request: web.Request, pool: Pool, endpoint: Endpoint, target: str,  # noqa: PLR0913
                  headers: CIMultiDict[str], body: Buffered | None, limits: Limits,
                  outcome: Outcome) -> web.StreamResponse:
    """Send the request to `endpoint` (`target`: its path and query) and relay the answer; 504 after
    limits.timeout_seconds without the response's headers."""
    upload = _Upload(request, limits, body)
    seconds = limits.timeout_seconds
    request_id = headers["X-Request-Id"]
    whole = await upload.whole()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    conn: Connection | None = None
    sending: asyncio.Task[None] | None = None
    try:
        try:
            streamed = not upload.sent
            head = request_head(request.method, target, endpoint, headers,
                                chunked=streamed and "Content-Length" not in headers)
            conn = await pool.connect(endpoint, request.method == "HEAD", deadline)
            if streamed:
                conn.send([head])
                sending = loop.create_task(upload.stream(conn, chunked="Content-Length" not in headers))
            else:
                conn.send([head, *whole] if whole else [head])
            await conn.response_head(deadline)
        except (TimeoutError, OSError, ValueError, UpstreamError, BodyTooLarge, ClientTooSlow) as err:
            raise upload.refusal(err, outcome, request_id) from None
        outcome.status = conn.status
        outcome.failed = conn.status >= 500
        return await _relay(request, conn, request_id, outcome, seconds)
    finally:
        if sending is not None and not sending.done():
            sending.cancel()
            if conn is not None:  # the request was not sent whole: the connection cannot carry another
                conn.close()
        if conn is not None:
            pool.release(conn)


async def _relay(request: web.Request, conn: Connection, request_id: str, outcome: Outcome,
                 seconds: float) -> web.StreamResponse:
    """Copy status, headers and every chunk as it comes; a model that stalls mid-stream for `seconds` is cut
    off. A small answer of known length that has fully arrived goes out in one piece."""
    headers = response_headers(conn.headers)
    headers["X-Request-Id"] = request_id
    reason = conn.reason.decode("utf-8", "replace") or None
    length = conn.length
    if conn.complete and length is not None and length <= SMALL and not conn.head_only:
        headers.pop("Content-Length", None)
        return web.Response(status=conn.status, reason=reason, body=conn.take(), headers=headers)
    response = web.StreamResponse(status=conn.status, reason=reason, headers=headers)
    try:
        await response.prepare(request)
        while chunk := await conn.read(seconds):
            await response.write(chunk)
    except ConnectionError:  # the client went away: not the model's fault (aiohttp's reset errors are these too)
        outcome.status = CLIENT_GONE
        return response
    except (TimeoutError, UpstreamError) as err:
        outcome.failed = True
        log.warning("request %s: the model's response broke off (%s); closing the client connection",
                    request_id, type(err).__name__)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response
