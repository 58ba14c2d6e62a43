"""Factories for builder tests: validated services from short dicts, the default config and catalog."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.catalog.flavors import Flavor, load_catalog
from inference_operator.config import OperatorConfig

MakeSvc = Callable[..., InferenceService]


def _model(fields: dict[str, Any]) -> dict[str, Any]:
    return {"name": "v1", "modelName": "jar-model", "modelVersion": "1.0.1", "image": "reg/model:1", **fields}


@pytest.fixture
def make_svc() -> MakeSvc:
    """make_svc(model fields..., models=[...], spec={...}, name=...) -> InferenceService."""

    def make(models: list[dict[str, Any]] | None = None, spec: dict[str, Any] | None = None,
             name: str = "service-demo", **model_fields: Any) -> InferenceService:
        entries = [_model(m) for m in models] if models is not None else [_model(model_fields)]
        return InferenceService.from_body({
            "metadata": {"name": name, "namespace": "team-a", "uid": "0b7e-uid", "generation": 1},
            "spec": {"models": entries, **(spec or {})},
        })

    return make


@pytest.fixture
def cfg() -> OperatorConfig:
    return OperatorConfig()


@pytest.fixture
def catalog() -> dict[str, Flavor]:
    return load_catalog()
