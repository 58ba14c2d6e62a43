"""The gateway's listening sockets: aiohttp's HTTP/1.1 server with the deadlines and caps the internet needs.

aiohttp parses requests; this module bounds what a client can hold before a handler runs:

- a connection cap: over `max_connections` open connections, a new one gets a 503 JSON answer and is closed;
- an idle deadline: a connection without a request in progress is closed after `idle_seconds`
  (aiohttp's keep-alive timer, which also runs from the moment a connection opens);
- a header deadline: once the first byte of a request head arrives, the whole head must arrive within
  `header_seconds`, and may not exceed `max_head_bytes`; otherwise 408 / 431 as JSON, then close;
- aiohttp's own refusals (malformed request line or header, oversize lines, unknown methods) and any
  crash become the contract's JSON error body (errors.py) instead of aiohttp's plain-text pages.

Body deadlines and the cap on buffered bodies are per request, in proxy.py.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from inference_operator.gateway.errors import (
    BAD_REQUEST,
    HEADERS_TOO_LARGE,
    INTERNAL_ERROR,
    OVERLOADED,
    REQUEST_TIMEOUT,
    URI_TOO_LONG,
    error_body,
    raw_response,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerLimits:
    """Per-connection bounds (see the module docstring). Memory per connection, worst case about 0.5 MiB: the
    head (max_head_bytes), one socket read (256 KiB) and aiohttp's body buffer (128 KiB, then reading pauses)."""

    max_connections: int = 384
    idle_seconds: float = 60.0
    header_seconds: float = 10.0
    max_head_bytes: int = 64 * 1024
    max_line_bytes: int = 8190  # request line, and each header line
    max_headers: int = 100


class GuardedHandler(RequestHandler):
    """aiohttp's per-connection protocol plus the header deadline, a head-size cap and JSON errors."""

    __slots__ = ("_limits", "_head_timer", "_head_bytes")

    def __init__(self, manager: Server, limits: ServerLimits, **kwargs: Any) -> None:
        # A body left unread (a refused request) is read and dropped for at most 2 s (aiohttp: 10 s), so the
        # client reads the answer before the close (a close with unread data sends a TCP reset), then closed.
        # auto_decompress=False: a Content-Encoding body is read, hashed, counted and forwarded as sent (aiohttp
        # would inflate it, and forward inflated bytes under the client's Content-Encoding and signature).
        super().__init__(manager, keepalive_timeout=limits.idle_seconds, max_line_size=limits.max_line_bytes,
                         max_field_size=limits.max_line_bytes, max_headers=limits.max_headers, lingering_time=2.0,
                         auto_decompress=False, **kwargs)
        self._limits = limits
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0

    def data_received(self, data: bytes) -> None:
        reading_head = (self._waiter is not None and not self._waiter.done() and not self._upgraded
                        and self._payload_parser is None)
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:  # a complete head: the handler takes over
            self._stop_head_timer()
        elif reading_head and not (self._force_close or self._close):
            self._head_bytes += len(data)
            if self._head_bytes > self._limits.max_head_bytes:
                self._refuse(HEADERS_TOO_LARGE, f"the request head is larger than "
                                                f"{self._limits.max_head_bytes // 1024} KiB")
            elif self._head_timer is None:
                self._head_timer = self._loop.call_later(self._limits.header_seconds, self._head_late)

    def _stop_head_timer(self) -> None:
        self._head_bytes = 0
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self._waiter is not None and not self._waiter.done():
            self._refuse(REQUEST_TIMEOUT, f"the request headers did not arrive within "
                                          f"{self._limits.header_seconds:g} seconds")

    def _refuse(self, kind: tuple[str, int], message: str) -> None:
        request_id = uuid.uuid4().hex
        log.info("refusing a connection (request id %s): %s", request_id, message)
        if self.transport is not None:
            self.transport.write(raw_response(kind, message, request_id))
        self._stop_head_timer()
        self.force_close()

    async def _handle_request(self, request: BaseRequest, start_time: float | None,
                              request_handler: Any) -> tuple[web.StreamResponse, bool]:
        """An Expect other than 100-continue is 417 here: aiohttp's router would answer it in plain text
        (and crash on bytes that are not UTF-8) before any middleware runs."""
        expect = request.headers.get("Expect")
        if expect is not None and expect.lower() != "100-continue":
            request_handler = self._expectation_failed
        return await super()._handle_request(request, start_time, request_handler)

    async def _expectation_failed(self, request: BaseRequest) -> web.StreamResponse:
        request_id = uuid.uuid4().hex
        return web.Response(status=417, body=error_body("APIG.0201", "unsupported Expect header (only "
                                                        "100-continue)", request_id),
                            content_type="application/json", headers={"X-Request-Id": request_id})

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """aiohttp's own refusals and crashes, as the contract's JSON (never the text of an exception)."""
        request_id = uuid.uuid4().hex
        if status >= 500:
            log.error("internal error (request id %s)", request_id, exc_info=exc)
            kind, text = INTERNAL_ERROR, "internal error of the gateway; quote the request id"
        elif isinstance(exc, LineTooLong):
            line = exc.args[0] if exc.args and isinstance(exc.args[0], bytes | bytearray) else b""
            uri = bytes(line[:1]) == b"/" or bytes(line).split(b" ", 1)[0].isalpha()  # the URL, or the request line
            kind = URI_TOO_LONG if uri else HEADERS_TOO_LARGE
            text = f"the {'URL' if uri else 'header'} is longer than {self._limits.max_line_bytes} bytes"
        elif "Too many headers" in str(exc):
            kind, text = HEADERS_TOO_LARGE, f"more than {self._limits.max_headers} headers"
        else:
            log.debug("bad request (request id %s): %s", request_id, exc)
            kind = BAD_REQUEST if status == 400 else ("APIG.0201", status)
            text = "malformed HTTP request"
            reason = (message or "").split("\n", 1)[0].strip().rstrip(":")
            if reason and reason.isascii() and len(reason) < 100:  # the parser's reason, never the input's bytes
                text += f": {reason}"
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        response = web.Response(status=kind[1], body=error_body(kind[0], text, request_id),
                                content_type="application/json", headers={"X-Request-Id": request_id})
        response.force_close()
        return response


class Refuse(asyncio.Protocol):
    """The answer to a connection over the cap: 503 as JSON, then close, before reading anything."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        request_id = uuid.uuid4().hex
        # cast, not an isinstance assert: uvloop's transports are not asyncio's classes (the assert failed there,
        # and the connection was left open without an answer)
        stream = cast(asyncio.Transport, transport)
        stream.write(raw_response(OVERLOADED, "the gateway has too many open connections; retry shortly", request_id))
        stream.close()


class GuardedSite(web.TCPSite):
    """A TCPSite whose connections are GuardedHandlers, refused over the connection cap."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, limits: ServerLimits,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(runner, host, port, backlog=1024, ssl_context=ssl_context)
        self.limits = limits

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        kwargs = {k: v for k, v in server._kwargs.items()  # noqa: SLF001 - the runner's access-log settings
                  if k not in ("keepalive_timeout", "max_line_size", "max_field_size", "max_headers", "lingering_time")}
        limits = self.limits

        def protocol() -> asyncio.Protocol:
            if len(server.connections) >= limits.max_connections:
                return Refuse()
            return GuardedHandler(server, limits, loop=loop, **kwargs)

        self._server = await loop.create_server(protocol, self._host, self._port, backlog=self._backlog,
                                                ssl=self._ssl_context, reuse_address=self._reuse_address,
                                                reuse_port=self._reuse_port)


async def start_site(app: web.Application, host: str, port: int, limits: ServerLimits | None = None,
                     ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    """Serve `app` on host:port (0: any free port), over TLS with `ssl_context`; handlers are cancelled when
    their client hangs up."""
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=30)
    await runner.setup()
    await GuardedSite(runner, host, port, limits or ServerLimits(), ssl_context).start()
    return runner, int(runner.addresses[0][1])
