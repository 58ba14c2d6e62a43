"""PAI-EAS JSON -> InferenceService, in its two shapes.

- The LLM app service (CreateAppService body, seed 003): ServiceName, AppType LLM, AppVersion,
  ServiceSpec (a preset such as llama_7b_fp16), Replicas, Config {ModelStorage oss|nas, OssPath |
  NasMountTarget + NasPath, VPC fields}. It becomes one vllm model whose specification is the preset.
- The service description of `eascmd create` / CreateService: metadata {name, instance, cpu,
  memory, gpu}, containers [{image, command, port, env}], storage [{mount_path, oss|nfs}],
  autoscaler {min, max, scaleStrategies}, cloud.computing.instance_type, processor/model_path.
Field map: docs/api.md's table (ServiceName, containers/ServiceSpec, instance_type and cpu/gpu/memory,
Replicas, autoscaler, OSS/NAS mounts).
"""

from __future__ import annotations

from typing import Any

from inference_operator.catalog.presets import parse_preset
from inference_operator.convert.common import (
    UNKNOWN_FIELD,
    Notes,
    Options,
    clamp_instances,
    dns_name,
    env_map,
    manifest,
    placeholder_image,
    whole_gpus,
)

MODEL_DIR = "/mnt/models"
APP_READ_ONLY = {"RequestId", "ServiceId", "Status", "Region", "InternetEndpoint", "IntranetEndpoint"}
APP_DROPPED = {"WorkspaceId": "no equivalent, dropped (use a namespace)",
               "QuotaId": "no equivalent, dropped (use a ResourceQuota)"}
NAS_NETWORK = ("SecurityGroupID", "VpcID", "VswitchID")


def is_app_service(data: dict[str, Any]) -> bool:
    return any(key in data for key in ("ServiceSpec", "AppType", "ServiceName"))


def is_eas_service(data: dict[str, Any]) -> bool:
    return "containers" in data or "processor" in data or isinstance(data.get("metadata"), dict)


def _name(raw: str, where: str, notes: Notes) -> str:
    name = dns_name(raw)
    if name != raw:
        notes.add(where, f'"{raw}" is not a Kubernetes name; metadata.name is "{name}"')
    return name


def _app_storage(config: dict[str, Any], notes: Notes) -> str | None:
    storage = str(config.get("ModelStorage") or "").lower()
    handled = {"ModelStorage", "OssPath", "NasMountTarget", "NasPath", *NAS_NETWORK}
    for key in sorted(set(config) - handled):
        notes.dropped(f"Config.{key}", UNKNOWN_FIELD)
    for key in NAS_NETWORK:
        if key in config:
            notes.dropped(f"Config.{key}", "no equivalent, dropped (the cluster's network reaches the NAS)")
    if storage == "oss" and config.get("OssPath"):
        return str(config["OssPath"])
    if storage == "nas" and config.get("NasMountTarget"):
        return f"nfs://{config['NasMountTarget']}/{str(config.get('NasPath') or '/').lstrip('/')}"
    if config:
        notes.dropped("Config", f'model storage "{storage}" not understood; set modelUri')
    return None


def convert_app(data: dict[str, Any], opts: Options, notes: Notes) -> dict[str, Any]:
    """CreateAppService (AppType LLM) -> one vllm model sized by its preset."""
    name = _name(str(data.get("ServiceName") or "llm-service"), "ServiceName", notes)
    spec_name = str(data.get("ServiceSpec") or "")
    preset = parse_preset(spec_name)
    if preset is None:
        notes.add("ServiceSpec", f'"{spec_name}" is not an LLM preset (<model>_<size>b_<fp16|int8|int4>); '
                                 "kept as specification: add it to the flavor ConfigMap")
    app_type = data.get("AppType") or "LLM"
    if app_type != "LLM":
        notes.add("AppType", f'"{app_type}" is not LLM; converted to the vllm runtime anyway')
    else:
        notes.add("AppType", "LLM: served by the vllm runtime (OpenAI-compatible API)")
    model: dict[str, Any] = {"name": "llm", "modelName": preset.model if preset else name,
                             "modelVersion": str(data.get("AppVersion") or "v1"), "runtime": "vllm",
                             "port": 8000, "weight": 100, "specification": spec_name or "llama_7b_fp16",
                             "instanceCount": clamp_instances(data.get("Replicas"), "Replicas", notes)}
    if "AppVersion" in data:
        notes.add("AppVersion", "kept as modelVersion (informational); the runtime image is the operator's "
                                "vllm image")
    if opts.image:
        model["image"] = opts.image
    uri = _app_storage(dict(data.get("Config") or {}), notes)
    if uri:
        model["modelUri"] = uri
    else:
        notes.add("Config", "no model storage: vLLM will load modelName from the Hugging Face hub; set modelUri")
    handled = {"ServiceName", "ServiceSpec", "AppType", "AppVersion", "Replicas", "Config"}
    for key in sorted(set(data) - handled):
        why = "read-only state of the old service, not carried over" if key in APP_READ_ONLY else \
            APP_DROPPED.get(key, UNKNOWN_FIELD)
        notes.dropped(key, why)
    return manifest(name, {"models": [model]})


def _container(data: dict[str, Any], model: dict[str, Any], opts: Options, notes: Notes) -> None:
    containers = list(data.get("containers") or [])
    first = dict(containers[0]) if containers else {}
    for i in range(1, len(containers)):
        notes.dropped(f"containers[{i}]", "sidecar containers are not supported, dropped")
    image = opts.image or first.get("image")
    if not image:
        image = placeholder_image(model["modelName"], model["modelVersion"])
        why = f'processor "{data["processor"]}" has no equivalent' if data.get("processor") else "no image"
        notes.add("containers[0].image", f'{why}: image set to "{image}"; replace it (or pass --image)')
    model["image"] = image
    command = first.get("command") or first.get("script")  # script: the start command in EAS's own docs
    if command:
        model["command"] = ["/bin/sh", "-c", str(command)]
    if first.get("port"):
        model["port"] = int(first["port"])
    env = first.get("env")
    if isinstance(env, list):
        env = {e.get("name"): e.get("value", "") for e in env if isinstance(e, dict)}
    envs = env_map(env, "containers[0].env", notes)
    if envs:
        model["envs"] = envs
    for key in sorted(set(first) - {"image", "command", "script", "port", "env"}):
        notes.dropped(f"containers[0].{key}", UNKNOWN_FIELD)


def _storage(data: dict[str, Any], model: dict[str, Any], notes: Notes) -> None:
    for i, entry in enumerate(data.get("storage") or []):
        where = f"storage[{i}]"
        uri = None
        if isinstance(entry.get("oss"), dict):
            uri = entry["oss"].get("path")
        elif isinstance(entry.get("nfs"), dict):
            nfs = entry["nfs"]
            uri = f"nfs://{nfs.get('server')}/{str(nfs.get('path') or '/').lstrip('/')}"
        if not uri or "modelUri" in model:
            notes.dropped(where, "only one model mount is carried over (as modelUri), dropped")
            continue
        model["modelUri"] = uri
        mount = entry.get("mount_path")
        if mount and mount.rstrip("/") != MODEL_DIR:
            notes.add(f"{where}.mount_path", f"{mount}: the model is mounted at {MODEL_DIR} instead")
    path = str(data.get("model_path") or "")
    if path and "modelUri" not in model and path.startswith(("oss://", "s3://")):
        model["modelUri"] = path
    elif path:
        notes.dropped("model_path", f"{path}: not an oss:// path or a second model location, dropped")


def _resources(meta: dict[str, Any], data: dict[str, Any], model: dict[str, Any], notes: Notes) -> None:
    cloud = dict(data.get("cloud") or {})
    computing = dict(cloud.get("computing") or {})
    instance_type = computing.get("instance_type")
    for key in sorted(set(cloud) - {"computing"}):
        notes.dropped(f"cloud.{key}", "no equivalent, dropped (networking is the cluster's)"
                      if key == "networking" else "no equivalent, dropped")
    for key in sorted(set(computing) - {"instance_type"}):
        notes.dropped(f"cloud.computing.{key}")
    if meta.get("cpu") and meta.get("memory"):
        model["specification"] = "custom"
        model["customSpec"] = {"cpu": meta["cpu"], "memory": int(meta["memory"]),
                               "gpu": whole_gpus(meta.get("gpu"), "metadata.gpu", notes)}
    else:
        for key in ("cpu", "memory", "gpu"):
            if meta.get(key):
                notes.dropped(f"metadata.{key}", "needs both metadata.cpu and metadata.memory to size the "
                                                 "instance (customSpec), dropped; the default flavor is used")
    if instance_type:
        notes.add("cloud.computing.instance_type", f'"{instance_type}" has no equivalent: '
                  + ("customSpec carries metadata.cpu/memory/gpu" if "customSpec" in model
                     else "the default flavor is used; set specification to a flavor of the same size"))


def _autoscaler(data: dict[str, Any], model: dict[str, Any], notes: Notes) -> None:
    auto = data.get("autoscaler")
    if not auto:
        return
    scaling: dict[str, Any] = {"enabled": True}
    if auto.get("min"):
        scaling["minReplicas"] = int(auto["min"])
    if auto.get("max"):
        scaling["maxReplicas"] = int(auto["max"])
    for i, rule in enumerate(auto.get("scaleStrategies") or []):
        if rule.get("metricName") == "cpu" and rule.get("threshold"):
            scaling["targetCPUUtilization"] = int(rule["threshold"])
        else:
            notes.dropped(f"autoscaler.scaleStrategies[{i}]", f'metric "{rule.get("metricName")}" needs a custom '
                          "metric (scaling.metrics with a Prometheus adapter), dropped")
    model["scaling"] = scaling


def convert_eas(data: dict[str, Any], opts: Options, notes: Notes) -> dict[str, Any]:
    """An eascmd service description -> one custom model."""
    meta = dict(data.get("metadata") or {})
    name = _name(str(meta.get("name") or data.get("name") or "eas-service"), "metadata.name", notes)
    model: dict[str, Any] = {"name": "main", "modelName": name, "modelVersion": "1", "runtime": "custom",
                             "weight": 100}
    notes.add("metadata.name", 'EAS has no model name/version: modelName is the service name, modelVersion "1"')
    _container(data, model, opts, notes)
    _storage(data, model, notes)
    _resources(meta, data, model, notes)
    model["instanceCount"] = clamp_instances(meta.get("instance"), "metadata.instance", notes)
    _autoscaler(data, model, notes)
    for key in sorted(set(meta) - {"name", "instance", "cpu", "memory", "gpu"}):
        notes.dropped(f"metadata.{key}")
    handled = {"metadata", "name", "containers", "storage", "cloud", "autoscaler", "processor", "model_path"}
    for key in sorted(set(data) - handled):
        notes.dropped(key, UNKNOWN_FIELD if key != "token" else "token auth: use spec.auth apps")
    return manifest(name, {"models": [model]})
