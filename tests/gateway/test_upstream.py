"""The gateway's upstream connections (gateway/upstream.py, gateway/pool.py) against a raw socket peer that
answers exactly the bytes a test scripts: chunked bodies, bodies until close, heads too large or not HTTP, a
close mid-body, keep-alive connections the peer closes, and the pool's reuse and shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from inference_operator.gateway.entries import Endpoint
from inference_operator.gateway.pool import Pool
from inference_operator.gateway.upstream import HIGH_WATER

from .conftest import GatewayUnderTest, counted, service_body, slice_body

UID = "0b6f4a8e-7777-4c1e-9d51-5a0c7d9e0007"
OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class RawModel:
    """A model that reads each request's head (and a Content-Length body) and runs `script` to answer it;
    `connections` counts the connections it accepted, `requests` the request heads it read."""

    def __init__(self, script: Script) -> None:
        self.script, self.connections, self.requests = script, 0, 0
        self.heads: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self.closed = asyncio.Event()  # set when the gateway closed a connection (EOF seen)

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self.port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    self.closed.set()
                    return
                self.heads.append(head)
                self.requests += 1
                for line in head.lower().split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":")[1]))
                    elif line == b"transfer-encoding: chunked":
                        await reader.readuntil(b"0\r\n\r\n")
                await self.script(reader, writer, self.requests)
                if writer.is_closing():
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            self.closed.set()
        except asyncio.CancelledError:  # the test's loop ends with the connection still open
            return
        finally:
            writer.close()


@pytest.fixture
async def raw(gateway: GatewayUnderTest) -> AsyncIterator[Callable[[Script], Awaitable[tuple[RawModel, str]]]]:
    """A function: script -> (the raw model, the URL of a service routed to it)."""
    models: list[RawModel] = []

    async def start(script: Script) -> tuple[RawModel, str]:
        model = RawModel(script)
        models.append(model)
        port = await model.start()
        gateway.table.upsert_service(service_body("raw", UID, [("m", 100)]))
        gateway.table.upsert_slice(slice_body("raw", "m", ["127.0.0.1"], port))
        return model, gateway.infer_url(UID, "/predict")
    yield start
    for model in models:
        assert model.server is not None
        model.server.close()


def answer(data: bytes, close: bool = False) -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(data)
        await writer.drain()
        if close:
            writer.close()
    return script


async def until(fact: Callable[[], bool], seconds: float = 5) -> None:
    async with asyncio.timeout(seconds):
        while not fact():
            await asyncio.sleep(0.01)


async def test_a_chunked_answer_is_decoded_and_relayed(gateway, raw):
    """(aiohttp's client did this too.)"""
    _, url = await raw(answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"))
    async with gateway.http.post(url, data=b"x") as resp:
        assert resp.status == 200
        assert await resp.read() == b"hello world"


async def test_an_answer_without_length_is_read_until_the_model_closes(gateway, raw):
    """(aiohttp's client did this too.)"""
    model, url = await raw(answer(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", close=True))
    for _ in range(2):  # the first connection ended with its answer: the second request gets a new one
        async with gateway.http.get(url) as resp:
            assert await resp.read() == b"all of it"
    assert model.connections == 2


async def test_keep_alive_connections_are_reused(gateway, raw):
    """(aiohttp's client pooled too.)"""
    model, url = await raw(answer(OK))
    for _ in range(3):
        async with gateway.http.post(url, data=b"{}") as resp:
            assert await resp.read() == b"ok"
    assert (model.connections, model.requests) == (1, 3)


async def test_connection_close_and_a_peer_closed_idle_connection_are_not_reused(gateway, raw):
    """`Connection: close`, or a keep-alive answer after which the model closes: the next request opens a
    new connection instead of failing on the dead one. (aiohttp's client did this too.)"""
    async def script(reader, writer, n):
        if n == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        else:  # a keep-alive answer, then the model ends the idle connection
            writer.write(OK)
        await writer.drain()
        writer.close()
    model, url = await raw(script)
    async with gateway.http.get(url) as resp:
        assert await resp.read() == b"ok"
    await until(lambda: model.connections == 1 and model.server is not None)
    async with gateway.http.get(url) as resp:
        assert await resp.read() == b"ok"
    pool = gateway.gw.upstream
    await until(lambda: all(c.closed for stack in pool.idle.values() for c in stack))  # the model's close seen
    async with gateway.http.get(url) as resp:
        assert await resp.read() == b"ok"
    assert model.connections == 3


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Big-%d: %s\r\n" % (i, b"v" * 4000) for i in range(20)) + b"\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Many-%d: v\r\n" % i for i in range(300)) + b"Content-Length: 0\r\n\r\n",
], ids=["80-KiB-head", "300-headers"])
async def test_an_oversized_answer_head_is_the_models_failure(gateway, raw, head):
    """New: a head over 64 KiB is refused (aiohttp's client let 80 KiB of 4 KiB lines through); over 100
    headers too (aiohttp's client refused 300 as well)."""
    _, url = await raw(answer(head))
    async with gateway.http.get(url) as resp:
        assert resp.status == 503
        assert resp.content_type == "application/json"
        assert (await resp.json())["error_code"] == "ModelArts.4302"
    assert gateway.gw.metrics.counts()[UID] == counted(1, 1, m=1)


async def test_an_answer_that_is_not_http_is_the_models_failure_in_the_gateways_shape(gateway, raw):
    """(aiohttp's client's parse error was a 503 too.)"""
    _, url = await raw(answer(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"))
    async with gateway.http.get(url) as resp:
        assert resp.status == 503
        body = await resp.json()
    assert set(body) == {"error_code", "error_msg", "request_id"}
    assert gateway.gw.metrics.counts()[UID] == counted(1, 1, m=1)


async def test_a_model_breaking_off_mid_body_closes_the_client_connection(gateway, raw):
    """(aiohttp's client did this too.)"""
    _, url = await raw(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"p" * 70000, close=True))
    async with gateway.http.get(url) as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert gateway.gw.metrics.counts()[UID] == counted(1, 1, m=1)


async def test_bytes_after_a_complete_answer_are_not_taken_for_the_next(gateway, raw):
    """New: a second answer in the same packet ends the connection and is never relayed (aiohttp's client
    also refused to reuse it)."""
    model, url = await raw(answer(OK + OK.replace(b"ok", b"no")))
    for _ in range(2):
        async with gateway.http.get(url) as resp:
            assert (resp.status, await resp.read()) == (200, b"ok")
    assert model.connections == 2


async def test_head_204_and_interim_answers(gateway, raw):
    """HEAD's Content-Length announces no body; 204 has none; a 103 before the answer is skipped."""
    async def script(reader, writer, n):
        if n == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
        elif n == 2:
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + OK)
        await writer.drain()
    _, url = await raw(script)
    async with gateway.http.head(url) as resp:
        assert (resp.status, resp.headers["Content-Length"]) == (200, "1234")
    async with gateway.http.delete(url) as resp:
        assert resp.status == 204
        assert await resp.read() == b""
    async with gateway.http.get(url) as resp:
        assert (resp.status, await resp.read()) == (200, b"ok")
        assert "Link" not in resp.headers


async def test_the_request_head_is_the_clients_plus_host_and_framing(gateway, raw):
    """Host is the endpoint; nothing the client did not send is added but the framing (aiohttp's client added
    Content-Length: 0 to a POST without a body too); an unknown length goes chunked."""
    model, url = await raw(answer(OK))
    bare = ("User-Agent", "Accept-Encoding", "Accept", "Content-Type")
    async with gateway.http.post(url, skip_auto_headers=bare) as resp:
        assert resp.status == 200

    async def chunks() -> AsyncIterator[bytes]:
        yield b"abc"
        yield b"def"
    async with gateway.http.post(url, data=chunks(), skip_auto_headers=("User-Agent",)) as resp:
        assert resp.status == 200
    first, second = (h.decode().lower().split("\r\n") for h in model.heads)
    assert f"host: 127.0.0.1:{model.port}" in first
    assert "content-length: 0" in first
    assert not any(line.startswith(("user-agent", "accept-encoding", "content-type")) for line in first), first
    assert "transfer-encoding: chunked" in second


async def test_the_pool_pauses_reading_past_the_high_water_mark_and_closes_on_shutdown():
    """A body the relay has not taken stops being read from the model (flow control; aiohttp's client paused
    too); a connection whose answer was not read to the end is not reused; close() ends pooled connections."""
    big = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (4 * HIGH_WATER) + b"b" * (4 * HIGH_WATER)
    model = RawModel(answer(big))
    port = await model.start()
    pool, endpoint = Pool(), Endpoint("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    conn = await pool.connect(endpoint, False, loop.time() + 5)
    conn.send([b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"])
    await conn.response_head(loop.time() + 5)
    assert conn.transport is not None
    await until(lambda: conn.transport is not None and not conn.transport.is_reading())
    assert len(conn.take()) > HIGH_WATER
    assert conn.transport.is_reading()
    pool.release(conn)  # not read to the end
    await until(lambda: conn.closed)
    model.script = answer(OK)
    conn = await pool.connect(endpoint, False, loop.time() + 5)
    conn.send([b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"])
    await until(lambda: model.connections == 2)
    await conn.response_head(loop.time() + 5)
    await until(lambda: conn.complete)
    assert conn.take() == b"ok"
    pool.release(conn)
    assert pool.idle[endpoint] == [conn]
    model.closed.clear()
    await pool.close()
    await model.closed.wait()
    assert model.server is not None
    model.server.close()


async def test_a_refused_endpoint_and_a_silent_one():
    """OSError when nothing listens; TimeoutError when the head does not come by the deadline."""
    pool, loop = Pool(), asyncio.get_running_loop()
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()
    with pytest.raises(OSError):
        await pool.connect(Endpoint("127.0.0.1", port), False, loop.time() + 5)
    silent = RawModel(lambda r, w, n: asyncio.sleep(10))
    conn = await pool.connect(Endpoint("127.0.0.1", await silent.start()), False, loop.time() + 5)
    conn.send([b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"])
    with pytest.raises(TimeoutError):
        await conn.response_head(loop.time() + 0.2)
    conn.close()
    await pool.close()
    assert silent.server is not None
    silent.server.close()
