"""Shared pieces of the converters: the notes they collect, names, storage URIs, the final manifest."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from inference_operator.api.v1alpha1 import API_VERSION, ENV_NAME, KIND, MODEL_NAME_MAX, InferenceService

PLACEHOLDER_REGISTRY = "CHANGE-ME"
UNKNOWN_FIELD = "unknown field, dropped"


@dataclass(frozen=True)
class RegisteredModel:
    """A model a registry knows by its id (the cloud API's model registry): what ModelArts keeps there."""

    name: str
    version: str
    image: str
    model_uri: str | None = None


@dataclass
class Options:
    """Choices the source JSON cannot make: the image to run, a PVC holding copied data, and the models a
    registry resolves by model_id (their image and files; the cloud API server passes them)."""

    image: str | None = None
    data_pvc: str | None = None
    models: dict[str, RegisteredModel] = field(default_factory=dict)


@dataclass
class Notes:
    """Messages for stderr: one per field that is not carried over as it was."""

    lines: list[str] = field(default_factory=list)
    entries: list[tuple[str, str]] = field(default_factory=list)

    def add(self, where: str, message: str) -> None:
        self.lines.append(f"{where}: {message}")
        self.entries.append((where, message))

    def unknown_fields(self) -> list[str]:
        """Where the source had a field no converter knows: a typo or a newer feature (the cloud API refuses
        these rather than keeping them)."""
        return [where for where, message in self.entries if message == UNKNOWN_FIELD]

    def dropped(self, where: str, why: str = "no equivalent, dropped") -> None:
        self.add(where, why)


def dns_name(raw: str, limit: int = 63, prefix: str = "svc") -> str:
    """A DNS-1035 label from a cloud name: lower case, "_" and other characters to "-", a letter first."""
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if not name or not name[0].isalpha():
        name = f"{prefix}-{name}".strip("-")
    return name[:limit].rstrip("-")


def model_entry_name(model_name: str, version: str, taken: set[str]) -> str:
    """A unique spec.models[].name from the model's name and version (jar-model 1.0.1 -> jar-model-1-0-1)."""
    base = dns_name(f"{model_name}-{version}", MODEL_NAME_MAX - 3, prefix="m")
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def placeholder_image(model_name: str, version: str) -> str:
    """An image reference that cannot be pulled by accident: the user has to put the real one."""
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", version).strip("-.") or "latest"
    return f"{PLACEHOLDER_REGISTRY}/{dns_name(model_name, 100, 'model')}:{tag[:128]}"


def obs_uri(path: str) -> str | None:
    """OBS paths as ModelArts writes them -> obs://bucket/key; None when it is not one.

    Accepts obs://bucket/key, /bucket/key and https://bucket.obs.<region>.myhuaweicloud.com/key.
    """
    if path.startswith("obs://"):
        return path
    if path.startswith("/") and len(path) > 1:
        return "obs:/" + path
    parts = urlsplit(path)
    if parts.scheme in ("http", "https") and ".obs." in parts.netloc:
        return f"obs://{parts.netloc.split('.obs.', 1)[0]}{parts.path or '/'}"
    return None


def on_pvc(uri: str, claim: str) -> str:
    """obs://bucket/key -> pvc://claim/bucket/key: the data copied into a PersistentVolumeClaim."""
    return f"pvc://{claim}/{uri.split('://', 1)[1].lstrip('/')}"


def env_map(envs: Any, where: str, notes: Notes) -> dict[str, str] | None:
    """Environment variables as strings; names Kubernetes refuses are dropped with a note."""
    if not envs:
        return None
    out: dict[str, str] = {}
    for key, value in envs.items():
        if re.match(ENV_NAME, str(key)):
            out[str(key)] = _text(value)
        else:
            notes.add(f"{where}.{key}", "not a valid environment variable name in Kubernetes, dropped")
    return out or None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def whole_gpus(value: Any, where: str, notes: Notes) -> int:
    """Kubernetes GPUs are whole: 0.5 becomes 1, with a note."""
    count = float(value or 0)
    if count != int(count):
        notes.add(where, f"{count:g} GPUs rounded up to {math.ceil(count)}: Kubernetes allocates whole GPUs")
    return math.ceil(count)


def clamp_instances(value: Any, where: str, notes: Notes) -> int:
    """instanceCount is 1..128."""
    count = int(value if value is not None else 1)
    if not 1 <= count <= 128:
        notes.add(where, f"{count} is outside 1..128; used {min(max(count, 1), 128)}")
    return min(max(count, 1), 128)


def manifest(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The InferenceService object, keys in the order people read them."""
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec}


def validate(body: dict[str, Any]) -> InferenceService:
    """The operator's own check (InvalidSpecError names the fields); what kubectl apply would meet."""
    return InferenceService.from_body(body)
