"""OpenAI-compatible routing through the gateway, against real model-server processes (v1, v2).

The service serves two LLMs on OpenAI-speaking runtimes: entry v1 is modelName "llama-3" (weight
100), entry v2 is "qwen-2" (weight 0: reachable by name only). The model servers echo what reached
them (tests/gateway/model_server.py), so each test sees which process answered and with which bytes.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from inference_operator.gateway.body import BodyBudget
from inference_operator.gateway.client import Signer

from .conftest import NS, Backend, GatewayUnderTest, slice_body, start_backend

UID = "0b6f4a8e-5555-4c1e-9d51-5a0c7d9e0005"
PLAIN_UID = "0b6f4a8e-5555-4c1e-9d51-5a0c7d9e0006"
EXAMPLE_UID = "0b6f4a8e-5555-4c1e-9d51-5a0c7d9e0007"
CHAT = "/v1/chat/completions"


def llm_service(uid: str, *, runtime: str = "vllm", apps: list[str] | None = None,
                annotations: dict[str, str] | None = None) -> dict[str, Any]:
    image = {"image": "registry.example/llm:1"} if runtime == "custom" else {}
    spec: dict[str, Any] = {"models": [
        {"name": "v1", "modelName": "llama-3", "modelVersion": "1", "runtime": runtime, "weight": 100, **image},
        {"name": "v2", "modelName": "qwen-2", "modelVersion": "1", "runtime": runtime, "weight": 0, **image}]}
    if apps:
        spec["auth"] = {"appAuth": True, "apps": [{"secretName": s} for s in apps]}
    meta: dict[str, Any] = {"name": f"llm-{runtime}", "namespace": NS, "uid": uid, "generation": 1,
                            "creationTimestamp": "2026-12-01T10:00:00Z", "annotations": annotations or {}}
    return {"apiVersion": "inference.io/v1alpha1", "kind": "InferenceService", "metadata": meta, "spec": spec}


@pytest.fixture
def sid(gateway: GatewayUnderTest, backends) -> str:
    return gateway.add_service(llm_service(UID, annotations={"inference.io/gateway-timeout-seconds": "3"}), backends)


async def post(gateway: GatewayUnderTest, sid: str, body: bytes, path: str = CHAT,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with gateway.http.post(gateway.infer_url(sid, path), data=body, headers=headers or {}) as resp:
        return resp.status, json.loads(await resp.read())


def chat(model: str | None, **extra: Any) -> bytes:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], **extra}
    if model is not None:
        body["model"] = model
    return json.dumps(body).encode()


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"])
async def test_the_model_field_picks_the_model(gateway, sid, path):
    """qwen-2 has weight 0: only its name reaches it; llama-3 and the entry name v2 reach theirs."""
    for model, server in [("qwen-2", "v2"), ("llama-3", "v1"), ("v2", "v2")] * 5:
        body = chat(model)
        status, echo = await post(gateway, sid, body, path)
        assert (status, echo["server"], echo["path"]) == (200, server, path), model
        assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()  # forwarded byte for byte
    for body in (chat(None), b'{"model": null, "messages": []}'):  # no model: the weights decide (100/0)
        status, echo = await post(gateway, sid, body, path)
        assert (status, echo["server"]) == (200, "v1")


async def test_a_model_nobody_serves_is_404_in_openai_shape(gateway, sid):
    async with gateway.http.post(gateway.infer_url(sid, CHAT), data=chat("gpt-4o")) as resp:
        assert resp.status == 404 and resp.content_type == "application/json"
        answer = await resp.json()
        assert resp.headers["X-Request-Id"]
    assert answer == {"error": {"message": "The model `gpt-4o` does not exist or you do not have access to it.",
                                "type": "invalid_request_error", "param": "model", "code": "model_not_found"}}
    assert sid not in gateway.gw.metrics.counts()  # refused by the gateway: not an invocation


@pytest.mark.parametrize(("body", "words"), [
    (b"{not json", "could not parse"), (b"", "could not parse"), (b"[" * 100_000, "nested too deeply"),
    (b'["model"]', "must be a JSON object"), (b'{"model": 3}', "Invalid type for 'model'"),
    (b'{"model": "\xc3\x28"}', "not UTF-8")])
async def test_invalid_bodies_are_400_in_openai_shape(gateway, sid, body, words):
    status, answer = await post(gateway, sid, body)
    assert status == 400 and words in answer["error"]["message"], answer
    assert answer["error"]["type"] == "invalid_request_error"


async def test_models_are_listed_by_the_gateway(gateway, sid):
    async with gateway.http.get(gateway.infer_url(sid, "/v1/models")) as resp:
        assert resp.status == 200
        listed = await resp.json()
    assert listed == {"object": "list", "data": [
        {"id": "llama-3", "object": "model", "created": 1796119200, "owned_by": NS},
        {"id": "qwen-2", "object": "model", "created": 1796119200, "owned_by": NS}]}
    async with gateway.http.get(gateway.infer_url(sid, "/v1/models/qwen-2")) as resp:
        assert resp.status == 200 and (await resp.json())["id"] == "qwen-2"
    async with gateway.http.get(gateway.infer_url(sid, "/v1/models/gpt-4o")) as resp:
        assert resp.status == 404 and (await resp.json())["error"]["code"] == "model_not_found"


async def test_a_compressed_body_is_forwarded_untouched_and_routed_by_weight(gateway, sid):
    body = gzip.compress(chat("qwen-2"))
    status, echo = await post(gateway, sid, body, headers={"Content-Encoding": "gzip"})
    assert (status, echo["server"]) == (200, "v1")  # weights 100/0: the gateway did not read qwen-2
    assert echo["headers"]["content-encoding"] == "gzip" and echo["body_sha256"] == hashlib.sha256(body).hexdigest()


async def test_a_stopped_service_lists_no_models(gateway, backends):
    body = llm_service(PLAIN_UID)
    body["spec"]["stopped"] = True
    sid = gateway.add_service(body, backends)
    async with gateway.http.get(gateway.infer_url(sid, "/v1/models")) as resp:
        assert resp.status == 400 and (await resp.json())["error_code"] == "ModelArts.4203"


async def test_streaming_stays_unbuffered(gateway, sid):
    """The model sends one chunk, then pauses 2 s: the first chunk reaches the client well before."""
    started = time.monotonic()
    async with gateway.http.post(gateway.infer_url(sid, CHAT + "?pause=2"), data=chat("qwen-2", stream=True)) as resp:
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        first = await resp.content.readuntil(b"\n\n")
        first_at = time.monotonic() - started
        rest = await resp.content.read()
    assert first == b'data: {"server": "v2", "chunk": 0}\n\n'
    assert first_at < 1.5, f"the first chunk took {first_at:.2f} s: it was held back"
    assert rest.endswith(b"data: [DONE]\n\n") and rest.count(b'"server": "v2"') == 3


def chunked(body: bytes, size: int) -> Any:
    async def chunks() -> Any:
        for i in range(0, len(body), size):
            yield body[i:i + size]
    return chunks()


async def test_a_chunked_body_is_read_whole_within_the_body_limit(gateway, sid):
    """The body is buffered to read its model, under the same limit (the fixture's 1 MB) as any body."""
    async with gateway.http.post(gateway.infer_url(sid, CHAT), data=chunked(chat("qwen-2"), 7)) as resp:
        assert resp.status == 200 and (await resp.json())["server"] == "v2"
    big = b'{"model": "qwen-2", "x": "' + b"a" * (1024 * 1024) + b'"}'
    status, answer = await post(gateway, sid, big)
    assert (status, answer["error_code"]) == (413, "APIG.0201")
    async with gateway.http.post(gateway.infer_url(sid, CHAT), data=chunked(big, 64 * 1024)) as resp:
        assert resp.status == 413


async def test_a_body_that_would_decode_too_large_is_refused_by_the_budget(gateway, sid):
    """900 KB of empty objects would take ~30 MB decoded: with 4 MB of buffer budget, 503, not an OOM."""
    gateway.gw.budget = BodyBudget(4 * 1024 * 1024)
    hostile = b'{"model": "qwen-2", "input": [' + b"{}," * 300_000 + b"{}]}"
    status, answer = await post(gateway, sid, hostile)
    assert (status, answer["error_code"]) == (503, "ModelArts.4302")
    assert gateway.gw.budget.used == 0  # given back
    status, echo = await post(gateway, sid, chat("qwen-2"))
    assert (status, echo["server"]) == (200, "v2")


async def test_a_custom_runtime_is_routed_by_model_only_with_the_flag(gateway, backends):
    body = llm_service(PLAIN_UID, runtime="custom")
    sid = gateway.add_service(body, backends)
    status, echo = await post(gateway, sid, b"{not json")
    assert (status, echo["server"]) == (200, "v1")  # no parsing: the model's answer, whatever it is
    status, echo = await post(gateway, sid, chat("qwen-2"))
    assert (status, echo["server"]) == (200, "v1")  # by weight
    for model in body["spec"]["models"]:
        model["openaiCompatible"] = True
    gateway.table.upsert_service(body)
    status, echo = await post(gateway, sid, chat("qwen-2"))
    assert (status, echo["server"]) == (200, "v2")


def secret_data(key: str, secret: str, code: str) -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in
            {"appKey": key, "appSecret": secret, "appCode": code}.items()}


@pytest.fixture
def signed_sid(gateway: GatewayUnderTest, backends) -> str:
    sid = gateway.add_service(llm_service(UID, apps=["app-a"]), backends)
    gateway.table.set_secret(NS, "app-a", secret_data("KEY-A", "SECRET-A", "CODE-A"))
    return sid


@pytest.mark.parametrize("unsigned_payload", [False, True])
async def test_signed_requests_are_routed_with_the_bytes_they_signed(gateway, signed_sid, unsigned_payload):
    url = gateway.infer_url(signed_sid, CHAT)
    body = chat("qwen-2", temperature=0.2)
    headers = {"Content-Type": "application/json"}
    if unsigned_payload:
        headers["X-Sdk-Content-Sha256"] = "UNSIGNED-PAYLOAD"
    signed = Signer("KEY-A", "SECRET-A").sign("POST", url, headers, body)
    status, echo = await post(gateway, signed_sid, body, headers=signed)
    assert (status, echo["server"]) == (200, "v2")
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    if not unsigned_payload:  # the signature covers the body: another body under it is refused before routing
        status, answer = await post(gateway, signed_sid, chat("llama-3", temperature=0.2), headers=signed)
        assert (status, answer["error_code"]) == (401, "APIG.0303")


async def test_auth_comes_before_the_body_is_read_or_models_listed(gateway, signed_sid):
    status, answer = await post(gateway, signed_sid, b"{not json")
    assert (status, answer["error_code"]) == (401, "ModelArts.0205")
    async with gateway.http.get(gateway.infer_url(signed_sid, "/v1/models")) as resp:
        assert resp.status == 401
    async with gateway.http.get(gateway.infer_url(signed_sid, "/v1/models"), headers={"X-Apig-AppCode": "CODE-A"}) \
            as resp:
        assert resp.status == 200 and len((await resp.json())["data"]) == 2


async def test_counts_and_metrics_name_the_chosen_model(gateway, sid):
    for model in ("qwen-2", "qwen-2", "llama-3"):
        assert (await post(gateway, sid, chat(model)))[0] == 200
    assert gateway.gw.metrics.counts()[sid] == {"invocationTimes": 3, "failedTimes": 0, "models": {
        "v1": {"requests": 1, "inflight": 0}, "v2": {"requests": 2, "inflight": 0}}}
    exposition = gateway.gw.metrics.exposition().decode()
    assert 'model="v2",namespace="team-a",service="llm-vllm"} 2.0' in exposition.replace(',code="200"', "")


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llm-openai.yaml"


@pytest.fixture
def example_backends(backends) -> Iterator[dict[str, Backend]]:
    """The example's four entries on four model processes (the session's v1 and v2, and two more)."""
    extra = {name: start_backend(name) for name in ("llama", "embed")}
    yield {"qwen-v1": backends["v1"], "qwen-v2": backends["v2"], **extra}
    for backend in extra.values():
        backend.proc.terminate()
        backend.proc.wait(10)


async def test_the_example_is_routed_by_model(gateway, example_backends):
    body = yaml.safe_load(EXAMPLE.read_text())
    body["metadata"].update(namespace=NS, uid=EXAMPLE_UID, creationTimestamp="2026-12-01T10:00:00Z")
    gateway.table.upsert_service(body)
    for entry, backend in example_backends.items():
        gateway.table.upsert_slice(slice_body("llm-chat", entry, ["127.0.0.1"], backend.port))
    async with gateway.http.get(gateway.infer_url(EXAMPLE_UID, "/v1/models")) as resp:
        assert [m["id"] for m in (await resp.json())["data"]] == ["qwen2.5-7b-instruct", "llama-3.1-8b-instruct",
                                                                   "bge-m3"]
    status, echo = await post(gateway, EXAMPLE_UID, b'{"model": "bge-m3", "input": "Hello"}', "/v1/embeddings")
    assert (status, echo["server"]) == (200, "embed")
    status, echo = await post(gateway, EXAMPLE_UID, chat("llama-3.1-8b-instruct"))
    assert (status, echo["server"]) == (200, "llama")
    servers = Counter([(await post(gateway, EXAMPLE_UID, chat(model)))[1]["server"]
                       for model in ("qwen2.5-7b-instruct", None) for _ in range(100)])
    assert set(servers) == {"v1", "v2"} and servers["v1"] > servers["v2"]  # the 90/10 canary, named or not


async def test_a_signed_compressed_body_is_verified_over_the_bytes_sent(gateway, signed_sid):
    """The signature covers the gzip bytes the client sent, which the gateway hashes and forwards as they are."""
    url = gateway.infer_url(signed_sid, CHAT)
    body = gzip.compress(chat("qwen-2"))
    headers = Signer("KEY-A", "SECRET-A").sign("POST", url, {"Content-Encoding": "gzip"}, body)
    status, echo = await post(gateway, signed_sid, body, headers=headers)
    assert (status, echo["server"]) == (200, "v1")
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
