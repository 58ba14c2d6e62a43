"""ModelArts create-service JSON (or a GET /v1/{project}/services/{id} answer) -> InferenceService.

Field map: docs/api.md's table "Map to the cloud services' fields" (seed 001: service and config
fields, schedule, custom_spec {cpu, memory, gpu_p4, ascend_a310}; batch src_path, dest_path,
req_uri, mapping_type, mapping_rule). What ModelArts keeps elsewhere (the model's image and files
live in its model registry, found by model_id) or that has no Kubernetes meaning (VPC, subnet,
dedicated pool) is reported, never silently lost.
"""

from __future__ import annotations

from typing import Any

from inference_operator.batch.mapping import RuleError, validate_rule
from inference_operator.catalog.flavors import BUILTIN_FLAVORS
from inference_operator.catalog.presets import parse_preset
from inference_operator.convert.common import (
    Notes,
    Options,
    RegisteredModel,
    clamp_instances,
    dns_name,
    env_map,
    manifest,
    model_entry_name,
    obs_uri,
    on_pvc,
    placeholder_image,
    whole_gpus,
)

TOP_DROPPED = {
    "workspace_id": "no equivalent, dropped (use a namespace)",
    "cluster_id": "no equivalent, dropped (a dedicated pool is a flavor's nodeSelector here)",
    "pool_name": "no equivalent, dropped (a dedicated pool is a flavor's nodeSelector here)",
    "vpc_id": "no equivalent, dropped (networking is the cluster's)",
    "subnet_network_id": "no equivalent, dropped (networking is the cluster's)",
    "security_group_id": "no equivalent, dropped (use a NetworkPolicy)",
    "additional_properties": "no equivalent, dropped",
}
READ_ONLY = {"service_id", "tenant", "project", "owner", "publish_at", "update_time", "status", "progress",
             "error_msg", "access_address", "bind_access_address", "invocation_times", "failed_times",
             "is_shared", "shared_count", "debug_url", "due_time", "operation_time", "transition_at", "is_free"}
CONFIG_READ_ONLY = {"status", "support_debug", "source_type", "start_time", "finished_time"}
CONFIG_DROPPED = {"cluster_id": "no equivalent, dropped", "pool_name": "no equivalent, dropped",
                  "nodes": "no equivalent, dropped (edge nodes)", "src_type": "no equivalent, dropped",
                  "additional_properties": "no equivalent, dropped"}
BATCH_FIELDS = ("src_path", "dest_path", "req_uri", "mapping_type", "mapping_rule")
HANDLED = {"service_name", "description", "infer_type", "schedule", "config"}
CONFIG_HANDLED = {"model_id", "model_name", "model_version", "weight", "specification", "custom_spec",
                  "instance_count", "envs", "scaling", *BATCH_FIELDS}


def is_modelarts(data: dict[str, Any]) -> bool:
    return "service_name" in data or isinstance(data.get("config"), list) or "infer_type" in data


def _resources(cfg: dict[str, Any], model: dict[str, Any], where: str, notes: Notes) -> None:
    spec = cfg.get("specification") or "modelarts.vm.cpu.2u"
    model["specification"] = spec
    if spec == "custom":
        custom = cfg.get("custom_spec") or {}
        model["customSpec"] = {"cpu": custom.get("cpu", 1), "memory": custom.get("memory", 4096),
                               "gpu": whole_gpus(custom.get("gpu_p4"), f"{where}.custom_spec.gpu_p4", notes),
                               "ascend": int(custom.get("ascend_a310") or 0)}
        for key in set(custom) - {"cpu", "memory", "gpu_p4", "ascend_a310"}:
            notes.dropped(f"{where}.custom_spec.{key}")
    elif spec not in BUILTIN_FLAVORS and parse_preset(spec) is None:
        notes.add(f"{where}.specification", f'"{spec}" is not a built-in flavor: add it to the flavor '
                                            'ConfigMap, or use specification "custom" with customSpec')


def _registered(cfg: dict[str, Any], registered: RegisteredModel, taken: set[str]) -> dict[str, Any]:
    """A model entry from a registered model: its name, version, image and files, nothing guessed."""
    model: dict[str, Any] = {"name": model_entry_name(registered.name, registered.version, taken),
                             "modelName": registered.name[:128], "modelVersion": registered.version[:64],
                             "modelId": str(cfg["model_id"]), "runtime": "custom", "image": registered.image}
    if registered.model_uri:
        model["modelUri"] = registered.model_uri
    return model


def _model(cfg: dict[str, Any], i: int, taken: set[str], opts: Options, notes: Notes) -> dict[str, Any]:
    where = f"config[{i}]"
    model_id = cfg.get("model_id")
    registered = opts.models.get(str(model_id)) if model_id is not None else None
    model = _registered(cfg, registered, taken) if registered else _unregistered(cfg, i, taken, opts, notes)
    if "weight" in cfg:
        model["weight"] = int(cfg["weight"])
    _resources(cfg, model, where, notes)
    model["instanceCount"] = clamp_instances(cfg.get("instance_count"), f"{where}.instance_count", notes)
    if cfg.get("scaling"):
        model["scaling"] = {"enabled": True}
        notes.add(f"{where}.scaling", "enabled; minReplicas/maxReplicas default to instanceCount: set them")
    envs = env_map(cfg.get("envs"), f"{where}.envs", notes)
    if envs:
        model["envs"] = envs
    for key in sorted(set(cfg) - CONFIG_HANDLED):
        if key in CONFIG_READ_ONLY:
            notes.dropped(f"{where}.{key}", "read-only state of the old service, not carried over")
        else:
            notes.dropped(f"{where}.{key}", CONFIG_DROPPED.get(key, "unknown field, dropped"))
    return model


def _unregistered(cfg: dict[str, Any], i: int, taken: set[str], opts: Options, notes: Notes) -> dict[str, Any]:
    """A model entry when only the JSON is known: name and version from it, the image a placeholder."""
    where = f"config[{i}]"
    model_id = cfg.get("model_id")
    model_name = str(cfg.get("model_name") or model_id or f"model-{i + 1}")
    version = str(cfg.get("model_version") or "1.0.0")
    if not cfg.get("model_name"):
        notes.add(f"{where}.model_name", f'not in the JSON (ModelArts finds the model by model_id); '
                                         f'modelName set to "{model_name}"')
    if not cfg.get("model_version"):
        notes.add(f"{where}.model_version", f'not in the JSON; modelVersion set to "{version}"')
    model: dict[str, Any] = {"name": model_entry_name(model_name, version, taken),
                             "modelName": model_name[:128], "modelVersion": version[:64]}
    if model_id:
        model["modelId"] = str(model_id)
        notes.add(f"{where}.model_id", "kept as modelId (informational); set modelUri to where the model "
                                       "files are (pvc://, nfs://, s3://, obs://)")
    model["runtime"] = "custom"
    model["image"] = opts.image or placeholder_image(model_name, version)
    if not opts.image:
        notes.add(where, f"the model's image lives in ModelArts' model registry: image set to "
                         f'"{model["image"]}"; replace it (or pass --image)')
    return model


def _path(value: str, where: str, opts: Options, notes: Notes) -> str:
    uri = obs_uri(value) or value
    if uri.startswith("obs://") and opts.data_pvc:
        notes.add(where, f"{value} is read from PVC {opts.data_pvc} as {on_pvc(uri, opts.data_pvc)}: copy the "
                         "OBS data there")
        return on_pvc(uri, opts.data_pvc)
    if uri.startswith("obs://"):
        notes.add(where, f"kept as {uri}; the batch runner reads pvc:// and nfs:// only: copy the data to a "
                         "PersistentVolumeClaim and use pvc://<claim>/<path> (or pass --data-pvc)")
    return uri


def _batch(cfg: dict[str, Any], opts: Options, notes: Notes) -> dict[str, Any]:
    batch: dict[str, Any] = {
        "srcPath": _path(str(cfg.get("src_path") or ""), "config[0].src_path", opts, notes),
        "destPath": _path(str(cfg.get("dest_path") or ""), "config[0].dest_path", opts, notes),
        "reqUri": cfg.get("req_uri") or "/",
        "mappingType": cfg.get("mapping_type") or "file",
    }
    if cfg.get("mapping_rule"):
        batch["mappingRule"] = cfg["mapping_rule"]
        try:
            validate_rule(cfg["mapping_rule"], "config[0].mapping_rule")
        except RuleError as err:
            notes.add("config[0].mapping_rule", f"kept, but the batch runner will refuse it: {err}")
    return batch


def _schedule(entries: Any, notes: Notes) -> list[dict[str, Any]]:
    out = []
    for i, entry in enumerate(entries or []):
        if entry.get("type", "stop") != "stop":
            notes.dropped(f"schedule[{i}]", f'type "{entry.get("type")}" is not supported (only stop), dropped')
            continue
        out.append({"type": "stop", "timeUnit": entry.get("time_unit"), "duration": entry.get("duration")})
    return out


def convert(data: dict[str, Any], opts: Options, notes: Notes) -> dict[str, Any]:
    """The InferenceService manifest for one ModelArts service; notes get every loss."""
    raw_name = str(data.get("service_name") or "inference-service")
    name = dns_name(raw_name)
    if name != raw_name:
        notes.add("service_name", f'"{raw_name}" is not a Kubernetes name; metadata.name is "{name}"')
    spec: dict[str, Any] = {}
    if data.get("description"):
        spec["description"] = str(data["description"])[:1024]
    infer_type = spec["inferType"] = _infer_type(data, notes)
    spec.update(_models(list(data.get("config") or []), infer_type, opts, notes))
    schedule = _schedule(data.get("schedule"), notes)
    if schedule and infer_type == "batch":
        notes.dropped("schedule", "only real-time services have a schedule here, dropped")
    elif schedule:
        spec["schedule"] = schedule
    for key in sorted(set(data) - HANDLED):
        if key in READ_ONLY:
            notes.dropped(key, "read-only state of the old service, not carried over")
        else:
            notes.dropped(key, TOP_DROPPED.get(key, "unknown field, dropped"))
    return manifest(name, spec)


def _infer_type(data: dict[str, Any], notes: Notes) -> str:
    infer_type = str(data.get("infer_type") or "real-time")
    if infer_type not in ("real-time", "batch"):
        notes.add("infer_type", f'"{infer_type}" has no equivalent; converted as real-time')
        infer_type = "real-time"
    return infer_type


def _models(configs: list[Any], infer_type: str, opts: Options, notes: Notes) -> dict[str, Any]:
    """spec.models (and spec.batch of a batch service) from the old service's config entries."""
    if infer_type == "batch" and len(configs) > 1:
        for i in range(1, len(configs)):
            notes.dropped(f"config[{i}]", "a batch service has exactly one model, dropped")
        configs = configs[:1]
    taken: set[str] = set()
    out: dict[str, Any] = {"models": [_model(cfg, i, taken, opts, notes) for i, cfg in enumerate(configs)]}
    if infer_type == "batch" and configs:
        out["models"][0].pop("weight", None)
        out["batch"] = _batch(configs[0], opts, notes)
    for i, cfg in enumerate(configs if infer_type == "real-time" else []):
        for key in BATCH_FIELDS:
            if cfg.get(key):
                notes.dropped(f"config[{i}].{key}", "only for batch services, dropped")
    return out
