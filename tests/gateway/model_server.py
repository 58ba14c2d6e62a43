"""A tiny model server for the gateway's tests and benchmark: run as its own process on loopback.

    python tests/gateway/model_server.py --name v1 [--host 127.0.0.1] [--port 0]   # prints "PORT <n>" when up

Routes: /sse (one event, a pause or, with ?gate=<id>, a wait for POST /-/release?id=<id>, more events),
/ws (WebSocket echo; "close-me" closes with 4000, "drop-me" drops the connection without a close frame),
POST /v1/chat/completions, /v1/completions and /v1/embeddings (the echo; SSE chunks when the JSON body
has "stream": true), /slow?seconds=&id= (records
start, cancellation and finish), /stall (headers and a first chunk, then silence), /fail (500),
/-/events (what /slow saw), and anything else echoes the request as JSON, tagged with --name.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys

from aiohttp import WSMsgType, web

EVENTS = web.AppKey("events", dict)
GATES = web.AppKey("gates", dict)
NAME = web.AppKey("name", str)


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({
        "server": request.app[NAME], "method": request.method, "path": request.raw_path.split("?", 1)[0],
        "query": request.rel_url.raw_query_string, "headers": {k.lower(): v for k, v in request.headers.items()},
        "body_length": len(body), "body_sha256": hashlib.sha256(body).hexdigest(),
        "body": body.decode(errors="replace") if len(body) <= 4096 else None,
    })


async def sse(request: web.Request) -> web.StreamResponse:
    pause = float(request.query.get("pause", "2"))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    await response.write(f"data: first from {request.app[NAME]}\n\n".encode())
    if "gate" in request.query:  # the rest waits for the client: it can tell the first event was not held back
        await request.app[GATES].setdefault(request.query["gate"], asyncio.Event()).wait()
    else:
        await asyncio.sleep(pause)
    for i in range(3):
        await response.write(f"data: event {i}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def openai_call(request: web.Request) -> web.StreamResponse:
    """/v1/chat/completions, /v1/completions, /v1/embeddings as an OpenAI server answers them: with
    `"stream": true` server-sent events (one chunk, a pause of `pause` seconds, more, [DONE]), else the echo."""
    try:
        wants_stream = json.loads(await request.read()).get("stream") is True
    except Exception:  # not JSON, not an object, not UTF-8: the echo says what arrived
        wants_stream = False
    if not wants_stream:
        return await echo(request)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    name = request.app[NAME]
    await response.write(f'data: {{"server": "{name}", "chunk": 0}}\n\n'.encode())
    await asyncio.sleep(float(request.query.get("pause", "2")))
    for i in range(1, 4):
        await response.write(f'data: {{"server": "{name}", "chunk": {i}}}\n\n'.encode())
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def ws_echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=("echo.v1",))
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            if msg.data == "close-me":
                await ws.close(code=4000, message=b"asked to")
                break
            if msg.data == "drop-me":  # vanish without a close frame: the gateway sees an abnormal closure
                assert request.transport is not None
                request.transport.abort()
                break
            await ws.send_str(f"{request.app[NAME]}:{msg.data}")
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def slow(request: web.Request) -> web.Response:
    seconds, ident = float(request.query.get("seconds", "5")), request.query.get("id", "")
    events = request.app[EVENTS]
    events["started"].append(ident)
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        events["cancelled"].append(ident)
        raise
    events["finished"].append(ident)
    return web.json_response({"server": request.app[NAME], "slept": seconds})


async def stall(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    await response.write(b"partial ")
    await asyncio.sleep(float(request.query.get("seconds", "10")))
    await response.write(b"rest")
    await response.write_eof()
    return response


async def fail(request: web.Request) -> web.Response:
    return web.json_response({"error": "model crashed", "server": request.app[NAME]}, status=500)


async def release(request: web.Request) -> web.Response:
    request.app[GATES].setdefault(request.query.get("id", ""), asyncio.Event()).set()
    return web.json_response({"released": request.query.get("id", "")})


async def events(request: web.Request) -> web.Response:
    return web.json_response(request.app[EVENTS])


def build(name: str) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[NAME] = name
    app[EVENTS] = {"started": [], "cancelled": [], "finished": []}
    app[GATES] = {}
    app.router.add_get("/sse", sse)
    app.router.add_get("/ws", ws_echo)
    app.router.add_route("*", "/slow", slow)
    app.router.add_get("/stall", stall)
    app.router.add_route("*", "/fail", fail)
    app.router.add_get("/-/events", events)
    app.router.add_post("/-/release", release)
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
        app.router.add_post(path, openai_call)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


async def serve(name: str, host: str, port: int) -> None:
    # auto_decompress=False: the echo reports the body's bytes as they arrived (compressed ones too)
    runner = web.AppRunner(build(name), handler_cancellation=True, access_log=None, auto_decompress=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"PORT {runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", default="model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.name, args.host, args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
