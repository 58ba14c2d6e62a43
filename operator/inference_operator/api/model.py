"""One model of a service (spec.models[*]): its image or runtime, its resources and its scaling."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from inference_operator.api.adapters import DEFAULT_MAX_LORAS, MAX_ADAPTERS, AdapterSpec, engine_name, lora_path
from inference_operator.api.schema import DNS_LABEL, ENV_NAME, MODEL_NAME_MAX, STORAGE_URI, Base, cel, invalid

CUSTOM: Final = "custom"
OPENAI_RUNTIMES = frozenset({"vllm", "tgi"})  # runtimes whose server speaks OpenAI's HTTP API
_Arg = Annotated[str, Field(max_length=4096)]
_EnvValue = Annotated[str, Field(max_length=32768)]
DEFAULT_SPECIFICATION = "modelarts.vm.cpu.2u"
TARGET_CONCURRENCY_MESSAGE = "targetConcurrency needs metric: concurrency (the default for runtime vllm and tgi)"


class CustomSpec(Base):
    """Resources of a model with specification "custom" (ModelArts custom_spec)."""

    cpu: float = Field(gt=0, le=1024, description="CPU cores per instance, fractions allowed (e.g. 1.5).")
    memory: int = Field(gt=0, le=16 * 1024 * 1024, description="Memory per instance, in MiB.")
    gpu: int = Field(0, ge=0, le=16, description="NVIDIA GPUs per instance (nvidia.com/gpu).")
    ascend: int = Field(0, ge=0, le=16, description="Ascend 310 NPUs per instance (huawei.com/ascend-310).")


IDLE_WINDOW = r"^([1-9][0-9]{0,5})(s|m|h)$"  # scaleToZeroAfter: "30s", "10m", "2h"
_IDLE_UNITS = {"s": 1, "m": 60, "h": 3600}
DEFAULT_IDLE_WINDOW = "10m"
DEFAULT_TARGET_CPU_UTILIZATION = 80
# Requests in flight per replica when targetConcurrency is unset. An LLM engine batches: vLLM runs up to
# --max-num-seqs (default 256) sequences at once and TGI admits up to --max-concurrent-requests (default
# 128), but decoding is memory-bound, so the inter-token latency stays near a single stream's only up to a
# batch of a few tens; 32 sits there, well under both caps, so a replica is added before its queue grows
# (Knative's default target is 100 for short requests; one LLM request holds a batch slot for seconds).
# Any other server: 10, a conservative share of a thread pool. A measured curve (make bench-llm) beats both.
DEFAULT_TARGET_CONCURRENCY = 10
LLM_TARGET_CONCURRENCY = 32


class ScalingMetric(StrEnum):
    """What a model's replicas follow: CPU utilisation (an HPA) or requests in flight (the operator)."""

    CPU = "cpu"
    CONCURRENCY = "concurrency"


def scaling_metric(runtime: object, metric: object, cpu_settings: bool) -> ScalingMetric:
    """What a model's replicas follow: `metric` when set; unset, concurrency for an LLM engine (vllm, tgi:
    CPU says nothing about a GPU server's queue) unless CPU settings (targetCPUUtilization, metrics) say the
    user meant an HPA, else cpu. Takes raw values too (runtime/gateway_counts.py reads the body)."""
    if metric in tuple(ScalingMetric):
        return ScalingMetric(str(metric))
    if runtime in OPENAI_RUNTIMES and not cpu_settings:
        return ScalingMetric.CONCURRENCY
    return ScalingMetric.CPU


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
        ]})

    enabled: bool = Field(False, description="Create a HorizontalPodAutoscaler for this model.")
    min_replicas: int | None = Field(None, alias="minReplicas", ge=0, le=128,
                                     description="Fewest instances; defaults to instanceCount. 0: scale to zero "
                                                 "when idle (scaleToZeroAfter), waking on a request; awake, the "
                                                 "HPA keeps at least 1.")
    max_replicas: int | None = Field(None, alias="maxReplicas", ge=1, le=128,
                                     description="Most instances; defaults to max(minReplicas, "
                                                 "instanceCount).")
    target_cpu_utilization: int | None = Field(None, alias="targetCPUUtilization", ge=1, le=100,
                                               description="Average CPU utilisation to aim for, in percent of "
                                                           "the request; used when metrics is not given; "
                                                           f"default {DEFAULT_TARGET_CPU_UTILIZATION}.")
    metrics: list[dict[str, Any]] | None = Field(None, max_length=10,
                                                 description="autoscaling/v2 MetricSpec list passed to the "
                                                             "HPA as is; replaces the CPU target.")
    metric: ScalingMetric | None = Field(None, description="What the replicas follow: cpu, an HPA on CPU "
                                         "utilisation (or on `metrics`); concurrency, the requests in flight "
                                         "that the gateways count, the operator setting spec.replicas "
                                         "(docs/api.md). Default: concurrency for runtime vllm and tgi unless "
                                         "targetCPUUtilization or metrics is given, cpu otherwise.")
    target_concurrency: int | None = Field(None, alias="targetConcurrency", ge=1, le=10000,
                                           description="With metric concurrency: requests in flight per "
                                                       f"replica to aim for; default {LLM_TARGET_CONCURRENCY} "
                                                       f"for runtime vllm and tgi, {DEFAULT_TARGET_CONCURRENCY} "
                                                       "otherwise.")
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
        if self.metrics is not None and self.metric not in (None, ScalingMetric.CPU):
            raise invalid("metrics", "applies to metric: cpu only")
        return self

    def metric_for(self, runtime: str) -> ScalingMetric:
        """The metric set, else the runtime's default (scaling_metric)."""
        return scaling_metric(runtime, self.metric, self.metrics is not None or self.target_cpu_utilization is not None)

    @property
    def cpu_target(self) -> int:
        return self.target_cpu_utilization or DEFAULT_TARGET_CPU_UTILIZATION

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
        cel("!has(self.scaling) || !has(self.scaling.targetConcurrency) || (has(self.scaling.metric) ? "
            "self.scaling.metric == 'concurrency' : (!has(self.scaling.metrics) && "
            "!has(self.scaling.targetCPUUtilization) && has(self.runtime) && self.runtime in ['vllm', 'tgi']))",
            TARGET_CONCURRENCY_MESSAGE, ".scaling.targetConcurrency"),
        cel("!has(self.adapters) || size(self.adapters) == 0 || (has(self.runtime) && self.runtime == 'vllm')",
             "adapters: LoRA adapters are only for runtime vllm", ".adapters"),
        cel("!has(self.maxLoras) || (has(self.runtime) && self.runtime == 'vllm')",
             "maxLoras: only for runtime vllm", ".maxLoras"),
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
    adapters: list[AdapterSpec] | None = Field(None, max_length=MAX_ADAPTERS, json_schema_extra={
        "x-kubernetes-validations": [
            cel("self.all(a, self.exists_one(b, b.name == a.name) || has(a.weight))",
                 "adapters: an adapter name given more than once needs a weight on each of its entries"),
            cel("self.all(a, self.exists_one(b, b.name == a.name && b.source == a.source))",
                 "adapters: the same adapter (name and source) is given twice"),
        ]}, description="LoRA adapters (runtime vllm): fine-tunes of this model served by its engines, each "
                        "requested by its own name; loaded on every ready replica at run time, so adding or "
                        "removing one restarts nothing (docs/lora.md).")
    max_loras: int | None = Field(None, alias="maxLoras", ge=1, le=MAX_ADAPTERS,
                                  description="vLLM's --max-loras: adapters one batch may mix (GPU slots); "
                                              f"default {DEFAULT_MAX_LORAS}. Setting it keeps LoRA on without "
                                              "adapters, so the first adapter added restarts nothing either.")

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
        """scaling is enabled on concurrency (set, or the runtime's default): the operator sets the
        Deployment's replicas, no HPA."""
        return (self.scaling is not None and self.scaling.enabled
                and self.scaling.metric_for(self.runtime) == ScalingMetric.CONCURRENCY)

    @property
    def concurrency_target(self) -> int:
        """targetConcurrency, else the runtime's default (LLM_TARGET_CONCURRENCY for an LLM engine)."""
        assert self.scaling is not None
        return self.scaling.target_concurrency or (
            LLM_TARGET_CONCURRENCY if self.runtime in OPENAI_RUNTIMES else DEFAULT_TARGET_CONCURRENCY)

    @property
    def lora(self) -> bool:
        """The engine runs with LoRA on: the model has adapters, or maxLoras keeps it on without any."""
        return self.runtime == "vllm" and (bool(self.adapters) or self.max_loras is not None)

    def engine_adapters(self) -> dict[str, AdapterSpec]:
        """The model's adapters by the name each is loaded under on its engines (adapters.engine_name), in spec
        order."""
        counts: dict[str, int] = {}
        for adapter in self.adapters or ():
            counts[adapter.name] = counts.get(adapter.name, 0) + 1
        return {engine_name(a, counts[a.name] > 1): a for a in self.adapters or ()}

    def adapter_loads(self) -> dict[str, str]:
        """What its engines are asked to load: lora_name (adapters.engine_name) -> lora_path, in spec order. The one
        place both callers of the engines' load API (the operator's loop, the gateway) read it from."""
        return {name: lora_path(a.source) for name, a in self.engine_adapters().items()}

    def adapter_versions(self) -> dict[str, tuple[tuple[str, int], ...]]:
        """The names split between versions: name -> ((engine name, weight), ...), in spec order."""
        versions: dict[str, list[tuple[str, int]]] = {}
        for loaded, adapter in self.engine_adapters().items():
            if loaded != adapter.name:
                versions.setdefault(adapter.name, []).append((loaded, adapter.weight or 1))
        return {name: tuple(found) for name, found in versions.items()}

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
        if (self.scaling is not None and self.scaling.target_concurrency is not None
                and self.scaling.metric_for(self.runtime) != ScalingMetric.CONCURRENCY):
            raise invalid("scaling.targetConcurrency", TARGET_CONCURRENCY_MESSAGE.removeprefix("targetConcurrency "))
        if self.adapters and self.runtime != "vllm":
            raise invalid("adapters", "LoRA adapters are only for runtime vllm")
        if self.max_loras is not None and self.runtime != "vllm":
            raise invalid("maxLoras", "only for runtime vllm")
        self._adapter_entries()
        return self

    def _adapter_entries(self) -> None:
        """Mirrors the CEL rules on adapters: a repeated name is a split, each entry weighted; no entry twice."""
        names: dict[str, int] = {}
        for adapter in self.adapters or ():
            names[adapter.name] = names.get(adapter.name, 0) + 1
        seen: set[tuple[str, str]] = set()
        for i, adapter in enumerate(self.adapters or ()):
            if names[adapter.name] > 1 and adapter.weight is None:
                raise invalid(f"adapters[{i}].weight", f'adapter name "{adapter.name}" is given more than once: '
                                                       "each of its entries needs a weight")
            if (adapter.name, adapter.source) in seen:
                raise invalid(f"adapters[{i}]", f'the same adapter (name "{adapter.name}" and its source) is '
                                                "given twice")
            seen.add((adapter.name, adapter.source))

