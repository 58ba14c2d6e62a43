"""spec.models[].adapters and maxLoras: the pydantic rules (the CRD's CEL twins are judged by the real API server
in tests/e2e/test_lora.py), and the CEL rules present in the generated CRD."""

from __future__ import annotations

from typing import Any

import pytest

from inference_operator.api import crd
from inference_operator.api.v1alpha1 import InferenceService, InvalidSpecError, lora_path, source_claim


def llm(name: str = "base", adapters: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    entry = {"name": name, "modelName": f"{name}-llm", "modelVersion": "1", "runtime": "vllm", **fields}
    if adapters is not None:
        entry["adapters"] = adapters
    return entry


def adapter(name: str, source: str | None = None) -> dict[str, str]:
    return {"name": name, "source": source or f"pvc://adapters/{name}"}


def parse(*models: dict[str, Any]) -> InferenceService:
    weights = [100] + [0] * (len(models) - 1)
    return InferenceService.from_body({"metadata": {"name": "s", "namespace": "n", "uid": "u"}, "spec": {
        "models": [{"weight": w, **m} for w, m in zip(weights, models, strict=True)]}})


def refusal(*models: dict[str, Any]) -> str:
    with pytest.raises(InvalidSpecError) as caught:
        parse(*models)
    return "; ".join(caught.value.messages)


def test_a_vllm_model_takes_adapters_in_spec_order():
    svc = parse(llm(adapters=[adapter("sql"), adapter("chat", "pvc://models/adapters/chat/v2/")]))
    model = svc.spec.models[0]
    assert list(model.engine_adapters()) == ["sql", "chat"] and model.lora
    assert lora_path(model.adapters[1].source) == "/mnt/adapters/models/adapters/chat/v2"
    assert source_claim("pvc://adapters/sql") == ("adapters", "sql")


@pytest.mark.parametrize(("models", "words"), [
    ([llm(adapters=[adapter("sql")], runtime="tgi")],
     "spec.models[0].adapters: LoRA adapters are only for runtime vllm"),
    ([llm(maxLoras=2, runtime="tgi")], "spec.models[0].maxLoras: only for runtime vllm"),
    ([llm(adapters=[adapter("sql"), adapter("sql", "pvc://a/other")])],
     'spec.models[0].adapters[0].weight: adapter name "sql" is given more than once'),
    ([llm(adapters=[{**adapter("sql"), "weight": 1}, {**adapter("sql"), "weight": 2}])],
     "spec.models[0].adapters[1]: the same adapter"),
    ([llm(adapters=[adapter("base-llm")])], "spec.models[0].adapters[0].name: \"base-llm\" is a model's modelName"),
    ([llm(adapters=[adapter("other")]), llm("other")], "is a model's modelName or name"),
    ([llm(adapters=[adapter("sql")]), llm("b2", adapters=[adapter("sql")])],
     "spec.models[1].adapters[0].name: \"sql\" is an adapter of model base already"),
    ([llm(adapters=[adapter(f"a{i}") for i in range(40)]), llm("b2", adapters=[adapter(f"b{i}") for i in range(30)])],
     "at most 64 adapters in a service, not 70"),
    ([llm(adapters=[adapter("sql", "s3://bucket/sql")])], "spec.models[0].adapters[0].source"),
    ([llm(adapters=[adapter("sql", "pvc://adapters/../etc")])], "must not climb out of its claim"),
    ([llm(adapters=[adapter("bad name")])], "spec.models[0].adapters[0].name"),
    ([llm(adapters=[adapter(f"a{i}") for i in range(65)])], "spec.models[0].adapters"),
], ids=["vllm-only", "maxloras-vllm-only", "split-needs-weights", "no-entry-twice", "not-a-modelname",
        "not-a-model-name", "one-model-only", "service-bound", "pvc-only", "no-dotdot", "name-pattern", "model-bound"])
def test_bad_adapters_are_refused_naming_the_field(models, words):
    assert words in refusal(*models)


def test_versions_of_a_split_name_load_under_names_of_their_own():
    v1, v2 = {**adapter("chat", "pvc://a/chat/v1"), "weight": 25}, {**adapter("chat", "pvc://a/chat/v2"), "weight": 75}
    model = parse(llm(adapters=[adapter("sql"), v1, v2])).spec.models[0]
    names = list(model.engine_adapters())
    assert names[0] == "sql" and names[1].startswith("chat@") and names[2].startswith("chat@") and len(set(names)) == 3
    assert model.adapter_versions() == {"chat": ((names[1], 25), (names[2], 75))}
    again = parse(llm(adapters=[v2, v1])).spec.models[0]
    assert set(again.engine_adapters()) == set(names[1:])  # a version's engine name follows its source, not its place


def test_max_loras_alone_keeps_lora_on():
    assert parse(llm(maxLoras=8)).spec.models[0].lora
    assert not parse(llm()).spec.models[0].lora


def rules(node: dict[str, Any]) -> str:
    return " ".join(r["rule"] for r in node.get("x-kubernetes-validations", []))


def test_the_crd_carries_the_adapter_rules_as_cel():
    spec = crd.open_api_schema()["properties"]["spec"]
    model = spec["properties"]["models"]["items"]
    assert "self.runtime == 'vllm'" in rules(model) and "has(self.maxLoras)" in rules(model)
    assert "exists_one(b, b.name == a.name) || has(a.weight)" in rules(model["properties"]["adapters"])
    assert "b.source == a.source" in rules(model["properties"]["adapters"])
    assert model["properties"]["adapters"]["maxItems"] == 64
    assert "sets.intersects" in rules(spec) and "size(m.adapters)" in rules(spec)
    assert "n.modelName != a.name" in rules(spec)
    assert "/../" in rules(model["properties"]["adapters"]["items"])
