"""Operator settings: one frozen object handed to the builders, so they never read the environment.

`OperatorConfig.from_env` reads these variables (unset or empty means the default):

- ``INFERENCE_OPERATOR_GATEWAY_BASE_URL``: base of status.accessAddress
  (default ``http://inference-gateway.inference-system.svc``; ``/v1/infers/<serviceId>`` is appended).
- ``INFERENCE_OPERATOR_STORAGE_INITIALIZER_IMAGE``: init container that copies s3://, oss:// and
  obs:// model URIs into the pod (default ``amazon/aws-cli:2.17.0``: the AWS CLI speaks to any
  S3-compatible store, OSS and OBS included, via ``AWS_ENDPOINT_URL``, supported since 2.13).
- ``INFERENCE_OPERATOR_FLAVOR_CONFIGMAP_NAME``: admin ConfigMap of extra flavors (``inference-flavors``).
- ``INFERENCE_OPERATOR_FLAVOR_CONFIGMAP_NAMESPACE``: its namespace (default: the operator's own).
- ``INFERENCE_OPERATOR_VLLM_IMAGE``: image of the vllm runtime (``vllm/vllm-openai:v0.6.3``).
- ``INFERENCE_OPERATOR_TGI_IMAGE``: image of the tgi runtime
  (``ghcr.io/huggingface/text-generation-inference:2.4.0``).
- ``INFERENCE_OPERATOR_PRESET_GPU_MEMORY_MIB``: memory of one GPU that LLM presets (``llama_7b_fp16``...)
  are sized against, in MiB (default ``81920``: an A100 80GB, the nodes' ``nvidia.com/gpu.memory`` label).
- ``INFERENCE_OPERATOR_PRESET_GPU_PRODUCT``: ``nvidia.com/gpu.product`` node label LLM presets select
  (default ``NVIDIA-A100-SXM4-80GB``); change it together with the GPU memory. See docs/llm-presets.md.
- ``INFERENCE_OPERATOR_BATCH_RUNNER_IMAGE``: image of batch Jobs, which run ``python -m
  inference_operator.batch`` (default: the operator's own image,
  ``ghcr.io/inference-operator/inference-operator:0.1.0``). See docs/batch.md.
- ``INFERENCE_OPERATOR_FIELD_MANAGER``: server-side apply field manager (``inference-operator``).
- ``INFERENCE_OPERATOR_GATEWAY_PARENT_REF``: Gateway the HTTPRoutes attach to, as YAML/JSON of a
  Gateway API parentRef (``{"name": "gw", "namespace": "infra"}``) or ``namespace/name``; unset
  writes HTTPRoutes without parentRefs.
- ``INFERENCE_OPERATOR_INFERENCE_POOL``: ``true`` gives every real-time service an InferencePool (where
  its CRD is served) unless its ``spec.inferencePool.enabled`` is false (default ``false``: only the
  services that set it true). ``INFERENCE_OPERATOR_ENDPOINT_PICKER``: the endpoint picker of pools whose
  service names none, as ``name:port`` (a Service in the service's namespace) or YAML/JSON of an
  endpointPickerRef (``{"name": "epp", "port": 9002, "failureMode": "FailOpen"}``). docs/gateway-api.md.
- ``INFERENCE_OPERATOR_HEADLESS_MODEL_SERVICES``: ``true`` makes each model's Service headless (no cluster IP
  to allocate; the gateway reads EndpointSlices either way). Default ``false``. builders/service.py, docs/api.md.
- ``INFERENCE_OPERATOR_GATEWAY_COUNTS_SERVICE``: ``namespace/name`` of the gateway's internal (headless)
  Service; every interval the operator lists its EndpointSlices and reads ``/-/counts`` of every gateway
  pod on port ``INFERENCE_OPERATOR_GATEWAY_COUNTS_PORT`` (a port name or number, ``metrics``), with the
  bearer token in ``INFERENCE_OPERATOR_GATEWAY_COUNTS_TOKEN_FILE`` (if set), and writes
  invocationTimes/failedTimes into status (counts.py). ``INFERENCE_OPERATOR_GATEWAY_COUNTS_URL``: one
  fixed ``/-/counts`` URL instead (a single gateway process, e.g. local runs). Read every
  ``INFERENCE_OPERATOR_COUNTS_INTERVAL_SECONDS`` (10); neither set: counts are not collected. The
  per-gateway-process ledger is kept in the ConfigMap ``INFERENCE_OPERATOR_COUNTS_LEDGER_NAME``
  (``inference-operator-gateway-counts``) of the operator's namespace.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inference_operator.api.v1alpha1 import EndpointPicker
from inference_operator.catalog.presets import DEFAULT_GPU_MEMORY_MIB, DEFAULT_GPU_PRODUCT

ENV_PREFIX = "INFERENCE_OPERATOR_"
_NAMESPACED_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_PICKER_SHORTHAND = re.compile(r"^([-.a-z0-9{}]+):([0-9]{1,5})$")
_SHORTHAND = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-.a-z0-9]*[a-z0-9])?$")


class OperatorConfig(BaseModel):
    """Settings the builders and the reconciler share; defaults suit the Helm chart's install."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gateway_base_url: str = "http://inference-gateway.inference-system.svc"
    storage_initializer_image: str = "amazon/aws-cli:2.17.0"
    flavor_configmap_name: str = "inference-flavors"
    flavor_configmap_namespace: str | None = None
    vllm_image: str = "vllm/vllm-openai:v0.6.3"
    tgi_image: str = "ghcr.io/huggingface/text-generation-inference:2.4.0"
    preset_gpu_memory_mib: int = Field(DEFAULT_GPU_MEMORY_MIB, gt=0)
    preset_gpu_product: str = DEFAULT_GPU_PRODUCT
    batch_runner_image: str = "ghcr.io/inference-operator/inference-operator:0.1.0"
    field_manager: str = "inference-operator"
    gateway_parent_ref: dict[str, Any] | None = None
    gateway_counts_url: str | None = None
    gateway_counts_service: str | None = Field(None, pattern=_NAMESPACED_NAME)
    gateway_counts_port: str = "metrics"
    gateway_counts_token_file: str | None = None
    counts_ledger_name: str = "inference-operator-gateway-counts"
    counts_interval_seconds: float = 10.0
    adapters_interval_seconds: float = 5.0  # between two reads of every LoRA engine's adapters (runtime/adapters.py)
    adapters_timeout_seconds: float = 5.0  # for one engine call (a list, a load, an unload)
    inference_pool: bool = False
    headless_model_services: bool = False
    endpoint_picker: EndpointPicker | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OperatorConfig:
        """Settings from INFERENCE_OPERATOR_* variables; a bad value raises ValueError naming it."""
        values: dict[str, Any] = {}
        for field in cls.model_fields:
            raw = environ.get(ENV_PREFIX + field.upper(), "").strip()
            if raw:
                parse = {"gateway_parent_ref": _parse_parent_ref, "endpoint_picker": _parse_endpoint_picker}.get(field)
                values[field] = parse(raw) if parse else raw
        try:
            return cls(**values)
        except ValidationError as err:
            names = ", ".join(ENV_PREFIX + str(e["loc"][0]).upper() for e in err.errors())
            raise ValueError(f"invalid operator setting {names}: {err}") from err


def _parse_endpoint_picker(raw: str) -> dict[str, Any]:
    """`name:port` or a YAML/JSON endpointPickerRef mapping (validated as spec.inferencePool.endpointPicker)."""
    shorthand = _PICKER_SHORTHAND.match(raw)
    if shorthand:
        return {"name": shorthand[1], "port": int(shorthand[2])}
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ValueError(f"{ENV_PREFIX}ENDPOINT_PICKER is not name:port, YAML or JSON: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{ENV_PREFIX}ENDPOINT_PICKER must be name:port or a mapping with a name")
    return data


def _parse_parent_ref(raw: str) -> dict[str, Any]:
    """`namespace/name`, `name`, or a YAML/JSON mapping -> a Gateway API parentRef."""
    if _SHORTHAND.match(raw):
        namespace, _, name = raw.rpartition("/")
        return {"name": name, "namespace": namespace} if namespace else {"name": name}
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ValueError(f"{ENV_PREFIX}GATEWAY_PARENT_REF is not YAML or JSON: {err}") from err
    if not isinstance(data, dict) or "name" not in data:
        raise ValueError(f"{ENV_PREFIX}GATEWAY_PARENT_REF must be a mapping with a name")
    return data
