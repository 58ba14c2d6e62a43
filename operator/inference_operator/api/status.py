"""The observed state (the status subresource): per-model states, the Ready condition, the summary."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from inference_operator.api.adapters import ADAPTER_NAME_MAX, MAX_ADAPTERS
from inference_operator.api.schema import MAX_MODELS, MODEL_NAME_MAX, Base


class AdapterStatus(Base):
    """Where one LoRA adapter of a model is loaded, as the engines report it."""

    name: str | None = Field(None, max_length=ADAPTER_NAME_MAX + 9, description="The name the engines load it "
                             "under: its name, or for one version of a split name name@<hash of its source>.")
    loaded_replicas: int | None = Field(None, alias="loadedReplicas", ge=0,
                                        description="Ready replicas whose engine has it loaded.")
    replicas: int | None = Field(None, ge=0, description="Ready replicas of the model.")
    reason: str | None = Field(None, max_length=4096, description="Why it is not loaded where it is not: the "
                               "engine's answer to loading it, or that the operator has not reached a replica yet.")


class ModelStatus(Base):
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
    adapters: list[AdapterStatus] | None = Field(None, max_length=MAX_ADAPTERS,
                                                 description="The model's LoRA adapters and where they are loaded.")


class Condition(Base):
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


class InferenceServiceStatus(Base):
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

