"""The service-wide spec: its models, lifecycle (schedule), auth, InferencePool and batch settings."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from inference_operator.api.adapters import MAX_ADAPTERS
from inference_operator.api.model import ModelSpec
from inference_operator.api.schema import DNS_SUBDOMAIN, MAX_MODELS, PICKER_NAME, STORAGE_URI, Base, cel, invalid


class ScheduleEntry(Base):
    """An automatic action on a real-time service, counted from when it was started."""

    type: Literal["stop"] = Field("stop", description="Action to take; only stop is supported.")
    time_unit: Literal["DAYS", "HOURS", "MINUTES"] = Field(alias="timeUnit", description="Unit of duration.")
    duration: int = Field(ge=1, le=100000, description="How many timeUnits after the start to act.")


class AppRef(Base):
    """An app allowed to call the service (APP authentication at the gateway)."""

    secret_name: str = Field(alias="secretName", min_length=1, max_length=253,
                             description="Secret in the service's namespace holding appKey, "
                                         "appSecret and appCode.")


class Auth(Base):
    """Authentication the gateway enforces for this service."""

    app_auth: bool = Field(False, alias="appAuth", description="Require APP authentication "
                           "(AppCode or AppKey/AppSecret signature).")
    apps: list[AppRef] = Field(default_factory=list, max_length=32, description="Apps allowed to call.")


class EndpointPicker(Base):
    """The endpoint picker (EPP) an InferencePool hands routing to: the Inference Extension's
    endpointPickerRef, in the pool's namespace (the reference has no namespace)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        cel("(has(self.kind) && self.kind != 'Service') || has(self.port)",
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
            raise invalid("port", "required when kind is Service (the default)")
        return self


class InferencePoolSpec(Base):
    """An Inference Extension InferencePool for the service (where its CRD is served): the Gateway hands
    each request to the endpoint picker, which chooses the model pod (docs/gateway-api.md)."""

    enabled: bool | None = Field(None, description="true: write an InferencePool and route the HTTPRoute to "
                                 "it; false: never; unset: as the operator's setting says.")
    endpoint_picker: EndpointPicker | None = Field(None, alias="endpointPicker", description="The endpoint "
                                                   "picker; unset: the one the operator's setting names.")


class BatchSpec(Base):
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


class InferenceServiceSpec(Base):
    """Desired state of an inference service: models, traffic split, scaling, lifecycle."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        cel("(has(self.inferType) && self.inferType == 'batch') || "
             "self.models.map(m, has(m.weight) ? m.weight : 100).sum() == 100",
             "spec.models[*].weight: weights of a real-time service must sum to 100", ".models"),
        cel("!has(self.batch) || (has(self.inferType) && self.inferType == 'batch')",
             "spec.batch is only allowed when inferType is batch", ".batch"),
        cel("!has(self.inferType) || self.inferType != 'batch' || has(self.batch)",
             "spec.batch is required when inferType is batch", ".batch"),
        cel("!has(self.inferType) || self.inferType != 'batch' || size(self.models) == 1",
             "spec.models: a batch service has exactly one model", ".models"),
        cel("!has(self.schedule) || !has(self.inferType) || self.inferType != 'batch'",
             "spec.schedule is only allowed for real-time services", ".schedule"),
        cel("!has(self.inferencePool) || !has(self.inferencePool.enabled) || !self.inferencePool.enabled || "
             "self.models.all(m, m.port == self.models[0].port)",
             "spec.models[*].port: the models of a service with an InferencePool share one port "
             "(the pool's targetPort)", ".models"),
        cel("!has(self.inferencePool) || !has(self.inferencePool.enabled) || !self.inferencePool.enabled || "
             "!has(self.inferType) || self.inferType != 'batch'",
             "spec.inferencePool: only for real-time services", ".inferencePool"),
        cel(f"self.models.map(m, has(m.adapters) ? size(m.adapters) : 0).sum() <= {MAX_ADAPTERS}",
             f"spec.models[*].adapters: at most {MAX_ADAPTERS} adapters in a service", ".models"),
        cel("self.models.all(m, !has(m.adapters) || m.adapters.all(a, "
             "self.models.all(n, n.modelName != a.name && n.name != a.name)))",
             "spec.models[*].adapters: an adapter's name must not be a model's modelName or name", ".models"),
        cel("self.models.all(m, !has(m.adapters) || self.models.all(n, n.name == m.name || !has(n.adapters) || "
             "!sets.intersects(m.adapters.map(a, a.name), n.adapters.map(b, b.name))))",  # all-pairs: over CEL's budget
             "spec.models[*].adapters: an adapter name is served by one model only", ".models"),
    ]})

    description: str | None = Field(None, max_length=1024, description="Free text about the service.")
    infer_type: Literal["real-time", "batch"] = Field("real-time", alias="inferType",
                                                      description="real-time serves requests until "
                                                                  "stopped; batch processes batch.srcPath.")
    stopped: bool = Field(False, description="true scales every model to 0 and keeps the object; "
                          "false runs it.")
    models: list[ModelSpec] = Field(min_length=1, max_length=MAX_MODELS, json_schema_extra={
        "x-kubernetes-validations": [cel("self.all(m, self.exists_one(n, n.name == m.name))",
                                          "spec.models: model names must be unique")]},
                                    description="Models of the service, 1 to 10.")
    schedule: list[ScheduleEntry] | None = Field(None, max_length=4,
                                                 description="Stop the service automatically.")
    auth: Auth | None = Field(None, description="App authentication at the gateway.")
    batch: BatchSpec | None = Field(None, description="Batch settings; only with inferType batch.")
    inference_pool: InferencePoolSpec | None = Field(None, alias="inferencePool", description="Route through "
                                                     "an Inference Extension InferencePool and endpoint picker.")
    routing: Literal["weighted-random", "least-load", "prefix"] | None = Field(
        None, description="How the gateway picks one ready endpoint of an OpenAI-speaking model for each request: "
                          "weighted-random (uniform), least-load (fewest requests in flight, engine queues "
                          "included), prefix (requests sharing a prompt prefix to the same endpoint, spread when "
                          "it is busy); default prefix. Other models are always weighted-random.")

    @model_validator(mode="after")
    def _cross_field(self) -> InferenceServiceSpec:
        """Mirrors the CEL rules on spec and spec.models (names, pool ports, batch, schedule, weights)."""
        self._unique_names()
        self._adapter_names()
        self._pool_ports()
        if self.infer_type == "batch":
            self._batch_only()
        else:
            self._real_time_only()
        return self

    def _unique_names(self) -> None:
        seen: set[str] = set()
        for i, model in enumerate(self.models):
            if model.name in seen:
                raise invalid(f"models[{i}].name", f'duplicate model name "{model.name}"')
            seen.add(model.name)

    def _adapter_names(self) -> None:
        """Mirrors the CEL rules on adapters: a bounded count, names apart from the models' and each served
        by one model (a request's model field names exactly one thing)."""
        total = sum(len(m.adapters or ()) for m in self.models)
        if total > MAX_ADAPTERS:
            raise invalid("models", f"at most {MAX_ADAPTERS} adapters in a service, not {total}")
        taken = {m.model_name for m in self.models} | {m.name for m in self.models}
        owner: dict[str, str] = {}
        for i, model in enumerate(self.models):
            for j, adapter in enumerate(model.adapters or ()):
                where = f"models[{i}].adapters[{j}].name"
                if adapter.name in taken:
                    raise invalid(where, f'"{adapter.name}" is a model\'s modelName or name')
                if owner.setdefault(adapter.name, model.name) != model.name:
                    raise invalid(where, f'"{adapter.name}" is an adapter of model {owner[adapter.name]} already')

    def _pool_ports(self) -> None:
        """An InferencePool serves a real-time service whose models share its one targetPort."""
        if self.inference_pool is None or not self.inference_pool.enabled:
            return
        if self.infer_type == "batch":
            raise invalid("inferencePool", "only for real-time services")
        for i, model in enumerate(self.models):
            if model.port != self.models[0].port:
                raise invalid(f"models[{i}].port", "the models of a service with an InferencePool share one "
                               f"port (the pool's targetPort): {model.port} is not {self.models[0].port}")

    def _batch_only(self) -> None:
        if self.batch is None:
            raise invalid("batch", "required when inferType is batch")
        if len(self.models) != 1:
            raise invalid("models", "a batch service has exactly one model")
        if self.schedule:
            raise invalid("schedule", "only allowed for real-time services")

    def _real_time_only(self) -> None:
        if self.batch is not None:
            raise invalid("batch", "only allowed when inferType is batch")
        total = sum(m.weight for m in self.models)
        if total != 100:
            raise invalid("models", f"weights of a real-time service must sum to 100, not {total}")
