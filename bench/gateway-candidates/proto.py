"""Candidate proxies: minimal forwarding of POST to a backend, to time per-request cost floors.
mode: aio-aio (aiohttp low-level server + ClientSession), aio-raw (aiohttp server + httptools upstream pool),
raw-raw (asyncio Protocol + httptools both sides)."""
import asyncio, sys, collections
import httptools, uvloop
from aiohttp import web
import aiohttp

MODE, BACKEND = sys.argv[1], int(sys.argv[2])
HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"})

class UpConn(asyncio.Protocol):
    def __init__(self, pool):
        self.pool, self.parser, self.t = pool, httptools.HttpResponseParser(self), None
        self.fut = None
    def connection_made(self, t): self.t = t
    def connection_lost(self, exc):
        if self.fut and not self.fut.done(): self.fut.set_exception(ConnectionError("closed"))
        self.t = None
    def data_received(self, d): self.parser.feed_data(d)
    def on_message_begin(self): self.headers, self.body = [], []
    def on_header(self, n, v): self.headers.append((n, v))
    def on_body(self, b): self.body.append(b)
    def on_message_complete(self):
        f, self.fut = self.fut, None
        f.set_result((self.parser.get_status_code(), self.headers, b"".join(self.body)))
    async def request(self, data):
        self.fut = asyncio.get_running_loop().create_future()
        self.t.write(data)
        r = await self.fut
        self.pool.idle.append(self)
        return r

class Pool:
    def __init__(self): self.idle = collections.deque()
    async def get(self):
        while self.idle:
            c = self.idle.pop()
            if c.t is not None: return c
        loop = asyncio.get_running_loop()
        _, c = await loop.create_connection(lambda: UpConn(self), "127.0.0.1", BACKEND)
        return c

pool = Pool()

def build_up(method, path, headers, body):
    out = [f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{BACKEND}\r\n".encode()]
    for k, v in headers:
        if k.lower() not in HOP: out.append(k + b": " + v + b"\r\n" if isinstance(k, bytes) else f"{k}: {v}\r\n".encode())
    out.append(b"X-Forwarded-For: 127.0.0.1\r\nX-Request-Id: abc\r\nContent-Length: %d\r\n\r\n" % len(body))
    out.append(body)
    return b"".join(out)

async def aio_handler(request):
    body = await request.read()
    if MODE == "aio-aio":
        h = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        h["X-Forwarded-For"] = request.remote or ""; h["X-Request-Id"] = "abc"
        async with session.request(request.method, f"http://127.0.0.1:{BACKEND}/predict", headers=h, data=body) as up:
            data = await up.read()
            return web.Response(status=up.status, body=data, headers={k: v for k, v in up.headers.items() if k.lower() not in HOP})
    c = await pool.get()
    status, hs, data = await c.request(build_up(request.method, "/predict", request.headers.items(), body))
    return web.Response(status=status, body=data, headers={k.decode(): v.decode() for k, v in hs if k.lower() not in (b"content-length", b"connection", b"transfer-encoding")})

class Srv(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t; self.p = httptools.HttpRequestParser(self)
    def on_message_begin(self): self.h, self.b, self.url = [], [], b""
    def on_url(self, u): self.url += u
    def on_header(self, n, v): self.h.append((n, v))
    def on_body(self, b): self.b.append(b)
    def on_message_complete(self):
        asyncio.get_running_loop().create_task(self.handle(self.p.get_method().decode(), self.h, b"".join(self.b)))
    def data_received(self, d): self.p.feed_data(d)
    async def handle(self, method, headers, body):
        c = await pool.get()
        lower = [(k, v) for k, v in headers if k.lower() not in {b"connection", b"host", b"content-length", b"x-apig-appcode"}]
        status, hs, data = await c.request(build_up(method, "/predict", lower, body))
        out = [b"HTTP/1.1 %d OK\r\n" % status]
        for k, v in hs:
            if k.lower() not in (b"content-length", b"connection", b"transfer-encoding"): out.append(k + b": " + v + b"\r\n")
        out.append(b"X-Request-Id: abc\r\nContent-Length: %d\r\n\r\n" % len(data)); out.append(data)
        self.t.write(b"".join(out))

async def main():
    global session
    loop = asyncio.get_running_loop()
    if MODE == "raw-raw":
        srv = await loop.create_server(Srv, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
    else:
        session = aiohttp.ClientSession()
        server = web.Server(aio_handler)
        srv = await loop.create_server(server, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    await asyncio.Event().wait()

uvloop.run(main())
