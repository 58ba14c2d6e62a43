"""One model of a service (spec.models[*]): its image or runtime, its resources and its scaling."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from inference_operator.api.schema import DNS_LABEL, ENV_NAME, MODEL_NAME_MAX, STORAGE_URI, Base, cel, invalid

CUSTOM: Final = "custom"
OPENAI_RUNTIMES = frozenset({"vllm", "tgi"})  # runtimes whose server speaks OpenAI's HTTP API
_Arg = Annotated[str, Field(max_length=4096)]
_EnvValue = Annotated[str, Field(max_length=32768)]
DEFAULT_SPECIFICATION = "modelarts.vm.cpu.2u"


class CustomSpec(Base):
    """Resources of a model with specification "custom" (ModelArts custom_spec)."""

    cpu: float = Field(gt=0, le=1024, description="CPU cores per instance, fractions allowed (e.g. 1.5).")
    memory: int = Field(gt=0, le=16 * 1024 * 1024, description="Memory per instance, in MiB.")
    gpu: int = Field(0, ge=0, le=16, description="NVIDIA GPUs per instance (nvidia.com/gpu).")
    ascend: int = Field(0, ge=0, le=16, description="Ascend 310 NPUs per instance (huawei.com/ascend-310).")


IDLE_WINDOW = r"^([1-9][0-9]{0,5})(s|m|h)$"  # scaleToZeroAfter: "30s", "10m", "2h"
_IDLE_UNITS = {"s": 1, "m": 60, "h": 3600}
DEFAULT_IDLE_WINDOW = "10m"
DEFAULT_TARGET_CONCURRENCY = 10


class ScalingMetric(StrEnum):
    """What a model's replicas follow: CPU utilisation (an HPA) or requests in flight (the operator)."""

    CPU = "cpu"
    CONCURRENCY = "concurrency"


def idle_window_seconds(text: str) -> int:
    """"10m" -> 600: the duration of a scaleToZeroAfter (already matched against IDLE_WINDOW)."""
    return int(text[:-1]) * _IDLE_UNITS[text[-1]]


class Scaling(Base):
    """Horizontal autoscaling of one model; a HorizontalPodAutoscaler when enabled. minReplicas 0 lets the
    model scale to zero after `scaleToZeroAfter` without requests, and wake on the next one."""

    model_config = ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [
            cel("!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
                 "minReplicas must be less than or equal to maxReplicas", ".minReplicas"),
            cel("!has(self.scaleToZeroAfter) || (has(self.minReplicas) && self.minReplicas == 0)",
                 "scaleToZeroAfter needs minReplicas: 0", ".scaleToZeroAfter"),
            cel("!has(self.metrics) || !has(self.metric) || self.metric == 'cpu'",
                 "metrics applies to metric: cpu only", ".metrics"),
            cel("!has(self.targetConcurrency) || (has(self.metric) && self.metric == 'concurrency')",
                 "targetConcurrency needs metric: concurrency", ".targetConcurrency"),
        ]})

    enabled: bool = Field(False, description="Create a HorizontalPodAutoscaler for this model.")
    min_replicas: int | None = Field(None, alias="minReplicas", ge=0, le=128,
                                     description="Fewest instances; defaults to instanceCount. 0: scale to zero "
                                                 "when idle (scaleToZeroAfter), waking on a request; awake, the "
                                                 "HPA keeps at least 1.")
    max_replicas: int | None = Field(None, alias="maxReplicas", ge=1, le=128,
                                     description="Most instances; defaults to max(minReplicas, "
                                                 "instanceCount).")
    target_cpu_utilization: int = Field(80, alias="targetCPUUtilization", ge=1, le=100,
                                        description="Average CPU utilisation to aim for, in percent of the "
                                                    "request; used when metrics is not given.")
    metrics: list[dict[str, Any]] | None = Field(None, max_length=10,
                                                 description="autoscaling/v2 MetricSpec list passed to the "
                                                             "HPA as is; replaces the CPU target.")
    metric: ScalingMetric = Field(ScalingMetric.CPU, description="What the replicas follow: cpu, an HPA on "
                                  "CPU utilisation (or on `metrics`); concurrency, the requests in flight that "
                                  "the gateways count, the operator setting spec.replicas (docs/api.md).")
    target_concurrency: int | None = Field(None, alias="targetConcurrency", ge=1, le=10000,
                                           description="With metric concurrency: requests in flight per "
                                                       f"replica to aim for; default {DEFAULT_TARGET_CONCURRENCY}.")
    scale_to_zero_after: str | None = Field(None, alias="scaleToZeroAfter", max_length=8, pattern=IDLE_WINDOW,
                                            description="With minReplicas 0: how long without a request (as the "
                                                        "gateway counts them) before the model goes to 0 "
                                                        f"instances, e.g. 30s, 10m, 2h; default {DEFAULT_IDLE_WINDOW}.")

    @model_validator(mode="after")
    def _min_le_max(self) -> Scaling:
        """An HPA with minReplicas > maxReplicas is refused by the apiserver: catch it here."""
        if self.min_replicas and self.max_replicas and self.min_replicas > self.max_replicas:
            raise invalid("minReplicas", "must be less than or equal to maxReplicas")
        if self.scale_to_zero_after is not None and self.min_replicas != 0:
            raise invalid("scaleToZeroAfter", "needs minReplicas: 0")
        if self.metrics is not None and self.metric != ScalingMetric.CPU:
            raise invalid("metrics", "applies to metric: cpu only")
        if self.target_concurrency is not None and self.metric != ScalingMetric.CONCURRENCY:
            raise invalid("targetConcurrency", "needs metric: concurrency")
        return self

    @property
    def on_concurrency(self) -> bool:
        """Enabled and scaled by the operator on requests in flight (no HPA)."""
        return self.enabled and self.metric == ScalingMetric.CONCURRENCY

    @property
    def concurrency_target(self) -> int:
        return self.target_concurrency or DEFAULT_TARGET_CONCURRENCY

    @property
    def scales_to_zero(self) -> bool:
        return self.min_replicas == 0

    @property
    def idle_seconds(self) -> int:
        """The idle window of a model that scales to zero."""
        return idle_window_seconds(self.scale_to_zero_after or DEFAULT_IDLE_WINDOW)


class ModelSpec(Base):
    """One model of the service: its own Deployment, Service and share of the traffic."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        cel("!has(self.specification) || self.specification != 'custom' || has(self.customSpec)",
             'customSpec is required when specification is "custom"', ".customSpec"),
        cel("(has(self.runtime) && self.runtime != 'custom') || has(self.image)",
             'image is required when runtime is "custom"', ".image"),
    ]})

    name: str = Field(max_length=MODEL_NAME_MAX, pattern=DNS_LABEL,
                      description="Name of this model entry, a DNS label unique in the service; "
                                  "part of child object names.")
    model_name: str = Field(alias="modelName", min_length=1, max_length=128,
                            description="Name of the model (ModelArts model_name); the served model "
                                        "name for the vllm runtime.")
    model_version: str = Field(alias="modelVersion", min_length=1, max_length=64,
                               description="Version of the model (ModelArts model_version).")
    model_id: str | None = Field(None, alias="modelId", max_length=128,
                                 description="Identifier of the model in a registry; informational.")
    runtime: Literal["custom", "vllm", "tgi"] = Field(
        CUSTOM, description="Serving runtime: custom runs image as given; vllm runs vLLM's "
                            "OpenAI-compatible server; tgi runs Hugging Face text-generation-inference.")
    openai_compatible: bool | None = Field(
        None, alias="openaiCompatible",
        description="The model server speaks OpenAI's HTTP API (/v1/chat/completions, /v1/completions, "
                    "/v1/embeddings): the gateway then routes those paths by the request's model field "
                    "(matched against modelName, then name) and answers /v1/models. Defaults to true for "
                    "vllm and tgi, false for custom.")
    image: str | None = Field(None, max_length=512, description="Container image; required for the "
                              "custom runtime, defaulted from the operator settings for vllm and tgi.")
    command: list[_Arg] | None = Field(None, max_length=64, description="Container entrypoint override.")
    args: list[_Arg] | None = Field(None, max_length=128, description="Container arguments; for vllm "
                                   "and tgi, replaces the operator's default arguments.")
    port: int = Field(8080, ge=1, le=65535, description="TCP port the model server listens on.")
    model_uri: str | None = Field(None, alias="modelUri", max_length=1024, pattern=STORAGE_URI,
                                  description="Where the model files are, mounted read-only at "
                                              "/mnt/models: pvc://claim/path, nfs://server/path, or "
                                              "s3://, oss://, obs:// (copied in by an init container).")
    weight: int = Field(100, ge=0, le=100, description="Share of the service's traffic, in percent; "
                        "0 deploys the model without traffic.")
    specification: str = Field(DEFAULT_SPECIFICATION, min_length=1, max_length=63,
                               description='Flavor name from the flavor catalog, "custom" to use '
                                           "customSpec, or an LLM preset <model>_<size>b_<fp16|bf16|int8|"
                                           "int4> (e.g. llama_7b_fp16) sized into GPUs by the operator.")
    custom_spec: CustomSpec | None = Field(None, alias="customSpec",
                                           description='Resources when specification is "custom".')
    instance_count: int = Field(1, alias="instanceCount", ge=1, le=128,
                                description="Instances (replicas) when scaling is off; the default "
                                            "minReplicas when it is on.")
    scaling: Scaling | None = Field(None, description="Autoscaling settings.")
    envs: dict[str, _EnvValue] | None = Field(None, max_length=64,
                                        description="Environment variables of the model container.")

    @property
    def speaks_openai(self) -> bool:
        """openaiCompatible when set, else the runtime's default (vllm and tgi serve OpenAI's API)."""
        if self.openai_compatible is not None:
            return self.openai_compatible
        return self.runtime in OPENAI_RUNTIMES

    @property
    def scales_to_zero(self) -> bool:
        """scaling.minReplicas is 0: the model may go to 0 instances when idle and wakes on a request."""
        return self.scaling is not None and self.scaling.scales_to_zero

    @property
    def scales_on_concurrency(self) -> bool:
        """scaling is enabled with metric concurrency: the operator sets the Deployment's replicas."""
        return self.scaling is not None and self.scaling.on_concurrency

    @field_validator("envs")
    @classmethod
    def _env_names(cls, envs: dict[str, str] | None) -> dict[str, str] | None:
        """Bad names would only fail at Deployment apply; the CRD leaves them out (CEL cost)."""
        for key in envs or {}:
            if not re.match(ENV_NAME, key):
                raise invalid(f"[{key}]", "not a valid environment variable name")
        return envs

    @model_validator(mode="after")
    def _required_together(self) -> ModelSpec:
        """Mirrors the CEL rules on spec.models[*] (customSpec, image)."""
        if self.specification == CUSTOM and self.custom_spec is None:
            raise invalid("customSpec", 'required when specification is "custom"')
        if self.runtime == CUSTOM and not self.image:
            raise invalid("image", 'required when runtime is "custom"')
        return self

