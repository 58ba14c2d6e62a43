"""The Deployment of one model: its pods, resources from the flavor, and its model files.

Why the choices:
- `replicas` is left out entirely while an HPA owns it (STYLE rule 4, KServe IgnoreFields): sending
  it with server-side apply would fight the autoscaler. Stopped services send 0 (API.md, stopped).
- The model is mounted read-only at /mnt/models: a PVC (claim + subPath) or NFS export directly,
  object storage (s3/oss/obs, as ModelArts loads from OBS and PAI-EAS from OSS) through an
  emptyDir filled by a "storage-initializer" init container (KServe's pattern) running the AWS CLI,
  which reads oss:// and obs:// buckets through their S3-compatible endpoints (AWS_ENDPOINT_URL).
  The init container gets the model's AWS_* envs (endpoint, region, credentials).
- enableServiceLinks is off: Service env vars can collide with the server's own settings (a
  Service named "vllm" sets VLLM_PORT, which vLLM reads).
- No volatile annotations in the template: the same spec must give the same pods.
- Image, arguments and readiness per runtime (custom, vllm, tgi) live in runtimes.py.
- LoRA adapters (docs/lora.md) are not in the template: only the claims holding them are, each mounted
  read-only at /mnt/adapters/<claim>, so an adapter added on a claim the pods mount already, or removed,
  changes no pod. The operator loads them through the engine's API (runtime/adapters.py).
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit

from inference_operator.api.v1alpha1 import InferenceService, ModelSpec, adapter_dir, source_claim
from inference_operator.builders.hpa import replica_bounds
from inference_operator.builders.labels import child_metadata, model_labels, selector_labels
from inference_operator.builders.names import deployment_name
from inference_operator.builders.runtimes import (
    MODEL_DIR,
    PORT_NAME,
    SHARED_MEMORY_RUNTIMES,
    readiness_probe,
    runtime_args,
    runtime_env,
    runtime_image,
    vllm_args,
)
from inference_operator.catalog.flavors import Flavor
from inference_operator.config import OperatorConfig

__all__ = ["MODEL_DIR", "PORT_NAME", "build_deployment", "model_container", "pod_spec", "vllm_args"]

CONTAINER_NAME = "model"
INIT_CONTAINER_NAME = "storage-initializer"
MODEL_VOLUME = "model-store"
_NO_ESCALATION = {"allowPrivilegeEscalation": False}


def desired_replicas(svc: InferenceService, model: ModelSpec, decided: int | None = None) -> int | None:
    """0 when stopped; scaled on concurrency, the count `decided` (the fewest allowed before any decision);
    None (field omitted, HPA decides) when scaling on CPU; else instanceCount."""
    if svc.spec.stopped:
        return 0
    if model.scales_on_concurrency:
        return decided if decided is not None else replica_bounds(model)[0]
    if model.scaling is not None and model.scaling.enabled:
        return None
    return model.instance_count


def _model_storage(model: ModelSpec) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(volume, main container mount) for model.modelUri, or None without one."""
    if not model.model_uri:
        return None
    uri = urlsplit(model.model_uri)
    mount: dict[str, Any] = {"name": MODEL_VOLUME, "mountPath": MODEL_DIR, "readOnly": True}
    if uri.scheme == "pvc":
        sub_path = uri.path.strip("/")
        if sub_path:
            mount["subPath"] = sub_path
        source = {"persistentVolumeClaim": {"claimName": uri.netloc, "readOnly": True}}
    elif uri.scheme == "nfs":
        source = {"nfs": {"server": uri.netloc, "path": uri.path or "/", "readOnly": True}}
    else:
        source = {"emptyDir": {}}
    return {"name": MODEL_VOLUME, **source}, mount


def _s3_uri(model_uri: str) -> str:
    """oss://bucket/key and obs://bucket/key are S3-compatible: the AWS CLI wants s3://."""
    return "s3://" + model_uri.split("://", 1)[1]


def storage_initializer(model: ModelSpec, cfg: OperatorConfig) -> dict[str, Any] | None:
    """Init container copying an object-storage model into the shared emptyDir."""
    if not model.model_uri or urlsplit(model.model_uri).scheme in ("pvc", "nfs"):
        return None
    container: dict[str, Any] = {
        "name": INIT_CONTAINER_NAME,
        "image": cfg.storage_initializer_image,
        "command": ["aws", "s3", "sync", "--only-show-errors", _s3_uri(model.model_uri), MODEL_DIR],
        "volumeMounts": [{"name": MODEL_VOLUME, "mountPath": MODEL_DIR}],
        "securityContext": dict(_NO_ESCALATION),
    }
    aws_env = {k: v for k, v in (model.envs or {}).items() if k.startswith("AWS_")}
    if aws_env:
        container["env"] = [{"name": k, "value": aws_env[k]} for k in sorted(aws_env)]
    return container


def model_container(model: ModelSpec, flavor: Flavor, cfg: OperatorConfig) -> dict[str, Any]:
    """The serving container: image, ports, env, the flavor's resources, readiness (runtimes.py)."""
    container: dict[str, Any] = {"name": CONTAINER_NAME, "image": runtime_image(model, cfg)}
    if model.command:
        container["command"] = list(model.command)
    args = runtime_args(model, flavor)
    if args:
        container["args"] = args
    container["ports"] = [{"name": PORT_NAME, "containerPort": model.port, "protocol": "TCP"}]
    env = runtime_env(model)
    if env:
        container["env"] = [{"name": k, "value": env[k]} for k in sorted(env)]
    container["resources"] = flavor.resources()
    container["readinessProbe"] = readiness_probe(model)
    container["securityContext"] = dict(_NO_ESCALATION)
    return container


def adapter_volumes(model: ModelSpec) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(volume, mount) for each claim the model's adapters are on, by claim name: the volume's name is a
    hash of the claim's, so it fits a DNS label whatever the claim's length."""
    claims = sorted({source_claim(a.source)[0] for a in model.adapters or ()})
    found = []
    for claim in claims:
        name = "adapters-" + hashlib.sha256(claim.encode()).hexdigest()[:12]
        found.append(({"name": name, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}},
                      {"name": name, "mountPath": adapter_dir(claim), "readOnly": True}))
    return found


def pod_spec(model: ModelSpec, flavor: Flavor, cfg: OperatorConfig) -> dict[str, Any]:
    """Pod spec with the model volume, placement and tolerations of the flavor."""
    container = model_container(model, flavor, cfg)
    volumes: list[dict[str, Any]] = []
    spec: dict[str, Any] = {"enableServiceLinks": False}
    storage = _model_storage(model)
    if storage:
        volumes.append(storage[0])
        container["volumeMounts"] = [storage[1]]
        init = storage_initializer(model, cfg)
        if init:
            spec["initContainers"] = [init]
    for volume, mount in adapter_volumes(model):
        volumes.append(volume)
        container.setdefault("volumeMounts", []).append(mount)
    if model.runtime in SHARED_MEMORY_RUNTIMES:  # tensor-parallel workers share memory through /dev/shm
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory"}})
        container.setdefault("volumeMounts", []).append({"name": "dshm", "mountPath": "/dev/shm"})
    spec["containers"] = [container]
    if volumes:
        spec["volumes"] = volumes
    if flavor.node_selector:
        spec["nodeSelector"] = dict(sorted(flavor.node_selector.items()))
    if flavor.tolerations:
        spec["tolerations"] = [dict(t) for t in flavor.tolerations]
    return spec


def build_deployment(svc: InferenceService, model: ModelSpec, flavor: Flavor,
                     cfg: OperatorConfig, decided: int | None = None) -> dict[str, Any]:
    """apps/v1 Deployment of one model, owned by the service (`decided`: its replicas when scaled on
    concurrency)."""
    spec: dict[str, Any] = {}
    replicas = desired_replicas(svc, model, decided)
    if replicas is not None:
        spec["replicas"] = replicas
    spec["selector"] = {"matchLabels": selector_labels(svc, model)}
    spec["template"] = {
        "metadata": {"labels": dict(sorted(model_labels(svc, model).items()))},
        "spec": pod_spec(model, flavor, cfg),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": child_metadata(svc, deployment_name(svc, model), model_labels(svc, model)),
        "spec": spec,
    }
