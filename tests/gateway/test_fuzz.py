"""Hypothesis against the gateway's real HTTP stack: any method, path, header name, value or byte, any body.

Whatever arrives, the gateway answers with the contract's JSON when it refuses, and never with a 5xx
that is its own fault (a crash, or a "model unreachable" caused by the request's own bytes). The
gateway runs in a thread with its own event loop, with a healthy model behind it, so every 5xx seen
here would be the gateway's fault.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference_operator.gateway.core import Gateway
from inference_operator.gateway.httpserver import ServerLimits
from inference_operator.gateway.limits import Limits
from inference_operator.gateway.routes import RouteTable
from inference_operator.gateway.server import build_app, start_site

from .conftest import NS, Backend, service_body, slice_body
from .rawhttp import Reply, is_contract_error

OPEN = "0b6f4a8e-8888-4c1e-9d51-5a0c7d9e0001"
SECURE = "0b6f4a8e-8888-4c1e-9d51-5a0c7d9e0002"
LLM = "0b6f4a8e-8888-4c1e-9d51-5a0c7d9e0003"
SECURE_LLM = "0b6f4a8e-8888-4c1e-9d51-5a0c7d9e0004"
INTERESTING = ["Authorization", "X-Apig-AppCode", "apikey", "X-Sdk-Date", "X-Sdk-Content-Sha256", "Content-Type",
               "Content-MD5", "Date",
               "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Sec-WebSocket-Key",
               "Sec-WebSocket-Version", "Sec-WebSocket-Protocol", "X-Forwarded-For", "Expect", "X-Request-Id",
               "Accept-Encoding", "Content-Encoding", "Host", "Cookie", "Forwarded", "Te", "Trailer"]


@pytest.fixture(scope="module")
def fuzz_port(backends: dict[str, Backend]) -> Iterator[int]:
    table = RouteTable()
    table.upsert_service(service_body("fz-open", OPEN, [("v1", 100)]))
    table.upsert_service(service_body("fz-secure", SECURE, [("v1", 100)], apps=["fz-app"],
                                      annotations={"inference.io/gateway-apikey-auth": "true"}))
    for name in ("fz-open", "fz-secure"):
        table.upsert_slice(slice_body(name, "v1", ["127.0.0.1"], backends["v1"].port))
    for name, uid, apps in [("fz-llm", LLM, None), ("fz-llm-secure", SECURE_LLM, ["fz-app"])]:
        llm = service_body(name, uid, [("v1", 100), ("v2", 0)], apps=apps)
        for model in llm["spec"]["models"]:
            model["runtime"] = "vllm"
        table.upsert_service(llm)
        for model_name in ("v1", "v2"):
            table.upsert_slice(slice_body(name, model_name, ["127.0.0.1"], backends[model_name].port))
    table.set_secret(NS, "fz-app", {k: base64.b64encode(v.encode()).decode()
                                    for k, v in {"appKey": "K", "appSecret": "S", "appCode": "C"}.items()})
    gw = Gateway(table, limits=Limits(body_limit_bytes=64 * 1024, timeout_seconds=5.0, client_seconds=0.3))
    loop = asyncio.new_event_loop()
    started: list[int] = []
    stop = asyncio.Event()

    async def serve() -> None:
        runner, port = await start_site(build_app(gw), "127.0.0.1", 0,
                                        ServerLimits(header_seconds=1.0, idle_seconds=2.0))
        started.append(port)
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not started:
        assert time.monotonic() < deadline, "the fuzz gateway did not start"
        time.sleep(0.01)  # poll interval of the wait for the gateway thread (bounded by the deadline)
    yield started[0]
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)


def mostly(common: st.SearchStrategy, rare: st.SearchStrategy, odds: int = 6) -> st.SearchStrategy:
    """`common` about odds times in odds+1, else `rare` (one_of alone draws each branch alike)."""
    return st.integers(0, odds).flatmap(lambda i: rare if i == odds else common)


token = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz-_0123456789ABCXYZ"), min_size=1, max_size=12)
raw_bytes = st.binary(max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b)
printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.encode)
# Mostly well-formed requests (so they get past the parser to auth, routing and the model), some raw bytes.
header_name = mostly(st.sampled_from(INTERESTING).map(str.encode),
                     st.one_of(token.map(str.encode), raw_bytes.filter(bool)), 3)
specials = st.sampled_from([b"SDK-HMAC-SHA256 Access=K, SignedHeaders=host;x-sdk-date, Signature=00",
                     b"SDK-HMAC-SHA256 Access=K", b"UNSIGNED-PAYLOAD", b"chunked", b"websocket", b"upgrade",
                     b"100-continue", b"-1", b"99999999999999999999", b"0", b"gzip", b"13", b"C", b"K",
                     b"20250101T000000Z", b"\xff\xfe", b"caf\xc3\xa9", b"dGhlIHNhbXBsZSBub25jZQ==",
                     b"Bearer C", b"Bearer K", b"Bearer ", b"bearer \xff", b"EAS AAAA", b"EAS ",
                     b"Mon, 01 Dec 2026 10:00:00 GMT", b"5d41402abc4b2a76b9719d911017c592"])
header_value = mostly(st.one_of(printable, specials), st.one_of(
    raw_bytes,
    st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass")).filter(
        lambda b: b"\r" not in b and b"\n" not in b)), 4)
tail = st.text(st.sampled_from("abcxyz019-._~%/?=&+:@!$'()*,;"), max_size=30).map(str.encode)
# The EAS URL names services: by name, by namespace.name, ambiguously never (one namespace), or not at all.
predict_ref = st.sampled_from(["fz-open", "fz-secure", f"{NS}.fz-secure", "fz-llm-secure", "nosuch", "", "x.y.z",
                               "%66z-open", "fz-open%2Ffz"])
path = mostly(
    st.one_of(
        st.tuples(st.sampled_from([OPEN, SECURE]), tail).map(lambda p: f"/v1/infers/{p[0]}/fz".encode() + p[1]),
        st.tuples(predict_ref, tail).map(lambda p: f"/api/predict/{p[0]}/fz".encode() + p[1])),
    st.one_of(
        raw_bytes.map(lambda b: b"/api/predict/" + b.replace(b" ", b"")),
        st.sampled_from([OPEN, SECURE]).flatmap(lambda sid: st.binary(max_size=30).map(
            lambda tail: f"/v1/infers/{sid}/fz".encode() + tail.replace(b" ", b"%20").replace(b"\r", b"")
            .replace(b"\n", b""))),
        raw_bytes.map(lambda b: b"/v1/infers/" + b.replace(b" ", b"")),
        raw_bytes.map(lambda b: b"/" + b.replace(b" ", b""))), 4)
method = mostly(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"HEAD", b"PATCH", b"CONNECT",
                                  b"TRACE"]), token.map(str.encode), 8)


SEEN: list[int | None] = []  # statuses seen, to check the strategies reach the model (debugging aid)


def send(port: int, data: bytes) -> bytes:
    """Send one request, read until the gateway closes (Connection: close) or 5 s pass."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes] | None:
    if not raw:
        return None
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = body[:int(headers["content-length"])]
    return status, headers, body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(method=method, path=path, headers=st.lists(st.tuples(header_name, header_value), max_size=5),
       body=st.binary(max_size=200))
def test_fuzz_never_a_gateway_5xx_never_a_non_json_error(fuzz_port, method, path, headers, body):
    data = method + b" " + path + b" HTTP/1.1\r\nHost: gw.test\r\n"
    data += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    if body and not any(name.lower() in (b"content-length", b"transfer-encoding") for name, _ in headers):
        data += b"Content-Length: %d\r\n" % len(body)
    data += b"Connection: close\r\n\r\n" + body
    parsed = parse(send(fuzz_port, data))
    SEEN.append(parsed[0] if parsed else None)
    if parsed is None:
        return  # closed without an answer: only for bytes that are not HTTP (no request to answer)
    status, response_headers, response_body = parsed
    from_model = status < 400 or b'"server"' in response_body  # the echo model's own answer
    if from_model:
        return
    reply = Reply(status, response_headers, response_body)
    if method == b"HEAD":
        assert response_headers.get("content-type", "").startswith("application/json"), (data, status)
    else:
        assert is_contract_error(reply), (data, status, response_body[:300])
    assert status < 500, (data, status, response_body[:300])


json_value = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                          lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                       max_size=4), max_leaves=20)
model_value = mostly(st.sampled_from(["v1-model", "v2-model", "v2", "gpt-4o", ""]), json_value, 2)
openai_body = st.one_of(
    st.tuples(model_value, st.dictionaries(st.text(max_size=6), json_value, max_size=4)).map(
        lambda mb: json.dumps({**mb[1], "model": mb[0]}).encode()),
    json_value.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=120),
    st.integers(1, 3000).map(lambda depth: b"[" * depth))
INFER_PATHS = (b"/v1/chat/completions", b"/v1/completions", b"/v1/embeddings", b"/v1/chat%2Fcompletions",
               b"/v1//embeddings/")
# The same service on both URLs, and one with app authentication, whose Bearer keys are tokens.
openai_prefix = mostly(st.sampled_from([f"/v1/infers/{LLM}".encode(), b"/api/predict/fz-llm"]),
                       st.sampled_from([f"/v1/infers/{SECURE_LLM}".encode(),
                                        f"/api/predict/{NS}.fz-llm-secure".encode()]), 2)
openai_path = st.sampled_from([b"/v1/chat/completions", b"/v1/completions", b"/v1/embeddings", b"/v1/models",
                               b"/v1/models/v2-model", b"/v1/chat%2Fcompletions", b"/v1//embeddings/"])


def is_openai_error(body: bytes) -> bool:
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(method=mostly(st.just(b"POST"), st.sampled_from([b"GET", b"HEAD", b"PUT"]), 3), path=openai_path,
       headers=st.lists(st.tuples(header_name, header_value), max_size=2), body=openai_body, prefix=openai_prefix)
def test_fuzz_openai_routing_answers_200_400_or_404_never_a_gateway_5xx(fuzz_port, method, path, headers, body,
                                                                         prefix):
    """Any body on the OpenAI paths of a vllm service, with or without app auth, on either URL: the model's
    answer, or an error in OpenAI's shape (400 invalid body, 401 / 403 a Bearer key, 404 unknown model) or the
    contract's (bad headers, ...), never a 5xx of the gateway's own."""
    data = method + b" " + prefix + path + b" HTTP/1.1\r\nHost: gw.test\r\n"
    data += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    if not any(name.lower() in (b"content-length", b"transfer-encoding") for name, _ in headers):
        data += b"Content-Length: %d\r\n" % len(body)
    data += b"Connection: close\r\n\r\n" + body
    parsed = parse(send(fuzz_port, data))
    if parsed is None:
        return
    status, response_headers, response_body = parsed
    plain = not any(name.lower() in (b"content-length", b"transfer-encoding", b"content-encoding", b"expect")
                    for name, _ in headers)
    if status == 200 and method == b"POST" and path in INFER_PATHS and plain:  # the oracle: what reached a model
        document = json.loads(body)  # the gateway refuses (400) what does not decode
        assert isinstance(document, dict), (data, response_body[:300])
        assert document.get("model") in (None, "v1-model", "v2-model", "v2"), (data, response_body[:300])
    if status < 400 or b'"server"' in response_body or method == b"HEAD":
        return
    assert status < 500, (data, status, response_body[:300])
    if is_openai_error(response_body):
        assert status in (400, 401, 403, 404), (data, status, response_body[:300])
    else:
        assert is_contract_error(Reply(status, response_headers, response_body)), (data, status, response_body[:300])
