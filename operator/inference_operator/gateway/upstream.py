"""The gateway's connections to model endpoints: an asyncio Protocol per connection, its response parsed by
httptools (llhttp, the parser uvicorn uses), kept alive and reused through pool.py.

Why not aiohttp's ClientSession: it built a request object, a connector lease, a response object and a
stream reader per request, and took more CPU than all the rest of the gateway (bench/README.md, "The
gateway"). Here a request is one write of bytes, and the response's head and body go straight from the
parser's callbacks to the relay (proxy.py). aiohttp still serves the client side, and the WebSocket legs
and engine scrapes, which are not the hot path.

Flow control both ways: body chunks are queued only up to HIGH_WATER bytes, then reading from the model
pauses until the relay has taken them (it takes them only as fast as the client's connection accepts
them); writes to the model wait while the transport's buffer is full (pause_writing).

The model's answer is hostile input too: a head over MAX_HEAD_BYTES or MAX_HEADERS, bytes that are not
HTTP, or a 101 it was never asked for end the exchange with BadResponse (the model's failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import TYPE_CHECKING, cast

import httptools

from inference_operator.gateway.entries import Endpoint

if TYPE_CHECKING:
    from inference_operator.gateway.pool import Pool

MAX_HEAD_BYTES = 64 * 1024  # the status line and every header of one response
MAX_HEADERS = 100
HIGH_WATER = 64 * 1024  # response bytes queued before reading from the model pauses (a stream's chunks
# are small; per connection in flight this, its head and one socket read is all it holds)
NO_BODY = frozenset({204, 304})


class UpstreamError(Exception):
    """The model's side failed: closed early, or answered something that is not a valid HTTP response."""


class Closed(UpstreamError):
    pass


class BadResponse(UpstreamError):
    pass


class _Surplus(Exception):
    """Raised in the parser's callback when bytes follow a complete answer: it stops the parser there."""


class Connection(asyncio.Protocol):
    """One TCP connection to a model, carrying one request at a time."""

    def __init__(self, pool: Pool, endpoint: Endpoint) -> None:
        self.pool, self.endpoint = pool, endpoint
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.busy = False  # a request is in flight: bytes from the model are its answer
        self.idle_since = 0.0
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self.begin(False)
        self.busy = False

    def begin(self, head_only: bool) -> None:
        """A new exchange on this connection: the answer's state cleared, its bytes now expected."""
        self.busy = True
        self.head_only = head_only  # a HEAD request: the answer has no body, whatever its Content-Length says
        self.status, self.reason = 0, b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.length: int | None = None
        self.head_done = self.complete = self.keep_alive = self._chunked = self._interim = False
        self.error: BaseException | None = None
        self._head_bytes, self._head_size, self._queued, self._paused = 0, 0, 0, False
        self._chunks: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # a request's last bytes must not wait for Nagle's algorithm
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if not self.busy or self.complete:  # bytes nobody asked for: the connection cannot be trusted again
            self.close()
            return
        if not self.head_done:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as err:
            if not isinstance(err.__context__, _Surplus):
                raise
            self.close()  # the answer stands; the connection, which holds more than was asked for, does not
        except httptools.HttpParserUpgrade:
            self.fail(BadResponse("the model switched protocols on a request that did not ask to"))
        except httptools.HttpParserError as err:
            self.fail(BadResponse(f"the model's answer is not valid HTTP ({type(err).__name__})"))
        if not self.head_done and max(self._head_bytes, self._head_size) > MAX_HEAD_BYTES \
                or len(self.headers) > MAX_HEADERS:
            self.fail(BadResponse(f"the model's response head is larger than {MAX_HEAD_BYTES // 1024} KiB "
                                  f"or {MAX_HEADERS} headers"))

    def eof_received(self) -> bool | None:
        return None  # close: HTTP/1.1 has no use for a half-closed connection

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.busy and not self.complete:
            if self.head_done and self.length is None and not self._chunked and self._has_body():
                self.complete = True  # a body without length or chunks ends where the connection does
            elif self.error is None:
                self.error = Closed("the model closed the connection before its answer was complete")
        self._wake()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self.complete:
            raise _Surplus

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self._head_size += len(name) + len(value) + 4
        lower = name.lower()
        if lower == b"content-length":
            try:
                self.length = int(value)
            except ValueError:  # llhttp refuses it before the head completes
                self.length = None
        elif lower == b"transfer-encoding":
            self._chunked = self._chunked or b"chunked" in value.lower()

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # an interim answer (103 Early Hints): the real one follows
            self._interim = True
            self.headers, self.reason, self.length, self._chunked = [], b"", None, False
            self._head_bytes = self._head_size = 0
            return
        if self._head_size > MAX_HEAD_BYTES or len(self.headers) > MAX_HEADERS:
            return  # data_received fails the exchange: head_done stays False
        self.status, self.head_done = status, True
        if self.head_only:  # the parser cannot be told a HEAD's answer has no body: end here, never reuse
            self.complete, self.keep_alive = True, False
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.head_only:
            return
        self._chunks.append(body)
        self._queued += len(body)
        if self._queued > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if not self.complete:
            self.complete, self.keep_alive = True, self.parser.should_keep_alive()
        self._wake()

    # the exchange, for proxy.py

    def send(self, data: list[bytes]) -> None:
        """Write the request's head (and its whole body, when known) in one go."""
        assert self.transport is not None
        self.transport.writelines(data) if len(data) > 1 else self.transport.write(data[0])

    async def write(self, data: bytes) -> None:
        """Write one piece of a streamed body, after the model took the last ones (flow control)."""
        if self.closed or self.transport is None:
            raise Closed("the model closed the connection while the request was being sent")
        if self._write_paused:
            self._drained = self.loop.create_future()
            await self._drained
            if self.closed:
                raise Closed("the model closed the connection while the request was being sent")
        self.transport.write(data)

    async def response_head(self, deadline: float) -> None:
        """Wait for the status line and headers until the loop's clock reaches `deadline` (TimeoutError)."""
        while not self.head_done:
            if self.error is not None:
                raise self.error
            await self._wait(self.loop.call_at(deadline, self._timed_out))

    async def read(self, seconds: float) -> bytes:
        """The body bytes that arrived since the last read (b"" at the end); TimeoutError after `seconds`
        without any."""
        while not self._chunks:
            if self.error is not None:
                raise self.error
            if self.complete:
                return b""
            await self._wait(self.loop.call_later(seconds, self._timed_out))
        return self.take()

    def take(self) -> bytes:
        """Every queued body byte, reading from the model resumed if it was paused."""
        chunks, self._chunks, self._queued = self._chunks, [], 0
        if not chunks:
            return b""
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def fail(self, error: BaseException) -> None:
        """End the exchange with `error` (seen by the waiting reader) and close the connection."""
        if self.error is None:
            self.error = error
        self.close()
        self._wake()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()  # nothing of ours is worth flushing to a connection given up on

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and self.error is None and not self.closed and not self._chunks

    def _has_body(self) -> bool:
        return not self.head_only and self.status not in NO_BODY

    async def _wait(self, timer: asyncio.TimerHandle) -> None:
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _timed_out(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(TimeoutError())
