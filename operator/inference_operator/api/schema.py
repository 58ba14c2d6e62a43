"""What every part of the v1alpha1 models shares: the base model, the bounds, the patterns, and the two
ways a rule is written (a CEL entry for admission, a field-named error for the operator's own check).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

MAX_MODELS = 10
MODEL_NAME_MAX = 40  # leaves room for "<service>-" in child names before names.py must hash
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
PICKER_NAME = r"^([a-z0-9]|\{service\})([-.a-z0-9]|\{service\})*$"  # a DNS subdomain, {service} its name
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
STORAGE_URI = r"^(pvc|nfs|s3|oss|obs)://.+"
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"


def invalid(field: str, message: str) -> PydanticCustomError:
    """A validation error that names the offending field relative to the validated model."""
    return PydanticCustomError("invalid_spec", message, {"field": field})


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, Any]:
    """One x-kubernetes-validations entry; fieldPath points the error at a child field."""
    entry: dict[str, Any] = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


class Base(BaseModel):
    """The base of every v1alpha1 model: fields are set by their wire name (alias) or their Python name."""

    model_config = ConfigDict(populate_by_name=True)

