"""OpenAI-compatible routing, the pure part (gateway/openai.py, RouteTable.choose with named models)."""

from __future__ import annotations

import json
import random
import time
import tracemalloc
from collections import Counter
from typing import Any

import pytest

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.gateway import openai
from inference_operator.gateway.entries import ServiceRoute, service_route
from inference_operator.gateway.errors import GatewayError
from inference_operator.gateway.openai import Call, OpenAIError, OpenAIRequest
from inference_operator.gateway.routes import RouteTable

UID = "uid-openai"
NS = "team-a"


def llm_body(models: list[dict[str, Any]], created: str | None = "2026-12-01T10:00:00Z") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "chat", "namespace": NS, "uid": UID, "generation": 1}
    if created:
        meta["creationTimestamp"] = created
    return {"apiVersion": "inference.io/v1alpha1", "kind": "InferenceService", "metadata": meta,
            "spec": {"models": models}}


def model(name: str, model_name: str, weight: int, runtime: str = "vllm", **extra: Any) -> dict[str, Any]:
    return {"name": name, "modelName": model_name, "modelVersion": "1", "runtime": runtime, "weight": weight,
            **({"image": "registry.example/m:1"} if runtime == "custom" else {}), **extra}


def route_of(models: list[dict[str, Any]], **kwargs: Any) -> ServiceRoute:
    route = service_route(llm_body(models, **kwargs))
    assert route is not None and route.unavailable is None, route
    return route


def openai_error(err: pytest.ExceptionInfo[OpenAIError]) -> tuple[int, dict[str, Any]]:
    return err.value.status, json.loads(err.value.body("rid"))


class TestWhichModelsSpeakOpenAI:
    @pytest.mark.parametrize(("runtime", "flag", "expected"), [
        ("vllm", None, True), ("tgi", None, True), ("custom", None, False),
        ("custom", True, True), ("vllm", False, False)])
    def test_runtime_default_and_flag(self, runtime: str, flag: bool | None, expected: bool) -> None:
        extra = {} if flag is None else {"openaiCompatible": flag}
        route = route_of([model("a", "m", 100, runtime, **extra)])
        assert route.models[0].openai is expected
        assert openai.speaks_openai(route) is expected

    def test_flag_round_trips_through_the_api_model(self) -> None:
        svc = InferenceService.from_body(llm_body([model("a", "m", 100, "custom", openaiCompatible=True)]))
        assert svc.spec.models[0].openai_compatible is True and svc.spec.models[0].speaks_openai


class TestClassify:
    @pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings",
                                      "/v1/chat%2Fcompletions", "/v1/chat%2fcompletions", "//v1//embeddings",
                                      "/v1/completions/", "/%761/completions"])
    def test_inference_paths_route_by_model(self, path: str) -> None:
        assert openai.classify("POST", path) == OpenAIRequest(Call.INFER)

    @pytest.mark.parametrize(("method", "path"), [
        ("GET", "/v1/chat/completions"), ("POST", "/v1/chat/completion"), ("POST", "/v2/completions"),
        ("POST", "/"), ("POST", "/v1/models"), ("PUT", "/v1/embeddings"), ("POST", "/predict")])
    def test_other_requests_are_not_openai_calls(self, method: str, path: str) -> None:
        assert openai.classify(method, path) is None

    def test_models(self) -> None:
        assert openai.classify("GET", "/v1/models") == OpenAIRequest(Call.LIST)
        assert openai.classify("HEAD", "/v1/models/") == OpenAIRequest(Call.LIST)
        assert openai.classify("GET", "/v1/models/org%2Fllama-3") == OpenAIRequest(Call.RETRIEVE, "org/llama-3")


class TestRequestedModel:
    def test_the_top_level_model(self) -> None:
        body = {"messages": [{"role": "user", "content": "{\"model\": \"not-this\"}"}],
                "tools": [{"parameters": {"model": "nor-this"}}], "model": "llama-3"}
        assert openai.requested_model(json.dumps(body).encode()) == "llama-3"

    @pytest.mark.parametrize("body", [b'{"messages": []}', b'{"model": null, "input": "x"}'])
    def test_absent_or_null_is_none(self, body: bytes) -> None:
        assert openai.requested_model(body) is None

    def test_a_compressed_body_is_not_decompressed(self) -> None:
        assert openai.requested_model(b"\x1f\x8b\x08\x00garbage", "gzip") is None

    @pytest.mark.parametrize(("body", "words"), [
        (b"", "could not parse"), (b"{", "could not parse"), (b'{"model": "a",}', "could not parse"),
        (b'{"model": "\xff"}', "not UTF-8"), (b"[" * 200_000, "nested too deeply"),
        (b'{"a":' * 100_000, "nested too deeply"),
        (b'["model", "x"]', "must be a JSON object"), (b'"x"', "must be a JSON object")])
    def test_invalid_bodies_are_400_in_openai_shape(self, body: bytes, words: str) -> None:
        with pytest.raises(OpenAIError) as err:
            openai.requested_model(body)
        status, answer = openai_error(err)
        assert status == 400 and words in answer["error"]["message"]
        assert set(answer["error"]) == {"message", "type", "param", "code"}
        assert answer["error"]["type"] == "invalid_request_error"

    @pytest.mark.parametrize("value", ["1", "[\"a\"]", "{\"id\": \"a\"}", "true"])
    def test_a_model_that_is_not_a_string_is_400(self, value: str) -> None:
        with pytest.raises(OpenAIError) as err:
            openai.requested_model(f'{{"model": {value}}}'.encode())
        status, answer = openai_error(err)
        assert status == 400 and answer["error"]["param"] == "model"

    def test_deep_nesting_is_refused_fast(self) -> None:
        started = time.perf_counter()
        with pytest.raises(OpenAIError):
            openai.requested_model(b"[" * 4_000_000)
        assert time.perf_counter() - started < 2.0  # a bound on failure, not a target (it takes milliseconds)


class TestParseCost:
    """parse_cost is charged to the buffer budget while a body is decoded: it must bound what decoding takes."""

    @pytest.mark.parametrize("body", [
        b'{"model": "m", "input": [' + b"{}," * 20_000 + b"{}]}",
        b'{"model": "m", "input": [' + b"[]," * 20_000 + b"[]]}",
        b'{"model": "m", "input": [' + b"1.5," * 20_000 + b"1]}",
        b'{"model": "m", "input": [' + b"123456789," * 10_000 + b"1]}",
        b'{"model": "m", "input": [' + b'"ab",' * 20_000 + b'"a"]}',
        b'{"model": "m", "input": [' + '"é😀",'.encode() * 10_000 + b'"a"]}',
        b'{"model": "m", "messages": [{"role": "user", "content": "' + b"x" * 200_000 + b'"}]}',
        '{"model": "m", "messages": [{"role": "user", "content": "😀'.encode() + b"x" * 200_000 + b'"}]}',
    ])
    def test_bounds_the_memory_decoding_takes(self, body: bytes) -> None:
        tracemalloc.start()
        try:
            assert openai.requested_model(body) == "m"
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak <= openai.parse_cost(body), (peak, openai.parse_cost(body))

    def test_hostile_shapes_cost_more_than_the_default_buffer_budget(self) -> None:
        """12 MB of empty objects would take ~300 MB decoded: the budget (128 MB) refuses it before."""
        assert openai.parse_cost(b"[" + b"{}," * 4_000_000 + b"{}]") > 128 * 1024 * 1024


class TestMatching:
    ROUTE_MODELS = [model("llama-v1", "llama-3", 90), model("llama-v2", "llama-3", 10),
                    model("embed", "bge-m3", 0, "tgi"), model("legacy", "classifier", 0, "custom")]

    def test_by_model_name_all_entries_that_serve_it(self) -> None:
        route = route_of(self.ROUTE_MODELS)
        assert [m.name for m in openai.matching(route, "llama-3")] == ["llama-v1", "llama-v2"]

    def test_by_entry_name_when_no_model_name_matches(self) -> None:
        route = route_of(self.ROUTE_MODELS)
        assert [m.name for m in openai.matching(route, "llama-v2")] == ["llama-v2"]
        assert [m.name for m in openai.matching(route, "bge-m3")] == ["embed"]

    @pytest.mark.parametrize("name", ["gpt-4o", "classifier", "legacy", "LLAMA-3", "llama-3 ", ""])
    def test_a_model_nobody_serves_is_404_model_not_found(self, name: str) -> None:
        route = route_of(self.ROUTE_MODELS)
        with pytest.raises(OpenAIError) as err:
            openai.matching(route, name)
        status, answer = openai_error(err)
        assert status == 404
        assert answer == {"error": {"message": answer["error"]["message"], "type": "invalid_request_error",
                                    "param": "model", "code": "model_not_found"}}

    def test_a_hostile_name_is_quoted_ascii_and_bounded(self) -> None:
        with pytest.raises(OpenAIError) as err:
            openai.matching(route_of(self.ROUTE_MODELS), "\u202e<script>" + "x" * 10_000)
        message = json.loads(err.value.body("rid"))["error"]["message"]
        assert message.isascii() and len(message) < 300 and "\\u202e" in message

    def test_list_models_in_openai_shape(self) -> None:
        route = route_of(self.ROUTE_MODELS)
        created = 1796119200  # 2026-12-01T10:00:00Z
        assert openai.list_models(route) == {"object": "list", "data": [
            {"id": "llama-3", "object": "model", "created": created, "owned_by": NS},
            {"id": "bge-m3", "object": "model", "created": created, "owned_by": NS}]}
        assert openai.retrieve_model(route, "bge-m3")["id"] == "bge-m3"
        with pytest.raises(OpenAIError):
            openai.retrieve_model(route, "classifier")


class TestChooseAmongNamedModels:
    def table(self, models: list[dict[str, Any]], ready: list[str]) -> tuple[RouteTable, ServiceRoute]:
        table = RouteTable()
        table.upsert_service(llm_body(models))
        for name in ready:
            table.upsert_slice({
                "addressType": "IPv4", "metadata": {"name": f"chat-{name}-x", "namespace": NS,
                                                    "labels": {"kubernetes.io/service-name": f"chat-{name}"}},
                "endpoints": [{"addresses": [f"10.0.0.{len(name)}"]}], "ports": [{"name": "http", "port": 80}]})
        return table, table.lookup(UID)

    def test_named_models_share_by_weight(self) -> None:
        table, route = self.table(TestMatching.ROUTE_MODELS, ["llama-v1", "llama-v2", "embed"])
        rng = random.Random(1)
        picks = Counter(table.choose(route, rng, openai.matching(route, "llama-3"))[0].name for _ in range(2000))
        assert set(picks) == {"llama-v1", "llama-v2"} and 0.85 < picks["llama-v1"] / 2000 < 0.95

    def test_a_model_without_weight_is_reachable_by_name(self) -> None:
        table, route = self.table(TestMatching.ROUTE_MODELS, ["llama-v1", "embed"])
        assert table.choose(route, random.Random(1), openai.matching(route, "bge-m3"))[0].name == "embed"
        picks = {table.choose(route, random.Random(seed))[0].name for seed in range(50)}
        assert picks == {"llama-v1"}  # without a name: the weights, as before

    def test_named_but_not_ready_is_503(self) -> None:
        table, route = self.table(TestMatching.ROUTE_MODELS, ["llama-v1"])
        with pytest.raises(GatewayError) as err:
            table.choose(route, random.Random(1), openai.matching(route, "bge-m3"))
        assert err.value.status == 503 and "embed" in err.value.message

    def test_named_ready_models_without_weight_share_evenly(self) -> None:
        models = [model("a", "m", 100), model("b", "x", 0), model("c", "x", 0)]
        table, route = self.table(models, ["a", "b", "c"])
        rng = random.Random(3)
        picks = Counter(table.choose(route, rng, openai.matching(route, "x"))[0].name for _ in range(1000))
        assert set(picks) == {"b", "c"} and abs(picks["b"] - picks["c"]) < 150
