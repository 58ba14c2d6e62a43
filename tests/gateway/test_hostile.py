"""The gateway under attack: each numbered finding of issue 12's probes, against the real HTTP stack on loopback.

The gateway here has short limits so each probe ends in seconds: 1 MB body, 2 s to the model's answer,
1 s between body chunks, 1 s for a request head, 2 s idle, 20 connections, a 1.5 MB budget for
buffered (signed) bodies. Requests are sent as raw bytes where a client library would refuse to.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from inference_operator.gateway.body import BodyBudget
from inference_operator.gateway.client import Signer
from inference_operator.gateway.core import Gateway
from inference_operator.gateway.httpserver import ServerLimits
from inference_operator.gateway.limits import MB, Limits
from inference_operator.gateway.routes import RouteTable
from inference_operator.gateway.server import build_app, build_metrics_app, start_site
from inference_operator.gateway.tokens import eas_signature, eas_string_to_sign

from .conftest import NS, Backend, counted, service_body, slice_body
from .rawhttp import Reply, exchange, is_contract_error, read_reply, request_bytes

OPEN = "0b6f4a8e-7777-4c1e-9d51-5a0c7d9e0001"  # no app auth
SECURE = "0b6f4a8e-7777-4c1e-9d51-5a0c7d9e0002"  # app auth, apikey enabled
STRICT = "0b6f4a8e-7777-4c1e-9d51-5a0c7d9e0003"  # app auth, UNSIGNED-PAYLOAD forbidden
GREEDY = "0b6f4a8e-7777-4c1e-9d51-5a0c7d9e0004"  # asks for more than the admin allows
REFUSED = "0b6f4a8e-7777-4c1e-9d51-5a0c7d9e0005"  # its endpoint refuses connections
KEY, SECRET, CODE = "KEY-H", "SECRET-H", "CODE-H"
TOKEN = "counts-token-for-tests"
SERVER = ServerLimits(max_connections=20, idle_seconds=2.0, header_seconds=1.0, max_head_bytes=16 * 1024)


@dataclass
class Hostile:
    gw: Gateway
    port: int
    internal: int
    http: aiohttp.ClientSession

    def url(self, sid: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/v1/infers/{sid}{path}"

    def counts(self) -> dict[str, dict[str, int]]:
        return self.gw.metrics.counts()


def _secret() -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in
            {"appKey": KEY, "appSecret": SECRET, "appCode": CODE}.items()}


@pytest.fixture
async def hostile(backends: dict[str, Backend]) -> AsyncIterator[Hostile]:
    table = RouteTable()
    for sid, name, apps, notes in [
        (OPEN, "open", None, None),
        (SECURE, "secure", ["app-h"], {"inference.io/gateway-apikey-auth": "true"}),
        (STRICT, "strict", ["app-h"], {"inference.io/gateway-unsigned-payload": "false"}),
        (GREEDY, "greedy", None, {"inference.io/gateway-body-limit-mb": "1024",
                                  "inference.io/gateway-timeout-seconds": "3600"}),
    ]:
        table.upsert_service(service_body(name, sid, [("v1", 100)], apps=apps, annotations=notes))
        table.upsert_slice(slice_body(name, "v1", ["127.0.0.1"], backends["v1"].port))
    table.upsert_service(service_body("refused", REFUSED, [("v1", 100)]))
    table.upsert_slice(slice_body("refused", "v1", ["127.0.0.1"], 1))  # nothing listens on port 1
    table.set_secret(NS, "app-h", _secret())
    gw = Gateway(table, limits=Limits(body_limit_bytes=MB, timeout_seconds=2.0, client_seconds=1.0,
                                      max_body_limit_bytes=2 * MB, max_timeout_seconds=3.0),
                 budget=BodyBudget(3 * MB // 2), counts_token=TOKEN, max_head_bytes=SERVER.max_head_bytes)
    runner, port = await start_site(build_app(gw), "127.0.0.1", 0, SERVER)
    internal_runner, internal = await start_site(build_metrics_app(gw), "127.0.0.1", 0)
    async with aiohttp.ClientSession() as http:
        yield Hostile(gw, port, internal, http)
    await runner.cleanup()
    await internal_runner.cleanup()


def signed(method: str, url: str, body: bytes, **extra: str) -> dict[str, str]:
    return Signer(KEY, SECRET).sign(method, url, {"Content-Type": "application/octet-stream", **extra}, body)


def assert_error(reply: Reply | None, status: int, code: str) -> dict:
    assert reply is not None, "no answer"
    assert is_contract_error(reply), f"not the contract's JSON error: {reply}"
    body = reply.json()
    assert (reply.status, body["error_code"]) == (status, code), body
    return body


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


# -- 1. Memory before auth ------------------------------------------------------------------------------------

async def test_1_unknown_app_is_refused_before_its_body_is_read(hostile):
    """The probe: a signature by an unknown app with a 12 MB body was read whole into memory first. Now
    the 401 comes back after the head alone, while the client has sent none of the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hostile.port)
    writer.write(request_bytes("POST", f"/v1/infers/{SECURE}/predict", [
        ("Authorization", "SDK-HMAC-SHA256 Access=nobody, SignedHeaders=host;x-sdk-date, Signature=00"),
        ("X-Sdk-Date", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())),
        ("Content-Length", str(MB))]))  # within the limit, none of it sent
    await writer.drain()
    reply = await read_reply(reader, 5)
    assert_error(reply, 401, "APIG.0303")
    async with asyncio.timeout(5):
        assert await reader.read() == b""  # then closed (after 2 s of dropping what arrives), never kept to read 1 MB
    writer.close()
    assert hostile.gw.budget.used == 0


async def test_1_expired_date_is_refused_before_the_body(hostile):
    url = hostile.url(SECURE, "/predict")
    headers = signed("POST", url, b"x" * 1000)
    headers["X-Sdk-Date"] = "20200101T000000Z"
    reader, writer = await asyncio.open_connection("127.0.0.1", hostile.port)
    writer.write(request_bytes("POST", f"/v1/infers/{SECURE}/predict", [
        *[(k, v) for k, v in headers.items() if k != "Host"], ("Content-Length", "1000")]))
    await writer.drain()
    body = assert_error(await read_reply(reader, 5), 401, "APIG.0303")
    writer.close()
    assert "signature expired" in body["error_msg"]


async def test_1_buffered_bodies_share_a_global_cap(hostile):
    """A known app's signed bodies are buffered (their hash is signed), but all of them together within the
    budget (1.5 MB here): a second 1 MB body while the first is held is 503, and the budget is returned."""
    path = f"/v1/infers/{SECURE}/predict"
    first_body = b"a" * MB
    headers = signed("POST", hostile.url(SECURE, "/predict"), first_body)
    reader, writer = await asyncio.open_connection("127.0.0.1", hostile.port)
    writer.write(request_bytes("POST", path, [*headers.items(), ("Content-Length", str(MB))]) + first_body[:1000])
    await writer.drain()
    await wait_for(lambda: hostile.gw.budget.used == MB, 5, "the first body's reservation")
    async with hostile.http.post(hostile.url(SECURE, "/predict"), data=first_body,
                                 headers=signed("POST", hostile.url(SECURE, "/predict"), first_body)) as resp:
        assert resp.status == 503
        assert (await resp.json())["error_code"] == "ModelArts.4302"
    writer.write(first_body[1000:])
    await writer.drain()
    reply = await read_reply(reader, 5)
    writer.close()
    assert reply is not None and reply.status == 200 and reply.json()["body_length"] == MB
    assert hostile.gw.budget.used == 0


@pytest.mark.parametrize("authorization", ["UNKNOWN-TOKEN", "Bearer UNKNOWN-TOKEN", "EAS c2lnbmF0dXJl"])
async def test_1_eas_url_unknown_token_is_refused_before_its_body_is_read(hostile, authorization):
    """The EAS URL's tokens are judged from the head: a wrong token gets 401 before the body, which is never
    buffered. An EAS signature's body is read (its MD5 is signed), but only after its headers checked out."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hostile.port)
    extra = [("Date", "Mon, 01 Dec 2026 10:00:00 GMT")] if authorization.startswith("EAS") else []
    writer.write(request_bytes("POST", "/api/predict/secure/predict", [
        ("Authorization", authorization), *extra, ("Content-Length", str(MB))]))  # within the limit, none sent
    await writer.drain()
    body = assert_error(await read_reply(reader, 5), 401, "APIG.0303")
    assert "unknown token" in body["error_msg"] or "content-md5" in body["error_msg"]
    async with asyncio.timeout(5):
        assert await reader.read() == b""
    writer.close()
    assert hostile.gw.budget.used == 0 and SECURE not in hostile.counts()


async def test_1_eas_signed_bodies_share_the_global_cap(hostile):
    """An EAS-signed body is buffered against the same budget as an SDK-signed one: 503 when it is full."""
    date, first_body = "Mon, 01 Dec 2026 10:00:00 GMT", b"a" * MB
    md5 = hashlib.md5(first_body).hexdigest()
    text = eas_string_to_sign("POST", md5, "application/octet-stream", date, "/api/predict/secure")
    headers = [("Authorization", "EAS " + eas_signature(CODE, text)), ("Content-MD5", md5), ("Date", date),
               ("Content-Type", "application/octet-stream"), ("Content-Length", str(MB))]
    reader, writer = await asyncio.open_connection("127.0.0.1", hostile.port)
    writer.write(request_bytes("POST", "/api/predict/secure", headers) + first_body[:1000])
    await writer.drain()
    await wait_for(lambda: hostile.gw.budget.used == MB, 5, "the first body's reservation")
    async with hostile.http.post(f"http://127.0.0.1:{hostile.port}/api/predict/secure", data=first_body,
                                 headers=dict(headers[:4])) as resp:
        assert (resp.status, (await resp.json())["error_code"]) == (503, "ModelArts.4302")
    writer.write(first_body[1000:])
    await writer.drain()
    reply = await read_reply(reader, 5)
    writer.close()
    assert reply is not None and reply.status == 200 and reply.json()["body_length"] == MB
    assert hostile.gw.budget.used == 0


# -- 2. Reads without a deadline --------------------------------------------------------------------------------

async def test_2_short_body_of_a_signed_request_gets_408(hostile):
    """Content-Length 1000, 10 bytes sent, then nothing: 408 after the 1 s body deadline, not never."""
    body = b"0123456789"
    headers = signed("POST", hostile.url(SECURE, "/predict"), b"x" * 1000)
    reader, writer = await asyncio.open_connection("127.0.0.1", hostile.port)
    started = time.monotonic()
    writer.write(request_bytes("POST", f"/v1/infers/{SECURE}/predict",
                               [(k, v) for k, v in headers.items() if k != "Host"] + [("Content-Length", "1000")])
                 + body)
    await writer.drain()
    assert_error(await read_reply(reader, 10), 408, "APIG.0201")
    assert time.monotonic() - started < 4
    writer.close()
    assert hostile.gw.budget.used == 0
    assert SECURE not in hostile.counts()


async def test_2_slow_head_is_cut_off_with_408(hostile):
    """Headers at one byte per 0.1 s: the head must be complete within 1 s of its first byte."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hostile.port)
    data = request_bytes("GET", f"/v1/infers/{OPEN}/x", [("X-Padding", "p" * 100)])
    started = time.monotonic()
    reply = None
    for i in range(len(data)):
        if reader.at_eof() or writer.is_closing():
            break
        try:
            writer.write(data[i:i + 1])
            await writer.drain()
        except ConnectionError:
            break
        try:
            reply = await read_reply(reader, 0.1)
            break
        except TimeoutError:
            continue
    writer.close()
    assert_error(reply, 408, "APIG.0201")
    assert time.monotonic() - started < 3


async def test_2_idle_connections_are_closed(hostile):
    reader, _writer = await asyncio.open_connection("127.0.0.1", hostile.port)
    started = time.monotonic()
    async with asyncio.timeout(6):
        assert await reader.read() == b""  # closed by the gateway
    assert 1.5 < time.monotonic() - started < 5


async def test_2_connection_cap_refuses_with_json_and_recovers(hostile):
    idle = [await asyncio.open_connection("127.0.0.1", hostile.port) for _ in range(SERVER.max_connections)]
    reply = await exchange(hostile.port, request_bytes("GET", f"/v1/infers/{OPEN}/x", []))
    assert_error(reply, 503, "ModelArts.4302")
    for _, writer in idle:
        writer.close()
    deadline = time.monotonic() + 5
    while True:
        reply = await exchange(hostile.port, request_bytes("GET", f"/v1/infers/{OPEN}/x", []))
        if reply is not None and reply.status == 200 or time.monotonic() > deadline:
            break
    assert reply is not None and reply.status == 200


# -- 3. Crashes into plain-text 500s ----------------------------------------------------------------------------

@pytest.mark.parametrize("header", [
    (b"X-Apig-AppCode", b"caf\xc3\xa9"), (b"X-Apig-AppCode", b"\xff\xfe"), (b"apikey", b"k\xe9y"),
    (b"Authorization", "SDK-HMAC-SHA256 Access=ké, SignedHeaders=host;x-sdk-date, Signature=00".encode()),
    (b"Authorization", b"SDK-HMAC-SHA256 Access=KEY-H, SignedHeaders=host;x-sdk-date, Signature=\xff"),
    (b"Authorization", b"SDK-HMAC-SHA256 Access=\xff, SignedHeaders=host;x-sdk-date, Signature=00"),
])
async def test_3_non_ascii_credentials_are_401_or_400_json(hostile, header):
    reply = await exchange(hostile.port, request_bytes("POST", f"/v1/infers/{SECURE}/predict", [
        header, ("X-Sdk-Date", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))], b"{}"))
    assert reply is not None and reply.status in (400, 401), reply
    assert is_contract_error(reply)
    assert SECURE not in hostile.counts()


async def test_3_non_ascii_signed_header_value(hostile):
    """A signed header whose value is not ASCII: verified like any other (mismatch here), never a crash."""
    headers = signed("POST", hostile.url(SECURE, "/predict"), b"{}", **{"X-Extra": "plain"})
    raw = [(k, v) for k, v in headers.items() if k not in ("Host", "X-Extra")] + [("X-Extra", "caf\u00e9".encode())]
    assert_error(await exchange(hostile.port, request_bytes("POST", f"/v1/infers/{SECURE}/predict", raw, b"{}")),
                 401, "APIG.0303")
    raw[-1] = ("X-Extra", b"\xff\xfe")
    reply = await exchange(hostile.port, request_bytes("POST", f"/v1/infers/{SECURE}/predict", raw, b"{}"))
    assert reply is not None and reply.status in (400, 401) and is_contract_error(reply)


# -- 4. Counters anyone can move ---------------------------------------------------------------------------------

async def test_4_only_authenticated_requests_that_reach_a_model_count(hostile):
    for headers in ({}, {"X-Apig-AppCode": "wrong"}, {"apikey": "wrong"}):
        async with hostile.http.post(hostile.url(SECURE, "/predict"), data=b"{}", headers=headers) as resp:
            assert resp.status == 401
    assert SECURE not in hostile.counts()
    async with hostile.http.post(hostile.url(SECURE, "/predict"), data=b"{}", headers={"X-Apig-AppCode": CODE}) as r:
        assert r.status == 200
    assert hostile.counts()[SECURE] == counted(1, 0, v1=1)


async def test_4_websocket_upgrade_without_a_key_never_dials_the_model(hostile):
    reply = await exchange(hostile.port, request_bytes("GET", f"/v1/infers/{OPEN}/ws", [
        ("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")]))
    assert_error(reply, 400, "APIG.0201")
    assert OPEN not in hostile.counts()


async def test_4_slow_upload_is_the_clients_fault_not_a_failure(hostile):
    """An open service streams the body to the model; a client that stops sending gets 408, and the
    model is not blamed (no failure counted)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hostile.port)
    writer.write(request_bytes("POST", f"/v1/infers/{OPEN}/upload", [("Content-Length", "1000")]) + b"0123456789")
    await writer.drain()
    reply = await read_reply(reader, 10)
    writer.close()
    assert_error(reply, 408, "APIG.0201")
    await wait_for(lambda: hostile.counts().get(OPEN, {}).get("invocationTimes"), 5, "the request to be recorded")
    assert hostile.counts()[OPEN]["failedTimes"] == 0


# -- 5. The body hash is checked -----------------------------------------------------------------------------------

async def test_5_declared_body_hash_must_match_the_body(hostile):
    url = hostile.url(SECURE, "/predict")
    body_a, body_b = b'{"amount": 1}', b'{"amount": 1000000}'
    headers = signed("POST", url, body_a, **{"X-Sdk-Content-Sha256": hashlib.sha256(body_a).hexdigest()})
    async with hostile.http.post(url, data=body_b, headers=headers) as resp:
        assert resp.status == 401
        assert "X-Sdk-Content-Sha256" in (await resp.json())["error_msg"]
    async with hostile.http.post(url, data=body_a, headers=headers) as resp:
        assert resp.status == 200
        assert (await resp.json())["body_sha256"] == hashlib.sha256(body_a).hexdigest()


async def test_5_a_literal_that_is_not_a_hash_is_refused(hostile):
    url = hostile.url(SECURE, "/predict")
    headers = signed("POST", url, b"{}", **{"X-Sdk-Content-Sha256": "anything"})
    async with hostile.http.post(url, data=b"{}", headers=headers) as resp:
        assert resp.status == 401


async def test_5_unsigned_payload_unless_the_service_forbids_it(hostile):
    for sid, expected in ((SECURE, 200), (STRICT, 401)):
        url = hostile.url(sid, "/predict")
        headers = signed("POST", url, b"", **{"X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"})
        async with hostile.http.post(url, data=b"streamed", headers=headers) as resp:
            assert resp.status == expected, await resp.text()


# -- 6. Protocol and information leaks --------------------------------------------------------------------------

async def test_6_no_1006_on_the_wire_when_the_model_vanishes(hostile):
    async with hostile.http.ws_connect(hostile.url(OPEN, "/ws")) as ws:
        await ws.send_str("drop-me")
        msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.CLOSE, msg
    assert msg.data == 1011
    await wait_for(lambda: hostile.counts().get(OPEN, {}).get("invocationTimes"), 5, "the WebSocket to be recorded")
    assert hostile.counts()[OPEN] == counted(1, 1, v1=1)


async def test_6_refused_upstream_does_not_leak_its_address(hostile):
    """...and it is counted as a failure: the way to the model failed."""
    async with hostile.http.get(hostile.url(REFUSED, "/x")) as resp:
        body = await resp.json()
    assert body["error_code"] == "ModelArts.4302"
    assert "127.0.0.1" not in body["error_msg"] and ":1" not in body["error_msg"]
    assert hostile.counts()[REFUSED] == counted(1, 1, v1=1)


@pytest.mark.parametrize(("request_data", "status"), [
    (request_bytes("GET", "/v1/infers/" + "a" * 10000, []), 414),
    (request_bytes("GET", f"/v1/infers/{OPEN}/x", [("X-Big", "b" * 10000)]), 431),
    (request_bytes("GET", f"/v1/infers/{OPEN}/x", [(f"X-H{i}", "v" * 200) for i in range(90)]), 431),
    (request_bytes("GET", f"/v1/infers/{OPEN}/x", [(f"X-H{i}", "v") for i in range(150)]), 431),
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /v1/infers/x HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n", 400),
])
async def test_6_aiohttps_own_refusals_are_json(hostile, request_data, status):
    reply = await exchange(hostile.port, request_data)
    assert reply is not None and reply.status == status
    assert_error(reply, status, "APIG.0201")


async def test_6_unknown_signing_algorithm_is_apig_0303(hostile):
    async with hostile.http.post(hostile.url(SECURE, "/p"), data=b"{}", headers={
            "Authorization": "SDK-HMAC-SHA512 Access=KEY-H, SignedHeaders=host;x-sdk-date, Signature=00"}) as resp:
        assert resp.status == 401
        assert (await resp.json())["error_code"] == "APIG.0303"


async def test_6_client_forwarded_headers_are_replaced(hostile):
    async with hostile.http.get(hostile.url(OPEN, "/echo"), headers={
            "X-Forwarded-For": "10.9.8.7", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
            "Forwarded": "for=10.9.8.7", "X-Real-IP": "10.9.8.7"}) as resp:
        seen = (await resp.json())["headers"]
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == f"127.0.0.1:{hostile.port}"
    assert "forwarded" not in seen and "x-real-ip" not in seen


async def test_6_unknown_paths_and_methods_are_json(hostile):
    async with hostile.http.get(f"http://127.0.0.1:{hostile.port}/nothing/here") as resp:
        assert resp.status == 404 and (await resp.json())["error_code"] == "APIG.0101"
    async with hostile.http.post(f"http://127.0.0.1:{hostile.port}/healthz") as resp:
        assert resp.status == 405 and (await resp.json())["error_code"] == "APIG.0101"


# -- 7. Open internals ----------------------------------------------------------------------------------------

async def test_7_internals_are_elsewhere_and_counts_need_the_token(hostile):
    for path in ("/-/counts", "/metrics"):
        async with hostile.http.get(f"http://127.0.0.1:{hostile.port}{path}") as resp:
            assert resp.status == 404, path  # not on the inference port
    counts = f"http://127.0.0.1:{hostile.internal}/-/counts"
    async with hostile.http.get(counts) as resp:
        assert resp.status == 401 and (await resp.json())["error_code"] == "APIG.0305"
    async with hostile.http.get(counts, headers={"Authorization": "Bearer wrong"}) as resp:
        assert resp.status == 401
    async with hostile.http.get(counts, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        assert resp.status == 200 and json.loads(await resp.text()) == hostile.counts()


# -- 8. Tenants apart: a service cannot raise its limits past the admin's maxima ----------------------------------

async def test_8_annotations_cannot_exceed_the_admins_maxima(hostile):
    """greedy asks for 1024 MB and 3600 s; the admin allows 2 MB and 3 s."""
    async with hostile.http.post(hostile.url(GREEDY, "/"), data=b"z" * (3 * MB)) as resp:
        assert resp.status == 413
        assert "2 MB" in (await resp.json())["error_msg"]
    started = time.monotonic()
    async with hostile.http.post(hostile.url(GREEDY, "/slow?seconds=10")) as resp:
        assert resp.status == 504
    assert time.monotonic() - started < 5
    async with hostile.http.post(hostile.url(GREEDY, "/"), data=b"z" * (3 * MB // 2)) as resp:
        assert resp.status == 200  # raised above the 1 MB default, within the maximum
