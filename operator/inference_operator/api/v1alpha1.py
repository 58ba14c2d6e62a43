"""The InferenceService resource, v1alpha1: the contract in docs/api.md as pydantic models.

The models are the single source of the CRD schema (api/crd.py converts them, azimuth-style), so
every field carries a description for `kubectl explain`, every string a maxLength and every list a
maxItems (CEL cost estimation needs bounds). Cross-field rules exist twice on purpose: as CEL in
`x-kubernetes-validations` (admission) and as validators here (the operator judges a body that
slipped past an older CRD). Validation errors carry the offending field in `ctx["field"]`;
`format_errors` turns them into `spec.models[1].weight: ...` lines.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

GROUP = "inference.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InferenceService"
PLURAL = "inferenceservices"
INFERS_PREFIX = "/v1/infers"  # the gateway's URL space (GATEWAY.md): <prefix>/<serviceId>/<path>


def infer_path(service_id: str) -> str:
    """The path clients call for one service; accessAddress, the HTTPRoute and the gateway share it."""
    return f"{INFERS_PREFIX}/{service_id}"
SINGULAR = "inferenceservice"
SHORT_NAMES = ["infsvc"]
CATEGORIES = ["inference"]

MAX_MODELS = 10
MODEL_NAME_MAX = 40  # leaves room for "<service>-" in child names before names.py must hash
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
PICKER_NAME = r"^([a-z0-9]|\{service\})([-.a-z0-9]|\{service\})*$"  # a DNS subdomain, {service} its name
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
STORAGE_URI = r"^(pvc|nfs|s3|oss|obs)://.+"
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
CUSTOM: Final = "custom"
OPENAI_RUNTIMES = frozenset({"vllm", "tgi"})  # runtimes whose server speaks OpenAI's HTTP API
_Arg = Annotated[str, Field(max_length=4096)]
_EnvValue = Annotated[str, Field(max_length=32768)]
DEFAULT_SPECIFICATION = "modelarts.vm.cpu.2u"


def _invalid(field: str, message: str) -> PydanticCustomError:
    """A validation error that names the offending field relative to the validated model."""
    return PydanticCustomError("invalid_spec", message, {"field": field})


def _cel(rule: str, message: str, field_path: str | None = None) -> dict[str, Any]:
    """One x-kubernetes-validations entry; fieldPath points the error at a child field."""
    entry: dict[str, Any] = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class CustomSpec(_Model):
    """Resources of a model with specification "custom" (ModelArts custom_spec)."""

    cpu: float = Field(gt=0, le=1024, description="CPU cores per instance, fractions allowed (e.g. 1.5).")
    memory: int = Field(gt=0, le=16 * 1024 * 1024, description="Memory per instance, in MiB.")
    gpu: int = Field(0, ge=0, le=16, description="NVIDIA GPUs per instance (nvidia.com/gpu).")
    ascend: int = Field(0, ge=0, le=16, description="Ascend 310 NPUs per instance (huawei.com/ascend-310).")


IDLE_WINDOW = r"^([1-9][0-9]{0,5})(s|m|h)$"  # scaleToZeroAfter: "30s", "10m", "2h"
_IDLE_UNITS = {"s": 1, "m": 60, "h": 3600}
DEFAULT_IDLE_WINDOW = "10m"


def idle_window_seconds(text: str) -> int:
    """"10m" -> 600: the duration of a scaleToZeroAfter (already matched against IDLE_WINDOW)."""
    return int(text[:-1]) * _IDLE_UNITS[text[-1]]


class Scaling(_Model):
    """Horizontal autoscaling of one model; a HorizontalPodAutoscaler when enabled. minReplicas 0 lets the
    model scale to zero after `scaleToZeroAfter` without requests, and wake on the next one."""

    model_config = ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [
            _cel("!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
                 "minReplicas must be less than or equal to maxReplicas", ".minReplicas"),
            _cel("!has(self.scaleToZeroAfter) || (has(self.minReplicas) && self.minReplicas == 0)",
                 "scaleToZeroAfter needs minReplicas: 0", ".scaleToZeroAfter"),
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
    scale_to_zero_after: str | None = Field(None, alias="scaleToZeroAfter", max_length=8, pattern=IDLE_WINDOW,
                                            description="With minReplicas 0: how long without a request (as the "
                                                        "gateway counts them) before the model goes to 0 "
                                                        f"instances, e.g. 30s, 10m, 2h; default {DEFAULT_IDLE_WINDOW}.")

    @model_validator(mode="after")
    def _min_le_max(self) -> Scaling:
        """An HPA with minReplicas > maxReplicas is refused by the apiserver: catch it here."""
        if self.min_replicas and self.max_replicas and self.min_replicas > self.max_replicas:
            raise _invalid("minReplicas", "must be less than or equal to maxReplicas")
        if self.scale_to_zero_after is not None and self.min_replicas != 0:
            raise _invalid("scaleToZeroAfter", "needs minReplicas: 0")
        return self

    @property
    def scales_to_zero(self) -> bool:
        return self.min_replicas == 0

    @property
    def idle_seconds(self) -> int:
        """The idle window of a model that scales to zero."""
        return idle_window_seconds(self.scale_to_zero_after or DEFAULT_IDLE_WINDOW)


class ModelSpec(_Model):
    """One model of the service: its own Deployment, Service and share of the traffic."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        _cel("!has(self.specification) || self.specification != 'custom' || has(self.customSpec)",
             'customSpec is required when specification is "custom"', ".customSpec"),
        _cel("(has(self.runtime) && self.runtime != 'custom') || has(self.image)",
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

    @field_validator("envs")
    @classmethod
    def _env_names(cls, envs: dict[str, str] | None) -> dict[str, str] | None:
        """Bad names would only fail at Deployment apply; the CRD leaves them out (CEL cost)."""
        for key in envs or {}:
            if not re.match(ENV_NAME, key):
                raise _invalid(f"[{key}]", "not a valid environment variable name")
        return envs

    @model_validator(mode="after")
    def _required_together(self) -> ModelSpec:
        """Mirrors the CEL rules on spec.models[*] (customSpec, image)."""
        if self.specification == CUSTOM and self.custom_spec is None:
            raise _invalid("customSpec", 'required when specification is "custom"')
        if self.runtime == CUSTOM and not self.image:
            raise _invalid("image", 'required when runtime is "custom"')
        return self


class ScheduleEntry(_Model):
    """An automatic action on a real-time service, counted from when it was started."""

    type: Literal["stop"] = Field("stop", description="Action to take; only stop is supported.")
    time_unit: Literal["DAYS", "HOURS", "MINUTES"] = Field(alias="timeUnit", description="Unit of duration.")
    duration: int = Field(ge=1, le=100000, description="How many timeUnits after the start to act.")


class AppRef(_Model):
    """An app allowed to call the service (APP authentication at the gateway)."""

    secret_name: str = Field(alias="secretName", min_length=1, max_length=253,
                             description="Secret in the service's namespace holding appKey, "
                                         "appSecret and appCode.")


class Auth(_Model):
    """Authentication the gateway enforces for this service."""

    app_auth: bool = Field(False, alias="appAuth", description="Require APP authentication "
                           "(AppCode or AppKey/AppSecret signature).")
    apps: list[AppRef] = Field(default_factory=list, max_length=32, description="Apps allowed to call.")


class EndpointPicker(_Model):
    """The endpoint picker (EPP) an InferencePool hands routing to: the Inference Extension's
    endpointPickerRef, in the pool's namespace (the reference has no namespace)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        _cel("(has(self.kind) && self.kind != 'Service') || has(self.port)",
             "spec.inferencePool.endpointPicker.port: required when kind is Service (the default)", ".port"),
    ]})

    name: str = Field(min_length=1, max_length=200, pattern=PICKER_NAME, description="Name of the picker "
                      "(a Service unless kind says otherwise) in the service's namespace; {service} stands for "
                      "the service's name (one picker per pool: {service}-epp).")
    port: int | None = Field(None, ge=1, le=65535, description="The picker Service's port (its gRPC ext-proc "
                             "port, 9002 for the Inference Extension's picker); required for a Service.")
    kind: str | None = Field(None, max_length=63, pattern=r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$",
                             description="Kind of the picker; default Service.")
    group: str | None = Field(None, max_length=253, pattern=r"^$|" + DNS_SUBDOMAIN,
                              description='API group of the picker; default "" (core).')
    failure_mode: Literal["FailOpen", "FailClose"] | None = Field(
        None, alias="failureMode", description="What the Gateway does when the picker does not answer: FailClose "
                                               "(default) refuses the request, FailOpen picks an endpoint itself.")

    @model_validator(mode="after")
    def _port_for_service(self) -> EndpointPicker:
        """Mirrors the CEL rule: a Service picker needs its port."""
        if (self.kind is None or self.kind == "Service") and self.port is None:
            raise _invalid("port", "required when kind is Service (the default)")
        return self


class InferencePoolSpec(_Model):
    """An Inference Extension InferencePool for the service (where its CRD is served): the Gateway hands
    each request to the endpoint picker, which chooses the model pod (docs/gateway-api.md)."""

    enabled: bool | None = Field(None, description="true: write an InferencePool and route the HTTPRoute to "
                                 "it; false: never; unset: as the operator's setting says.")
    endpoint_picker: EndpointPicker | None = Field(None, alias="endpointPicker", description="The endpoint "
                                                   "picker; unset: the one the operator's setting names.")


class BatchSpec(_Model):
    """Input, output and request mapping of a batch service."""

    src_path: str = Field(alias="srcPath", max_length=1024, pattern=STORAGE_URI,
                          description="Where the input files are.")
    dest_path: str = Field(alias="destPath", max_length=1024, pattern=STORAGE_URI,
                           description="Where results are written.")
    req_uri: str = Field(alias="reqUri", max_length=256, pattern=r"^/",
                         description="Path of the model's inference API each input is sent to.")
    mapping_type: Literal["file", "csv"] = Field(alias="mappingType", description="file: one request per "
                                                 "input file; csv: one request per CSV row.")
    mapping_rule: dict[str, Any] | None = Field(None, alias="mappingRule",
                                                description="How CSV columns map to request fields.")


class InferenceServiceSpec(_Model):
    """Desired state of an inference service: models, traffic split, scaling, lifecycle."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        _cel("(has(self.inferType) && self.inferType == 'batch') || "
             "self.models.map(m, has(m.weight) ? m.weight : 100).sum() == 100",
             "spec.models[*].weight: weights of a real-time service must sum to 100", ".models"),
        _cel("!has(self.batch) || (has(self.inferType) && self.inferType == 'batch')",
             "spec.batch is only allowed when inferType is batch", ".batch"),
        _cel("!has(self.inferType) || self.inferType != 'batch' || has(self.batch)",
             "spec.batch is required when inferType is batch", ".batch"),
        _cel("!has(self.inferType) || self.inferType != 'batch' || size(self.models) == 1",
             "spec.models: a batch service has exactly one model", ".models"),
        _cel("!has(self.schedule) || !has(self.inferType) || self.inferType != 'batch'",
             "spec.schedule is only allowed for real-time services", ".schedule"),
        _cel("!has(self.inferencePool) || !has(self.inferencePool.enabled) || !self.inferencePool.enabled || "
             "self.models.all(m, m.port == self.models[0].port)",
             "spec.models[*].port: the models of a service with an InferencePool share one port "
             "(the pool's targetPort)", ".models"),
        _cel("!has(self.inferencePool) || !has(self.inferencePool.enabled) || !self.inferencePool.enabled || "
             "!has(self.inferType) || self.inferType != 'batch'",
             "spec.inferencePool: only for real-time services", ".inferencePool"),
    ]})

    description: str | None = Field(None, max_length=1024, description="Free text about the service.")
    infer_type: Literal["real-time", "batch"] = Field("real-time", alias="inferType",
                                                      description="real-time serves requests until "
                                                                  "stopped; batch processes batch.srcPath.")
    stopped: bool = Field(False, description="true scales every model to 0 and keeps the object; "
                          "false runs it.")
    models: list[ModelSpec] = Field(min_length=1, max_length=MAX_MODELS, json_schema_extra={
        "x-kubernetes-validations": [_cel("self.all(m, self.exists_one(n, n.name == m.name))",
                                          "spec.models: model names must be unique")]},
                                    description="Models of the service, 1 to 10.")
    schedule: list[ScheduleEntry] | None = Field(None, max_length=4,
                                                 description="Stop the service automatically.")
    auth: Auth | None = Field(None, description="App authentication at the gateway.")
    batch: BatchSpec | None = Field(None, description="Batch settings; only with inferType batch.")
    inference_pool: InferencePoolSpec | None = Field(None, alias="inferencePool", description="Route through "
                                                     "an Inference Extension InferencePool and endpoint picker.")

    @model_validator(mode="after")
    def _cross_field(self) -> InferenceServiceSpec:
        """Mirrors the CEL rules on spec and spec.models (names, weights, batch, schedule)."""
        seen: set[str] = set()
        for i, model in enumerate(self.models):
            if model.name in seen:
                raise _invalid(f"models[{i}].name", f'duplicate model name "{model.name}"')
            seen.add(model.name)
        pooled = self.inference_pool is not None and self.inference_pool.enabled
        if pooled and self.infer_type == "batch":
            raise _invalid("inferencePool", "only for real-time services")
        if pooled:
            for i, model in enumerate(self.models):
                if model.port != self.models[0].port:
                    raise _invalid(f"models[{i}].port", "the models of a service with an InferencePool share one "
                                   f"port (the pool's targetPort): {model.port} is not {self.models[0].port}")
        if self.infer_type == "batch":
            if self.batch is None:
                raise _invalid("batch", "required when inferType is batch")
            if len(self.models) != 1:
                raise _invalid("models", "a batch service has exactly one model")
            if self.schedule:
                raise _invalid("schedule", "only allowed for real-time services")
            return self
        if self.batch is not None:
            raise _invalid("batch", "only allowed when inferType is batch")
        total = sum(m.weight for m in self.models)
        if total != 100:
            raise _invalid("models", f"weights of a real-time service must sum to 100, not {total}")
        return self


class ModelStatus(_Model):
    """Observed state of one model."""

    name: str | None = Field(None, max_length=MODEL_NAME_MAX, description="The model entry's name.")
    status: Literal["ready", "concerning", "notReady", "idle", "waking"] | None = Field(
        None, description="ready: all instances ready; concerning: some; notReady: none; idle: scaled to zero "
                          "after scaleToZeroAfter without requests (a request wakes it); waking: coming back "
                          "from idle for a request the gateway holds.")
    replicas: int | None = Field(None, ge=0, description="Instances wanted now (the HPA's choice "
                                 "when scaling).")
    ready_replicas: int | None = Field(None, alias="readyReplicas", ge=0, description="Instances ready.")
    weight: int | None = Field(None, ge=0, le=100, description="Traffic share in effect, in percent.")
    idle_since: str | None = Field(None, alias="idleSince", max_length=32,
                                   description="When the model went idle (scaled to zero), RFC 3339.")
    cold_start_seconds: float | None = Field(None, alias="coldStartSeconds", ge=0,
                                             description="How long the last wake took, from the request that "
                                                         "woke the model to its instances being ready.")


class Condition(_Model):
    """A Kubernetes-style condition (type Ready) for kstatus, Flux and Argo CD."""

    type: str | None = Field(None, max_length=316, description="Condition type, e.g. Ready.")
    status: Literal["True", "False", "Unknown"] | None = Field(None, description="True, False or Unknown.")
    reason: str | None = Field(None, max_length=1024, description="CamelCase reason for the last change.")
    message: str | None = Field(None, max_length=32768, description="Human-readable details.")
    last_transition_time: str | None = Field(None, alias="lastTransitionTime", max_length=64,
                                             description="When status last changed, RFC 3339.")
    observed_generation: int | None = Field(None, alias="observedGeneration", ge=0,
                                            description="metadata.generation the condition is based on.")


_TIME = "RFC 3339 time"
_METADATA_FIELDS = ("name", "namespace", "uid", "generation")


class InferenceServiceStatus(_Model):
    """Observed state of the service, derived only from its children."""

    service_id: str | None = Field(None, alias="serviceId", max_length=64,
                                   description="Service ID used in the gateway URL (metadata.uid).")
    status: Literal["deploying", "running", "concerning", "failed", "stopped", "finished"] | None = Field(
        None, description="Summary: deploying, running, concerning, failed, stopped or finished.")
    progress: int | None = Field(None, ge=0, le=100, description="Ready instances / wanted instances, "
                                 "in percent.")
    error_msg: str | None = Field(None, alias="errorMsg", max_length=32768,
                                  description="Why the service is failed or concerning.")
    access_address: str | None = Field(None, alias="accessAddress", max_length=2048,
                                       description="URL to call: <gateway>/v1/infers/<serviceId>.")
    models: list[ModelStatus] | None = Field(None, max_length=MAX_MODELS, description="Per-model state.")
    invocation_times: int | None = Field(None, alias="invocationTimes", ge=0,
                                         description="Requests the gateway routed to the service.")
    failed_times: int | None = Field(None, alias="failedTimes", ge=0,
                                     description="Requests that ended in a 5xx or a timeout.")
    publish_at: str | None = Field(None, alias="publishAt", max_length=64,
                                   description=f"When the service was first accepted, {_TIME}.")
    update_time: str | None = Field(None, alias="updateTime", max_length=64,
                                    description=f"When the operator last applied a new generation, {_TIME}.")
    transition_at: str | None = Field(None, alias="transitionAt", max_length=64,
                                      description=f"When status last changed, {_TIME}.")
    due_time: str | None = Field(None, alias="dueTime", max_length=64,
                                 description=f"When the schedule stops the service, {_TIME}.")
    started_at: str | None = Field(None, alias="startedAt", max_length=64,
                                   description="When the service last started running (after creation or a "
                                               f"stop/start); the schedule's dueTime counts from here, {_TIME}.")
    observed_generation: int | None = Field(None, alias="observedGeneration", ge=0,
                                            description="metadata.generation this status describes.")
    conditions: list[Condition] | None = Field(None, max_length=16, description="Ready condition.")


class InferenceService(_Model):
    """A validated InferenceService: the metadata builders need plus the spec."""

    name: str = Field(max_length=63, pattern=DNS_1035_LABEL, description="metadata.name")
    namespace: str = Field("default", description="metadata.namespace")
    uid: str = Field("", description="metadata.uid, the serviceId")
    generation: int = Field(0, description="metadata.generation")
    spec: InferenceServiceSpec

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> InferenceService:
        """Validate a raw Kubernetes object; raises InvalidSpecError with field-named messages."""
        meta = body.get("metadata") or {}
        data = {key: meta[key] for key in _METADATA_FIELDS if key in meta}
        if "spec" in body:
            data["spec"] = body["spec"]
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise InvalidSpecError(format_errors(err)) from err


class InvalidSpecError(ValueError):
    """The body breaks a rule the CRD should have enforced; messages name the fields."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def field_path(loc: tuple[int | str, ...], extra: str | None = None) -> str:
    """('spec', 'models', 1, 'weight') -> 'spec.models[1].weight' (Kubernetes field-path style)."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    if path in _METADATA_FIELDS:
        path = f"metadata.{path}"
    if extra:
        path += extra if extra.startswith("[") or not path else f".{extra}"
    return path or "<root>"


def format_errors(err: ValidationError) -> list[str]:
    """One `field.path: message` line per pydantic error, in the order pydantic found them."""
    lines = []
    for error in err.errors(include_url=False):
        extra = (error.get("ctx") or {}).get("field")
        lines.append(f"{field_path(tuple(error['loc']), extra)}: {error['msg']}")
    return lines
