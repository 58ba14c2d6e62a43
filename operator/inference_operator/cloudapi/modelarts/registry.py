"""The model registry: one ConfigMap per model, labelled, in the project's namespace (pure: shapes only).

A ConfigMap rather than a CRD of our own: nothing new to install, upgrade or grant (a team's RBAC on
ConfigMaps in its namespace already decides who may register models), `kubectl get cm -l
inference.io/modelarts-model` lists them, and the operator never reads them: a model is resolved when a
service is created, and the InferenceService then carries the image and model files itself (spec stays
self-contained, GitOps-exportable). model_id is the ConfigMap's uid, a UUID as ModelArts' ids are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from inference_operator.api.schema import STORAGE_URI
from inference_operator.cloudapi.errors import CloudError, Problem
from inference_operator.cloudapi.modelarts.errors import INVALID_PARAMETER, SERVICE_EXISTS
from inference_operator.cloudapi.modelarts.shapes import millis
from inference_operator.convert.common import RegisteredModel, dns_name

LABEL = "inference.io/modelarts-model"
FIELDS = ("model_name", "model_version", "model_type", "source_location", "model_uri", "description")
IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,511}$")
NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")
VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$")


def _bad(field: str, message: str) -> CloudError:
    return CloudError(Problem.BAD_REQUEST, f"{field}: {message}", INVALID_PARAMETER)


def _text(body: Mapping[str, Any], field: str, pattern: re.Pattern[str], what: str, required: bool = True) -> str:
    value = body.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not pattern.match(value):
        raise _bad(field, f"required, {what}")
    return value


def model_of_body(body: Any) -> dict[str, str]:
    """The registered fields of a POST /models body; what ModelArts has but a Kubernetes model does not
    (runtime, apis, install_type...) is kept under `extra` and shown back."""
    if not isinstance(body, dict):
        raise _bad("body", "expected a JSON object")
    model_type = body.get("model_type", "Image")
    if model_type != "Image":
        raise _bad("model_type", f"{str(model_type)[:32]!a} is not supported: register a container image "
                                 "(model_type Image, source_location the image)")
    out = {"model_name": _text(body, "model_name", NAME, "1-64 letters, digits, - _ ."),
           "model_version": _text(body, "model_version", VERSION, "1-64 letters, digits, . - _"),
           "model_type": "Image",
           "source_location": _text(body, "source_location", IMAGE, "a container image reference")}
    uri = body.get("model_uri")
    if uri is not None:
        if not isinstance(uri, str) or not re.match(STORAGE_URI, uri) or len(uri) > 1024:
            raise _bad("model_uri", "a storage URI: pvc://, nfs://, s3://, oss:// or obs://")
        out["model_uri"] = uri
    description = body.get("description", "")
    if not isinstance(description, str) or len(description) > 100:
        raise _bad("description", "a string of at most 100 characters")
    out["description"] = description
    extra = {k: v for k, v in body.items() if k not in FIELDS}
    if extra:
        out["extra"] = json.dumps(extra, sort_keys=True)
    return out


def configmap(namespace: str, fields: Mapping[str, str]) -> dict[str, Any]:
    name = dns_name(f"model-{fields['model_name']}-{fields['model_version']}", 253, "model")
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": {LABEL: "true"}},
            "data": dict(fields)}


def duplicate(fields: Mapping[str, str]) -> CloudError:
    return CloudError(Problem.CONFLICT, f"Model {fields['model_name']} version {fields['model_version']} already "
                                        "exists", SERVICE_EXISTS)


def model_object(cm: Mapping[str, Any]) -> dict[str, Any]:
    """A registered model as GET /models/{model_id} shows it."""
    meta, data = cm.get("metadata") or {}, dict(cm.get("data") or {})
    try:
        extra = json.loads(data.pop("extra", "") or "{}")
    except ValueError:
        extra = {}
    return {**(extra if isinstance(extra, dict) else {}), **data, "model_id": meta.get("uid"),
            "model_status": "published", "project": meta.get("namespace"),
            "create_at": millis(meta.get("creationTimestamp"))}


def registered(cm: Mapping[str, Any]) -> RegisteredModel:
    data = cm.get("data") or {}
    return RegisteredModel(str(data.get("model_name", "")), str(data.get("model_version", "")),
                           str(data.get("source_location", "")), data.get("model_uri") or None)
