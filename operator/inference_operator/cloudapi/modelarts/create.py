"""A ModelArts create (or config update) body -> an InferenceService, through convert/modelarts.py (pure).

The migration CLI's converter does the mapping; what it would only note, a service API must decide:
fields with no Kubernetes meaning (VPC, pools, workspace...) are kept in an annotation and shown back
by GET; values it would change (fractional GPUs, instance counts out of range, unknown flavors, bad
environment names) and fields it does not know are refused, naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from inference_operator.api.v1alpha1 import ENV_NAME, InvalidSpecError
from inference_operator.catalog.flavors import BUILTIN_FLAVORS
from inference_operator.catalog.presets import parse_preset
from inference_operator.cloudapi.errors import CloudError, Problem
from inference_operator.cloudapi.modelarts.errors import MODEL_NOT_FOUND, SAME_MODEL_VERSION, invalid
from inference_operator.cloudapi.modelarts.shapes import KEPT_FIELDS, ORIGINAL_NAME
from inference_operator.convert import modelarts as convert
from inference_operator.convert.common import Notes, Options, RegisteredModel, validate

NOTES = "inference.io/conversion-notes"
KEPT_TOP = (set(convert.TOP_DROPPED) | {"load_balancer_policy", "service_secrets", "priority", "cluster_id"})
KEPT_CONFIG = set(convert.CONFIG_DROPPED) | {"deploy_timeout_in_seconds", "affinity"}
NAME = re.compile(r"^[\w-]{1,64}$")


def _check_top(body: Mapping[str, Any]) -> None:
    name = body.get("service_name")
    if not isinstance(name, str) or not NAME.match(name):
        raise invalid("service_name", "required, 1-64 letters, digits, - and _")
    if not isinstance(body.get("description", ""), str) or len(body.get("description", "")) > 100:
        raise invalid("description", "a string of at most 100 characters")
    if body.get("infer_type", "real-time") not in ("real-time", "batch"):
        raise invalid("infer_type", "real-time or batch (edge services have no equivalent on a cluster)")
    for key in body:
        if key not in convert.HANDLED and key not in KEPT_TOP:
            raise invalid(str(key)[:64], "unknown field" if key not in convert.READ_ONLY else "read-only field")
    config = body.get("config")
    if not isinstance(config, list) or not config or not all(isinstance(c, dict) for c in config):
        raise invalid("config", "required, a non-empty array of objects")
    if body.get("infer_type") == "batch" and len(config) != 1:
        raise invalid("config", "a batch service has exactly one model")
    _check_schedule(body.get("schedule"), body.get("infer_type", "real-time"))


def _check_schedule(schedule: Any, infer_type: str) -> None:
    if schedule is None:
        return
    if not isinstance(schedule, list) or not all(isinstance(s, dict) for s in schedule):
        raise invalid("schedule", "an array of objects")
    if schedule and infer_type == "batch":
        raise invalid("schedule", "only real-time services have a schedule")
    for i, entry in enumerate(schedule):
        if entry.get("type", "stop") != "stop":
            raise invalid(f"schedule[{i}].type", "only stop is supported")
        if entry.get("time_unit") not in ("DAYS", "HOURS", "MINUTES"):
            raise invalid(f"schedule[{i}].time_unit", "DAYS, HOURS or MINUTES")
        if not isinstance(entry.get("duration"), int) or isinstance(entry.get("duration"), bool) \
                or entry["duration"] < 1:
            raise invalid(f"schedule[{i}].duration", "a positive integer")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_config(i: int, cfg: Mapping[str, Any], infer_type: str) -> None:
    where = f"config[{i}]"
    for key in cfg:
        if key not in convert.CONFIG_HANDLED and key not in KEPT_CONFIG:
            raise invalid(f"{where}.{str(key)[:64]}", "unknown field")
        if infer_type != "batch" and key in convert.BATCH_FIELDS:
            raise invalid(f"{where}.{key}", "only for batch services")
    if not isinstance(cfg.get("model_id"), str) or not cfg["model_id"]:
        raise invalid(f"{where}.model_id", "required, the id of a registered model")
    spec = cfg.get("specification")
    if not isinstance(spec, str) or not (spec == "custom" or spec in BUILTIN_FLAVORS or parse_preset(spec)):
        raise invalid(f"{where}.specification", "required, one of GET .../services/specifications, or custom")
    count = cfg.get("instance_count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 128:
        raise invalid(f"{where}.instance_count", "an integer within 1..128")
    weight = cfg.get("weight", 100)
    if not (_number(weight) or (isinstance(weight, str) and weight.isdigit())) or not 0 <= int(weight) <= 100:
        raise invalid(f"{where}.weight", "an integer within 0..100")
    custom = cfg.get("custom_spec")
    if spec == "custom" or custom is not None:
        _check_custom(where, custom)
    envs = cfg.get("envs") or {}
    if not isinstance(envs, dict):
        raise invalid(f"{where}.envs", "an object of strings")
    for key, value in envs.items():
        if not re.match(ENV_NAME, key) or not isinstance(value, str | int | float | bool):
            raise invalid(f"{where}.envs.{key[:64]}", "a valid environment variable name with a scalar value")
    if not isinstance(cfg.get("scaling", False), bool):
        raise invalid(f"{where}.scaling", "true or false")


def _check_custom(where: str, custom: Any) -> None:
    if not isinstance(custom, dict):
        raise invalid(f"{where}.custom_spec", "required with specification custom: {cpu, memory, gpu_p4}")
    for key in custom:
        if key not in ("cpu", "memory", "gpu_p4", "ascend_a310"):
            raise invalid(f"{where}.custom_spec.{str(key)[:64]}", "unknown field")
    if not _number(custom.get("cpu")) or not 0.01 <= custom["cpu"] <= 1024:
        raise invalid(f"{where}.custom_spec.cpu", "a number of cores, at least 0.01")
    if not isinstance(custom.get("memory"), int) or not 1 <= custom["memory"] <= 4 * 1024 * 1024:
        raise invalid(f"{where}.custom_spec.memory", "an integer of MB")
    for key in ("gpu_p4", "ascend_a310"):
        value = custom.get(key, 0)
        if not _number(value) or value < 0 or value != int(value) or value > 64:
            raise invalid(f"{where}.custom_spec.{key}", "a whole number of devices (Kubernetes allocates whole "
                                                        "GPUs and NPUs)")


def check_models(config: list[dict[str, Any]], models: Mapping[str, RegisteredModel], infer_type: str) -> None:
    """Every config entry valid, its model registered, no model version twice, weights summing to 100."""
    seen: set[tuple[str, str]] = set()
    for i, cfg in enumerate(config):
        _check_config(i, cfg, infer_type)
        found = models.get(cfg["model_id"])
        if found is None:
            raise CloudError(Problem.BAD_REQUEST, f"Model {cfg['model_id'][:64]} does not exist "
                                                  f"(config[{i}].model_id)", MODEL_NOT_FOUND)
        if (found.name, found.version) in seen:
            raise CloudError(Problem.BAD_REQUEST, f"config[{i}].model_id: the version of the model that is used "
                                                  "for deploying services is the same", SAME_MODEL_VERSION)
        seen.add((found.name, found.version))
    if infer_type == "real-time" and sum(int(c.get("weight", 100 if len(config) == 1 else 0)) for c in config) != 100:
        raise invalid("config[].weight", "the sum of all weights must be equal to 100")


def kept(body: Mapping[str, Any]) -> dict[str, Any]:
    """What has no Kubernetes meaning, kept as sent (shown back by GET)."""
    out: dict[str, Any] = {k: v for k, v in body.items() if k in KEPT_TOP}
    return out


def check_body(body: Any) -> dict[str, Any]:
    """What can be judged of a create body before its models are looked up; CloudError names the field."""
    if not isinstance(body, dict):
        raise invalid("body", "expected a JSON object")
    _check_top(body)
    for i, cfg in enumerate(body["config"]):
        _check_config(i, cfg, body.get("infer_type", "real-time"))
    return body


def manifest(body: Any, namespace: str, models: Mapping[str, RegisteredModel]) -> dict[str, Any]:
    """The InferenceService for a create body; CloudError (400) naming the first field that cannot be carried."""
    body = check_body(body)
    infer_type = body.get("infer_type", "real-time")
    check_models(body["config"], models, infer_type)
    carried = {k: v for k, v in body.items() if k not in KEPT_TOP}
    carried["config"] = [{k: v for k, v in c.items() if k not in KEPT_CONFIG} for c in body["config"]]
    notes = Notes()
    out = convert.convert(carried, Options(models=dict(models)), notes)
    meta = out["metadata"]
    meta["namespace"] = namespace
    annotations: dict[str, str] = {}
    if meta["name"] != body["service_name"]:
        annotations[ORIGINAL_NAME] = body["service_name"]
    kept_top = kept(body)
    kept_config = [{k: v for k, v in c.items() if k in KEPT_CONFIG} for c in body["config"]]
    if any(kept_config):
        kept_top["config_extra"] = kept_config
    if kept_top:
        annotations[KEPT_FIELDS] = json.dumps(kept_top, sort_keys=True)
    if notes.lines:
        annotations[NOTES] = "\n".join(notes.lines)[:4096]
    if annotations:
        meta["annotations"] = annotations
    try:
        validate(out)
    except InvalidSpecError as err:
        raise invalid("body", "; ".join(err.messages)[:1000]) from None
    return out
