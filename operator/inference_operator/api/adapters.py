"""LoRA adapters of a model (spec.models[*].adapters): fine-tunes served on the model's own engines, loaded
at run time by the operator through the engine's API (docs/lora.md), never part of the pod template.

An adapter's `name` is the model name a request asks for (the body's `model`, what `/v1/models` lists). Several
entries of one model may share a name, each with a `weight`: versions of one fine-tune, the name's requests
split between them by weight. On the engines each entry is loaded under `engine_name`: the name itself, or for
a version of a split name the name and a hash of its source, so two versions never collide on one engine.
"""

from __future__ import annotations

import hashlib
from typing import Final

from pydantic import ConfigDict, Field, field_validator

from inference_operator.api.schema import Base, cel, invalid

MAX_ADAPTERS: Final = 64  # per service: every replica of a model holds all of its model's adapters
ADAPTER_DIR: Final = "/mnt/adapters"
DEFAULT_MAX_LORAS: Final = 4  # vLLM's --max-loras when maxLoras is not given (adapters in one batch)
ADAPTER_NAME = r"^[A-Za-z0-9]([-._A-Za-z0-9]*[A-Za-z0-9])?$"
ADAPTER_NAME_MAX: Final = 64
# Adapters' files come from a PersistentVolumeClaim mounted read-only in the pods: a claim's volume is fixed
# when the pod starts, so an adapter on a claim the pods mount already is added without a restart. Object
# storage (s3://, oss://, obs://) would need a copy into running pods, which the operator does not do yet.
ADAPTER_SOURCE = r"^pvc://[a-z0-9]([-.a-z0-9]*[a-z0-9])?/.+"


class AdapterSpec(Base):
    """One LoRA adapter of a vllm model."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        cel("!self.source.contains('/../') && !self.source.endsWith('/..')",
             "source: must not climb out of its claim with ..", ".source"),
    ]})

    name: str = Field(min_length=1, max_length=ADAPTER_NAME_MAX, pattern=ADAPTER_NAME,
                      description="The model name requests ask for (their body's model), listed by /v1/models "
                                  "with the base model as parent; repeated only for versions split by weight, "
                                  "served by one model, and no model's modelName or name.")
    source: str = Field(max_length=512, pattern=ADAPTER_SOURCE,
                        description="Where the adapter's files are (adapter_config.json and weights): "
                                    "pvc://claim/path, mounted read-only in the model's pods.")
    weight: int | None = Field(None, ge=1, le=100,
                               description="For a name given to several adapters of the model (versions of one "
                                           "fine-tune): this one's share of the name's requests, relative to the "
                                           "others'; required on each entry of a repeated name.")

    @field_validator("source")
    @classmethod
    def _inside_its_claim(cls, source: str) -> str:
        """Mirrors the CEL rule: the path is joined under the claim's mount, so ".." would leave it."""
        if "/../" in source or source.endswith("/.."):
            raise invalid("source", "must not climb out of its claim with ..")
        return source


def engine_name(adapter: AdapterSpec, split: bool) -> str:
    """The lora_name the engines load an entry under: its name, or for one version of a split name the name and a
    hash of its source (stable: an entry keeps its engine name from pass to pass)."""
    if not split:
        return adapter.name
    return f"{adapter.name}@{hashlib.sha256(adapter.source.encode()).hexdigest()[:8]}"


def source_claim(source: str) -> tuple[str, str]:
    """pvc://claim/a/b -> ("claim", "a/b") (source already matched against ADAPTER_SOURCE)."""
    claim, _, path = source.split("://", 1)[1].partition("/")
    return claim, path.strip("/")


def adapter_dir(claim: str) -> str:
    """Where a claim holding adapters is mounted in the model's pods."""
    return f"{ADAPTER_DIR}/{claim}"


def lora_path(source: str) -> str:
    """The directory the engine loads an adapter from: its path under its claim's mount."""
    claim, path = source_claim(source)
    return f"{adapter_dir(claim)}/{path}"
