"""The InferenceService resource, v1alpha1: the contract in docs/api.md as pydantic models.

This module is the version's public API: its identity (group, version, kind, names), the top-level
`InferenceService` with `from_body`, the validation errors, and every model and constant of the
version, imported from the parts it is written in (api/schema.py, model.py, spec.py, status.py).
Callers and the CRD generator (api/crd.py) import from here; the parts are how it is organised.

The models are the single source of the CRD schema (api/crd.py converts them, azimuth-style), so
every field carries a description for `kubectl explain`, every string a maxLength and every list a
maxItems (CEL cost estimation needs bounds). Cross-field rules exist twice on purpose: as CEL in
`x-kubernetes-validations` (admission) and as the models' validators (the operator judges a body that
slipped past an older CRD). Validation errors carry the offending field in `ctx["field"]`;
`format_errors` turns them into `spec.models[1].weight: ...` lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, ValidationError

from inference_operator.api.adapters import (
    ADAPTER_DIR,
    DEFAULT_MAX_LORAS,
    MAX_ADAPTERS,
    AdapterSpec,
    adapter_dir,
    lora_path,
    source_claim,
)
from inference_operator.api.model import (
    CUSTOM,
    DEFAULT_IDLE_WINDOW,
    DEFAULT_SPECIFICATION,
    IDLE_WINDOW,
    OPENAI_RUNTIMES,
    CustomSpec,
    ModelSpec,
    Scaling,
    ScalingMetric,
    idle_window_seconds,
    scaling_metric,
)
from inference_operator.api.schema import (
    DNS_1035_LABEL,
    DNS_LABEL,
    DNS_SUBDOMAIN,
    ENV_NAME,
    MAX_MODELS,
    MODEL_NAME_MAX,
    PICKER_NAME,
    STORAGE_URI,
    Base,
)
from inference_operator.api.spec import (
    AppRef,
    Auth,
    BatchSpec,
    EndpointPicker,
    InferencePoolSpec,
    InferenceServiceSpec,
    ScheduleEntry,
)
from inference_operator.api.status import AdapterStatus, Condition, InferenceServiceStatus, ModelStatus

__all__ = [
    "ADAPTER_DIR", "API_VERSION", "CATEGORIES", "DEFAULT_MAX_LORAS", "MAX_ADAPTERS", "AdapterSpec", "AdapterStatus",
    "adapter_dir", "lora_path", "source_claim", "CUSTOM", "DEFAULT_IDLE_WINDOW", "DEFAULT_SPECIFICATION",
    "DNS_1035_LABEL",
    "DNS_LABEL", "DNS_SUBDOMAIN", "ENV_NAME", "GROUP", "IDLE_WINDOW", "INFERS_PREFIX", "KIND", "MAX_MODELS",
    "MODEL_NAME_MAX", "OPENAI_RUNTIMES", "PICKER_NAME", "PLURAL", "SHORT_NAMES", "SINGULAR", "STORAGE_URI",
    "VERSION", "AppRef", "Auth", "BatchSpec", "Condition", "CustomSpec", "EndpointPicker", "InferencePoolSpec",
    "InferenceService", "InferenceServiceSpec", "InferenceServiceStatus", "InvalidSpecError", "ModelSpec",
    "ModelStatus", "Scaling", "ScalingMetric", "ScheduleEntry", "field_path", "format_errors", "idle_window_seconds",
    "infer_path", "scaling_metric",
]

GROUP = "inference.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InferenceService"
PLURAL = "inferenceservices"
SINGULAR = "inferenceservice"
SHORT_NAMES = ["infsvc"]
CATEGORIES = ["inference"]
INFERS_PREFIX = "/v1/infers"  # the gateway's URL space (GATEWAY.md): <prefix>/<serviceId>/<path>
_METADATA_FIELDS = ("name", "namespace", "uid", "generation")


class InferenceService(Base):
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


def infer_path(service_id: str) -> str:
    """The path clients call for one service; accessAddress, the HTTPRoute and the gateway share it."""
    return f"{INFERS_PREFIX}/{service_id}"
