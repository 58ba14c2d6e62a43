"""Plain HTTP through the gateway to real model servers: forwarding, errors, limits, counts."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from yarl import URL

from .conftest import NS, GatewayUnderTest, counted, service_body, slice_body

UID = "0b6f4a8e-1111-4c1e-9d51-5a0c7d9e0001"


def one_model(gateway: GatewayUnderTest, backends, **kwargs) -> str:
    return gateway.add_service(service_body("demo", UID, [("v1", 100)], **kwargs), backends)


async def error_of(resp: aiohttp.ClientResponse) -> dict:
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error_code", "error_msg", "request_id"}
    return body


class TestForwarding:
    async def test_path_query_method_body_and_headers_reach_the_model(self, gateway, backends):
        sid = one_model(gateway, backends)
        url = URL(gateway.infer_url(sid, "/predict/a%20b?x=1&y=two%2Fthree"), encoded=True)
        async with gateway.http.post(url, data=b'{"image": "abc"}', headers={
                "Content-Type": "application/json", "X-Custom": "kept", "X-Apig-AppCode": "dropped"}) as resp:
            assert resp.status == 200
            echo = await resp.json()
        assert echo["server"] == "v1"
        assert echo["method"] == "POST"
        assert echo["path"] == "/predict/a%20b"
        assert echo["query"] == "x=1&y=two%2Fthree"
        assert echo["body"] == '{"image": "abc"}'
        assert echo["headers"]["x-custom"] == "kept"
        assert echo["headers"]["content-type"] == "application/json"
        assert "x-apig-appcode" not in echo["headers"]
        assert echo["headers"]["x-forwarded-for"] == "127.0.0.1"
        assert echo["headers"]["x-request-id"] == resp.headers["X-Request-Id"]

    async def test_bare_service_url_reaches_the_model_root(self, gateway, backends):
        sid = one_model(gateway, backends)
        async with gateway.http.get(gateway.infer_url(sid)) as resp:
            assert (await resp.json())["path"] == "/"

    async def test_large_streamed_body_arrives_intact(self, gateway, backends):
        sid = one_model(gateway, backends)
        payload = bytes(range(256)) * 3000  # 768 kB, under the test gateway's 1 MB

        async def chunks():
            for i in range(0, len(payload), 65536):
                yield payload[i:i + 65536]
        async with gateway.http.put(gateway.infer_url(sid, "/upload"), data=chunks()) as resp:
            echo = await resp.json()
        assert echo["body_length"] == len(payload)
        assert echo["method"] == "PUT"

    async def test_model_errors_pass_through_and_count_as_failures(self, gateway, backends):
        sid = one_model(gateway, backends)
        async with gateway.http.post(gateway.infer_url(sid, "/fail")) as resp:
            assert resp.status == 500
            assert (await resp.json())["error"] == "model crashed"
        async with gateway.http.get(gateway.url + "/-/counts") as resp:
            assert await resp.json() == {sid: counted(1, 1, v1=1)}


class TestErrors:
    async def test_unknown_service_is_404(self, gateway):
        async with gateway.http.post(gateway.infer_url("no-such-id", "/predict")) as resp:
            assert resp.status == 404
            assert (await error_of(resp))["error_code"] == "ModelArts.4204"

    async def test_url_without_service_id_is_400(self, gateway):
        async with gateway.http.post(gateway.url + "/v1/infers/") as resp:
            assert resp.status == 400
            assert (await error_of(resp))["error_code"] == "ModelArts.4201"

    async def test_stopped_service_is_400_and_says_so(self, gateway, backends):
        sid = one_model(gateway, backends, stopped=True)
        async with gateway.http.post(gateway.infer_url(sid)) as resp:
            assert resp.status == 400
            body = await error_of(resp)
        assert body["error_code"] == "ModelArts.4203"
        assert "stopped" in body["error_msg"]

    async def test_no_ready_endpoint_is_503(self, gateway, backends):
        gateway.table.upsert_service(service_body("demo", UID, [("v1", 100)]))
        gateway.table.upsert_slice(slice_body("demo", "v1", ["127.0.0.1"], backends["v1"].port, ready=False))
        async with gateway.http.post(gateway.infer_url(UID)) as resp:
            assert resp.status == 503
            assert (await error_of(resp))["error_code"] == "ModelArts.4302"

    async def test_refused_connection_is_503_and_a_failure(self, gateway, unused_tcp_port):
        gateway.table.upsert_service(service_body("demo", UID, [("v1", 100)]))
        gateway.table.upsert_slice(slice_body("demo", "v1", ["127.0.0.1"], unused_tcp_port))
        async with gateway.http.post(gateway.infer_url(UID)) as resp:
            assert resp.status == 503
            assert (await error_of(resp))["error_code"] == "ModelArts.4302"
        assert gateway.gw.metrics.counts()[UID] == counted(1, 1, v1=1)

    async def test_request_id_is_echoed(self, gateway):
        async with gateway.http.get(gateway.infer_url("nope"), headers={"X-Request-Id": "req-42"}) as resp:
            assert (await error_of(resp))["request_id"] == "req-42"
            assert resp.headers["X-Request-Id"] == "req-42"


class TestLimits:
    async def test_declared_body_over_the_limit_is_413(self, gateway, backends):
        sid = one_model(gateway, backends)
        async with gateway.http.post(gateway.infer_url(sid), data=b"x" * (1024 * 1024 + 1)) as resp:
            assert resp.status == 413
            assert (await error_of(resp))["error_code"] == "APIG.0201"

    async def test_chunked_body_over_the_limit_is_413(self, gateway, backends):
        sid = one_model(gateway, backends)

        async def chunks():
            for _ in range(40):
                yield b"y" * 65536  # 2.5 MB, no Content-Length
        async with gateway.http.post(gateway.infer_url(sid), data=chunks()) as resp:
            assert resp.status == 413
            assert (await error_of(resp))["error_code"] == "APIG.0201"

    async def test_slow_model_is_504_after_the_timeout(self, gateway, backends):
        sid = one_model(gateway, backends)
        started = asyncio.get_running_loop().time()
        async with gateway.http.post(gateway.infer_url(sid, "/slow?seconds=10")) as resp:
            assert resp.status == 504
            assert (await error_of(resp))["error_code"] == "ModelArts.4503"
        assert 1.9 < asyncio.get_running_loop().time() - started < 4
        assert gateway.gw.metrics.counts()[sid] == counted(1, 1, v1=1)

    async def test_a_slow_model_answering_a_small_body_is_504_not_the_clients_408(self, gateway, backends):
        """A small body that had fully arrived is sent with the headers: the timeout that follows is the
        model's, never "the request body did not arrive in time"."""
        sid = one_model(gateway, backends)
        async with gateway.http.post(gateway.infer_url(sid, "/slow?seconds=10"), data=b'{"prompt": "hi"}') as resp:
            assert resp.status == 504
            assert (await error_of(resp))["error_code"] == "ModelArts.4503"
        assert gateway.gw.metrics.counts()[sid] == counted(1, 1, v1=1)

    async def test_annotations_override_the_gateway_limits(self, gateway, backends):
        sid = one_model(gateway, backends, annotations={"inference.io/gateway-timeout-seconds": "4",
                                                        "inference.io/gateway-body-limit-mb": "2"})
        async with gateway.http.post(gateway.infer_url(sid, "/slow?seconds=3")) as resp:
            assert resp.status == 200
        async with gateway.http.post(gateway.infer_url(sid), data=b"z" * (1536 * 1024)) as resp:
            assert resp.status == 200
            assert (await resp.json())["body_length"] == 1536 * 1024

    async def test_rate_limit_is_429(self, gateway, backends):
        sid = one_model(gateway, backends, annotations={"inference.io/gateway-rate-limit-rps": "2"})
        statuses = []
        for _ in range(5):
            async with gateway.http.get(gateway.infer_url(sid)) as resp:
                statuses.append(resp.status)
                if resp.status == 429:
                    assert (await error_of(resp))["error_code"] == "ModelArts.4206"
        assert statuses[:2] == [200, 200]
        assert 429 in statuses

    async def test_stream_that_stalls_after_headers_is_cut_and_counted(self, gateway, backends):
        sid = one_model(gateway, backends)
        async with gateway.http.get(gateway.infer_url(sid, "/stall?seconds=10")) as resp:
            assert resp.status == 200
            try:
                await resp.read()
                raise AssertionError("the stalled body should have been cut off")
            except aiohttp.ClientPayloadError:
                pass
        assert gateway.gw.metrics.counts()[sid] == counted(1, 1, v1=1)


async def test_metrics_and_counts_endpoints(gateway, backends):
    sid = one_model(gateway, backends)
    for _ in range(3):
        async with gateway.http.post(gateway.infer_url(sid, "/predict"), data=b"{}") as resp:
            assert resp.status == 200
    async with gateway.http.get(gateway.url + "/-/counts") as resp:
        assert json.loads(await resp.text()) == {sid: counted(3, 0, v1=3)}
        assert resp.headers["X-Gateway-Instance"]
    async with gateway.http.get(gateway.url + "/metrics") as resp:
        text = await resp.text()
    assert f'inference_gateway_requests_total{{code="200",model="v1",namespace="{NS}",service="demo"}} 3.0' in text
    assert "inference_gateway_request_duration_seconds_bucket" in text
    async with gateway.http.get(gateway.url + "/healthz") as resp:
        assert resp.status == 200


async def test_a_gateway_still_syncing_answers_503_and_is_not_ready(gateway, backends):
    sid = one_model(gateway, backends)
    gateway.gw.ready = lambda: False
    async with gateway.http.post(gateway.infer_url(sid)) as resp:
        assert resp.status == 503
        assert "still loading" in (await error_of(resp))["error_msg"]
    async with gateway.http.get(gateway.url + "/healthz") as resp:
        assert resp.status == 503
