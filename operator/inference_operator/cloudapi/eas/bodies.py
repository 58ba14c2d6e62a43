"""Create and update bodies -> an InferenceService manifest, through the same conversion as
`python -m inference_operator.convert` (convert/pai.py).

Nothing is dropped silently: a body of the wrong shape is refused naming the field (the models below check
only types, the converter decides meaning); a field no converter knows is refused naming it (a typo, or a
feature this cluster does not have); what the converter carries differently or not at all (a workspace,
an instance type) is kept: the body as sent is stored in an annotation and shown back as ServiceConfig, the
converter's notes in another, shown back in the Service's Message.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inference_operator.api.v1alpha1 import InferenceService, InvalidSpecError
from inference_operator.cloudapi.eas.errors import invalid
from inference_operator.cloudapi.errors import CloudError, Problem
from inference_operator.convert import pai
from inference_operator.convert.common import Notes, Options, dns_name

NAME_ANNOTATION = "inference.io/eas-service-name"
CONFIG_ANNOTATION = "inference.io/eas-service-config"
FORMAT_ANNOTATION = "inference.io/eas-format"
NOTES_ANNOTATION = "inference.io/conversion-notes"
APP, SERVICE = "pai-app", "pai-eas"
MAX_CONFIG_BYTES = 64 * 1024  # annotations share 256 KiB per object; a service's JSON is a few KB
SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
Scalar = str | int | float | bool | None


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Meta(_Open):
    name: str = Field(min_length=1)
    instance: int | None = Field(None, ge=0, le=10000)
    cpu: float | None = Field(None, ge=0)
    memory: int | None = Field(None, ge=0)
    gpu: float | None = Field(None, ge=0, le=64)


class _Env(_Open):
    name: str
    value: Scalar = None


class _Container(_Open):
    image: str | None = None
    command: str | None = None
    script: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    env: list[_Env] | dict[str, Scalar] | None = None


class _Oss(_Open):
    path: str | None = None


class _Nfs(_Open):
    server: str | None = None
    path: str | None = None


class _Storage(_Open):
    mount_path: str | None = None
    oss: _Oss | None = None
    nfs: _Nfs | None = None


class _Cloud(_Open):
    computing: dict[str, Any] | None = None


class _Strategy(_Open):
    metricName: str | None = None  # noqa: N815 (EAS's spelling)
    threshold: float | None = Field(None, ge=0)


class _Autoscaler(_Open):
    min: int | None = Field(None, ge=0, le=1000)
    max: int | None = Field(None, ge=0, le=1000)
    scaleStrategies: list[_Strategy] | None = None  # noqa: N815


class EasServiceBody(_Open):
    """CreateService's body: the EAS service JSON (research/seed-systems.md 4.2)."""

    metadata: _Meta
    containers: list[_Container] | None = Field(None, max_length=16)
    processor: str | None = None
    model_path: str | None = None
    storage: list[_Storage] | None = Field(None, max_length=64)
    cloud: _Cloud | None = None
    autoscaler: _Autoscaler | None = None


class AppServiceBody(_Open):
    """CreateAppService's body (seed 003)."""

    ServiceName: str = Field(min_length=1)
    ServiceSpec: str = Field(min_length=1, max_length=64)
    AppType: str | None = None
    AppVersion: str | None = Field(None, max_length=63)
    Replicas: int | None = Field(None, ge=1, le=128)
    Config: dict[str, Scalar] | None = None


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def check_shape(data: Any, fmt: str) -> None:
    """400 naming the first field of the wrong type or out of range."""
    if not isinstance(data, dict):
        raise invalid("body", "expected a JSON object")
    model = AppServiceBody if fmt == APP else EasServiceBody
    try:
        model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        raise invalid(_where(tuple(first["loc"])), str(first["msg"])[:200]) from None


def service_name(data: dict[str, Any], fmt: str) -> str:
    name = str(data["ServiceName"] if fmt == APP else data["metadata"]["name"])
    if not SERVICE_NAME.match(name):
        field = "ServiceName" if fmt == APP else "metadata.name"
        raise invalid(field, f"{ascii(name[:64])} is not a service name: lower-case letters, digits, '_' and '-', "
                             "starting with a letter, at most 63 characters")
    return name


def object_name(name: str) -> str:
    """The InferenceService's metadata.name of an EAS service name (my_svc -> my-svc)."""
    return dns_name(name)


def to_manifest(data: dict[str, Any], fmt: str, namespace: str) -> dict[str, Any]:
    """The InferenceService a body describes, annotated with the body and the conversion's notes."""
    check_shape(data, fmt)
    name = service_name(data, fmt)
    config = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    if len(config.encode()) > MAX_CONFIG_BYTES:
        raise invalid("body", f"the service config is larger than {MAX_CONFIG_BYTES // 1024} KiB")
    try:
        body, notes = _converted(data, fmt)
    except (ValueError, TypeError, AttributeError, KeyError) as err:
        raise invalid("body", f"cannot convert: {str(err)[:200]}") from None
    body["metadata"] = {"name": object_name(name), "namespace": namespace, "annotations": {
        NAME_ANNOTATION: name, FORMAT_ANNOTATION: fmt, CONFIG_ANNOTATION: config,
        **({NOTES_ANNOTATION: "\n".join(notes)} if notes else {})}}
    try:
        InferenceService.from_body(body)
    except InvalidSpecError as err:
        raise CloudError(Problem.BAD_REQUEST, "; ".join(err.messages)[:1000], "InvalidParameter") from None
    return body


def _converted(data: dict[str, Any], fmt: str) -> tuple[dict[str, Any], list[str]]:
    """The converter's manifest and notes (the CLI's code path); a field it does not know is refused."""
    notes = Notes()
    body = (pai.convert_app if fmt == APP else pai.convert_eas)(data, Options(), notes)
    unknown = notes.unknown_fields()
    if unknown:
        raise invalid(unknown[0], "unknown field: this cluster has no equivalent (remove it, or check its spelling)")
    # the name is carried as it is: the annotation keeps it, the object's name is derived from it
    kept = [line for (where, _), line in zip(notes.entries, notes.lines, strict=True)
            if where not in ("ServiceName", "metadata.name")]
    return body, kept


def merged(old: Any, new: Any) -> Any:
    """UpdateService's body over the stored one: objects merge key by key, anything else replaces."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = dict(old)
        for key, value in new.items():
            out[key] = merged(old.get(key), value)
        return out
    return new
