"""The manifests to copy in docs/ are valid InferenceServices."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.builders.batch import build_batch_job
from inference_operator.catalog.flavors import load_catalog
from inference_operator.catalog.specification import resolve_flavor
from inference_operator.config import OperatorConfig

DOCS = Path(__file__).resolve().parents[2] / "docs"


def manifests(page: str) -> list[InferenceService]:
    blocks = re.findall(r"```yaml\n(.*?)```", (DOCS / page).read_text(encoding="utf-8"), re.S)
    return [InferenceService.from_body(yaml.safe_load(block)) for block in blocks
            if "kind: InferenceService" in block]


@pytest.mark.parametrize("page", ["llm-presets.md", "batch.md", "scheduled-stop.md", "lora.md"])
def test_pages_have_valid_manifests(page: str) -> None:
    assert manifests(page)


def test_preset_manifest_sizes_to_two_gpus() -> None:
    (svc,) = manifests("llm-presets.md")
    assert resolve_flavor(svc.spec.models[0], load_catalog()).gpu == 2


def test_batch_manifest_builds_a_job() -> None:
    (svc,) = manifests("batch.md")
    job = build_batch_job(svc, svc.spec.models[0], OperatorConfig())
    assert job["kind"] == "Job"


def test_scheduled_stop_manifest_has_a_stop_schedule() -> None:
    (svc,) = manifests("scheduled-stop.md")
    assert [(e.type, e.time_unit, e.duration) for e in svc.spec.schedule or []] == [("stop", "HOURS", 2)]
